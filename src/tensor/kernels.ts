// Kernel dispatch: the WebAssembly SIMD kernels (multi-threaded where it pays) when every
// buffer lives in one shared arena (the kernels then run on that arena's instance) and the
// shapes suit them, else the plain-TypeScript twins.

import { KernelLayoutError, UsageError } from "../errors.js";
import type { Matrix } from "./matrix.js";
import { isQuantDtype, quantTraits, type QuantDtype } from "./ggml-quant.js";
import { matmulMatrixPlain } from "./matrix.js";
import * as plain from "./ops.js";
import * as layout from "./layout.js";
import type { KernelArgs, KernelName } from "./kernel-args.js";
import { runSlice } from "./slices.js";
import { runtimeOf, threadScratch, workspace, type WasmRuntime } from "./wasm.js";
import { decodeThreads, intPathFits, mergeStates, PREFILL_MIN_QUERIES, QUERY_BLOCK, SEG_PACKED, tilePermutation, type TiledSegment } from "./tiled-attention.js";

/** Work (multiply-adds) below which waking the workers costs more than it saves. */
const PARALLEL_MIN = 1 << 16;

/** Run a kernel over the pool's threads, or whole on this thread when the work is too small to share. */
function dispatch<K extends KernelName>(rt: WasmRuntime, kernel: K, args: KernelArgs<K>, parallel: boolean): void {
  if (parallel) rt.pool.run(kernel, args);
  else runSlice(rt.ex, kernel, args, 0, 1);
}

/** out (T, rows) = x (T, cols) · Wᵀ (+ bias). */
export function matmul(out: Float32Array, x: Float32Array, w: Matrix, bias: Float32Array | null, T: number): void {
  if (isQuantDtype(w.dtype)) return matmulQuant(out, x, w, bias, T);
  const rt = runtimeOf(out, x, w.data, bias);
  const wide = w.dtype !== "f32";
  if (!rt || (wide && w.cols % 16 !== 0)) {
    matmulMatrixPlain(out, x, w, bias, T);
    return;
  }
  const { rows, cols } = w;
  const bias0 = bias ? bias.byteOffset : 0;
  const parallel = rows * cols * T >= PARALLEL_MIN;
  if (!wide) return dispatch(rt, "matmulF32", { out: out.byteOffset, x: x.byteOffset, w: w.data.byteOffset, bias: bias0, T, inDim: cols, outDim: rows }, parallel);
  const s = threadScratch(rt, 4 * cols * 4); // four widened rows per thread
  const kind = w.dtype === "bf16" ? 1 : 2;
  const args = { out: out.byteOffset, x: x.byteOffset, w: w.data.byteOffset, bias: bias0, T, inDim: cols, outDim: rows, kind, scratch: s.base, scratchStride: s.stride };
  dispatch(rt, "matmul16", args, parallel);
}

/**
 * Block-quantized W (ggml Q8_0/Q4_0/Q4_K/Q6_K). T = 1: x quantized once to int8 blocks (a
 * shared workspace), then integer dot products straight from the blocks, rows split over the
 * threads. T > 1: four rows at a time widened into per-thread scratch and tiled over all tokens.
 */
function matmulQuant(out: Float32Array, x: Float32Array, w: Matrix, bias: Float32Array | null, T: number): void {
  const rt = runtimeOf(out, x, w.data, bias);
  if (!rt) return matmulMatrixPlain(out, x, w, bias, T);
  const kind = quantTraits(w.dtype as QuantDtype).id;
  const { rows, cols } = w;
  const bias0 = bias ? bias.byteOffset : 0;
  const parallel = rows * cols * T >= PARALLEL_MIN;
  if (T === 1) {
    // q (cols i16) | scales (cols/32 f32) | sums (cols/32 f32)
    const q = workspace(rt, "quant.x", cols * 2 + (cols / 32) * 8);
    const xs = q + cols * 2, xsum = xs + (cols / 32) * 4;
    rt.ex.quantizeX32(x.byteOffset, cols, q, xs, xsum);
    return dispatch(rt, "matvecQ", { out: out.byteOffset, xq: q, xs, xsum, w: w.data.byteOffset, bias: bias0, rows, cols, kind }, parallel);
  }
  const s = threadScratch(rt, 4 * cols * 4); // four widened rows per thread
  const args = { out: out.byteOffset, x: x.byteOffset, w: w.data.byteOffset, bias: bias0, T, inDim: cols, outDim: rows, kind, scratch: s.base, scratchStride: s.stride };
  dispatch(rt, "matmulQ", args, parallel);
}

export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, T: number, n: number, eps: number): void {
  const rt = runtimeOf(out, x, weight);
  if (!rt) return plain.rmsnorm(out, x, weight, T, n, eps);
  rt.ex.rmsnorm(out.byteOffset, x.byteOffset, weight.byteOffset, 0, T, n, eps);
}

/**
 * Per-head RMSNorm in place (Qwen3's q_norm/k_norm): x (T, nHeads, d), each head normalised over
 * its own d channels. weight: (d) shared by every head, or (nHeads·d) one slice per head.
 */
export function headRmsnorm(x: Float32Array, weight: Float32Array, T: number, nHeads: number, d: number, eps: number): void {
  if (weight.length === d) return rmsnorm(x, x, weight, T * nHeads, d, eps);
  if (weight.length !== nHeads * d) throw new UsageError(`head norm weight has ${weight.length} values, expected ${d} or ${nHeads * d}`);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const row = x.subarray((t * nHeads + h) * d, (t * nHeads + h + 1) * d);
      rmsnorm(row, row, weight.subarray(h * d, (h + 1) * d), 1, d, eps);
    }
  }
}

export function rope(x: Float32Array, cos: Float32Array, sin: Float32Array, T: number, nHeads: number, d: number): void {
  const rt = runtimeOf(x, cos, sin);
  if (!rt) return plain.rope(x, cos, sin, T, nHeads, d);
  rt.ex.rope(x.byteOffset, cos.byteOffset, sin.byteOffset, T, nHeads, d);
}

export function softmax(x: Float32Array, off: number, n: number): void {
  const rt = runtimeOf(x);
  if (!rt) return plain.softmax(x, off, n);
  rt.ex.softmax(x.byteOffset + off * 4, n);
}

export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  const rt = runtimeOf(gate, up);
  if (!rt) return plain.swiglu(gate, up, n);
  dispatch(rt, "swiglu", { gate: gate.byteOffset, up: up.byteOffset, n }, n >= PARALLEL_MIN / 8);
}

export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  const rt = runtimeOf(x, y);
  if (!rt) return plain.addInPlace(x, y, n);
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
  const rt = runtimeOf(out, queries, keys, values);
  const f16 = keys instanceof Uint16Array;
  if (!rt || shape.headDim % 16 !== 0) return false;
  const group = shape.numHeads / shape.numKvHeads;
  const scores = threadScratch(rt, (group * L + shape.headDim) * 4);
  const args = {
    out: out.byteOffset, q: queries.byteOffset, T, keys: keys.byteOffset, values: values.byteOffset, L,
    numHeads: shape.numHeads, numKvHeads: shape.numKvHeads, d: shape.headDim,
    scores: scores.base, scoresStride: scores.stride, vrow: scores.base + group * L * 4, vrowStride: scores.stride, kvKind: f16 ? 2 : 0,
  };
  dispatch(rt, "attendFloat", args, T * L * shape.numHeads * shape.headDim >= PARALLEL_MIN);
  return true;
}

/** out (T, n) = x (T, k) · W (k, n); W as float32 rows. Plain twin: ops.matmulNN. */
export function matmulNN(out: Float32Array, x: Float32Array, w: Float32Array, T: number, k: number, n: number): void {
  const rt = runtimeOf(out, x, w);
  if (!rt) return plain.matmulNN(out, x, w, T, k, n);
  dispatch(rt, "matmulNN", { out: out.byteOffset, x: x.byteOffset, w: w.byteOffset, T, k, n }, T * k * n >= PARALLEL_MIN);
}

/** out (m, n) += aᵀ · b for a (T, m), b (T, n). Plain twin: ops.matmulTNAcc. */
export function matmulTNAcc(out: Float32Array, a: Float32Array, b: Float32Array, T: number, m: number, n: number): void {
  const rt = runtimeOf(out, a, b);
  if (!rt) return plain.matmulTNAcc(out, a, b, T, m, n);
  dispatch(rt, "matmulTNAcc", { out: out.byteOffset, a: a.byteOffset, b: b.byteOffset, T, m, n }, T * m * n >= PARALLEL_MIN);
}

/** Attention backward on the kernels; false when they cannot run (then use the TS twin). */
export function attentionBackwardKernel(
  dq: Float32Array, dk: Float32Array, dv: Float32Array, dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
  T: number, c: { numHeads: number; numKvHeads: number; headDim: number },
): boolean {
  const rt = runtimeOf(dq, dk, dv, dOut, q, k, v);
  if (!rt || c.headDim % 16 !== 0) return false;
  const s = threadScratch(rt, T * 4);
  rt.pool.run("attentionBackward", {
    dq: dq.byteOffset, dk: dk.byteOffset, dv: dv.byteOffset, dOut: dOut.byteOffset, q: q.byteOffset, k: k.byteOffset, v: v.byteOffset,
    T, numHeads: c.numHeads, numKvHeads: c.numKvHeads, d: c.headDim, p: s.base, pStride: s.stride,
  });
  return true;
}

// ---------------------------------------------------------------- tiled attention

const bitsIndex = (bits: number) => [1, 2, 4, 8].indexOf(bits);

/** One segment table entry at table[base …], as assembly/attention.ts reads it (layout.ts). */
function writeSegment(table: Int32Array, base: number, s: TiledSegment): void {
  table[base + layout.SEG_KIND] = s.kind;
  table[base + layout.SEG_DATA] = s.data.byteOffset;
  table[base + layout.SEG_SCALES] = s.scales?.byteOffset ?? 0;
  table[base + layout.SEG_ZEROS] = s.zeros?.byteOffset ?? 0;
  table[base + layout.SEG_LENGTH] = s.length;
  table[base + layout.SEG_BITS] = s.bits;
  table[base + layout.SEG_ROW_STRIDE] = s.rowStride;
  table[base + layout.SEG_GROUPS_PER_ROW] = s.groupsPerRow;
}

/**
 * Causal attention of the last T of the tokens held in segments segK/segV (token order),
 * straight from their storage, by the WebAssembly tiled kernel (decode: keys split over the
 * threads, parts merged; prefill: query blocks over the threads). Returns false when it cannot
 * run (buffers outside the arena, shapes it does not handle); then use attendTiledPlain.
 */
export function attendTiledKernel(
  out: Float32Array, queries: Float32Array, T: number, segK: TiledSegment[], segV: TiledSegment[],
  shape: { numHeads: number; numKvHeads: number; headDim: number }, G: number,
): boolean {
  const rt = runtimeOf(out, queries);
  const { numHeads: H, numKvHeads: KVH, headDim: d } = shape;
  if (segK.length > layout.MAX_SEGMENTS || segV.length > layout.MAX_SEGMENTS) {
    throw new KernelLayoutError(`tiled attention: ${Math.max(segK.length, segV.length)} segments given, a plan's tables hold at most ${layout.MAX_SEGMENTS} (MAX_SEGMENTS, src/tensor/layout.ts)`);
  }
  if (!rt || d % 8 !== 0 || G % 8 !== 0 || d % G !== 0 || segK.length !== segV.length) return false;
  let bitsMask = 0;
  for (const s of [...segK, ...segV]) {
    if (s.length === 0) continue;
    if (runtimeOf(out, s.data, s.scales, s.zeros) !== rt) return false;
    if (s.kind === SEG_PACKED) {
      if (!intPathFits(s.bits, G)) return false;
      bitsMask |= 1 << bitsIndex(s.bits);
    }
  }
  const live = segK.map((k, i) => [k, segV[i]] as const).filter(([k]) => k.length > 0);
  const L = live.reduce((a, [k]) => a + k.length, 0);
  if (L < T) return false;
  const hg = d / G;
  const n = rt.pool.threads;
  // workspaces: plan, segment tables, prepared queries, scratch, partial states
  const plan = workspace(rt, "tiled.plan", layout.PLAN_INTS * 4);
  const tableBytes = layout.MAX_SEGMENTS * layout.SEG_INTS * 4;
  const segs = workspace(rt, "tiled.segments", 2 * tableBytes);
  const qintStride = T * H * d * 2;
  const qintBytes = bitsMask ? 4 * qintStride : 0;
  const prep = workspace(rt, "tiled.prep", qintBytes + 2 * T * H * hg * 4 + 4 * d * 4 + 64);
  const qs = prep + qintBytes;
  const sumQ = qs + T * H * hg * 4;
  const perm = sumQ + T * H * hg * 4;
  const decode = T < PREFILL_MIN_QUERIES;
  // every head of the step (decode) or of a query block (prefill) keeps its state and integer sums
  const maxV = decode ? H : QUERY_BLOCK * H;
  const stride = Math.ceil(rt.ex.scratchBytes(maxV, d, G) / 64) * 64;
  const scratch = workspace(rt, "tiled.scratch", stride * n);
  const partialStride = H * (2 + d) * 4;
  const partials = decode ? workspace(rt, "tiled.partials", partialStride * n) : 0;
  const buf = rt.arena.buffer;
  const table = new Int32Array(buf, segs, 2 * layout.MAX_SEGMENTS * layout.SEG_INTS);
  live.forEach(([k, v], i) => {
    writeSegment(table, i * layout.SEG_INTS, k);
    writeSegment(table, (layout.MAX_SEGMENTS + i) * layout.SEG_INTS, v);
  });
  const permView = new Int32Array(buf, perm, 4 * d);
  for (const bits of [1, 2, 4, 8]) if (bitsMask & (1 << bitsIndex(bits))) permView.set(tilePermutation(bits, d, G), bitsIndex(bits) * d);
  const p = new Int32Array(buf, plan, layout.PLAN_INTS);
  p[layout.PLAN_OUT] = out.byteOffset;
  p[layout.PLAN_Q] = queries.byteOffset;
  p[layout.PLAN_T] = T;
  p[layout.PLAN_L] = L;
  p[layout.PLAN_HEADS] = H;
  p[layout.PLAN_KV_HEADS] = KVH;
  p[layout.PLAN_D] = d;
  p[layout.PLAN_G] = G;
  p[layout.PLAN_SEG_K] = segs;
  p[layout.PLAN_SEG_V] = segs + tableBytes;
  p[layout.PLAN_SEGMENTS] = live.length;
  p[layout.PLAN_QINT] = prep;
  p[layout.PLAN_QINT_STRIDE] = qintStride;
  p[layout.PLAN_QS] = qs;
  p[layout.PLAN_SUM_Q] = sumQ;
  p[layout.PLAN_PERM] = perm;
  p[layout.PLAN_MODE] = decode ? layout.MODE_DECODE : layout.MODE_PREFILL;
  p[layout.PLAN_SCRATCH] = scratch;
  p[layout.PLAN_SCRATCH_STRIDE] = stride;
  p[layout.PLAN_PARTIALS] = partials;
  p[layout.PLAN_PARTIAL_STRIDE] = partialStride;
  new Float32Array(buf, plan, layout.PLAN_INTS)[layout.PLAN_SCALE] = 1 / Math.sqrt(d);
  rt.ex.prepareQueries(plan, bitsMask);
  const args = { plan };
  // returns the threads that ran (each wrote a partial state in decode)
  const run = (parallel: boolean) => {
    const used = parallel ? n : 1;
    dispatch(rt, "attendTiled", args, used > 1);
    return used;
  };
  if (!decode) {
    run(T >= 2 * QUERY_BLOCK);
    return true;
  }
  const parts = new Float32Array(buf, partials, (partialStride / 4) * n);
  const row = 2 + d;
  for (let t = 0; t < T; t++) {
    p[layout.PLAN_QUERY] = t;
    const seen = L - T + t + 1;
    const used = run(decodeThreads(seen, shape, n) > 1);
    for (let h = 0; h < H; h++) {
      const states = Array.from({ length: used }, (_, i) => {
        const o = (i * partialStride) / 4 + h * row;
        return { m: parts[o], l: parts[o + 1], acc: parts.subarray(o + 2, o + 2 + d) };
      });
      mergeStates(states, d, out, (t * H + h) * d);
    }
  }
  return true;
}
