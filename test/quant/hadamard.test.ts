// The Walsh–Hadamard transform: orthonormal, symmetric, and equal to a dense-matrix product.

import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import { fwht, hadamardMatrix } from "../../src/quant/hadamard.js";
import { seededRandom } from "../helpers.js";

/** The dense Sylvester matrix built by recursion H_2n = [[H, H], [H, −H]] / √2, independently. */
function sylvester(n: number): number[][] {
  let h = [[1]];
  while (h.length < n) h = [...h.map((r) => [...r, ...r]), ...h.map((r) => [...r, ...r.map((v) => -v)])];
  return h.map((r) => r.map((v) => v / Math.sqrt(n)));
}

for (const n of [1, 2, 4, 8, 32, 128]) {
  test(`n = ${n}: H·Hᵀ = I, H matches the recursive construction, fwht = H·x`, () => {
    const h = hadamardMatrix(n);
    const ref = sylvester(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        assert.ok(Math.abs(h[i * n + j] - ref[i][j]) < 1e-15);
        let dot = 0;
        for (let k = 0; k < n; k++) dot += h[i * n + k] * h[j * n + k];
        assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12, `(${i}, ${j}): ${dot}`);
      }
    }
    const rand = seededRandom(n);
    const x = Float64Array.from({ length: n + 3 }, () => rand() * 2 - 1);
    const y = Float64Array.from(x);
    fwht(y, 2, n); // at an offset: only x[2 … 2+n) changes
    for (let i = 0; i < n; i++) {
      let want = 0;
      for (let k = 0; k < n; k++) want += ref[i][k] * x[2 + k];
      assert.ok(Math.abs(y[2 + i] - want) < 1e-12);
    }
    assert.deepEqual([y[0], y[1], y[n + 2]], [x[0], x[1], x[n + 2]]);
    fwht(y, 2, n); // H is its own inverse
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i] - x[i]) < 1e-12);
  });
}

test("sizes that are not powers of two are refused with the nearest valid ones", () => {
  assert.throws(() => hadamardMatrix(12), (e: Error) => e instanceof UsageError && /12 is not a power of two.*8 or 16/.test(e.message));
});
