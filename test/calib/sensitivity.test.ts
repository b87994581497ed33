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

// The exact check: block 1's key sensitivity at 4 bits rebuilt by brute force — the gradient of the
// loss with respect to each key element by central differences (the keys after RoPE perturbed one
// element at a time through the forward's hook), times that element's quantization error — must
// equal what computeSensitivity reports, mean(|(Q(K) − K) ⊙ G_K|), within 1e-3 (measured 2e-5: the finite differences are that exact here).
test("block 1's 4-bit key sensitivity equals mean |ΔK ⊙ G| with G from central differences of the loss", (t) => {
  const layer = 1, bits = 4, eps = 1e-2;
  const tokens = samples[0].slice(0, 12);
  const pos = positions.slice(0, 12);
  const n = tokens.length;
  const row = c.numKvHeads * c.headDim;
  const loss = (edit: (k: Float32Array) => void): number => {
    const logits = tf.forward(tokens, pos, createFullPrecisionCache(c, c.numLayers), "all", {
      onKv: (l, k) => {
        if (l === layer) edit(k);
      },
    });
    let s = 0;
    for (let t = 0; t < n - 1; t++) {
      const r = logits.subarray(t * c.vocabSize, (t + 1) * c.vocabSize);
      let mx = -Infinity;
      for (const v of r) mx = Math.max(mx, v);
      let z = 0;
      for (const v of r) z += Math.exp(v - mx);
      s += Math.log(z) + mx - r[tokens[t + 1]];
    }
    return s / (n - 1);
  };
  let keys = new Float32Array(0);
  loss((k) => (keys = Float32Array.from(k.subarray(0, n * row))));
  const dq = Float32Array.from(keys);
  fakeQuantize(dq, 0, n * row, 16, bits);
  let sum = 0;
  for (let j = 0; j < n * row; j++) {
    const up = loss((k) => (k[j] += eps));
    const down = loss((k) => (k[j] -= eps));
    sum += Math.abs((dq[j] - keys[j]) * ((up - down) / (2 * eps)));
  }
  const brute = sum / (n * row);
  const got = computeSensitivity(tf, [tokens], pos, { groupSize: 16 }).kSensitivity[bits][layer];
  assert.ok(Math.abs(got - brute) <= 1e-3 * brute, `computeSensitivity ${got} vs brute force ${brute}`);
  t.diagnostic(`computeSensitivity ${got.toExponential(4)}, brute force ${brute.toExponential(4)} (relative ${(Math.abs(got - brute) / brute).toExponential(1)})`);
});
