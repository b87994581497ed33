// The KIVI baseline (spec §7) against a brute-force reference written here from the spec
// text (per-channel key groups over complete blocks, per-token value groups, exact residual,
// plain float attention), its residual bookkeeping, its memory layout computed from first
// principles, and greedy generation on stories260K at 16 bits.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { createKiviCache, KiviLayerCache, type KiviOptions } from "../../src/cache/kivi.js";
import type { KvShape } from "../../src/model/kv-cache.js";
import { UsageError } from "../../src/errors.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { maxRelDiff, randomArray, readStoriesReference, seededRandom, STORIES_DIR } from "../helpers.js";
import { refQuantGroup } from "../f16-ref.js";

// ---- the reference, from the spec text ----

/** One group quantized by the quantizer's rule (f16 scale and zero, test/f16-ref.ts): the dequantized values. */
const refQuantizeGroup = (x: number[], bits: number): number[] => refQuantGroup(x, bits).xh;

/** What KIVI holds for L raw tokens (rows of R channels): dequantized complete blocks, exact residual. */
function refKiviCache(K: number[][], V: number[][], o: KiviOptions): { keys: number[][]; values: number[][] } {
  const G = o.groupSize;
  const L = K.length;
  const R = K[0]?.length ?? 0;
  const keys = K.map((r) => [...r]);
  const values = V.map((r) => [...r]);
  for (let b = 0; (b + 1) * G <= L; b++) {
    // keys: each channel over the block's G tokens is one group
    for (let e = 0; e < R; e++) {
      const col = refQuantizeGroup(Array.from({ length: G }, (_, j) => K[b * G + j][e]), o.kBits);
      for (let j = 0; j < G; j++) keys[b * G + j][e] = col[j];
    }
    // values: each token's G consecutive channels are one group
    for (let t = b * G; t < (b + 1) * G; t++) {
      for (let g = 0; g < R; g += G) values[t].splice(g, G, ...refQuantizeGroup(V[t].slice(g, g + G), o.vBits));
    }
  }
  return { keys, values };
}

/** Plain causal GQA attention of the last T of the L tokens, in float64. */
function refAttention(q: Float32Array, T: number, keys: number[][], values: number[][], shape: KvShape): Float32Array {
  const { numHeads, numKvHeads, headDim: d } = shape;
  const L = keys.length;
  const out = new Float32Array(T * numHeads * d);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numHeads; h++) {
      const kv = Math.floor(h / (numHeads / numKvHeads)) * d;
      const qOff = (t * numHeads + h) * d;
      const scores: number[] = [];
      for (let j = 0; j <= L - T + t; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[qOff + c] * keys[j][kv + c];
        scores.push(s / Math.sqrt(d));
      }
      const mx = Math.max(...scores);
      const p = scores.map((s) => Math.exp(s - mx));
      const sum = p.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j < p.length; j++) acc += (p[j] / sum) * values[j][kv + c];
        out[qOff + c] = acc;
      }
    }
  }
  return out;
}

const rows = (x: Float32Array, n: number, R: number): number[][] =>
  Array.from({ length: n }, (_, t) => Array.from(x.subarray(t * R, (t + 1) * R)));

// ---- tests ----

const SHAPES: KvShape[] = [
  { numHeads: 4, numKvHeads: 2, headDim: 16 }, // GQA 2:1
  { numHeads: 6, numKvHeads: 2, headDim: 8 }, // GQA 3:1
  { numHeads: 2, numKvHeads: 2, headDim: 8 }, // MHA
];

test("attention equals plain float attention over the brute-force KIVI cache", () => {
  const rand = seededRandom(7);
  let worst = 0;
  let cases = 0;
  for (const shape of SHAPES) {
    const R = shape.numKvHeads * shape.headDim;
    for (const G of [shape.headDim, shape.headDim / 2, shape.headDim / 4].filter((g) => g >= 2)) {
      for (const [[kBits, vBits], stepOrder] of [[2, 2], [4, 4], [8, 8], [2, 4], [8, 2], [1, 16]].flatMap((b) => (["original", "quantize-first"] as const).map((s) => [b, s] as const))) {
        const o = { kBits, vBits, groupSize: G, stepOrder };
        // prefill chunks of various sizes (below G, exactly G, k·G + r), then decode steps
        for (const chunks of [[G - 1], [G], [3 * G + 2], [1, G + 1, 2 * G]]) {
          const cache = new KiviLayerCache(shape, o);
          const K: number[][] = [];
          const V: number[][] = [];
          for (const n of [...chunks, ...Array<number>(G + 2).fill(1)]) {
            const k = randomArray(n * R, rand, 1 + 2 * rand());
            const v = randomArray(n * R, rand);
            const q = randomArray(n * shape.numHeads * shape.headDim, rand, 2);
            // the original's KIVI attends a multi-token call's tokens in float over the cache as it
            // stood (its blocks are quantized after); a decode step, and quantize-first, attend the cache after the append
            const before = refKiviCache(K, V, o);
            cache.append(k, v, n);
            K.push(...rows(k, n, R));
            V.push(...rows(v, n, R));
            const ref = n > 1 && stepOrder === "original"
              ? { keys: [...before.keys, ...rows(k, n, R)], values: [...before.values, ...rows(v, n, R)] }
              : refKiviCache(K, V, o);
            const out = new Float32Array(q.length);
            cache.attend(q, n, out);
            const diff = maxRelDiff(out, refAttention(q, n, ref.keys, ref.values, shape));
            worst = Math.max(worst, diff);
            assert.ok(diff < 1e-5, `shape ${JSON.stringify(shape)} G=${G} k${kBits}v${vBits} ${stepOrder} chunks ${chunks} at ${K.length} tokens: rel diff ${diff}`);
            cases++;
          }
          // the dequantized cache is the reference's, value for value
          const ref = refKiviCache(K, V, o);
          const held = cache.dequantized();
          assert.deepEqual(Array.from(held.keys), ref.keys.flat());
          assert.deepEqual(Array.from(held.values), ref.values.flat());
        }
      }
    }
  }
  console.log(`# KIVI vs brute-force reference: ${cases} attention calls, max rel diff = ${worst.toExponential(2)}`);
});

test("the last (n mod G) tokens stay exact in the residual; complete blocks are quantized", () => {
  const shape = SHAPES[0];
  const R = shape.numKvHeads * shape.headDim;
  const G = 8;
  const rand = seededRandom(11);
  const cache = new KiviLayerCache(shape, { kBits: 2, vBits: 2, groupSize: G, stepOrder: "quantize-first" }); // state right after each append
  const K: number[] = [];
  const V: number[] = [];
  for (const n of [3, 5, 1, 17, 8, 1, 1, 30]) {
    const k = randomArray(n * R, rand);
    const v = randomArray(n * R, rand);
    cache.append(k, v, n);
    K.push(...k);
    V.push(...v);
    const L = K.length / R;
    const st = cache.stats();
    assert.equal(cache.length, L);
    assert.equal(st.windowTokens, L % G);
    assert.equal(st.bodyTokens, L - (L % G));
    assert.equal(st.sinkTokens, 0);
    assert.equal(st.bodyBits, 2);
    const held = cache.dequantized();
    const body = st.bodyTokens * R;
    // residual bit-exact; a quantized 2-bit body is not
    assert.deepEqual(Array.from(held.keys.subarray(body)), Array.from(Float32Array.from(K.slice(body))));
    assert.deepEqual(Array.from(held.values.subarray(body)), Array.from(Float32Array.from(V.slice(body))));
    if (body > 0) assert.ok(maxRelDiff(held.keys.subarray(0, body), Float32Array.from(K.slice(0, body))) > 1e-3);
  }
  cache.reset();
  assert.equal(cache.length, 0);
  assert.deepEqual(cache.stats(), { bodyBits: 2, sinkTokens: 0, bodyTokens: 0, windowTokens: 0, codeBytes: 0, heldBytes: 0, budgetBytes: null });
});

test("reset empties the cache; it then behaves as a fresh one", () => {
  const shape = SHAPES[1];
  const R = shape.numKvHeads * shape.headDim;
  const o = { kBits: 4, vBits: 2, groupSize: 4 };
  const rand = seededRandom(3);
  const k = randomArray(11 * R, rand);
  const v = randomArray(11 * R, rand);
  const q = randomArray(11 * shape.numHeads * shape.headDim, rand);
  const used = new KiviLayerCache(shape, o);
  used.append(randomArray(9 * R, rand), randomArray(9 * R, rand), 9);
  used.reset();
  const fresh = new KiviLayerCache(shape, o);
  const a = new Float32Array(q.length);
  const b = new Float32Array(q.length);
  used.append(k, v, 11);
  fresh.append(k, v, 11);
  used.attend(q, 11, a);
  fresh.attend(q, 11, b);
  assert.deepEqual(a, b);
  assert.deepEqual(used.stats(), fresh.stats());
});

test("heldBytes follows the documented layout; codeBytes is the original's figure", () => {
  for (const [shape, G, kBits, vBits] of [
    [{ numHeads: 4, numKvHeads: 2, headDim: 16 }, 8, 2, 4],
    [{ numHeads: 4, numKvHeads: 2, headDim: 16 }, 4, 1, 1],
    [{ numHeads: 8, numKvHeads: 4, headDim: 8 }, 8, 16, 8],
    [{ numHeads: 2, numKvHeads: 1, headDim: 128 }, 128, 2, 2],
  ] as [KvShape, number, number, number][]) {
    const R = shape.numKvHeads * shape.headDim;
    const cache = new KiviLayerCache(shape, { kBits, vBits, groupSize: G, stepOrder: "quantize-first" }); // the layout right after each append
    const rand = seededRandom(G);
    let L = 0;
    for (const n of [1, G - 1, 2 * G + 3, 1, G]) {
      cache.append(randomArray(n * R, rand), randomArray(n * R, rand), n);
      L += n;
      const blocks = Math.floor(L / G);
      const r = L % G;
      // keys: per block ⌈R·G·kBits/32⌉ words + an f16 scale and zero per channel
      const keyBytes = blocks * (Math.ceil((R * G * kBits) / 32) * 4 + R * 4);
      // values: per quantized token ⌈R·vBits/32⌉ words + an f16 scale and zero per G channels
      const valueBytes = blocks * G * (Math.ceil((R * vBits) / 32) * 4 + (R / G) * 4);
      // residual: G tokens of float32 K and V, allocated once
      const residualBytes = 2 * G * R * 4;
      const st = cache.stats();
      assert.equal(st.heldBytes, keyBytes + valueBytes + residualBytes, `G=${G} k${kBits}v${vBits} L=${L}`);
      assert.equal(st.codeBytes, (blocks * G * R * (kBits + vBits)) / 8 + r * R * 2 * 2);
      assert.equal(st.budgetBytes, null);
    }
  }
});

test("a 2-bit KIVI cache holds under a third of a float32 cache's bytes at 1024 tokens, head_dim 128", () => {
  const shape: KvShape = { numHeads: 4, numKvHeads: 2, headDim: 128 };
  const R = shape.numKvHeads * shape.headDim;
  const rand = seededRandom(5);
  const kivi = createKiviCache(shape, 1, { kBits: 2, vBits: 2, groupSize: 128, stepOrder: "quantize-first" }); // fed without attending
  const full = createFullPrecisionCache(shape, 1);
  for (const c of [kivi, full]) c.layers[0].append(randomArray(1024 * R, rand), randomArray(1024 * R, rand), 1024);
  const floatBytes = 2 * 1024 * R * 4;
  assert.equal(full.stats().totalHeldBytes, floatBytes);
  const held = kivi.stats().totalHeldBytes;
  console.log(`# 1024 tokens, head_dim 128: KIVI k2v2 holds ${held} bytes, float32 ${floatBytes} (${(held / floatBytes).toFixed(3)}×)`);
  assert.ok(held < floatBytes / 3);
});

test("options are validated; the cache is named after its bits", () => {
  const shape = SHAPES[0];
  assert.throws(() => createKiviCache(shape, 1, { kBits: 2, vBits: 2, groupSize: 6 }), UsageError);
  assert.throws(() => createKiviCache(shape, 1, { kBits: 3, vBits: 2, groupSize: 8 }), UsageError);
  const c = createKiviCache(shape, 3, { kBits: 2, vBits: 4, groupSize: 8 });
  assert.equal(c.method, "kivi-k2v4");
  assert.equal(c.layers.length, 3);
  assert.equal(c.stats().blocks[0].bodyBits, 3);
});

test("stories260K: 16-bit KIVI gives the full-precision greedy output", () => {
  const model = loadModel(STORIES_DIR);
  const ref = readStoriesReference();
  const cache = createKiviCache(model.config, model.config.numLayers, { kBits: 16, vBits: 16, groupSize: 8 });
  const res = generate(model, ref.prompt_ids, { maxNewTokens: 64, cache });
  assert.deepEqual(res.ids, ref.greedy_ids);
  const st = res.kv.blocks[0];
  assert.equal(st.bodyTokens + st.windowTokens, cache.length);
  assert.equal(st.windowTokens, cache.length % 8);
});
