// RotateKV: the folded rotations leave full-precision logits unchanged, 16-bit greedy equals
// the original, the reorder is a balanced permutation, and pivots stay exact.

import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { readReorder, reorderAscending, reorderFromMeans, writeReorder } from "../../src/calib/rotatekv.js";
import { foldRotateKv } from "../../src/model/fold-rotatekv.js";
import { rotateKeyRow, unrotateKeyRow, type RotateKvTransform } from "../../src/quant/rotation.js";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { choosePivots, createRotateKvCache } from "../../src/cache/rotatekv.js";
import type { KvCache } from "../../src/model/kv-cache.js";
import { UsageError } from "../../src/errors.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import type { Transformer } from "../../src/model/forward.js";
import { RopeTable } from "../../src/model/rope.js";
import { maxRelDiff, readStoriesReference, seededRandom, STORIES_DIR, tempDir } from "../helpers.js";

const ref = readStoriesReference();
const ids = ref.long_case.ids.slice(0, 60);

function allLogits(tf: Transformer, cache: KvCache): Float32Array {
  return Float32Array.from(tf.forward(ids, ids.map((_, i) => i), cache, "all"));
}

function randomPerm(n: number, seed: number): Int32Array {
  const rand = seededRandom(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

for (const [kHadDim, order] of [[32, "rotate-first"], [8, "rotate-first"], [8, "reorder-first"]] as const) {
  test(`folded rotations (k-had-dim ${kHadDim}, reordered ${order}) with every token a pivot leave logits unchanged`, (t) => {
    const model = loadModel(STORIES_DIR);
    const c = model.config;
    const before = allLogits(model.transformer, createFullPrecisionCache(c, c.numLayers));
    const transform: RotateKvTransform = { kHadDim, reorder: Array.from({ length: c.numLayers }, (_, l) => randomPerm(32, l + 1)), order };
    foldRotateKv(model.transformer.weights, c, transform);
    const cache = createRotateKvCache(c, c.numLayers, { ...transform, kBits: 2, vBits: 2, groupSize: 8, nPivotTokens: ids.length, pivotRule: "tokens" }, new RopeTable(model.transformer.invFreq));
    const rel = maxRelDiff(allLogits(model.transformer, cache), before);
    assert.ok(rel <= 1e-4, `relative logit change ${rel}`);
    // the fold is real: without the cache undoing it, the keys are wrong
    const undone = maxRelDiff(allLogits(model.transformer, createFullPrecisionCache(c, c.numLayers)), before);
    assert.ok(undone > 1e-2, `folded weights with a plain cache change logits by ${undone}`);
    t.diagnostic(`max relative logit change: ${rel.toExponential(2)}`);
    // and with one pivot the 2-bit codes do run: the logits move (the equality above is not vacuous)
    const quantized = createRotateKvCache(c, c.numLayers, { ...transform, kBits: 2, vBits: 2, groupSize: 8, nPivotTokens: 1, pivotRule: "tokens" }, new RopeTable(model.transformer.invFreq));
    const moved = maxRelDiff(allLogits(model.transformer, quantized), before);
    assert.ok(moved > 1e-3, `2-bit RotateKV with one pivot changed logits by only ${moved}`);
    t.diagnostic(`2-bit codes with one pivot: max relative logit change ${moved.toExponential(2)}`);
  });
}

test("at 16 bits the greedy output equals the original's", () => {
  const model = loadModel(STORIES_DIR);
  const c = model.config;
  const transform: RotateKvTransform = { kHadDim: 32, reorder: null };
  foldRotateKv(model.transformer.weights, c, transform);
  const cache = createRotateKvCache(c, c.numLayers, { ...transform, kBits: 16, vBits: 16, groupSize: 8, nPivotTokens: 1 }, new RopeTable(model.transformer.invFreq));
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 64, cache });
  assert.deepEqual(r.ids, ref.greedy_ids);
  assert.equal(r.kv.blocks[0].sinkTokens, 1);
  assert.equal(r.kv.blocks[0].bodyTokens, ref.prompt_ids.length + 63 - 1);
});

test("reorder: a permutation that deals the largest channels to different Hadamard blocks; round trip", () => {
  const means = Float64Array.from({ length: 32 }, (_, i) => (i * 7) % 32);
  const p = reorderFromMeans(means, 8);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i));
  const top4 = [...means.keys()].sort((a, b) => means[b] - means[a]).slice(0, 4);
  const blockOf = (ch: number) => Math.floor([...p].indexOf(ch) / 8);
  assert.deepEqual(top4.map(blockOf).sort(), [0, 1, 2, 3]);
  const model = loadModel(STORIES_DIR);
  const file = path.join(tempDir(), "reorder.safetensors");
  const perms = Array.from({ length: 5 }, (_, l) => randomPerm(32, l));
  writeReorder(file, perms, 8, { model: "stories260K" });
  const back = readReorder(file, model.config);
  assert.deepEqual(back.reorder, perms);
  assert.equal(back.kHadDim, 8);
});

test("non-power-of-two Hadamard sizes are refused", () => {
  const model = loadModel(STORIES_DIR);
  assert.throws(() => foldRotateKv(model.transformer.weights, model.config, { kHadDim: 12, reorder: null }), UsageError);
});

/** The Sylvester Hadamard matrix of size B, normalised: H[i][j] = (−1)^popcount(i & j) / √B. */
function hadamard(B: number): number[][] {
  const pop = (x: number) => x.toString(2).split("").filter((b) => b === "1").length;
  return Array.from({ length: B }, (_, i) => Array.from({ length: B }, (_, j) => (pop(i & j) % 2 ? -1 : 1) / Math.sqrt(B)));
}

test("key rotation: rotate-first is P·H_B·k and reorder-first H_B·P·k against explicit matrices; unrotate inverts both", () => {
  const rand = seededRandom(4);
  const n = 16;
  const B = 8;
  const H = hadamard(B);
  const perm = randomPerm(n, 9);
  const k = Float32Array.from({ length: n }, () => rand() * 2 - 1);
  const hb = (x: number[]) => x.map((_, i) => { const b = Math.floor(i / B) * B; return H[i - b].reduce((a, h, j) => a + h * x[b + j], 0); });
  const want = {
    "rotate-first": Array.from(perm, (p) => hb(Array.from(k))[p]),
    "reorder-first": hb(Array.from(perm, (p) => k[p])),
  };
  for (const order of ["rotate-first", "reorder-first"] as const) {
    const row = k.slice();
    rotateKeyRow(row, 0, n, perm, B, new Float32Array(n), order);
    assert.ok(maxRelDiff(row, Float32Array.from(want[order])) < 1e-6, order);
    unrotateKeyRow(row, 0, n, perm, B, new Float32Array(n), order);
    assert.ok(maxRelDiff(row, k) < 1e-6, `${order}: unrotate ∘ rotate = identity`);
  }
});

test("the original's reorder is torch.argsort of the rotated means, ascending", () => {
  assert.deepEqual(Array.from(reorderAscending(Float64Array.from([0.5, -2, 3, 0, -2]))), [1, 4, 3, 0, 2]);
});

test("pivots: the tokens holding the n largest |hidden| elements (the original's), or the n tokens of largest norm", () => {
  // 4 tokens × 3: token 2 holds -9 and 8, token 0 holds 7, token 3 holds many mid values
  const hidden = Float32Array.from([7, 0, 0, /**/ 1, 1, 1, /**/ -9, 8, 0, /**/ 5, 5, 5]);
  assert.deepEqual([...choosePivots(hidden, 4, 3, 2, "elements")].sort(), [2], "the two largest elements are both in token 2");
  assert.deepEqual([...choosePivots(hidden, 4, 3, 3, "elements")].sort(), [0, 2], "then 7 in token 0");
  assert.deepEqual([...choosePivots(hidden, 4, 3, 20, "elements")].sort(), [0, 1, 2, 3], "more elements than the call holds: every token with one");
  // norms²: 49, 3, 145, 75
  assert.deepEqual([...choosePivots(hidden, 4, 3, 2, "tokens")].sort(), [2, 3]);
  assert.equal(choosePivots(hidden, 4, 3, 0, "elements").size, 0);
});
