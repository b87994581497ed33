// The one backward pass against central finite differences of an independent float64 forward
// (test/reference-loss.ts): dLoss/dK (after RoPE) and dLoss/dV at every entry, every weight's
// gradient on a sample of entries, and the sensitivity path (no weight gradients) giving the
// same K/V gradients and loss as the training path (weight gradients, a loss mask).

import assert from "node:assert/strict";
import { test } from "node:test";
import { foldRepScales } from "../../src/calib/rep-scales.js";
import { sequenceBackward, type KvGrads } from "../../src/model/backward.js";
import { Transformer } from "../../src/model/forward.js";
import { clearGrads, gradBuffers, zeroGrads, type Grads } from "../../src/model/grads.js";
import type { LayerWeights } from "../../src/model/weights.js";
import { f16ToF32, f32ToF16 } from "../../src/tensor/dtype.js";
import { f32Matrix, type Matrix } from "../../src/tensor/matrix.js";
import { randomArray, seededRandom } from "../helpers.js";
import { randomTransformer, type RandomModelSpec } from "../model-fixtures.js";
import { refLoss } from "../reference-loss.js";

type Model = () => Transformer;
const spec = (s: RandomModelSpec): Model => () => randomTransformer(s);

const QWEN3: RandomModelSpec = { layers: 2, hidden: 16, heads: 4, kvHeads: 2, headDim: 8, intermediate: 40, vocab: 30, seed: 13, architecture: "Qwen3ForCausalLM" };
/** Qwen3 with key scales folded into q_norm/k_norm: one norm weight slice per head. */
function qwen3Folded(s = QWEN3): Transformer {
  const tf = randomTransformer(s);
  const c = tf.config;
  foldRepScales(tf.weights, c, Array.from({ length: c.numLayers }, (_, l) => Float32Array.from({ length: (c.numKvHeads * c.headDim) / 2 }, (_, i) => 0.5 + ((i * 7 + l * 3) % 5) * 0.4)));
  return tf;
}
/** lm_head tied to the embedding: its gradient lands in the embedding's. */
function tied(s: RandomModelSpec): Model {
  return () => {
    const tf = randomTransformer(s);
    return new Transformer(tf.config, { ...tf.weights, lmHead: tf.weights.embed });
  };
}
/** A Llama with an o_proj bias (attention_bias), which randomTransformer never draws. */
function withOBias(s: RandomModelSpec): Model {
  return () => {
    const tf = randomTransformer(s);
    const rand = seededRandom(77);
    for (const l of tf.weights.layers) l.bo = randomArray(tf.config.hiddenSize, rand, 0.5);
    return tf;
  };
}

// ---------------------------------------------------------------- dK, dV

const KV_MODELS: [string, Model][] = [
  ["Llama, GQA", spec({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, vocab: 40, seed: 11 })],
  ["Qwen2 with q/k/v biases", spec({ layers: 2, hidden: 24, heads: 2, kvHeads: 1, headDim: 12, intermediate: 40, vocab: 30, seed: 12, architecture: "Qwen2ForCausalLM" })],
  // q_norm/k_norm sit between the projections and RoPE: the gradients of block 0 pass through both blocks' norms
  ["Qwen3 with q/k norms, GQA, head_dim ≠ hidden/heads", spec(QWEN3)],
  ["Qwen3 with rep scales folded into per-head norms", () => qwen3Folded()],
];

/** Every block's K/V gradients of one sequence, by block. */
function kvGrads(tf: Transformer, tokens: number[], positions: number[], o: Parameters<typeof sequenceBackward>[3] = {}) {
  const byLayer = new Map<number, KvGrads>();
  const r = sequenceBackward(tf, tokens, positions, { ...o, onKv: (g) => byLayer.set(g.layer, g) });
  return { loss: r.lossSum / r.count, byLayer };
}

for (const [name, model] of KV_MODELS) {
  test(`${name}: dLoss/dK and dLoss/dV match float64 finite differences at every entry`, (t) => {
    const tf = model();
    const tokens = [3, 17, 5, 9, 1, 22, 7];
    const positions = tokens.map((_, i) => i * 4); // positional interpolation, s = 4
    const { loss, byLayer } = kvGrads(tf, tokens, positions);
    assert.equal(byLayer.size, tf.config.numLayers);
    const ref = refLoss(tf, tokens, positions, null);
    assert.ok(Math.abs(loss - ref) < 1e-5, `loss ${loss} vs float64 ${ref}`);
    const eps = 1e-5;
    let worst = 0;
    for (const [layer, g] of byLayer) {
      for (const kind of ["k", "v"] as const) {
        const ours = kind === "k" ? g.dKeys : g.dValues;
        let scale = 0;
        const fd = new Float64Array(ours.length);
        for (let i = 0; i < ours.length; i++) {
          fd[i] = (refLoss(tf, tokens, positions, { layer, kind, index: i, delta: eps }) - refLoss(tf, tokens, positions, { layer, kind, index: i, delta: -eps })) / (2 * eps);
          scale = Math.max(scale, Math.abs(fd[i]));
        }
        assert.ok(scale > 1e-4, "gradients are not trivially zero");
        for (let i = 0; i < ours.length; i++) {
          const err = Math.abs(ours[i] - fd[i]) / scale;
          worst = Math.max(worst, err);
          assert.ok(err < 1e-4, `block ${layer} d${kind.toUpperCase()}[${i}]: ${ours[i]} vs finite difference ${fd[i]}`);
        }
      }
    }
    t.diagnostic(`worst |analytic − finite difference| / max|grad| = ${worst.toExponential(2)}`);
  });
}

/** The model with every matrix rounded to f16: once stored as f16, once widened back to f32. */
function f16Pair(tf: Transformer): { f16: Transformer; f32: Transformer } {
  const half = (m: Matrix): Matrix => {
    const data = new Uint16Array(m.rows * m.cols);
    f32ToF16(m.data as Float32Array, data);
    return { dtype: "f16", rows: m.rows, cols: m.cols, data };
  };
  const widen = (m: Matrix) => {
    const out = new Float32Array(m.rows * m.cols);
    f16ToF32(m.data as Uint16Array, out);
    return f32Matrix(out, m.rows, m.cols);
  };
  const MATRICES = ["wq", "wk", "wv", "wo", "wGate", "wUp", "wDown"] as const;
  const convert = (f: (m: Matrix) => Matrix) => {
    const w = tf.weights;
    const layers = w.layers.map((l) => ({ ...l, ...Object.fromEntries(MATRICES.map((k) => [k, f(half(l[k]))])) }) as LayerWeights);
    return new Transformer(tf.config, { embed: f(half(w.embed)), layers, finalNorm: w.finalNorm, lmHead: f(half(w.lmHead)) });
  };
  return { f16: convert((m) => m), f32: convert(widen) };
}

test("16-bit weights: dK/dV through the row-widening input gradient equal those of the same values in float32", () => {
  const { f16, f32 } = f16Pair(KV_MODELS[1][1]());
  assert.equal(f16.weights.layers[0].wq.dtype, "f16");
  const tokens = [3, 17, 5, 9, 1, 22, 7];
  const positions = tokens.map((_, i) => i);
  const a = kvGrads(f16, tokens, positions);
  const b = kvGrads(f32, tokens, positions);
  assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
  for (const [layer, g] of b.byLayer) {
    for (const kind of ["dKeys", "dValues"] as const) {
      const want = g[kind];
      const got = a.byLayer.get(layer)![kind];
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0) / scale;
      assert.ok(scale > 1e-4 && err < 1e-5, `block ${layer} ${kind}: max |f16 − f32| / max = ${err}`);
    }
  }
});

// ---------------------------------------------------------------- weights

const WEIGHT_MODELS: [string, Model][] = [
  ["Llama, GQA, head_dim 32", spec({ layers: 2, hidden: 32, heads: 2, kvHeads: 1, headDim: 32, intermediate: 48, vocab: 24, seed: 3 })],
  ["Qwen2 with q/k/v biases", spec({ layers: 2, hidden: 24, heads: 2, kvHeads: 2, headDim: 12, intermediate: 40, vocab: 20, seed: 4, architecture: "Qwen2ForCausalLM" })],
  ["Llama with tied embeddings", tied({ layers: 2, hidden: 24, heads: 2, kvHeads: 1, headDim: 12, intermediate: 40, vocab: 20, seed: 5 })],
  ["Llama with an o_proj bias", withOBias({ layers: 2, hidden: 24, heads: 2, kvHeads: 1, headDim: 12, intermediate: 40, vocab: 20, seed: 6 })],
  ["Qwen3 with q/k norms", spec(QWEN3)],
  ["Qwen3 with rep scales folded into per-head norms", () => qwen3Folded()],
];

/** (name, weight buffer, gradient buffer) for every tensor. */
function pairs(tf: Transformer, g: Grads): [string, Float32Array, Float32Array][] {
  const w = tf.weights;
  const out: [string, Float32Array, Float32Array][] = [["embed", w.embed.data as Float32Array, g.embed], ["finalNorm", w.finalNorm, g.finalNorm]];
  if (g.lmHead) out.push(["lmHead", w.lmHead.data as Float32Array, g.lmHead]);
  w.layers.forEach((l, i) => {
    for (const [k, v] of Object.entries(l)) {
      const gv = (g.layers[i] as unknown as Record<string, Float32Array | null>)[k];
      assert.equal(!v, !gv, `layers.${i}.${k}: a gradient exactly where there is a weight`);
      if (!v || !gv) continue;
      out.push([`layers.${i}.${k}`, (v instanceof Float32Array ? v : v.data) as Float32Array, gv]);
    }
  });
  return out;
}

for (const [name, model] of WEIGHT_MODELS) {
  test(`${name}: every weight's gradient matches float64 finite differences (masked loss)`, (t) => {
    const tf = model();
    const tokens = [3, 11, 5, 9, 1, 17, 7, 2];
    const positions = tokens.map((_, i) => i * 2);
    const mask = [0, 0, 1, 1, 0, 1, 1]; // only some predictions count
    const g = zeroGrads(tf.weights);
    clearGrads(g);
    const counted = mask.filter((m) => m > 0).length;
    const r = sequenceBackward(tf, tokens, positions, { mask, scale: 1 / counted, grads: g });
    assert.equal(r.count, counted);
    const ref = refLoss(tf, tokens, positions, null, mask);
    assert.ok(Math.abs(r.lossSum / r.count - ref) < 1e-5, `loss ${r.lossSum / r.count} vs ${ref}`);
    const tensors = pairs(tf, g);
    assert.equal(tensors.length, gradBuffers(g).length, "every gradient buffer is checked");
    const rand = seededRandom(9);
    let worst = 0;
    for (const [tensor, wbuf, gbuf] of tensors) {
      // the largest-gradient entry plus random ones
      let big = 0;
      for (let i = 1; i < gbuf.length; i++) if (Math.abs(gbuf[i]) > Math.abs(gbuf[big])) big = i;
      const entries = [big, ...Array.from({ length: 6 }, () => Math.floor(rand() * gbuf.length))];
      let scale = 0;
      for (const v of gbuf) scale = Math.max(scale, Math.abs(v));
      assert.ok(scale > 1e-6, `${tensor}: the gradient is not trivially zero`);
      for (const i of entries) {
        const orig = wbuf[i];
        const eps = 1e-3 * Math.max(1, Math.abs(orig));
        wbuf[i] = orig + eps;
        const up = refLoss(tf, tokens, positions, null, mask);
        wbuf[i] = orig - eps;
        const down = refLoss(tf, tokens, positions, null, mask);
        wbuf[i] = orig;
        const fd = (up - down) / (Math.fround(orig + eps) - Math.fround(orig - eps)); // the steps float32 really took
        const err = Math.abs(gbuf[i] - fd) / Math.max(scale, 1e-6);
        worst = Math.max(worst, err);
        assert.ok(err < 2e-3, `${tensor}[${i}]: ${gbuf[i]} vs finite difference ${fd}`);
      }
    }
    t.diagnostic(`worst |analytic − finite difference| / max|grad| of the tensor: ${worst.toExponential(2)}`);
  });
}

// ---------------------------------------------------------------- one pass, two uses

for (const [name, model] of [KV_MODELS[1], KV_MODELS[3]]) {
  test(`${name}: the sensitivity path and the training path give the same loss and dK/dV, bit for bit`, () => {
    const tf = model();
    const tokens = [3, 17, 5, 9, 1, 22, 7, 4];
    const positions = tokens.map((_, i) => i * 3);
    const sensitivity = kvGrads(tf, tokens, positions);
    // as train.ts calls it: a mask as long as the sequence (the last position predicts nothing), weight gradients on
    const g = zeroGrads(tf.weights);
    const training = kvGrads(tf, tokens, positions, { mask: tokens.map((_, t) => (t < tokens.length - 1 ? 1 : 0)), scale: 1 / (tokens.length - 1), grads: g });
    assert.ok(gradBuffers(g).every((b) => b.some((v) => v !== 0)), "the training path filled every weight gradient");
    assert.equal(training.loss, sensitivity.loss);
    assert.equal(training.byLayer.size, tf.config.numLayers);
    for (const [layer, s] of sensitivity.byLayer) {
      const r = training.byLayer.get(layer)!;
      assert.deepEqual(r.dKeys, s.dKeys, `block ${layer} dK`);
      assert.deepEqual(r.dValues, s.dValues, `block ${layer} dV`);
      assert.deepEqual(r.keys, s.keys, `block ${layer} K`);
    }
  });
}

test("the loss head in chunks of 3 positions gives the gradients of one chunk", () => {
  const tf = WEIGHT_MODELS[2][1](); // tied: the head's gradient and the embedding rows share a buffer
  const tokens = [3, 11, 5, 9, 1, 17, 7, 2];
  const positions = tokens.map((_, i) => i);
  const mask = [1, 0, 1, 1, 0, 1, 1];
  const run = (headChunk?: number) => {
    const grads = zeroGrads(tf.weights);
    return { ...kvGrads(tf, tokens, positions, { mask, grads, headChunk }), grads: gradBuffers(grads) };
  };
  const one = run();
  const chunked = run(3);
  assert.equal(chunked.loss, one.loss);
  for (const [layer, g] of one.byLayer) assert.deepEqual(chunked.byLayer.get(layer)!.dKeys, g.dKeys, `block ${layer} dK`);
  one.grads.forEach((b, i) => assert.deepEqual(chunked.grads[i], b, `gradient buffer ${i}`));
});
