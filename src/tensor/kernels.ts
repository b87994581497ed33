// Kernel dispatch: the WebAssembly SIMD kernels (multi-threaded where it pays) when every
// buffer lives in the shared arena and the shapes suit them, else the plain-TypeScript twins.

import { inArena } from "./memory.js";
import type { Matrix } from "./matrix.js";
import { matmulMatrixPlain } from "./matrix.js";
import * as plain from "./ops.js";
import { KERNEL } from "./slices.js";
import { SEGMENT_TABLE_INTS, threadScratch, wasm } from "./wasm.js";

/** Work (multiply-adds) below which waking the workers costs more than it saves. */
const PARALLEL_MIN = 1 << 16;

function ok(...views: (ArrayBufferView | null)[]): boolean {
  return views.every((v) => v === null || inArena(v));
}

/** out (T, rows) = x (T, cols) · Wᵀ (+ bias). */
export function matmul(out: Float32Array, x: Float32Array, w: Matrix, bias: Float32Array | null, T: number): void {
  const rt = wasm();
  const wide = w.dtype !== "f32";
  if (!rt || !ok(out, x, w.data, bias) || (wide && w.cols % 16 !== 0)) {
    matmulMatrixPlain(out, x, w, bias, T);
    return;
  }
  const a = rt.pool.args;
  a[0] = out.byteOffset;
  a[1] = x.byteOffset;
  a[2] = w.data.byteOffset;
  a[3] = bias ? bias.byteOffset : 0;
  a[4] = T;
  a[5] = w.cols;
  a[6] = w.rows;
  if (wide) {
    const s = threadScratch(rt, 4 * w.cols * 4); // four widened rows per thread
    a[7] = w.dtype === "bf16" ? 1 : 2;
    a[8] = s.base;
    a[9] = s.stride;
  }
  const parallel = w.rows * w.cols * T >= PARALLEL_MIN;
  if (parallel) rt.pool.run(wide ? KERNEL.matmul16 : KERNEL.matmulF32);
  else if (wide) rt.ex.matmul16(a[0], a[1], a[2], a[3], T, w.cols, w.rows, 0, w.rows, a[7], a[8]);
  else rt.ex.matmulF32(a[0], a[1], a[2], a[3], T, w.cols, w.rows, 0, w.rows);
}

export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, T: number, n: number, eps: number): void {
  const rt = wasm();
  if (!rt || !ok(out, x, weight)) return plain.rmsnorm(out, x, weight, T, n, eps);
  rt.ex.rmsnorm(out.byteOffset, x.byteOffset, weight.byteOffset, 0, T, n, eps);
}

export function rope(x: Float32Array, cos: Float32Array, sin: Float32Array, T: number, nHeads: number, d: number): void {
  const rt = wasm();
  if (!rt || !ok(x, cos, sin)) return plain.rope(x, cos, sin, T, nHeads, d);
  rt.ex.rope(x.byteOffset, cos.byteOffset, sin.byteOffset, T, nHeads, d);
}

export function softmax(x: Float32Array, off: number, n: number): void {
  const rt = wasm();
  if (!rt || !ok(x)) return plain.softmax(x, off, n);
  rt.ex.softmax(x.byteOffset + off * 4, n);
}

export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  const rt = wasm();
  if (!rt || !ok(gate, up)) return plain.swiglu(gate, up, n);
  if (n >= PARALLEL_MIN / 8) {
    const a = rt.pool.args;
    a[0] = gate.byteOffset;
    a[1] = up.byteOffset;
    a[2] = n;
    rt.pool.run(KERNEL.swiglu);
  } else rt.ex.swiglu(gate.byteOffset, up.byteOffset, 0, n);
}

export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  const rt = wasm();
  if (!rt || !ok(x, y)) return plain.addInPlace(x, y, n);
  rt.ex.addInPlace(x.byteOffset, y.byteOffset, n);
}

/**
 * Causal attention of T queries over L cached float rows (f32, or f16 raw bits as Uint16Array),
 * split over threads by KV head. Returns false when the WebAssembly kernel cannot run.
 */
export function attendFloatKernel(
  out: Float32Array, queries: Float32Array, T: number, keys: Float32Array | Uint16Array, values: Float32Array | Uint16Array, L: number,
  shape: { numHeads: number; numKvHeads: number; headDim: number },
): boolean {
  const rt = wasm();
  const f16 = keys instanceof Uint16Array;
  if (!rt || !ok(out, queries, keys, values) || shape.headDim % 16 !== 0) return false;
  const group = shape.numHeads / shape.numKvHeads;
  const scores = threadScratch(rt, (group * L + shape.headDim) * 4);
  const a = rt.pool.args;
  a[0] = out.byteOffset;
  a[1] = queries.byteOffset;
  a[2] = T;
  a[3] = keys.byteOffset;
  a[4] = values.byteOffset;
  a[5] = L;
  a[6] = shape.numHeads;
  a[7] = shape.numKvHeads;
  a[8] = shape.headDim;
  a[9] = scores.base;
  a[10] = scores.stride;
  a[11] = scores.base + group * L * 4;
  a[12] = scores.stride;
  a[13] = f16 ? 2 : 0;
  if (T * L * shape.numHeads * shape.headDim >= PARALLEL_MIN) rt.pool.run(KERNEL.attendFloat);
  else rt.ex.attendFloat(a[0], a[1], T, a[3], a[4], L, shape.numHeads, shape.numKvHeads, shape.headDim, 0, shape.numKvHeads, a[9], a[11], a[13]);
  return true;
}

/** One run of tokens held at one bit-width: packed codes and per-group scales/zeros. */
export interface PackedSegment {
  codes: Uint32Array;
  scales: Float32Array;
  zeros: Float32Array;
  length: number;
  bits: number;
  wordsPerRow: number;
  groupsPerRow: number;
}

/**
 * Causal attention straight from packed K/V segments (spec §3), split over threads by KV head.
 * Returns false when the WebAssembly kernel cannot run (buffers outside the arena, or shapes
 * where a 128-bit block of codes would straddle a group: d·bits and G·bits must be multiples of 128).
 */
export function attendPackedKernel(
  out: Float32Array, queries: Float32Array, T: number, shape: { numHeads: number; numKvHeads: number; headDim: number }, G: number,
  segments: [PackedSegment, PackedSegment][],
): boolean {
  const rt = wasm();
  if (!rt || !ok(out, queries)) return false;
  const live = segments.filter(([k]) => k.length > 0);
  const d = shape.headDim;
  for (const [k, v] of live) {
    for (const s of [k, v]) {
      if ((d * s.bits) % 128 !== 0 || (G * s.bits) % 128 !== 0 || !ok(s.codes, s.scales, s.zeros)) return false;
    }
  }
  const segmentTable = rt.segmentTable;
  const table = new Int32Array(rt.arena.buffer, segmentTable, SEGMENT_TABLE_INTS);
  live.forEach(([k, v], i) => {
    for (const [s, base] of [[k, i * 7], [v, 21 + i * 7]] as const) {
      table.set([s.codes.byteOffset, s.scales.byteOffset, s.zeros.byteOffset, s.length, s.bits, s.wordsPerRow, s.groupsPerRow], base);
    }
  });
  const L = live.reduce((a, [k]) => a + k.length, 0);
  const group = shape.numHeads / shape.numKvHeads;
  const scoresBytes = Math.ceil((group * L * 4) / 64) * 64;
  const vecBytes = Math.ceil((group * d * 4) / 64) * 64;
  const sumBytes = Math.ceil((group * (d / G) * 4) / 64) * 64;
  const scratch = threadScratch(rt, scoresBytes + 2 * vecBytes + sumBytes);
  for (let i = 0; i < rt.pool.threads; i++) new Float32Array(rt.arena.buffer, scratch.base + i * scratch.stride + scoresBytes + vecBytes, vecBytes / 4).fill(0);
  const a = rt.pool.args;
  a[0] = out.byteOffset;
  a[1] = queries.byteOffset;
  a[2] = T;
  a[3] = shape.numHeads;
  a[4] = shape.numKvHeads;
  a[5] = d;
  a[6] = G;
  a[7] = segmentTable;
  a[8] = segmentTable + 21 * 4;
  a[9] = live.length;
  a[10] = scratch.base;
  a[11] = scratch.base + scoresBytes;
  a[12] = scratch.base + scoresBytes + vecBytes;
  a[13] = scratch.stride;
  a[14] = scratch.base + scoresBytes + 2 * vecBytes;
  if (T * L * shape.numHeads * d >= PARALLEL_MIN) rt.pool.run(KERNEL.attendPacked);
  else rt.ex.attendPacked(a[0], a[1], T, a[3], a[4], d, G, 0, a[4], a[7], a[8], a[9], a[10], a[11], a[12], a[14]);
  return true;
}

/** out (T, n) = x (T, k) · W (k, n); W as float32 rows. Plain twin: ops.matmulNN. */
export function matmulNN(out: Float32Array, x: Float32Array, w: Float32Array, T: number, k: number, n: number): void {
  const rt = wasm();
  if (!rt || !ok(out, x, w)) return plain.matmulNN(out, x, w, T, k, n);
  const a = rt.pool.args;
  a[0] = out.byteOffset;
  a[1] = x.byteOffset;
  a[2] = w.byteOffset;
  a[3] = T;
  a[4] = k;
  a[5] = n;
  if (T * k * n >= PARALLEL_MIN) rt.pool.run(KERNEL.matmulNN);
  else rt.ex.matmulNN(a[0], a[1], a[2], T, k, n, 0, T);
}

/** out (m, n) += aᵀ · b for a (T, m), b (T, n). Plain twin: ops.matmulTNAcc. */
export function matmulTNAcc(out: Float32Array, a: Float32Array, b: Float32Array, T: number, m: number, n: number): void {
  const rt = wasm();
  if (!rt || !ok(out, a, b)) return plain.matmulTNAcc(out, a, b, T, m, n);
  const g = rt.pool.args;
  g[0] = out.byteOffset;
  g[1] = a.byteOffset;
  g[2] = b.byteOffset;
  g[3] = T;
  g[4] = m;
  g[5] = n;
  if (T * m * n >= PARALLEL_MIN) rt.pool.run(KERNEL.matmulTNAcc);
  else rt.ex.matmulTNAcc(g[0], g[1], g[2], T, m, n, 0, m);
}

/** Attention backward on the kernels; false when they cannot run (then use the TS twin). */
export function attentionBackwardKernel(
  dq: Float32Array, dk: Float32Array, dv: Float32Array, dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
  T: number, c: { numHeads: number; numKvHeads: number; headDim: number },
): boolean {
  const rt = wasm();
  if (!rt || !ok(dq, dk, dv, dOut, q, k, v) || c.headDim % 16 !== 0) return false;
  const s = threadScratch(rt, T * 4);
  const a = rt.pool.args;
  [dq, dk, dv, dOut, q, k, v].forEach((x, i) => (a[i] = x.byteOffset));
  a[7] = T;
  a[8] = c.numHeads;
  a[9] = c.numKvHeads;
  a[10] = c.headDim;
  a[11] = s.base;
  a[12] = s.stride;
  rt.pool.run(KERNEL.attentionBackward);
  return true;
}
