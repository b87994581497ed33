// The optimizer against its closed form, the schedule, a short training run that learns,
// and a saved model that loads through the normal path.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { AdamW, clipGradNorm, learningRate } from "../../src/train/adamw.js";
import { drawProblem, saveModel, train, TRAIN_SEED_BASE, type ModelShape } from "../../src/train/train.js";
import { Rng } from "../../src/util/rng.js";
import { maxRelDiff, tempDir } from "../helpers.js";

test("AdamW's first step: m̂ = g, v̂ = g², so Δ = lr·(g/(|g| + ε) + wd·p) with decay, lr·sign(g) without", () => {
  const p = Float32Array.from([1, -2, 0.5]);
  const q = Float32Array.from([3, 3, 3]);
  const opt = new AdamW([p, q], [true, false], { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  opt.step([Float32Array.from([0.2, -0.4, 0]), Float32Array.from([-1, 2, 0])], 0.01);
  const want = (w: number, g: number, wd: number) => w - 0.01 * (g / (Math.abs(g) + 1e-8) + wd * w);
  [1, -2, 0.5].forEach((w, i) => assert.ok(Math.abs(p[i] - want(w, [0.2, -0.4, 0][i], 0.1)) < 1e-6));
  [3, 3, 3].forEach((w, i) => assert.ok(Math.abs(q[i] - want(w, [-1, 2, 0][i], 0)) < 1e-6));
});

test("gradient clipping and the learning-rate schedule", () => {
  const g = [Float32Array.from([3, 0]), Float32Array.from([4])];
  assert.equal(clipGradNorm(g, 1), 5);
  assert.ok(Math.abs(Math.hypot(g[0][0], g[1][0]) - 1) < 1e-6);
  assert.equal(learningRate(0, 100, 1, 10), 0.1);
  assert.equal(learningRate(9, 100, 1, 10), 1);
  assert.ok(Math.abs(learningRate(100, 100, 1, 10) - 0.1) < 1e-12, "ends at 10%");
  assert.ok(Math.abs(learningRate(55, 100, 1, 10) - 0.55) < 1e-12, "cosine midpoint");
});

test("a short run learns the short task, and the saved model reproduces its logits", () => {
  const dir = tempDir();
  const shape: ModelShape = { layers: 2, hidden: 64, heads: 2, kvHeads: 1, headDim: 32, intermediate: 128, maxPositions: 512 };
  const r = train({ outDir: dir, seed: 1, steps: 40, batchSize: 4, lr: 5e-3, warmupSteps: 5, shape, task: { facts: 4, steps: 4 }, curriculumFraction: 0 });
  const first = r.log.slice(0, 5).reduce((a, s) => a + s.loss, 0) / 5;
  const last = r.log.slice(-5).reduce((a, s) => a + s.loss, 0) / 5;
  assert.ok(last < 0.5 * first, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  saveModel(dir, shape, r.transformer, { test: true });
  const loaded = loadModel(dir);
  assert.equal(loaded.config.tieWordEmbeddings, false);
  const ids = loaded.tokenizer.encode("facts : k00 3 ; k01 7 ;", false);
  const a = Float32Array.from(r.transformer.forward(ids, ids.map((_, i) => i), createFullPrecisionCache(r.config, r.config.numLayers), "all"));
  const b = Float32Array.from(loaded.transformer.forward(ids, ids.map((_, i) => i), createFullPrecisionCache(loaded.config, loaded.config.numLayers), "all"));
  assert.ok(maxRelDiff(b, a) < 2e-2, `f16 weights change logits by ${maxRelDiff(b, a)}`);
});

test("problem lengths: half at the longest by default; with fullFraction 0 every length 3 … longest alike", () => {
  const n = 40_000;
  const count = (fullFraction: number | undefined) => {
    const rng = new Rng(5);
    const hist = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const d = drawProblem(rng, 99, 16, { fullFraction });
      assert.ok(d.steps >= 3 && d.steps <= 99 && d.facts === 16 && d.seed >= TRAIN_SEED_BASE);
      hist.set(d.steps, (hist.get(d.steps) ?? 0) + 1);
    }
    return hist;
  };
  // the closed forms: P(longest) = f + (1 − f)/97, P(any other length) = (1 − f)/97
  const half = count(undefined);
  assert.ok(Math.abs(half.get(99)! / n - (0.5 + 0.5 / 97)) < 0.01);
  assert.ok(Math.abs(half.get(50)! / n - 0.5 / 97) < 0.003);
  const flat = count(0);
  assert.equal(flat.size, 97);
  // each of the 97 lengths within 5 standard deviations of n/97
  const mean = n / 97;
  for (const [, c] of flat) assert.ok(Math.abs(c - mean) < 5 * Math.sqrt(mean), `${c} vs ${mean}`);
});
