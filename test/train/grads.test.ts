// Weight gradients of the training backward against central finite differences of an
// independent float64 loss, on a sample of entries of every weight tensor.

import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import { clearGrads, sequenceGrads, zeroGrads, type Grads } from "../../src/train/grads.js";
import type { Transformer } from "../../src/model/forward.js";
import { seededRandom } from "../helpers.js";
import { randomTransformer, type RandomModelSpec } from "../model-fixtures.js";
import { refLoss } from "../reference-loss.js";

const SPECS: [string, RandomModelSpec][] = [
  ["Llama, GQA, head_dim 32", { layers: 2, hidden: 32, heads: 2, kvHeads: 1, headDim: 32, intermediate: 48, vocab: 24, seed: 3 }],
  ["Qwen2 with biases", { layers: 2, hidden: 24, heads: 2, kvHeads: 2, headDim: 12, intermediate: 40, vocab: 20, seed: 4, architecture: "Qwen2ForCausalLM" }],
];

/** (name, weight buffer, gradient buffer) for every tensor. */
function pairs(tf: Transformer, g: Grads): [string, Float32Array, Float32Array][] {
  const w = tf.weights;
  const out: [string, Float32Array, Float32Array][] = [["embed", w.embed.data as Float32Array, g.embed], ["finalNorm", w.finalNorm, g.finalNorm]];
  if (g.lmHead) out.push(["lmHead", w.lmHead.data as Float32Array, g.lmHead]);
  w.layers.forEach((l, i) => {
    for (const [k, v] of Object.entries(l)) {
      const gv = (g.layers[i] as unknown as Record<string, Float32Array | null>)[k];
      if (!v || !gv) continue;
      out.push([`layers.${i}.${k}`, (v instanceof Float32Array ? v : v.data) as Float32Array, gv]);
    }
  });
  return out;
}

for (const [name, spec] of SPECS) {
  test(`${name}: every weight's gradient matches float64 finite differences (masked loss)`, (t) => {
    const tf = randomTransformer(spec);
    const tokens = [3, 11, 5, 9, 1, 17, 7, 2];
    const positions = tokens.map((_, i) => i * 2);
    const mask = [0, 0, 1, 1, 0, 1, 1]; // only some predictions count
    const g = zeroGrads(tf.weights);
    clearGrads(g);
    const counted = mask.filter((m) => m > 0).length;
    const r = sequenceGrads(tf, tokens, positions, mask, 1 / counted, g);
    assert.equal(r.count, counted);
    const ref = refLoss(tf, tokens, positions, null, mask);
    assert.ok(Math.abs(r.lossSum / r.count - ref) < 1e-5, `loss ${r.lossSum / r.count} vs ${ref}`);
    const rand = seededRandom(9);
    let worst = 0;
    for (const [tensor, wbuf, gbuf] of pairs(tf, g)) {
      // the largest-gradient entry plus random ones
      let big = 0;
      for (let i = 1; i < gbuf.length; i++) if (Math.abs(gbuf[i]) > Math.abs(gbuf[big])) big = i;
      const entries = [big, ...Array.from({ length: 6 }, () => Math.floor(rand() * gbuf.length))];
      let scale = 0;
      for (const v of gbuf) scale = Math.max(scale, Math.abs(v));
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

// `pmkvq train` builds Llama models: a model with q/k norms is refused rather than given no norm gradients.
test("training gradients refuse Qwen3's q/k norms with a UsageError naming them", () => {
  const tf = randomTransformer({ layers: 1, hidden: 16, heads: 2, kvHeads: 1, headDim: 8, intermediate: 16, vocab: 12, seed: 1, architecture: "Qwen3ForCausalLM" });
  const g = zeroGrads(tf.weights);
  assert.throws(() => sequenceGrads(tf, [1, 2, 3], [0, 1, 2], [1, 1], 0.5, g), (e: Error) => e instanceof UsageError && /q_norm\/k_norm/.test(e.message));
});
