// Decode (T = 1) products with block-quantized weights, the way llama.cpp does them: x is
// quantized once to int8 blocks of 32 with a float32 scale, each weight block is dotted with
// its x block in integers, and the integer sums are scaled and added in float32. This plain
// TypeScript is the twin of assembly/kernels.ts (matvecQ) and mirrors its arithmetic step for
// step: the four lanes of the SIMD integer dot (element i of a block of 32 lands in lane
// (i >> 1) & 3), one float32 accumulator per lane, the same horizontal-sum order.

import { f16BitsToNumber, roundHalfEven } from "./dtype.js";
import { Q4_0_BYTES, Q4_K_BYTES, Q6_K_BYTES, Q8_0_BYTES, q6kCode, quantTraits, scaleMinK4, type QuantDtype } from "./ggml-quant.js";

const f32 = Math.fround;

/** x quantized in blocks of 32: q (int8 values held as int16), scale per block, and scale · Σq per block. */
export interface QuantActivations {
  q: Int16Array;
  scales: Float32Array;
  sums: Float32Array;
}

/** Quantize x[off … off + n) (n a multiple of 32): q = round-half-even(x / d), d = max|x| / 127. */
export function quantizeActivations(x: Float32Array, off: number, n: number, into?: QuantActivations): QuantActivations {
  const a = into ?? { q: new Int16Array(n), scales: new Float32Array(n / 32), sums: new Float32Array(n / 32) };
  for (let b = 0; b < n / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[off + b * 32 + i]));
    const d = f32(amax / 127);
    const id = d !== 0 ? f32(1 / d) : 0;
    let s = 0;
    for (let i = 0; i < 32; i++) {
      const v = roundHalfEven(f32(x[off + b * 32 + i] * id));
      a.q[b * 32 + i] = v;
      s += v;
    }
    a.scales[b] = d;
    a.sums[b] = d * s;
  }
  return a;
}

const f16At = (b: Uint8Array, at: number): number => f16BitsToNumber(b[at] | (b[at + 1] << 8));
const i8 = (v: number): number => (v << 24) >> 24;

/**
 * out[o] = Σ_i W[o, i] · x̂_i (+ bias[o]) for rows [0, rows), x̂ the quantized activations: the
 * twin of the WebAssembly matvecQ.
 */
export function matvecQuantPlain(out: Float32Array, xq: QuantActivations, dtype: QuantDtype, w: Uint8Array, rows: number, cols: number, bias: Float32Array | null): void {
  const t = quantTraits(dtype);
  const rowBytes = (cols / t.blockSize) * t.blockBytes;
  const lanes = [0, 0, 0, 0];
  const acc = [0, 0, 0, 0];
  const { q, scales, sums } = xq;
  for (let o = 0; o < rows; o++) {
    const rb = o * rowBytes;
    acc.fill(0);
    let minAcc = 0;
    // one x block of 32 (xb) against its weights: lanes hold the integer sums, then one scaled add per lane
    const addBlock = (factor: number) => {
      for (let k = 0; k < 4; k++) acc[k] = f32(acc[k] + f32(lanes[k] * factor));
    };
    if (dtype === "q8_0" || dtype === "q4_0") {
      const bytes = dtype === "q8_0" ? Q8_0_BYTES : Q4_0_BYTES;
      for (let xb = 0; xb < cols / 32; xb++) {
        const p = rb + xb * bytes;
        lanes.fill(0);
        for (let i = 0; i < 32; i++) {
          const wv = dtype === "q8_0" ? i8(w[p + 2 + i]) : ((w[p + 2 + (i & 15)] >> (i < 16 ? 0 : 4)) & 15) - 8;
          lanes[(i >> 1) & 3] += wv * q[xb * 32 + i];
        }
        addBlock(f32(f16At(w, p) * scales[xb]));
      }
    } else if (dtype === "q4_k") {
      for (let blk = 0; blk < cols / 256; blk++) {
        const p = rb + blk * Q4_K_BYTES;
        const d = f16At(w, p), dmin = f16At(w, p + 2);
        for (let j = 0; j < 8; j++) {
          const xb = blk * 8 + j;
          const [sc, m] = scaleMinK4(w, p + 4, j);
          const qs = p + 16 + (j >> 1) * 32, shift = (j & 1) * 4;
          lanes.fill(0);
          for (let l = 0; l < 32; l++) lanes[(l >> 1) & 3] += ((w[qs + l] >> shift) & 15) * q[xb * 32 + l];
          addBlock(f32(f32(d * sc) * scales[xb]));
          minAcc = f32(minAcc + f32(f32(dmin * m) * sums[xb]));
        }
      }
    } else {
      for (let blk = 0; blk < cols / 256; blk++) {
        const p = rb + blk * Q6_K_BYTES;
        const d = f16At(w, p + 208);
        for (let k = 0; k < 8; k++) {
          const xb = blk * 8 + k;
          lanes.fill(0);
          for (let l = 0; l < 32; l++) {
            const e = k * 32 + l;
            lanes[(l >> 1) & 3] += i8(w[p + 192 + (e >> 4)]) * (q6kCode(w, p, e) - 32) * q[xb * 32 + l];
          }
          addBlock(f32(d * scales[xb]));
        }
      }
    }
    const h = f32(f32(f32(acc[0] + acc[1]) + acc[2]) + acc[3]);
    out[o] = f32(f32(h - minAcc) + (bias ? bias[o] : 0));
  }
}
