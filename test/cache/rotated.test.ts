// The Hadamard-rotated cache (`rotate: "hadamard"`): over a full-precision inner cache it
// changes no attention output (q·k and Σ p·v are invariant under an orthonormal rotation);
// over pm-kvq it holds the inner cache's bytes plus the sign vector, and on keys with outlier
// channels it quantizes with less error than the plain cache.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createCache } from "../../src/cache/factory.js";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { rotateCache } from "../../src/cache/rotated.js";
import { allocF32, release } from "../../src/tensor/memory.js";
import { maxRelDiff, seededRandom } from "../helpers.js";

const config = { numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 32 } as never;
const shape = { numHeads: 4, numKvHeads: 2, headDim: 32 };
const R = 64;

function attendAll(cache: ReturnType<typeof createFullPrecisionCache>, k: Float32Array, v: Float32Array, q: Float32Array, n: number, T: number): Float32Array {
  const l = cache.layers[0];
  l.append(k.subarray(0, (n - T) * R), v.subarray(0, (n - T) * R), n - T);
  l.append(k.subarray((n - T) * R, n * R), v.subarray((n - T) * R, n * R), T);
  const qa = allocF32(q.length);
  qa.set(q);
  const out = allocF32(q.length);
  l.attend(qa, T, out);
  const r = out.slice();
  release(qa);
  release(out);
  return r;
}

test("over a full-precision cache the rotation changes no attention output", () => {
  const rand = seededRandom(4);
  for (const [n, T] of [[1, 1], [50, 1], [70, 9]]) {
    const k = Float32Array.from({ length: n * R }, () => rand() * 2 - 1);
    const v = Float32Array.from({ length: n * R }, () => rand() * 2 - 1);
    const q = Float32Array.from({ length: T * 4 * 32 }, () => rand() * 2 - 1);
    using plain = createFullPrecisionCache(config, 1);
    using rotated = rotateCache(shape, createFullPrecisionCache(config, 1));
    const a = attendAll(plain, k, v, q, n, T);
    const b = attendAll(rotated, k, v, q, n, T);
    assert.ok(maxRelDiff(a, b) < 1e-5, `n=${n} T=${T}: ${maxRelDiff(a, b)}`);
  }
});

test("over pm-kvq: the inner cache's bytes plus the signs, and less error on outlier channels", () => {
  const rand = seededRandom(9);
  const n = 300;
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const k = Float32Array.from({ length: n * R }, gauss);
  for (let t = 0; t < n; t++) k[t * R + 7] = 10 + gauss(); // an outlier channel in head 0, as real keys have
  const v = Float32Array.from({ length: n * R }, gauss);
  const q = Float32Array.from({ length: 4 * 32 }, () => rand() * 2 - 1);
  const budget = [0.02]; // MB: forces the body down to 2 bits
  using full = createFullPrecisionCache(config, 1);
  const exact = attendAll(full, k, v, q, n, 1);
  // tokens placed at append: the history is fed in one append before the attended token
  const spec = { method: "pm-kvq" as const, budgetsMB: budget, progressive: { nWindowTokens: 16 }, stepOrder: "quantize-first" as const };
  using plain = createCache(config, spec);
  using rot = createCache(config, { ...spec, rotate: "hadamard" });
  const a = attendAll(plain, k, v, q, n, 1);
  const b = attendAll(rot, k, v, q, n, 1);
  const sp = plain.stats(), sr = rot.stats();
  assert.equal(sp.blocks[0].bodyBits, 2);
  assert.equal(sr.blocks[0].bodyBits, 2);
  assert.equal(sr.totalHeldBytes, sp.totalHeldBytes + 32 * 4);
  assert.equal(sr.totalCodeBytes, sp.totalCodeBytes);
  const err = (x: Float32Array) => Math.sqrt(x.reduce((s, y, i) => s + (y - exact[i]) ** 2, 0));
  assert.ok(err(b) < err(a), `rotated error ${err(b)} vs plain ${err(a)}`);
});
