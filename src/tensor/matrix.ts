// Weight matrices held in their checkpoint precision (float32, float16, bfloat16, or one of
// ggml's block-quantized formats) and widened to float32 row by row inside the products, so a
// 16-bit checkpoint costs 2 bytes per weight in memory, not 4, and a Q4_K one 4.5 bits.

import { UsageError } from "../errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.js";
import { isQuantDtype, QUANT_DTYPE_NAMES, quantTraits, type QuantDtype } from "./ggml-quant.js";
import { matmul } from "./kernels.js";
import { allocU8 } from "./memory.js";
import { matmul as matmulF32Plain } from "./ops.js";
import { matvecQuantPlain, quantizeActivations, type QuantActivations } from "./quant-matmul.js";

export type WeightDtype = "f32" | "f16" | "bf16" | QuantDtype;

export interface Matrix {
  dtype: WeightDtype;
  rows: number;
  cols: number;
  /**
   * Row-major: rows × cols values as Float32Array for f32, raw 16-bit patterns for f16/bf16;
   * for the quantized dtypes the ggml blocks as bytes, rows × (cols / blockSize) blocks.
   */
  data: Float32Array | Uint16Array | Uint8Array;
}

export { isQuantDtype, type QuantDtype };

export function matrixBytes(m: Matrix): number {
  return m.data.byteLength;
}

/** Bytes of one row of a quantized matrix. */
function quantRowBytes(dtype: QuantDtype, cols: number): number {
  const t = quantTraits(dtype);
  return (cols / t.blockSize) * t.blockBytes;
}

/**
 * A block-quantized matrix from raw ggml block bytes (e.g. a GGUF tensor's data, ggml dims
 * [cols, rows]); the bytes are copied into the kernel arena.
 */
export function quantMatrix(dtype: QuantDtype, rows: number, cols: number, raw: Uint8Array): Matrix {
  if (!isQuantDtype(dtype)) throw new UsageError(`quantMatrix: ${String(dtype)} is not a quantized dtype (${Object.keys(QUANT_DTYPE_NAMES).join(", ")})`);
  const t = quantTraits(dtype);
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || cols % t.blockSize !== 0) {
    throw new UsageError(`quantMatrix: a ${t.name} matrix needs a whole number of ${t.blockSize}-value blocks per row; got ${rows} × ${cols}`);
  }
  const bytes = rows * quantRowBytes(dtype, cols);
  if (raw.length !== bytes) throw new UsageError(`quantMatrix: ${rows} × ${cols} ${t.name} is ${bytes} bytes, got ${raw.length}`);
  const data = allocU8(bytes);
  data.set(raw);
  return { dtype, rows, cols, data };
}

/** Widen row r into out[0 … cols). */
export function matrixRow(m: Matrix, r: number, out: Float32Array): void {
  const start = r * m.cols;
  if (isQuantDtype(m.dtype)) {
    const rb = quantRowBytes(m.dtype, m.cols);
    quantTraits(m.dtype).dequantizeRow((m.data as Uint8Array).subarray(r * rb, (r + 1) * rb), out, m.cols);
  } else if (m.dtype === "f32") out.set((m.data as Float32Array).subarray(start, start + m.cols));
  else if (m.dtype === "bf16") bf16ToF32((m.data as Uint16Array).subarray(start, start + m.cols), out);
  else f16ToF32((m.data as Uint16Array).subarray(start, start + m.cols), out);
}

/** The whole matrix as float32 (a copy for 16-bit matrices, the buffer itself for f32). */
export function matrixToF32(m: Matrix): Float32Array {
  if (m.dtype === "f32") return m.data as Float32Array;
  const out = new Float32Array(m.rows * m.cols);
  if (isQuantDtype(m.dtype)) for (let r = 0; r < m.rows; r++) matrixRow(m, r, out.subarray(r * m.cols, (r + 1) * m.cols));
  else if (m.dtype === "bf16") bf16ToF32(m.data as Uint16Array, out);
  else f16ToF32(m.data as Uint16Array, out);
  return out;
}

export function f32Matrix(data: Float32Array, rows: number, cols: number): Matrix {
  return { dtype: "f32", rows, cols, data };
}

let rowScratch = new Float32Array(0);
let xScratch: QuantActivations | null = null;

/** out (T, rows) = x (T, cols) · Wᵀ (+ bias), by the fastest kernel available. */
export function matmulMatrix(out: Float32Array, x: Float32Array, w: Matrix, bias: Float32Array | null, T: number): void {
  matmul(out, x, w, bias, T);
}

/**
 * out (T, rows) = x (T, cols) · Wᵀ (+ bias). Plain TypeScript (the twin of the WebAssembly
 * kernel); for 16-bit and quantized weights each row is widened once and used for all T
 * tokens — except quantized weights at T = 1, where x is quantized to int8 blocks and dotted
 * with the blocks in integers, as the kernel (and llama.cpp) does.
 */
export function matmulMatrixPlain(out: Float32Array, x: Float32Array, w: Matrix, bias: Float32Array | null, T: number): void {
  const { rows, cols } = w;
  if (w.dtype === "f32") {
    matmulF32Plain(out, x, w.data as Float32Array, bias, T, cols, rows);
    return;
  }
  if (isQuantDtype(w.dtype) && T === 1) {
    if (!xScratch || xScratch.q.length < cols) xScratch = { q: new Int16Array(cols), scales: new Float32Array(cols / 32), sums: new Float32Array(cols / 32) };
    matvecQuantPlain(out, quantizeActivations(x, 0, cols, xScratch), w.dtype, w.data as Uint8Array, rows, cols, bias);
    return;
  }
  if (rowScratch.length < cols) rowScratch = new Float32Array(cols);
  const row = rowScratch;
  for (let o = 0; o < rows; o++) {
    matrixRow(w, o, row);
    const b = bias ? bias[o] : 0;
    for (let t = 0; t < T; t++) {
      const xOff = t * cols;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let i = 0;
      for (; i + 3 < cols; i += 4) {
        s0 += x[xOff + i] * row[i];
        s1 += x[xOff + i + 1] * row[i + 1];
        s2 += x[xOff + i + 2] * row[i + 2];
        s3 += x[xOff + i + 3] * row[i + 3];
      }
      for (; i < cols; i++) s0 += x[xOff + i] * row[i];
      out[t * rows + o] = s0 + s1 + s2 + s3 + b;
    }
  }
}

/**
 * Multiply row r of m by factors[r] in place (16-bit matrices are rounded back to their
 * precision). Quantized matrices are refused: re-quantizing would change every block.
 */
export function scaleMatrixRows(m: Matrix, factors: ArrayLike<number>): void {
  if (isQuantDtype(m.dtype)) {
    throw new UsageError(`scaling the rows of a ${m.dtype} matrix would re-quantize it; load the model with float weights (f32, f16 or bf16) for this step`);
  }
  if (m.dtype === "f32") {
    const data = m.data as Float32Array;
    for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) data[r * m.cols + c] *= factors[r];
    return;
  }
  const row = new Float32Array(m.cols);
  const raw = m.data as Uint16Array;
  for (let r = 0; r < m.rows; r++) {
    matrixRow(m, r, row);
    for (let c = 0; c < m.cols; c++) row[c] *= factors[r];
    const dest = raw.subarray(r * m.cols, (r + 1) * m.cols);
    if (m.dtype === "bf16") f32ToBf16(row, dest);
    else f32ToF16(row, dest);
  }
}
