// The backward pass against central finite differences of an independent float64 forward:
// dLoss/dK (after RoPE) and dLoss/dV for every block, token and channel of small models.

import assert from "node:assert/strict";
import { test } from "node:test";
import { lossAndKvGrads, type BlockGrads } from "../../src/model/backward.js";
import { randomTransformer, type RandomModelSpec } from "../model-fixtures.js";
import { refLoss } from "../reference-loss.js";

const SPECS: [string, RandomModelSpec][] = [
  ["Llama, GQA", { layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, vocab: 40, seed: 11 }],
  ["Qwen2 with q/k/v biases", { layers: 2, hidden: 24, heads: 2, kvHeads: 1, headDim: 12, intermediate: 40, vocab: 30, seed: 12, architecture: "Qwen2ForCausalLM" }],
];

for (const [name, spec] of SPECS) {
  test(`${name}: dLoss/dK and dLoss/dV match float64 finite differences at every entry`, (t) => {
    const tf = randomTransformer(spec);
    const tokens = [3, 17, 5, 9, 1, 22, 7];
    const positions = tokens.map((_, i) => i * 4); // positional interpolation, s = 4
    const grads = new Map<number, BlockGrads>();
    const { loss } = lossAndKvGrads(tf, tokens, positions, (g) => grads.set(g.layer, g));
    assert.equal(grads.size, spec.layers);
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
