// Products with block-quantized weights: the WebAssembly kernels against their plain twin
// (T = 1: x quantized to int8 blocks, integer dots; T > 1: rows widened, float tile) with 1 and
// 2 threads; and the twin against a float64 product over the reference-dequantized weights with
// x unquantized, within the bound the int8 rounding of x allows.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ggmlTraitsByName, QUANT_DTYPE_NAMES, type QuantDtype } from "../../src/tensor/ggml-quant.js";
import * as k from "../../src/tensor/kernels.js";
import { matmulMatrixPlain, matrixRow, matrixToF32, quantMatrix, type Matrix } from "../../src/tensor/matrix.js";
import { allocF32, inArena, release } from "../../src/tensor/memory.js";
import { quantizeActivations } from "../../src/tensor/quant-matmul.js";
import { configureKernels, kernelThreads, wasm } from "../../src/tensor/wasm.js";
import { randomArray, seededRandom } from "../helpers.js";

const TOL = 1e-5;
const skip = wasm() ? false : "WebAssembly kernels are off (PMKVQ_KERNELS=ts or dist/kernels.wasm missing)";
const DTYPES = Object.keys(QUANT_DTYPE_NAMES) as QuantDtype[];
/** Bytes of each block that hold no f16 scale (randomized in some rows, so every code path and bit is used). */
const F16_FIELDS: Record<QuantDtype, number[]> = { q8_0: [0, 1], q4_0: [0, 1], q4_k: [0, 1, 2, 3], q6_k: [208, 209] };

/** A rows × cols matrix from the reference quantizer, rows of varied magnitude; every third row's non-scale bytes random. */
function randomQuantMatrix(dtype: QuantDtype, rows: number, cols: number, seed: number): Matrix {
  const t = ggmlTraitsByName(QUANT_DTYPE_NAMES[dtype]);
  const rand = seededRandom(seed);
  const rowBytes = (cols / t.blockSize) * t.blockBytes;
  const raw = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    const x = randomArray(cols, rand, 10 ** (4 * rand() - 3)); // 1e-3 … 10: small rows get f16-subnormal scales
    const row = raw.subarray(r * rowBytes, (r + 1) * rowBytes);
    t.quantizeRow(x, row, cols);
    if (r % 3 === 1) for (let i = 0; i < rowBytes; i++) if (!F16_FIELDS[dtype].includes(i % t.blockBytes)) row[i] = Math.floor(rand() * 256);
  }
  return quantMatrix(dtype, rows, cols, raw);
}

function arena(src: ArrayLike<number>, held: ArrayBufferView[]): Float32Array {
  const a = allocF32(src.length);
  a.set(src);
  held.push(a);
  return a;
}

/** max |a − b| / max(max |b|, 1e-6) */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-6, m = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
}

const worst = new Map<string, number>();
for (const threads of [1, 2]) {
  for (const dtype of DTYPES) for (const cols of [256, 512, 1536]) for (const rows of [1, 7, 33, 257]) for (const T of [1, 3, 17]) {
    if (T === 17 && rows === 257 && cols === 1536) continue; // the twin is slow; 257 × 512 covers it
    const withBias = rows % 2 === 1 && T !== 3;
    test(`${dtype} ${cols}→${rows} T=${T}${withBias ? " +bias" : ""}: kernel = twin [threads=${threads}]`, { skip }, () => {
      if (kernelThreads() !== threads) configureKernels({ threads });
      const held: ArrayBufferView[] = [];
      const w = randomQuantMatrix(dtype, rows, cols, cols * 1000 + rows);
      try {
        const rand = seededRandom(rows + cols + T);
        const x = arena(randomArray(T * cols, rand, 2), held), bias = withBias ? arena(randomArray(rows, rand), held) : null;
        const got = arena(new Float32Array(T * rows).fill(NaN), held);
        for (const v of [x, got, w.data]) assert.ok(inArena(v), "buffers in the arena: the WebAssembly kernel runs");
        k.matmul(got, x, w, bias, T);
        const want = new Float32Array(T * rows);
        matmulMatrixPlain(want, x, w, bias, T);
        const d = relDiff(got, want);
        const key = `${dtype} T${T === 1 ? "=1" : ">1"}`;
        worst.set(key, Math.max(worst.get(key) ?? 0, d));
        assert.ok(d <= TOL, `relative difference ${d.toExponential(2)} > ${TOL}`);
      } finally {
        held.forEach(release);
        release(w.data);
      }
    });
  }
}

for (const dtype of DTYPES) {
  test(`${dtype} twin vs float64 over the dequantized weights: T = 1 within the int8 rounding of x, T = 3 within 1e-5`, () => {
    const rows = 19, cols = 1536;
    const w = randomQuantMatrix(dtype, rows, cols, 99);
    try {
      const wf = matrixToF32(w);
      const rand = seededRandom(5);
      for (const T of [1, 3]) {
        const x = randomArray(T * cols, rand, 3);
        x[7] = 40; // an outlier: its block's scale grows
        const got = new Float32Array(T * rows);
        matmulMatrixPlain(got, x, w, null, T);
        for (let t = 0; t < T; t++) {
          const xt = x.subarray(t * cols, (t + 1) * cols);
          const xq = quantizeActivations(xt, 0, cols);
          for (let o = 0; o < rows; o++) {
            let exact = 0, mag = 0, roundBound = 0;
            for (let i = 0; i < cols; i++) {
              const wv = wf[o * cols + i];
              exact += wv * xt[i];
              mag += Math.abs(wv * xt[i]);
              roundBound += Math.abs(wv) * xq.scales[i >> 5] * 0.5; // |x − x̂| ≤ d/2 per element
            }
            // float32 arithmetic on top: 1e-5 of Σ|w·x| (and of the rounding term)
            const bound = (T === 1 ? roundBound * (1 + 1e-3) : 0) + 1e-5 * (mag + roundBound) + 1e-30;
            const err = Math.abs(got[t * rows + o] - exact);
            assert.ok(err <= bound, `T=${T} row ${o}: |error| ${err.toExponential(3)} > bound ${bound.toExponential(3)}`);
          }
        }
      }
    } finally {
      release(w.data);
    }
  });
}

test("int8 quantization of x: per block of 32, d = max|x| / 127, values round half to even", () => {
  const x = new Float32Array(64);
  x[0] = 127;
  x[1] = 0.5; // a tie: rounds to 0
  x[2] = 1.5; // rounds to 2
  x[3] = -2.5; // rounds to −2
  x[4] = -127;
  for (let i = 32; i < 64; i++) x[i] = 0; // an all-zero block: scale 0, no NaN
  const a = quantizeActivations(x, 0, 64);
  assert.deepEqual([...a.q.subarray(0, 6)], [127, 0, 2, -2, -127, 0]);
  assert.deepEqual([...a.scales], [1, 0]);
  assert.deepEqual([...a.sums], [0, 0]);
});

test("worst kernel-vs-twin differences", { skip }, () => {
  for (const [key, d] of worst) console.log(`  ${key}: max relative difference ${d.toExponential(2)}`);
});

test("the kernels' row widening (prefill) gives the reference dequantizer's floats bit for bit", { skip }, () => {
  const rt = wasm()!;
  for (const dtype of DTYPES) {
    const cols = 1536, rows = 5;
    const w = randomQuantMatrix(dtype, rows, cols, 3);
    const got = allocF32(cols);
    try {
      const rowBytes = w.data.byteLength / rows;
      for (let r = 0; r < rows; r++) {
        rt.ex.dequantRowQ(got.byteOffset, w.data.byteOffset + r * rowBytes, cols, ggmlTraitsByName(QUANT_DTYPE_NAMES[dtype]).id);
        const want = new Float32Array(cols);
        matrixRow(w, r, want);
        assert.deepEqual(new Uint32Array(Float32Array.from(got).buffer), new Uint32Array(want.buffer), `${dtype} row ${r}`);
      }
    } finally {
      release(got);
      release(w.data);
    }
  }
});
