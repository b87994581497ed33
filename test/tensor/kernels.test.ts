// Every WebAssembly kernel against its plain-TypeScript twin on random data and edge shapes,
// with 1 and 2 worker threads: within 1e-5 relative (max |a − b| / max(max |b|, 1e-6)), and
// bit-identical across thread counts. Also: the dispatch really ran WebAssembly (buffers in
// the arena, kernels said yes), and the fallbacks (plain buffers, unsupported shapes) agree.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { attentionBackward } from "../../src/model/backward.js";
import { attendFloat } from "../../src/tensor/attention-float.js";
import { f16ToF32, f32ToBf16, f32ToF16 } from "../../src/tensor/dtype.js";
import * as k from "../../src/tensor/kernels.js";
import { matmulMatrixPlain, type Matrix, type WeightDtype } from "../../src/tensor/matrix.js";
import { allocF32, allocU16, inArena, release } from "../../src/tensor/memory.js";
import * as plain from "../../src/tensor/ops.js";
import { configureKernels, kernelThreads, wasm } from "../../src/tensor/wasm.js";
import { randomArray, seededRandom } from "../helpers.js";

const TOL = 1e-5;
const skip = wasm() ? false : "WebAssembly kernels are off (PMKVQ_KERNELS=ts or dist/kernels.wasm missing)";
let rand = seededRandom(20240611); // reseeded where a run must see the same data twice

/** max |a − b| / max(max |b|, 1e-6): the one yardstick of this file (NaN never passes). */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let scale = 1e-6, m = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
}

// Arena buffers made by a case, given back when it ends.
let held: ArrayBufferView[] = [];
function arena(src: ArrayLike<number>): Float32Array {
  const a = allocF32(src.length);
  a.set(src);
  held.push(a);
  assert.ok(inArena(a), "arena buffers: the dispatch takes the WebAssembly kernel");
  return a;
}
const rnd = (n: number, scale = 1): Float32Array => randomArray(n, rand, scale);
const bits = (a: Float32Array): Uint32Array => new Uint32Array(Float32Array.from(a).buffer);

function useThreads(n: number): void {
  if (kernelThreads() !== n) configureKernels({ threads: n });
}

const worst = new Map<string, number>();

interface Case { kernel: string; name: string; run: () => number }
const CASES: Case[] = [];
const add = (kernel: string, name: string, run: () => number): void => void CASES.push({ kernel, name: `${kernel} ${name}`, run });

// ------------------------------------------------------------------------------- matmul
// 16-bit weight rows come in kinds (row o has kind o % 6); the outputs of subnormal rows and of
// largest-f16 rows are compared on their own, so neither is drowned by (or drowns) the others.
const GROUPS = [[0, 1, 4, 5], [2], [3]];
const SPECIAL = [0x0000, 0x8000, 0x0001, 0x03ff, 0x8001, 0x83ff];
const KINDS = 6;
function weights16(dtype: WeightDtype, rows: number, cols: number): Uint16Array {
  const f = rnd(rows * cols);
  const w = allocU16(rows * cols);
  held.push(w);
  (dtype === "bf16" ? f32ToBf16 : f32ToF16)(f, w);
  for (let o = 0; o < rows; o++) {
    for (let i = 0; i < cols; i++) {
      const at = o * cols + i, pick = SPECIAL[Math.floor(rand() * SPECIAL.length)];
      switch (o % KINDS) {
        case 1: w[at] = rand() < 0.5 ? 0x0000 : 0x8000; break; // zero and negative zero
        case 2: w[at] = pick === 0x0000 || pick === 0x8000 ? 0x0001 : pick; break; // f16 subnormals
        case 3: if (i === 5) w[at] = rand() < 0.5 ? 0x7bff : 0xfbff; break; // ±largest f16, once a row
        case 4: w[at] |= 0x8000; break; // negative values
        case 5: if (rand() < 0.5) w[at] = pick; break; // a mix
      }
    }
  }
  return w;
}
function byGroup(out: Float32Array, T: number, rows: number, kinds: number[]): number[] {
  const v: number[] = [];
  for (let t = 0; t < T; t++) for (let o = 0; o < rows; o++) if (kinds.includes(o % KINDS)) v.push(out[t * rows + o]);
  return v;
}
function runMatmul(dtype: WeightDtype, inDim: number, outDim: number, T: number, withBias: boolean): { got: Float32Array; diff: number } {
  const w: Matrix = { dtype, rows: outDim, cols: inDim, data: dtype === "f32" ? arena(rnd(outDim * inDim)) : weights16(dtype, outDim, inDim) };
  const x = arena(rnd(T * inDim)), bias = withBias ? arena(rnd(outDim)) : null, got = arena(new Float32Array(T * outDim).fill(NaN));
  for (const v of [x, got, w.data, bias]) if (v) assert.ok(inArena(v), "buffers in the arena: the WebAssembly kernel runs");
  k.matmul(got, x, w, bias, T);
  const want = new Float32Array(T * outDim);
  matmulMatrixPlain(want, x, w, bias, T);
  if (dtype === "f32") return { got, diff: relDiff(got, want) };
  let diff = 0;
  for (const g of GROUPS) diff = Math.max(diff, relDiff(byGroup(got, T, outDim, g), byGroup(want, T, outDim, g)));
  return { got, diff };
}
// T ≥ 2 takes the 4-row × 2-token tiles (f32: inDim % 4 = 0); 7 and 1030 rows leave rows over.
for (const [dtype, inDims] of [["f32", [37, 64, 172, 1024]], ["bf16", [16, 64, 1024]], ["f16", [16, 64, 1024]]] as const) {
  for (const inDim of inDims) for (const outDim of [1, 7, 300, 1030, 2048]) for (const T of [1, 2, 5]) for (const b of [false, true]) {
    add("matmul", `${dtype} ${inDim}→${outDim} T=${T}${b ? " +bias" : ""}`, () => runMatmul(dtype, inDim, outDim, T, b).diff);
  }
}

// ------------------------------------------------------------------- elementwise kernels
for (const T of [1, 3, 7]) for (const n of [1, 3, 16, 37, 1024]) {
  add("rmsnorm", `T=${T} n=${n}`, () => {
    const x = arena(rnd(T * n, 3)), w = arena(rnd(n)), got = arena(new Float32Array(T * n)), want = new Float32Array(T * n);
    k.rmsnorm(got, x, w, T, n, 1e-5);
    plain.rmsnorm(want, x, w, T, n, 1e-5);
    return relDiff(got, want);
  });
}
for (const nHeads of [1, 2, 5, 8]) for (const d of [8, 64, 128]) for (const T of [1, 4, 7]) {
  add("rope", `heads=${nHeads} d=${d} T=${T}`, () => {
    const angles = Array.from({ length: T * (d / 2) }, (_, i) => (Math.floor(i / (d / 2)) + 3) * 10000 ** (-(i % (d / 2)) / (d / 2)));
    const cos = arena(angles.map(Math.cos)), sin = arena(angles.map(Math.sin)), x = arena(rnd(T * nHeads * d, 2)), want = Float32Array.from(x);
    k.rope(x, cos, sin, T, nHeads, d);
    plain.rope(want, cos, sin, T, nHeads, d);
    return relDiff(x, want);
  });
}
const SOFTMAX_DATA: [string, (n: number) => Float32Array][] = [
  ["random", (n) => rnd(n, 5)],
  ["large negative", (n) => rnd(n, 50).map((v) => v - 1e4)],
  ["large positive", (n) => rnd(n, 10).map((v) => v + 90)],
  ["±1e30", (n) => rnd(n).map((v) => (v < 0 ? -1e30 : 1e30 * v))],
];
for (const n of [1, 3, 100]) for (const [label, make] of SOFTMAX_DATA) {
  add("softmax", `n=${n} ${label}`, () => {
    const x = arena([...rnd(5), ...make(n), ...rnd(3)]), want = Float32Array.from(x); // at an offset, neighbours untouched
    k.softmax(x, 5, n);
    plain.softmax(want, 5, n);
    return relDiff(x, want);
  });
}
for (const n of [1, 5, 100, 8191, 8192, 100003]) for (const extreme of [false, true]) {
  add("swiglu", `n=${n}${extreme ? " ±30/±100" : ""}`, () => {
    const g = rnd(n, 4);
    if (extreme) for (let i = 0; i < n; i++) if (i % 3 === 0) g[i] = [-30, 30, -100, 100][i % 4];
    const gate = arena(g), up = arena(rnd(n, 2)), want = Float32Array.from(gate);
    k.swiglu(gate, up, n);
    plain.swiglu(want, up, n);
    return relDiff(gate, want);
  });
}
for (const n of [1, 3, 4, 17, 1000]) {
  add("addInPlace", `n=${n}`, () => {
    const x = arena(rnd(n, 100)), y = arena(rnd(n)), want = Float32Array.from(x);
    k.addInPlace(x, y, n);
    plain.addInPlace(want, y, n);
    return relDiff(x, want);
  });
}

// ------------------------------------------------------------------------ float attention
type Shape = { numHeads: number; numKvHeads: number; headDim: number };
function runAttendFloat(shape: Shape, L: number, T: number, f16: boolean): { got: Float32Array; diff: number } {
  const row = shape.numKvHeads * shape.headDim;
  const kf = rnd(L * row), vf = rnd(L * row), q = arena(rnd(T * shape.numHeads * shape.headDim, 2));
  let keys: Float32Array | Uint16Array = arena(kf), values: Float32Array | Uint16Array = arena(vf);
  if (f16) {
    [keys, values] = [allocU16(L * row), allocU16(L * row)];
    held.push(keys, values);
    f32ToF16(kf, keys);
    f32ToF16(vf, values);
    f16ToF32(keys, kf); // the reference reads the widened f16 values
    f16ToF32(values, vf);
  }
  const got = arena(new Float32Array(q.length).fill(NaN)), want = new Float32Array(q.length);
  assert.ok(k.attendFloatKernel(got, q, T, keys, values, L, shape), "the WebAssembly kernel ran");
  attendFloat(want, q, T, kf, vf, L, shape, new Float32Array(L));
  return { got, diff: relDiff(got, want) };
}
const GQA: [number, number][] = [[8, 2], [4, 4], [6, 2]];
for (const f16 of [false, true]) for (const [numHeads, numKvHeads] of GQA) for (const headDim of [16, 64, 128]) {
  for (const L of [1, 17, 300]) for (const T of new Set([1, L, 7].filter((t) => t <= L))) {
    add("attendFloat", `${f16 ? "f16" : "f32"} ${numHeads}/${numKvHeads} d=${headDim} L=${L} T=${T}`, () => runAttendFloat({ numHeads, numKvHeads, headDim }, L, T, f16).diff);
  }
}

// ------------------------------------------------------------------- training kernels
// (the activation gradients' products and attention backward; sizes below and above the work
// at which the pool takes them)
for (const [T, kk, n] of [[1, 7, 5], [3, 64, 37], [40, 64, 48], [5, 300, 64]]) {
  add("matmulNN", `T=${T} ${kk}→${n}`, () => {
    const x = arena(rnd(T * kk)), w = arena(rnd(kk * n)), got = arena(new Float32Array(T * n).fill(NaN)), want = new Float32Array(T * n);
    k.matmulNN(got, x, w, T, kk, n);
    plain.matmulNN(want, x, w, T, kk, n);
    return relDiff(got, want);
  });
}
for (const [T, m, n] of [[1, 3, 5], [7, 37, 64], [40, 64, 48], [300, 17, 20]]) {
  add("matmulTNAcc", `T=${T} m=${m} n=${n}`, () => {
    const a = arena(rnd(T * m)), b = arena(rnd(T * n)), start = rnd(m * n), got = arena(start), want = Float32Array.from(start);
    k.matmulTNAcc(got, a, b, T, m, n);
    plain.matmulTNAcc(want, a, b, T, m, n);
    return relDiff(got, want);
  });
}
for (const [numHeads, numKvHeads, headDim, T] of [[4, 2, 16, 5], [8, 2, 64, 33], [6, 3, 32, 100]]) {
  add("attentionBackward", `${numHeads}/${numKvHeads} d=${headDim} T=${T}`, () => {
    const c = { numHeads, numKvHeads, headDim }, qn = T * numHeads * headDim, kn = T * numKvHeads * headDim;
    const [dOut, q] = [rnd(qn), rnd(qn, 0.5)], [kf, vf] = [rnd(kn, 0.5), rnd(kn)];
    const got = [qn, kn, kn].map((len) => arena(new Float32Array(len)));
    const want = [qn, kn, kn].map((len) => new Float32Array(len));
    assert.ok(k.attentionBackwardKernel(got[0], got[1], got[2], arena(dOut), arena(q), arena(kf), arena(vf), T, c), "the WebAssembly kernel ran");
    attentionBackward(want[0], want[1], want[2], dOut, q, kf, vf, T, c);
    return Math.max(...got.map((g, i) => relDiff(g, want[i])));
  });
}

// Attention straight from packed codes (and the f16/f32 caches' decode path) is the tiled
// kernel's: tests in test/tensor/tiled-attention.test.ts.

// --------------------------------------------------------------------------------- tests
for (const threads of [1, 2]) {
  for (const c of CASES) {
    test(`${c.name} [threads=${threads}]`, { skip }, () => {
      useThreads(threads);
      try {
        const d = c.run();
        worst.set(c.kernel, Math.max(worst.get(c.kernel) ?? 0, d));
        assert.ok(d <= TOL, `relative difference ${d.toExponential(2)} > ${TOL}`);
      } finally {
        held.forEach(release);
        held = [];
      }
    });
  }
}

test("fallbacks: plain buffers and unsupported shapes give the twins' results", { skip }, () => {
  const w16 = new Uint16Array(7 * 40), a16 = allocU16(7 * 40);
  f32ToBf16(rnd(7 * 40), w16);
  a16.set(w16);
  held.push(a16);
  const plainBufs = (): Float32Array[] => [rnd(3 * 40), rnd(7), new Float32Array(21)];
  const arenaBufs = (): Float32Array[] => [arena(rnd(3 * 40)), arena(rnd(7)), arena(new Float32Array(21))];
  const cases: [string, Float32Array[], Matrix][] = [
    ["f32, plain buffers", plainBufs(), { dtype: "f32", rows: 7, cols: 40, data: rnd(7 * 40) }],
    ["bf16, plain buffers", plainBufs(), { dtype: "bf16", rows: 7, cols: 40, data: w16 }],
    ["bf16 in the arena, cols % 16 ≠ 0", arenaBufs(), { dtype: "bf16", rows: 7, cols: 40, data: a16 }],
  ];
  for (const [name, [x, bias, got], w] of cases) {
    const want = new Float32Array(21);
    k.matmul(got, x, w, bias, 3);
    matmulMatrixPlain(want, x, w, bias, 3);
    assert.deepEqual(bits(got), bits(want), name);
  }
  const shape = { numHeads: 4, numKvHeads: 2, headDim: 8 };
  const q = arena(rnd(4 * 16)), keys = arena(rnd(5 * 32)), out = arena(new Float32Array(4 * 16));
  assert.equal(k.attendFloatKernel(out, q, 1, keys, keys, 5, shape), false, "headDim 8 is not for the kernel");
  assert.equal(k.attendFloatKernel(new Float32Array(4 * 16), q, 1, keys, keys, 5, { ...shape, headDim: 16 }), false, "plain out buffer");
  held.forEach(release);
  held = [];
});

test("thread count independence: 1 and 2 threads give bit-identical outputs", { skip }, () => {
  const runs: [string, () => Float32Array][] = [
    ["matmul f32 1024→300 T=5", () => runMatmul("f32", 1024, 300, 5, true).got],
    ["matmul bf16 64→2048 T=1", () => runMatmul("bf16", 64, 2048, 1, false).got],
    ["matmul f16 1024→300 T=5", () => runMatmul("f16", 1024, 300, 5, true).got],
    ["attendFloat f32 8/2 L=T=300", () => runAttendFloat({ numHeads: 8, numKvHeads: 2, headDim: 128 }, 300, 300, false).got],
    ["attendFloat f16 6/2 L=300 T=7", () => runAttendFloat({ numHeads: 6, numKvHeads: 2, headDim: 64 }, 300, 7, true).got],
  ];
  for (const [name, run] of runs) {
    const seed = Math.floor(rand() * 2 ** 32);
    const outs = [1, 2].map((threads) => {
      useThreads(threads);
      rand = seededRandom(seed); // the same data for both thread counts
      const out = bits(run());
      held.forEach(release);
      held = [];
      return out;
    });
    assert.deepEqual(outs[0], outs[1], name);
  }
});

test("every kernel family ran against its twin, each within the tolerance (worst difference per kernel as diagnostics)", { skip }, (t) => {
  const families = [...new Set(CASES.map((c) => c.kernel))];
  for (const [kernel, d] of worst) t.diagnostic(`${kernel}: ${d.toExponential(2)}`);
  assert.deepEqual([...worst.keys()].sort(), families.sort(), "a kernel family whose cases never ran");
  for (const [kernel, d] of worst) assert.ok(d <= TOL, `${kernel}: ${d.toExponential(2)} > ${TOL}`);
});

after(() => configureKernels({ threads: 2 }));
