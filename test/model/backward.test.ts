// The backward pass against central finite differences of an independent float64 forward:
// dLoss/dK (after RoPE) and dLoss/dV for every block, token and channel of small models.

import assert from "node:assert/strict";
import { test } from "node:test";
import { foldRepScales } from "../../src/calib/rep-scales.js";
import { lossAndKvGrads, type BlockGrads } from "../../src/model/backward.js";
import { randomTransformer, type RandomModelSpec } from "../model-fixtures.js";
import { refLoss } from "../reference-loss.js";

const QWEN3: RandomModelSpec = { layers: 2, hidden: 16, heads: 4, kvHeads: 2, headDim: 8, intermediate: 40, vocab: 30, seed: 13, architecture: "Qwen3ForCausalLM" };
/** Qwen3 with key scales folded into q_norm/k_norm: one norm weight slice per head. */
function qwen3Folded() {
  const tf = randomTransformer(QWEN3);
  const c = tf.config;
  foldRepScales(tf.weights, c, Array.from({ length: c.numLayers }, (_, l) => Float32Array.from({ length: (c.numKvHeads * c.headDim) / 2 }, (_, i) => 0.5 + ((i * 7 + l * 3) % 5) * 0.4)));
  return tf;
}

const SPECS: [string, RandomModelSpec | (() => ReturnType<typeof randomTransformer>)][] = [
  ["Llama, GQA", { layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, vocab: 40, seed: 11 }],
  ["Qwen2 with q/k/v biases", { layers: 2, hidden: 24, heads: 2, kvHeads: 1, headDim: 12, intermediate: 40, vocab: 30, seed: 12, architecture: "Qwen2ForCausalLM" }],
  // q_norm/k_norm sit between the projections and RoPE: the gradients of block 0 pass through both blocks' norms
  ["Qwen3 with q/k norms, GQA, head_dim ≠ hidden/heads", QWEN3],
  ["Qwen3 with rep scales folded into per-head norms", qwen3Folded],
];

for (const [name, spec] of SPECS) {
  test(`${name}: dLoss/dK and dLoss/dV match float64 finite differences at every entry`, (t) => {
    const tf = typeof spec === "function" ? spec() : randomTransformer(spec);
    const tokens = [3, 17, 5, 9, 1, 22, 7];
    const positions = tokens.map((_, i) => i * 4); // positional interpolation, s = 4
    const grads = new Map<number, BlockGrads>();
    const { loss } = lossAndKvGrads(tf, tokens, positions, (g) => grads.set(g.layer, g));
    assert.equal(grads.size, tf.config.numLayers);
    const ref = refLoss(tf, tokens, positions, null);
    assert.ok(Math.abs(loss - ref) < 1e-5, `loss ${loss} vs float64 ${ref}`);
    const eps = 1e-5;
    let worst = 0;
    for (const [layer, g] of grads) {
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
