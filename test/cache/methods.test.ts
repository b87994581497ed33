// Every --method through the factory: at 16 bits each reproduces the original's greedy output
// on stories260K and on a random Qwen3 model (q/k norms: RotateKV rotates keys in the cache),
// and all report the same memory fields.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createCache, METHODS, prepareModelForMethod, type CacheSpec } from "../../src/cache/factory.js";
import { UsageError } from "../../src/errors.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { readStoriesReference, STORIES_DIR, tempDir } from "../helpers.js";
import { writeRandomModelFolder } from "../model-fixtures.js";

const ref = readStoriesReference();

test("turboquant has no 16-bit mode: the factory refuses it with the range it takes", () => {
  const model = loadModel(STORIES_DIR);
  assert.throws(() => createCache(model.config, { method: "turboquant", kBits: 16, vBits: 16 }), (e: unknown) => e instanceof UsageError && /1 … 8 \(got 16\)/.test(e.message));
});

for (const method of METHODS.filter((m) => m !== "turboquant")) {
  test(`${method} at 16 bits: greedy output equals the original's, kv fields reported`, () => {
    const model = loadModel(STORIES_DIR); // fresh weights: rotatekv folds into them
    const spec: CacheSpec = { method, kBits: 16, vBits: 16, budgetsMB: new Array(5).fill(1), mikvSinkTokens: 4, rotatekv: { nPivotTokens: 1 } };
    prepareModelForMethod(model.transformer, spec);
    const cache = createCache(model.config, spec);
    const r = generate(model, ref.prompt_ids, { maxNewTokens: 64, cache });
    assert.deepEqual(r.ids, ref.greedy_ids);
    assert.equal(r.kv.blocks.length, 5);
    const tokens = ref.prompt_ids.length + 63;
    const kvHidden = model.config.numKvHeads * model.config.headDim;
    for (const b of r.kv.blocks) {
      assert.equal(b.sinkTokens + b.bodyTokens + b.windowTokens, tokens);
      // every token's K and V at 16 bits (or more) are held: at least 2 × tokens × kv_hidden × 2 bytes
      assert.ok(b.codeBytes >= 2 * tokens * kvHidden * 2, `${b.codeBytes} code bytes for ${tokens} tokens`);
      assert.ok(b.heldBytes >= b.codeBytes, `${b.heldBytes} held < ${b.codeBytes} code bytes`);
    }
    assert.equal(r.kv.totalHeldBytes, r.kv.blocks.reduce((a, b) => a + b.heldBytes, 0));
  });
}

// GQA 4/2, head_dim 32 with hidden 48 (q is 128 wide), kv_hidden 64 (a power of two for RotateKV)
const QWEN3_DIR = writeRandomModelFolder({ layers: 2, hidden: 48, heads: 4, kvHeads: 2, headDim: 32, intermediate: 96, vocab: 512, seed: 21, architecture: "Qwen3ForCausalLM" }, tempDir("pmkvq-qwen3-"));
const QWEN3_PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 30, 41, 422, 395, 260];
const qwen3Greedy = (spec: CacheSpec) => {
  const model = loadModel(QWEN3_DIR);
  prepareModelForMethod(model.transformer, spec);
  return generate(model, QWEN3_PROMPT, { maxNewTokens: 24, cache: createCache(model.config, spec), eosTokenIds: [] });
};
const qwen3Original = qwen3Greedy({ method: "original" }).ids;

for (const method of METHODS.filter((m) => m !== "turboquant" && m !== "original")) {
  test(`Qwen3 ${method} at 16 bits: greedy output equals full precision's`, () => {
    const r = qwen3Greedy({ method, kBits: 16, vBits: 16, budgetsMB: [1, 1], mikvSinkTokens: 4, rotatekv: { nPivotTokens: 1 } });
    assert.equal(r.ids.length, 24);
    assert.deepEqual(r.ids, qwen3Original);
    for (const b of r.kv.blocks) assert.equal(b.sinkTokens + b.bodyTokens + b.windowTokens, QWEN3_PROMPT.length + 23);
  });
}

// the cache-side key rotation with a channel permutation across heads, in both orders
test("Qwen3 rotatekv at 16 bits with a reorder permutation and 32-channel Hadamard blocks, both orders: full precision's greedy output", () => {
  const perm = Int32Array.from({ length: 64 }, (_, i) => (i * 37 + 5) % 64); // 37 is odd: a permutation of 0 … 63
  for (const order of ["rotate-first", "reorder-first"] as const) {
    const r = qwen3Greedy({ method: "rotatekv", kBits: 16, vBits: 16, rotatekv: { nPivotTokens: 1, kHadDim: 32, reorder: [perm, perm], order } });
    assert.deepEqual(r.ids, qwen3Original, order);
  }
});

// 2-bit keys must change something: the 16-bit equality above is not vacuous
test("Qwen3 rtn and rotatekv at 2 bits run and change the greedy output", () => {
  for (const method of ["rtn", "rotatekv"] as const) {
    const r = qwen3Greedy({ method, kBits: 2, vBits: 2, rotatekv: { nPivotTokens: 1 } });
    assert.equal(r.ids.length, 24);
    assert.notDeepEqual(r.ids, qwen3Original, method);
  }
  assert.equal(qwen3Greedy({ method: "turboquant", kBits: 8, vBits: 8 }).ids.length, 24);
});

test("baselines at 2 bits hold far less than the full-precision cache, measured", (t) => {
  const model = loadModel(STORIES_DIR);
  const held = (method: CacheSpec["method"]) => {
    const spec: CacheSpec = { method, kBits: 2, vBits: 2, mikvSinkTokens: 8 };
    prepareModelForMethod(model.transformer, spec);
    const r = generate(model, ref.long_case.ids.slice(0, 256), { maxNewTokens: 1, cache: createCache(model.config, spec) });
    return r.kv.totalHeldBytes;
  };
  const full = held("original");
  // groups of 8 channels (head_dim 8): each 2-byte group of 2-bit codes carries 8 bytes of scale
  // and zero, so ~10 of every 32 float32 bytes remain
  for (const m of ["rtn", "kivi", "mikv", "rotatekv"] as const) {
    const h = held(m);
    t.diagnostic(`${m}: ${h} B held vs ${full} B full precision (${((100 * h) / full).toFixed(1)}%)`);
    assert.ok(h < full / 2, m);
  }
});

test("bad method options are refused", () => {
  const model = loadModel(STORIES_DIR);
  assert.throws(() => createCache(model.config, { method: "rtn", kBits: 3 }), (e: Error) => e instanceof UsageError && /k-bits must be one of/.test(e.message));
  assert.throws(() => createCache(model.config, { method: "kivi", groupSize: 3 }), /group-size 3 must divide head_dim 8/);
  assert.throws(() => createCache(model.config, { method: "rotatekv", rotatekv: { kHadDim: 12 } }), /not a power of two/);
  assert.throws(() => createCache(model.config, { method: "pm-kvq" }), /needs --kv-budgets/);
});
