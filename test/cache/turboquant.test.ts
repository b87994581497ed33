// The TurboQuant-style baseline: norms kept (norm correction), per-coordinate error at the
// Lloyd–Max distortion of N(0, 1) on Gaussian vectors, attention equal to float64 attention
// over the dequantized rows, bit-streamed 3-bit codes, and held bytes by the layout's formula.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createCache } from "../../src/cache/factory.js";
import { rotate, rotationSigns, TurboQuantLayerCache, unrotate } from "../../src/cache/turboquant.js";
import { seededRandom } from "../helpers.js";

const shape = { numHeads: 4, numKvHeads: 2, headDim: 64 };
const R = shape.numKvHeads * shape.headDim;

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

test("rotation is orthonormal and undone exactly", () => {
  const rand = seededRandom(1);
  const signs = rotationSigns(64, 3);
  const x = Float32Array.from({ length: 64 }, () => rand() * 2 - 1);
  const y = x.slice();
  rotate(y, 0, 64, signs);
  const n = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
  assert.ok(Math.abs(n(x) - n(y)) < 1e-5);
  unrotate(y, 0, 64, signs);
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(x[i] - y[i]) < 1e-6);
});

for (const bits of [2, 3, 4]) {
  test(`${bits}-bit: norms kept to f16, per-coordinate MSE at the Lloyd–Max distortion`, () => {
    const rand = seededRandom(10 + bits);
    const cache = new TurboQuantLayerCache(shape, { kBits: bits, vBits: bits });
    const n = 400;
    const keys = Float32Array.from({ length: n * R }, () => gaussian(rand));
    // outlier channels: TurboQuant's rotation spreads them
    for (let t = 0; t < n; t++) keys[t * R + 5] *= 8;
    cache.append(keys, keys, n);
    const { keys: kq } = cache.dequantized();
    let err = 0, energy = 0;
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < shape.numKvHeads; h++) {
        let a = 0, b = 0;
        for (let j = 0; j < 64; j++) {
          const i = t * R + h * 64 + j;
          a += keys[i] ** 2;
          b += kq[i] ** 2;
          err += (keys[i] - kq[i]) ** 2;
        }
        energy += a;
        // x̂'s norm is ‖x‖ up to σ's f16 rounding (relative 2^-11)
        assert.ok(Math.abs(Math.sqrt(b) - Math.sqrt(a)) <= 1e-3 * Math.sqrt(a), `norm ${Math.sqrt(b)} vs ${Math.sqrt(a)}`);
      }
    }
    // relative MSE ≈ D(b) for N(0, 1) (Max 1960: 0.1175, 0.03454, 0.009497), a little more with
    // norm correction and d = 64 (coordinates only near-Gaussian)
    const D = { 2: 0.1175, 3: 0.03454, 4: 0.009497 }[bits]!;
    const rel = err / energy;
    assert.ok(rel > 0.8 * D && rel < 1.35 * D, `relative MSE ${rel} vs D(${bits}) = ${D}`);
  });
}

test("attention equals float64 attention over the dequantized rows (decode and prefill)", () => {
  const rand = seededRandom(7);
  const cache = new TurboQuantLayerCache(shape, { kBits: 3, vBits: 2 });
  const n0 = 37, T = 5;
  const k = Float32Array.from({ length: (n0 + T) * R }, () => rand() * 2 - 1);
  const v = Float32Array.from({ length: (n0 + T) * R }, () => rand() * 2 - 1);
  cache.append(k, v, n0);
  cache.append(k.subarray(n0 * R), v.subarray(n0 * R), T);
  const q = Float32Array.from({ length: T * shape.numHeads * 64 }, () => rand() * 2 - 1);
  const out = new Float32Array(q.length);
  cache.attend(q, T, out);
  const { keys, values } = cache.dequantized();
  const L = n0 + T;
  let worst = 0;
  for (let i = 0; i < T; i++) {
    for (let h = 0; h < shape.numHeads; h++) {
      const kvh = Math.floor(h / 2);
      const vis = L - T + i + 1;
      const s: number[] = [];
      for (let t = 0; t < vis; t++) {
        let dot = 0;
        for (let j = 0; j < 64; j++) dot += q[(i * shape.numHeads + h) * 64 + j] * keys[t * R + kvh * 64 + j];
        s.push(dot / 8);
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < 64; j++) {
        let o = 0;
        for (let t = 0; t < vis; t++) o += (e[t] / z) * values[t * R + kvh * 64 + j];
        worst = Math.max(worst, Math.abs(o - out[(i * shape.numHeads + h) * 64 + j]));
      }
    }
  }
  assert.ok(worst < 2e-5, `max |Δ| ${worst}`);
});

test("held bytes: ⌈R·b/32⌉ words per row and an f16 scale per head vector, in steps of 128 tokens", () => {
  const config = { numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 64 } as never;
  const cache = createCache(config, { method: "turboquant", kBits: 3, vBits: 2 });
  const rand = seededRandom(3);
  const x = Float32Array.from({ length: 130 * R }, () => rand() - 0.5);
  for (const l of cache.layers) l.append(x, x, 130);
  const rowBytes = (b: number) => Math.ceil((R * b) / 32) * 4 + shape.numKvHeads * 2;
  assert.equal(cache.stats().totalHeldBytes, 3 * 256 * (rowBytes(3) + rowBytes(2)));
  assert.equal(cache.stats().totalCodeBytes, (3 * 130 * R * 5) / 8);
  // truncating and appending again gives the same codes as appending once
  const a = cache.layers[0] as TurboQuantLayerCache;
  const before = a.dequantized();
  a.truncate(100);
  a.append(x.subarray(100 * R), x.subarray(100 * R), 30);
  assert.deepEqual(a.dequantized(), before);
  cache.dispose();
});

test("a zero vector stays zero; one-hot vectors keep their norm", () => {
  const c = new TurboQuantLayerCache(shape, { kBits: 2, vBits: 2 });
  const x = new Float32Array(R);
  x[64 + 3] = 3; // head 1 one-hot, head 0 zero
  c.append(x, x, 1);
  const { keys } = c.dequantized();
  assert.ok(keys.subarray(0, 64).every((v) => v === 0));
  const norm = Math.sqrt(keys.subarray(64, 128).reduce((s, v) => s + v * v, 0));
  assert.ok(Math.abs(norm - 3) < 3e-3, `${norm}`);
});
