// The original's step order (cache/pending.ts) against a brute-force reference: a call's
// attention sees the cache as it stood before the call, dequantized, followed by the call's own
// tokens exactly as given; "quantize-first" sees the cache after the append. Both place the
// tokens identically once the call is done. And a whole-prompt prefill under the original order
// is the full-precision prefill, bit for bit in the logits' argmax and within 1e-5.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createCache, type CacheSpec } from "../../src/cache/factory.js";
import { FakeProgressiveLayerCache, RealProgressiveLayerCache, type ProgressiveOptions } from "../../src/cache/progressive.js";
import type { StepOrder } from "../../src/cache/pending.js";
import { RtnLayerCache } from "../../src/cache/rtn.js";
import type { KvShape, LayerKvCache } from "../../src/model/kv-cache.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { allocF32, release } from "../../src/tensor/memory.js";
import { maxRelDiff, readStoriesReference, seededRandom, STORIES_DIR } from "../helpers.js";

const SHAPE: KvShape = { numHeads: 4, numKvHeads: 2, headDim: 8 };
const ROW = SHAPE.numKvHeads * SHAPE.headDim;

type Dequantizable = LayerKvCache & { dequantized(): { keys: Float32Array; values: Float32Array } };

/** Causal GQA attention of the last T of the rows, float64. */
function bruteAttention(q: Float32Array, T: number, keys: Float32Array, values: Float32Array): Float32Array {
  const { numHeads, numKvHeads, headDim: d } = SHAPE;
  const L = keys.length / ROW;
  const out = new Float32Array(T * numHeads * d);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numHeads; h++) {
      const kv = Math.floor(h / (numHeads / numKvHeads)) * d;
      const qOff = (t * numHeads + h) * d;
      const s: number[] = [];
      for (let j = 0; j <= L - T + t; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[qOff + c] * keys[j * ROW + kv + c];
        s.push(dot / Math.sqrt(d));
      }
      const m = Math.max(...s);
      const p = s.map((x) => Math.exp(x - m));
      const sum = p.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j < p.length; j++) acc += (p[j] / sum) * values[j * ROW + kv + c];
        out[qOff + c] = acc;
      }
    }
  }
  return out;
}

function attend(cache: LayerKvCache, q: Float32Array, T: number): Float32Array {
  const qa = allocF32(q.length);
  qa.set(q);
  const out = allocF32(q.length);
  cache.attend(qa, T, out);
  const r = out.slice();
  release(qa);
  release(out);
  return r;
}

const concat = (a: Float32Array, b: Float32Array) => {
  const x = new Float32Array(a.length + b.length);
  x.set(a);
  x.set(b, a.length);
  return x;
};

const progressive = (backend: "real" | "fake", stepOrder: StepOrder): ProgressiveOptions & { stepOrder: StepOrder } => ({
  nSinkTokens: 1, sinkBits: 16, nWindowTokens: 4, windowBits: 16, initBodyBits: 16, groupSize: 8, backend, stepOrder,
});
// 1500 bytes: a 120-token stream ends with a 2-bit body (16-bit: 7680 B, 4-bit: 2160 B, 2-bit: 1240 B)
const VARIANTS: [string, (o: StepOrder) => Dequantizable][] = [
  ["rtn k2v4", (o) => new RtnLayerCache(SHAPE, { kBits: 2, vBits: 4, groupSize: 8, stepOrder: o })],
  ["pm-kvq real", (o) => new RealProgressiveLayerCache(SHAPE, progressive("real", o), 1500, 0)],
  ["pm-kvq fake", (o) => new FakeProgressiveLayerCache(SHAPE, progressive("fake", o), 1500, 0)],
];

for (const [name, make] of VARIANTS) {
  test(`${name}: the original order attends the cache as it stood plus the call's exact tokens; quantize-first the cache after the append; both hold the same afterwards`, () => {
    const rand = seededRandom(name.length);
    const original = make("original");
    const first = make("quantize-first");
    let differs = 0;
    let total = 0;
    for (const n of [7, 1, 1, 3, 1, 13, 1, 1, 1, 9, 2, 1, 1, 30, 1, 1, 1, 1, 20, 1, 1, 1, 1, 1]) {
      const k = Float32Array.from({ length: n * ROW }, () => rand() * 2 - 1);
      const v = Float32Array.from({ length: n * ROW }, () => rand() * 2 - 1);
      const q = Float32Array.from({ length: n * SHAPE.numHeads * SHAPE.headDim }, () => rand() * 4 - 2);
      const before = original.dequantized();
      original.append(k, v, n);
      first.append(k, v, n);
      const afterAppend = first.dequantized();
      const outOriginal = attend(original, q, n);
      const outFirst = attend(first, q, n);
      total += n;
      const refOriginal = bruteAttention(q, n, concat(before.keys, k), concat(before.values, v));
      const refFirst = bruteAttention(q, n, afterAppend.keys, afterAppend.values);
      // 1e-4: the packed kernel scores with int16-rounded queries (issue 13's precision figures)
      assert.ok(maxRelDiff(outOriginal, refOriginal) < 1e-4, `${name} original at ${total} tokens: ${maxRelDiff(outOriginal, refOriginal)}`);
      assert.ok(maxRelDiff(outFirst, refFirst) < 1e-4, `${name} quantize-first at ${total} tokens: ${maxRelDiff(outFirst, refFirst)}`);
      if (maxRelDiff(outOriginal, outFirst) > 1e-3) differs++;
      // the same tokens placed the same way
      assert.deepEqual(original.dequantized(), first.dequantized(), `${name}: held values after ${total} tokens`);
      assert.deepEqual(original.stats(), first.stats(), `${name}: stats after ${total} tokens`);
      assert.equal(original.length, total);
    }
    assert.ok(differs > 0, "the two orders give different attention outputs");
    if (name.startsWith("pm-kvq")) assert.equal(original.stats().bodyBits, 2, "the budget forced the body down to 2 bits");
  });
}

test("a whole-prompt prefill under the original order is the full-precision prefill (2-bit RTN and pm-kvq); quantize-first is not", () => {
  const ref = readStoriesReference();
  using model = loadModel(STORIES_DIR);
  const ids = ref.long_case.ids.slice(0, 200);
  const positions = ids.map((_, i) => i);
  const logits = (spec: CacheSpec) => {
    using cache = createCache(model.config, spec);
    return model.transformer.forward(ids, positions, cache, "last").slice();
  };
  const exact = logits({ method: "original" });
  const budgetsMB = new Array(model.config.numLayers).fill(0.004); // a 2-bit body after the prefill
  for (const spec of [{ method: "rtn", kBits: 2, vBits: 2 }, { method: "pm-kvq", budgetsMB, progressive: { nWindowTokens: 16 } }] as CacheSpec[]) {
    const diffOriginal = maxRelDiff(logits(spec), exact);
    const diffFirst = maxRelDiff(logits({ ...spec, stepOrder: "quantize-first" }), exact);
    assert.ok(diffOriginal < 1e-5, `${spec.method} original order: ${diffOriginal}`);
    assert.ok(diffFirst > 1e-2, `${spec.method} quantize-first: ${diffFirst}`);
  }
});
