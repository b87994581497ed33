// Key reparameterization (spec §6): folding leaves full-precision logits unchanged, and on a
// model with planted outlier key channels the searched scales cut the 4-bit key error.

import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { computeMaxKeys } from "../../src/calib/max-keys.js";
import { foldRepScales, keyScaleVector, readRepScales, writeRepScales } from "../../src/calib/rep-scales.js";
import { searchRepScales } from "../../src/calib/scale-search.js";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { UsageError } from "../../src/errors.js";
import { loadTransformer } from "../../src/model/checkpoint.js";
import type { Transformer } from "../../src/model/forward.js";
import { fakeQuantize } from "../../src/quant/quantizer.js";
import { maxRelDiff, seededRandom, STORIES_DIR, tempDir } from "../helpers.js";
import { randomTransformer } from "../model-fixtures.js";

function logits(tf: Transformer, tokens: number[]): Float32Array {
  return Float32Array.from(tf.forward(tokens, tokens.map((_, i) => i), createFullPrecisionCache(tf.config, tf.config.numLayers), "all"));
}

function randomScales(tf: Transformer, seed: number): Float32Array[] {
  const rand = seededRandom(seed);
  const c = tf.config;
  return Array.from({ length: c.numLayers }, () => Float32Array.from({ length: (c.numKvHeads * c.headDim) / 2 }, () => Math.exp((rand() * 2 - 1) * 2.3)));
}

test("folding scales leaves the logits unchanged: stories260K and a Qwen2 model with biases and GQA", (t) => {
  const tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298];
  const stories = loadTransformer(STORIES_DIR).transformer;
  const qwen = randomTransformer({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, vocab: 512, seed: 4, architecture: "Qwen2ForCausalLM" });
  for (const [name, tf] of [["stories260K", stories], ["Qwen2", qwen]] as const) {
    const before = logits(tf, tokens);
    foldRepScales(tf.weights, tf.config, randomScales(tf, 1));
    const rel = maxRelDiff(logits(tf, tokens), before);
    assert.ok(rel <= 1e-4, `${name}: ${rel}`);
    t.diagnostic(`${name}: max relative logit change after folding scales in [0.1, 10]: ${rel.toExponential(2)}`);
  }
});

// Qwen3 normalises each k head after k_proj: the scales must land in q_norm/k_norm (per head), and
// the cache must then see keys ⊘ k while the logits stay put.
test("Qwen3: folded scales leave the logits unchanged and the cache's keys divided by the key scales", (t) => {
  const tokens = [1, 40, 17, 261, 378, 432, 383, 286, 261, 376, 298];
  const tf = randomTransformer({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64, vocab: 512, seed: 5, architecture: "Qwen3ForCausalLM" });
  const c = tf.config;
  const keys = (): Float32Array[] => {
    const out: Float32Array[] = [];
    tf.forward(tokens, tokens.map((_, i) => i), createFullPrecisionCache(c, c.numLayers), "none", { onKv: (l, k, _v, n) => (out[l] = Float32Array.from(k.subarray(0, n * c.numKvHeads * c.headDim))) });
    return out;
  };
  const before = logits(tf, tokens);
  const keysBefore = keys();
  const scales = randomScales(tf, 2);
  foldRepScales(tf.weights, c, scales);
  assert.equal(tf.weights.layers[0].kNorm!.length, c.numKvHeads * c.headDim, "k_norm widened to one slice per KV head");
  const rel = maxRelDiff(logits(tf, tokens), before);
  assert.ok(rel <= 1e-4, `logits changed by ${rel}`);
  const keysAfter = keys();
  let worst = 0;
  scales.forEach((r, l) => {
    const k = keyScaleVector(r, c);
    const want = keysBefore[l].map((v, i) => v / k[i % k.length]);
    worst = Math.max(worst, maxRelDiff(keysAfter[l], want));
  });
  assert.ok(worst <= 1e-5, `keys after folding vs keys ⊘ scale: ${worst}`);
  t.diagnostic(`Qwen3: logits ${rel.toExponential(2)}, keys ${worst.toExponential(2)}`);
});

test("key scale vector: channels c and c + d/2 share r[c]", () => {
  const r = Float32Array.from([1, 2, 3, 4]); // 2 heads, d = 4
  assert.deepEqual([...keyScaleVector(r, { numKvHeads: 2, headDim: 4 })], [1, 2, 1, 2, 3, 4, 3, 4]);
});

test("planted outlier key channels: the searched scales cut the 4-bit key and score errors", (t) => {
  const tf = randomTransformer({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 32, intermediate: 64, vocab: 64, seed: 8 });
  const c = tf.config;
  // plant outliers: a few k_proj rows (both channels of a RoPE pair) ×25
  const wk = tf.weights.layers.map((l) => l.wk.data as Float32Array);
  for (const w of wk) for (const row of [3, 3 + 16, 40, 40 + 16]) for (let i = 0; i < c.hiddenSize; i++) w[row * c.hiddenSize + i] *= 25;
  const rand = seededRandom(2);
  const T = 48;
  const samples = Array.from({ length: 6 }, () => Array.from({ length: T }, () => Math.floor(rand() * c.vocabSize)));
  const positions = Array.from({ length: T }, (_, i) => i * 4);
  const maxKeys = computeMaxKeys(tf, samples, positions);
  const found = searchRepScales(tf, samples, positions, maxKeys, { kBits: 4, vBits: 4, groupSize: 32, grid: 20 });
  found.mse.forEach((m, l) => assert.ok(Math.min(...m) < found.baselineMse[l], `block ${l}: search beats no reparameterization`));

  /**
   * On held-out tokens: the relative error of 4-bit per-token keys as the cache holds them, and
   * of attention scores q·k in the original space (after folding, q·k = (q ⊙ k_scale)·(k ⊘ k_scale)).
   */
  const errors = (model: Transformer, kScales: Float32Array[] | null) => {
    const tokens = Array.from({ length: T }, () => Math.floor(rand() * c.vocabSize));
    let keyErr = 0, keyNorm = 0, scoreErr = 0, scoreNorm = 0;
    const qs: Float32Array[] = [];
    const hooks = {
      onKv: (l: number, k: Float32Array, _v: Float32Array, n: number) => {
        const ks = kScales?.[l];
        const kq = Float32Array.from(k.subarray(0, n * c.numKvHeads * c.headDim));
        fakeQuantize(kq, 0, kq.length, 32, 4);
        for (let i = 0; i < kq.length; i++) {
          keyErr += (kq[i] - k[i]) ** 2;
          keyNorm += k[i] ** 2;
        }
        // scores of random queries against the keys, exact vs quantized
        for (let j = 0; j < 8; j++) {
          const q0 = qs[j] ?? (qs[j] = Float32Array.from({ length: c.headDim }, () => rand() * 2 - 1));
          const q = ks ? q0.map((v, ch) => v * ks[ch]) : q0; // queries of KV head 0
          for (let t2 = 0; t2 < n; t2++) {
            let s = 0, sq = 0;
            for (let ch = 0; ch < c.headDim; ch++) {
              s += q[ch] * k[t2 * c.numKvHeads * c.headDim + ch];
              sq += q[ch] * kq[t2 * c.numKvHeads * c.headDim + ch];
            }
            scoreErr += (s - sq) ** 2;
            scoreNorm += s ** 2;
          }
        }
      },
    };
    model.forward(tokens, positions, createFullPrecisionCache(c, c.numLayers), "none", hooks);
    return { key: Math.sqrt(keyErr / keyNorm), score: Math.sqrt(scoreErr / scoreNorm) };
  };
  const before = errors(tf, null);
  foldRepScales(tf.weights, c, found.scales);
  const after = errors(tf, found.scales.map((r) => keyScaleVector(r, c)));
  t.diagnostic(`α ${found.alphas.join(", ")}; relative 4-bit key error ${before.key.toFixed(3)} → ${after.key.toFixed(3)}, score error ${before.score.toFixed(3)} → ${after.score.toFixed(3)}`);
  assert.ok(after.key < 0.85 * before.key, `key error ${before.key} → ${after.key}`);
  assert.ok(after.score < 0.5 * before.score, `score error ${before.score} → ${after.score}`);
});

test("rep scales round-trip through safetensors and are checked against the model", () => {
  const tf = randomTransformer({ layers: 2, hidden: 32, heads: 2, kvHeads: 1, headDim: 16, intermediate: 32, vocab: 16, seed: 1 });
  const scales = randomScales(tf, 3);
  const file = path.join(tempDir(), "rs.safetensors");
  writeRepScales(file, scales, [0.5, 0.25], [new Float64Array(20), new Float64Array(20)], [1, 2], tf.config, { model: "x" });
  const back = readRepScales(file, tf.config);
  assert.deepEqual(back.scales, scales);
  assert.deepEqual([...back.alphas], [0.5, 0.25]);
  const other = randomTransformer({ layers: 3, hidden: 32, heads: 2, kvHeads: 1, headDim: 16, intermediate: 32, vocab: 16, seed: 1 });
  assert.throws(() => readRepScales(file, other.config), (e: Error) => e instanceof UsageError && /layers\.2\.scales/.test(e.message));
  assert.throws(() => readRepScales(path.join(tempDir(), "none"), tf.config), /no such file/);
});
