// How each multi-threaded kernel is split: thread `index` of `n` runs its slice. Shared by the
// main thread and the workers (both call the same WebAssembly exports on the same memory).

export const KERNEL = { matmulF32: 1, matmul16: 2, attendFloat: 3, swiglu: 5, matmulNN: 6, matmulTNAcc: 7, attentionBackward: 8, attendTiled: 9, matvecQ: 10, matmulQ: 11, stop: 99 } as const;

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

/** Run thread `index`'s slice of a kernel; args as posted by the pool. */
export function runSlice(ex: KernelExports, kernel: number, a: Float64Array, index: number, n: number): void {
  switch (kernel) {
    case KERNEL.matmulF32: {
      const [r0, r1] = part(a[6], index, n, 4);
      if (r1 > r0) ex.matmulF32(a[0], a[1], a[2], a[3], a[4], a[5], a[6], r0, r1);
      return;
    }
    case KERNEL.matmul16: {
      const [r0, r1] = part(a[6], index, n, 4);
      if (r1 > r0) ex.matmul16(a[0], a[1], a[2], a[3], a[4], a[5], a[6], r0, r1, a[7], a[8] + index * a[9]);
      return;
    }
    case KERNEL.matvecQ: {
      const [r0, r1] = part(a[6], index, n, 4);
      if (r1 > r0) ex.matvecQ(a[0], a[1], a[2], a[3], a[4], a[5], a[7], r0, r1, a[8]);
      return;
    }
    case KERNEL.matmulQ: {
      const [r0, r1] = part(a[6], index, n, 4);
      if (r1 > r0) ex.matmulQ(a[0], a[1], a[2], a[3], a[4], a[5], a[6], r0, r1, a[7], a[8] + index * a[9]);
      return;
    }
    case KERNEL.attendFloat: {
      const [k0, k1] = part(a[7], index, n);
      if (k1 > k0) ex.attendFloat(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], k0, k1, a[9] + index * a[10], a[11] + index * a[12], a[13]);
      return;
    }
    case KERNEL.matmulNN: {
      const [t0, t1] = part(a[3], index, n);
      if (t1 > t0) ex.matmulNN(a[0], a[1], a[2], a[3], a[4], a[5], t0, t1);
      return;
    }
    case KERNEL.matmulTNAcc: {
      const [r0, r1] = part(a[4], index, n, 4);
      if (r1 > r0) ex.matmulTNAcc(a[0], a[1], a[2], a[3], a[4], a[5], r0, r1);
      return;
    }
    case KERNEL.attentionBackward: {
      const [k0, k1] = part(a[9], index, n);
      if (k1 > k0) ex.attentionBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], k0, k1, a[11] + index * a[12]);
      return;
    }
    case KERNEL.attendTiled:
      ex.attendTiled(a[0], index, n);
      return;
    case KERNEL.swiglu: {
      const [i0, i1] = part(a[2], index, n, 16);
      if (i1 > i0) ex.swiglu(a[0], a[1], i0, i1);
      return;
    }
  }
}
