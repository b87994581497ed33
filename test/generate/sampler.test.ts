// Sampling against closed forms: softmax frequencies, the nucleus by brute force, seeds.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../../src/util/rng.js";
import { resolveSampling } from "../../src/generate/generate.js";
import { argmax, kthLargest, sampleToken } from "../../src/generate/sampler.js";
import type { LoadedModel } from "../../src/model/checkpoint.js";

const logits = [2.0, 1.0, 0.5, 0.0, -1.0, 3.0, 1.5, -0.5];

function softmax(x: number[], temperature: number): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp((v - m) / temperature));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** The nucleus by brute force: most likely first until the mass reaches p. */
function nucleus(probs: number[], p: number): Set<number> {
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]);
  const keep = new Set<number>();
  let mass = 0;
  for (const i of order) {
    keep.add(i);
    mass += probs[i];
    if (mass >= p) break;
  }
  return keep;
}

test("argmax takes the first maximum", () => {
  assert.equal(argmax([1, 3, 3, 2]), 1);
  assert.equal(argmax([-5]), 0);
  assert.equal(sampleToken(logits, { temperature: 0, topP: 0.5 }, new Rng(1)), 5);
});

test("Rng: same seed same stream, values in [0, 1), mean ≈ 1/2", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  let sum = 0;
  let differs = false;
  const n = 100000;
  for (let i = 0; i < n; i++) {
    const x = a.next();
    assert.equal(x, b.next());
    if (x !== c.next()) differs = true;
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(differs);
  assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
});

for (const temperature of [0.6, 1.0, 1.7]) {
  test(`temperature ${temperature}, top-p 1: frequencies follow softmax(logits / T)`, () => {
    const probs = softmax(logits, temperature);
    const rng = new Rng(7);
    const n = 40000;
    const counts = new Array(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature, topP: 1 }, rng)]++;
    probs.forEach((p, i) => {
      const sd = Math.sqrt((p * (1 - p)) / n);
      assert.ok(Math.abs(counts[i] / n - p) < 5 * sd + 1e-4, `token ${i}: ${counts[i] / n} vs ${p}`);
    });
  });
}

for (const topP of [0.3, 0.7, 0.9, 0.95]) {
  test(`top-p ${topP}: only the nucleus is sampled, renormalised`, () => {
    const temperature = 0.8;
    const probs = softmax(logits, temperature);
    const keep = nucleus(probs, topP);
    const keptMass = [...keep].reduce((a, i) => a + probs[i], 0);
    const rng = new Rng(11);
    const n = 30000;
    const counts = new Array(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature, topP }, rng)]++;
    counts.forEach((c, i) => {
      if (!keep.has(i)) assert.equal(c, 0, `token ${i} is outside the nucleus`);
      else {
        const p = probs[i] / keptMass;
        const sd = Math.sqrt((p * (1 - p)) / n);
        assert.ok(Math.abs(c / n - p) < 5 * sd + 1e-4, `token ${i}: ${c / n} vs ${p}`);
      }
    });
  });
}

test("a large vocabulary with top-p: same seed → same tokens", () => {
  const big = Array.from({ length: 50000 }, (_, i) => Math.sin(i * 12.9898) * 4);
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 20 }, () => sampleToken(big, { temperature: 0.6, topP: 0.95 }, rng));
  };
  assert.deepEqual(draw(5), draw(5));
  assert.notDeepEqual(draw(5), draw(6));
});

/** Top-k by brute force (sorted logits, ties with the k-th kept), then the nucleus of the renormalised rest. */
function topKThenNucleus(x: number[], k: number, temperature: number, p: number): Map<number, number> {
  const kth = [...x].sort((a, b) => b - a)[k - 1];
  const kept = x.map((_, i) => i).filter((i) => x[i] >= kth);
  const e = kept.map((i) => Math.exp(x[i] / temperature));
  const s = e.reduce((a, b) => a + b, 0);
  const probs = new Array(x.length).fill(0);
  kept.forEach((i, j) => (probs[i] = e[j] / s));
  const keep = nucleus(probs, p);
  const mass = [...keep].reduce((a, i) => a + probs[i], 0);
  return new Map([...keep].map((i) => [i, probs[i] / mass]));
}

test("kthLargest matches a sort, with ties and negative values", () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 50; trial++) {
    const x = Array.from({ length: 1 + Math.floor(rng.next() * 300) }, () => Math.round((rng.next() - 0.5) * 20) / 2 + 0); // + 0: no -0
    const sorted = [...x].sort((a, b) => b - a);
    for (const k of [1, 2, Math.ceil(x.length / 2), x.length]) assert.equal(kthLargest(x, k), sorted[k - 1]);
  }
});

for (const [k, topP] of [[1, 1], [3, 1], [3, 0.7], [5, 0.9], [50, 0.95]] as const) {
  test(`top-k ${k}, top-p ${topP}: only the k most likely (then their nucleus) are sampled, renormalised`, () => {
    const temperature = 0.7;
    const want = topKThenNucleus(logits, Math.min(k, logits.length), temperature, topP);
    const rng = new Rng(13);
    const n = 30000;
    const counts = new Array(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature, topP, topK: k }, rng)]++;
    counts.forEach((c, i) => {
      const p = want.get(i) ?? 0;
      if (p === 0) assert.equal(c, 0, `token ${i} is outside top-${k}`);
      else assert.ok(Math.abs(c / n - p) < 5 * Math.sqrt((p * (1 - p)) / n) + 1e-4, `token ${i}: ${c / n} vs ${p}`);
    });
  });
}

test("top-k keeps every token tied with the k-th largest logit (transformers removes only scores below it)", () => {
  const tied = [1, 3, 2, 2, 2, 0];
  const rng = new Rng(2);
  const seen = new Set<number>();
  for (let i = 0; i < 5000; i++) seen.add(sampleToken(tied, { temperature: 5, topP: 1, topK: 2 }, rng));
  assert.deepEqual([...seen].sort(), [1, 2, 3, 4]);
});

test("resolveSampling: top-k from the flag, else generation_config.json, else transformers' 50", () => {
  const model = (topK: number | null) => ({ generation: { doSample: true, temperature: 0.6, topP: 0.95, topK, eosTokenIds: [], bosTokenId: null } }) as unknown as LoadedModel;
  assert.equal(resolveSampling(model(null)).topK, 50);
  assert.equal(resolveSampling(model(20)).topK, 20);
  assert.equal(resolveSampling(model(20), undefined, undefined, 0).topK, 0);
  assert.throws(() => resolveSampling(model(null), 1, 1, 1.5), /top-k must be an integer ≥ 0/);
});
