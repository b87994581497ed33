// The plain-TypeScript twins (the kernels' oracles and the fallback when WebAssembly is off) against
// float64 formulas written here: this file runs whatever kernels are in use, so the twins keep an
// independent check when test/tensor/kernels.test.ts is skipped (PMKVQ_KERNELS=ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32 } from "../../src/tensor/dtype.js";
import { matmulMatrixPlain, type Matrix } from "../../src/tensor/matrix.js";
import * as plain from "../../src/tensor/ops.js";
import { randomArray, seededRandom } from "../helpers.js";

/** Float32 sums of n terms stay within this relative distance of float64 here. */
const TOL = 2e-6;
const rand = seededRandom(99);

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 1e-9, m = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m / scale;
}

for (const dtype of ["f32", "bf16", "f16"] as const) {
  for (const [T, cols, rows] of [[1, 64, 7], [3, 40, 5], [5, 130, 9]]) {
    test(`matmul twin, ${dtype} weights, T=${T} ${cols}→${rows}, with bias: float64 Σ x·w + b over the stored weights`, () => {
      const x = randomArray(T * cols, rand, 2);
      const wf = randomArray(rows * cols, rand, 1);
      const bias = randomArray(rows, rand, 1);
      let m: Matrix;
      let wide: Float32Array;
      if (dtype === "f32") [m, wide] = [{ dtype, rows, cols, data: wf }, wf];
      else {
        const raw = new Uint16Array(rows * cols);
        (dtype === "bf16" ? f32ToBf16 : f32ToF16)(wf, raw);
        wide = new Float32Array(rows * cols);
        (dtype === "bf16" ? bf16ToF32 : f16ToF32)(raw, wide);
        m = { dtype, rows, cols, data: raw };
      }
      const out = new Float32Array(T * rows);
      matmulMatrixPlain(out, x, m, bias, T);
      const want = new Float64Array(T * rows);
      for (let t = 0; t < T; t++) for (let o = 0; o < rows; o++) {
        let s = bias[o];
        for (let i = 0; i < cols; i++) s += x[t * cols + i] * wide[o * cols + i];
        want[t * rows + o] = s;
      }
      assert.ok(relErr(out, want) < TOL, `${relErr(out, want)}`);
    });
  }
}

test("rmsnorm, softmax, swiglu and rope twins: float64 formulas", () => {
  const T = 3, n = 37, eps = 1e-5;
  const x = randomArray(T * n, rand, 3), w = randomArray(n, rand, 1);
  const out = new Float32Array(T * n);
  plain.rmsnorm(out, x, w, T, n, eps);
  const want = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i] ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) want[t * n + i] = x[t * n + i] * inv * w[i];
  }
  assert.ok(relErr(out, want) < TOL, `rmsnorm ${relErr(out, want)}`);

  const s = Float32Array.from(randomArray(50, rand, 20), (v) => v + 80);
  const sw = Float64Array.from(s);
  plain.softmax(s, 0, 50);
  const mx = Math.max(...sw);
  const z = sw.reduce((a, v) => a + Math.exp(v - mx), 0);
  assert.ok(relErr(s, sw.map((v) => Math.exp(v - mx) / z)) < TOL, "softmax");

  const gate = randomArray(64, rand, 6), up = randomArray(64, rand, 2);
  const g64 = Float64Array.from(gate);
  plain.swiglu(gate, up, 64);
  assert.ok(relErr(gate, g64.map((g, i) => (g / (1 + Math.exp(-g))) * up[i])) < TOL, "swiglu");

  // rope over (T, heads, d) in the rotate-half layout: channel i pairs with i + d/2
  const heads = 2, d = 8, half = d / 2;
  const q = randomArray(T * heads * d, rand, 1);
  const q64 = Float64Array.from(q);
  const cos = new Float32Array(T * half), sin = new Float32Array(T * half);
  for (let t = 0; t < T; t++) for (let i = 0; i < half; i++) {
    const a = (t + 1) * 10000 ** (-i / half);
    cos[t * half + i] = Math.cos(a);
    sin[t * half + i] = Math.sin(a);
  }
  plain.rope(q, cos, sin, T, heads, d);
  const rq = new Float64Array(q64.length);
  for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) {
    const o = (t * heads + h) * d;
    const [c, sn] = [cos[t * half + i], sin[t * half + i]];
    rq[o + i] = q64[o + i] * c - q64[o + i + half] * sn;
    rq[o + i + half] = q64[o + i + half] * c + q64[o + i] * sn;
  }
  assert.ok(relErr(q, rq) < TOL, `rope ${relErr(q, rq)}`);
});
