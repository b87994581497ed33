// Sensitivity (spec §5) and max keys (spec §6) against independent computations: the real
// loss change when one block's keys are quantized, and keys recomputed in float64.

import assert from "node:assert/strict";
import { test } from "node:test";
import { computeMaxKeys } from "../../src/calib/max-keys.js";
import { computeSensitivity, SENSITIVITY_BITS } from "../../src/calib/sensitivity.js";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { fakeQuantize } from "../../src/quant/quantizer.js";
import { matrixToF32 } from "../../src/tensor/matrix.js";
import { seededRandom } from "../helpers.js";
import { randomTransformer } from "../model-fixtures.js";

const tf = randomTransformer({ layers: 3, hidden: 48, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64, vocab: 64, seed: 21 });
const tfLlama = tf;
const c = tf.config;
const rand = seededRandom(5);
const T = 24;
const samples = Array.from({ length: 3 }, () => Array.from({ length: T }, () => Math.floor(rand() * c.vocabSize)));
const positions = Array.from({ length: T }, (_, i) => i * 2);

const qwen3 = randomTransformer({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64, vocab: 64, seed: 22, architecture: "Qwen3ForCausalLM" });

/** Mean next-token cross-entropy, with block `layer`'s keys or values fake-quantized at `bits`. */
function lossWithQuantized(tokens: number[], layer: number, kind: "k" | "v", bits: number, tf = tfLlama): number {
  const c = tf.config;
  const logits = tf.forward(tokens, positions, createFullPrecisionCache(c, c.numLayers), "all", {
    onKv: (l, k, v, n) => {
      if (l === layer) fakeQuantize(kind === "k" ? k : v, 0, n * c.numKvHeads * c.headDim, 16, bits);
    },
  });
  let loss = 0;
  for (let t = 0; t < T - 1; t++) {
    const row = logits.subarray(t * c.vocabSize, (t + 1) * c.vocabSize);
    const max = Math.max(...row);
    loss += Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max - row[tokens[t + 1]];
  }
  return loss / (T - 1);
}

for (const [name, tf] of [["Llama", tfLlama], ["Qwen3 (q/k norms)", qwen3]] as const) test(`${name}: sensitivity bounds the real loss change of quantizing one block (first order), and grows as bits shrink`, (t) => {
  const c = tf.config;
  const one = computeSensitivity(tf, samples.slice(0, 1), positions, { groupSize: 16 });
  assert.deepEqual(Object.keys(one.kSensitivity).sort(), SENSITIVITY_BITS.map(String).sort());
  const numel = T * c.numKvHeads * c.headDim;
  const base = lossWithQuantized(samples[0], -1, "k", 16, tf);
  for (let l = 0; l < c.numLayers; l++) {
    for (const kind of ["k", "v"] as const) {
      const s = kind === "k" ? one.kSensitivity : one.vSensitivity;
      for (let i = 0; i + 1 < SENSITIVITY_BITS.length; i++) assert.ok(s[SENSITIVITY_BITS[i]][l] < s[SENSITIVITY_BITS[i + 1]][l], `${kind} block ${l}: ${SENSITIVITY_BITS[i]} bits < ${SENSITIVITY_BITS[i + 1]} bits`);
      // |ΔL| ≈ |Σ G ⊙ ΔK| ≤ Σ |G ⊙ ΔK| = s · numel, up to second-order terms (small at 8 bits)
      const dl = Math.abs(lossWithQuantized(samples[0], l, kind, 8, tf) - base);
      assert.ok(dl <= s[8][l] * numel * 1.05 + 1e-7, `${kind} block ${l}: |ΔL| ${dl} vs bound ${s[8][l] * numel}`);
      t.diagnostic(`${kind} block ${l}: |ΔL| at 8 bits ${dl.toExponential(2)} ≤ ${(s[8][l] * numel).toExponential(2)}`);
    }
  }
});

test("sensitivity averages over samples", () => {
  const all = computeSensitivity(tf, samples, positions, { groupSize: 16 });
  const each = samples.map((s) => computeSensitivity(tf, [s], positions, { groupSize: 16 }));
  for (const b of SENSITIVITY_BITS) {
    for (let l = 0; l < c.numLayers; l++) {
      const mean = each.reduce((a, e) => a + e.kSensitivity[b][l], 0) / samples.length;
      assert.ok(Math.abs(all.kSensitivity[b][l] - mean) <= 1e-12 + 1e-9 * mean);
    }
  }
});

test("max keys of block 0 equal maxima of keys recomputed in float64 (pairs shared, positions interpolated)", () => {
  const maxKeys = computeMaxKeys(tf, samples, positions);
  assert.equal(maxKeys.length, c.numLayers);
  const d = c.headDim;
  const w = tf.weights.layers[0];
  const wk = matrixToF32(w.wk);
  const embed = matrixToF32(tf.weights.embed);
  const expected = new Float64Array((c.numKvHeads * d) / 2);
  for (const tokens of samples) {
    tokens.forEach((id, t) => {
      const x = Array.from(embed.subarray(id * c.hiddenSize, (id + 1) * c.hiddenSize));
      const r = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + c.rmsNormEps);
      const xn = x.map((v, i) => v * r * w.attnNorm[i]);
      for (let h = 0; h < c.numKvHeads; h++) {
        const k = Array.from({ length: d }, (_, ch) => xn.reduce((a, v, i) => a + v * wk[(h * d + ch) * c.hiddenSize + i], 0));
        for (let i = 0; i < d / 2; i++) {
          const ang = positions[t] / Math.pow(c.ropeTheta, (2 * i) / d);
          const a = k[i] * Math.cos(ang) - k[i + d / 2] * Math.sin(ang);
          const b = k[i + d / 2] * Math.cos(ang) + k[i] * Math.sin(ang);
          expected[h * (d / 2) + i] = Math.max(expected[h * (d / 2) + i], Math.abs(a), Math.abs(b));
        }
      }
    });
  }
  expected.forEach((e, i) => assert.ok(Math.abs(maxKeys[0][i] - e) <= 1e-5 * e, `pair ${i}: ${maxKeys[0][i]} vs ${e}`));
});
