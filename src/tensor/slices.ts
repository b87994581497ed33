// How each multi-threaded kernel is split: thread `index` of `n` runs its slice. Shared by the
// main thread and the workers (both call the same WebAssembly exports on the same memory); the
// arguments arrive by name (kernel-args.ts).

import type { KernelArgs, KernelName } from "./kernel-args.js";

export interface KernelExports {
  matmulF32(out: number, x: number, w: number, bias: number, T: number, inDim: number, outDim: number, r0: number, r1: number): void;
  matmul16(out: number, x: number, w: number, bias: number, T: number, inDim: number, outDim: number, r0: number, r1: number, kind: number, scratch: number): void;
  /** Block-quantized weights (kind = ggml type id): decode against x quantized by quantizeX32, and prefill. */
  quantizeX32(x: number, n: number, q: number, scales: number, sums: number): void;
  matvecQ(out: number, xq: number, xs: number, xsum: number, w: number, bias: number, cols: number, r0: number, r1: number, kind: number): void;
  matmulQ(out: number, x: number, w: number, bias: number, T: number, inDim: number, outDim: number, r0: number, r1: number, kind: number, scratch: number): void;
  dequantRowQ(dst: number, src: number, n: number, kind: number): void;
  rmsnorm(out: number, x: number, weight: number, t0: number, t1: number, n: number, eps: number): void;
  rope(x: number, cos: number, sin: number, T: number, nHeads: number, d: number): void;
  softmax(x: number, n: number): void;
  swiglu(gate: number, up: number, i0: number, i1: number): void;
  addInPlace(x: number, y: number, n: number): void;
  widen16(dst: number, src: number, n: number, kind: number): void;
  attendFloat(out: number, q: number, T: number, keys: number, values: number, L: number, numHeads: number, numKvHeads: number, d: number, kv0: number, kv1: number, scores: number, vrow: number, kvKind: number): void;
  matmulNN(out: number, x: number, w: number, T: number, k: number, n: number, t0: number, t1: number): void;
  matmulTNAcc(out: number, a: number, b: number, T: number, m: number, n: number, r0: number, r1: number): void;
  attentionBackward(dq: number, dk: number, dv: number, dOut: number, q: number, k: number, v: number, T: number, numHeads: number, numKvHeads: number, d: number, kv0: number, kv1: number, p: number): void;
  /** Tiled attention (assembly/attention.ts): thread `index` of `n` runs its part of the plan. */
  attendTiled(plan: number, index: number, n: number): void;
  prepareQueries(plan: number, bitsMask: number): void;
  scratchBytes(maxV: number, d: number, G: number): number;
  expScalar(x: number): number;
  /** Read n bytes with v128 loads (a bandwidth probe for benchmarks). */
  readSum(ptr: number, n: number): number;
}

/** [start, end) of `total` items for part `index` of `n`, in multiples of `step`. */
export function part(total: number, index: number, n: number, step = 1): [number, number] {
  const units = Math.ceil(total / step);
  const a = Math.floor((index * units) / n) * step;
  const b = Math.min(total, Math.floor(((index + 1) * units) / n) * step);
  return [Math.min(a, total), b];
}

type Slice<K extends KernelName> = (ex: KernelExports, d: KernelArgs<K>, index: number, n: number) => void;

/** Each kernel's slice for thread `index` of `n`; index 0 of 1 is the whole call. */
const SLICES: { [K in KernelName]: Slice<K> } = {
  matmulF32(ex, d, index, n) {
    const [r0, r1] = part(d.outDim, index, n, 4);
    if (r1 > r0) ex.matmulF32(d.out, d.x, d.w, d.bias, d.T, d.inDim, d.outDim, r0, r1);
  },
  matmul16(ex, d, index, n) {
    const [r0, r1] = part(d.outDim, index, n, 4);
    if (r1 > r0) ex.matmul16(d.out, d.x, d.w, d.bias, d.T, d.inDim, d.outDim, r0, r1, d.kind, d.scratch + index * d.scratchStride);
  },
  matvecQ(ex, d, index, n) {
    const [r0, r1] = part(d.rows, index, n, 4);
    if (r1 > r0) ex.matvecQ(d.out, d.xq, d.xs, d.xsum, d.w, d.bias, d.cols, r0, r1, d.kind);
  },
  matmulQ(ex, d, index, n) {
    const [r0, r1] = part(d.outDim, index, n, 4);
    if (r1 > r0) ex.matmulQ(d.out, d.x, d.w, d.bias, d.T, d.inDim, d.outDim, r0, r1, d.kind, d.scratch + index * d.scratchStride);
  },
  attendFloat(ex, d, index, n) {
    const [k0, k1] = part(d.numKvHeads, index, n);
    if (k1 > k0) {
      ex.attendFloat(d.out, d.q, d.T, d.keys, d.values, d.L, d.numHeads, d.numKvHeads, d.d, k0, k1, d.scores + index * d.scoresStride, d.vrow + index * d.vrowStride, d.kvKind);
    }
  },
  swiglu(ex, d, index, n) {
    const [i0, i1] = part(d.n, index, n, 16);
    if (i1 > i0) ex.swiglu(d.gate, d.up, i0, i1);
  },
  matmulNN(ex, d, index, n) {
    const [t0, t1] = part(d.T, index, n);
    if (t1 > t0) ex.matmulNN(d.out, d.x, d.w, d.T, d.k, d.n, t0, t1);
  },
  matmulTNAcc(ex, d, index, n) {
    const [r0, r1] = part(d.m, index, n, 4);
    if (r1 > r0) ex.matmulTNAcc(d.out, d.a, d.b, d.T, d.m, d.n, r0, r1);
  },
  attentionBackward(ex, d, index, n) {
    const [k0, k1] = part(d.numKvHeads, index, n);
    if (k1 > k0) ex.attentionBackward(d.dq, d.dk, d.dv, d.dOut, d.q, d.k, d.v, d.T, d.numHeads, d.numKvHeads, d.d, k0, k1, d.p + index * d.pStride);
  },
  attendTiled(ex, d, index, n) {
    ex.attendTiled(d.plan, index, n);
  },
};

/** Run thread `index`'s slice of a kernel on its arguments (as the caller passed them, or as a worker read them back). */
export function runSlice<K extends KernelName>(ex: KernelExports, kernel: K, d: KernelArgs<K>, index: number, n: number): void {
  (SLICES[kernel] as Slice<K>)(ex, d, index, n);
}
