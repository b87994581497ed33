// RotateKV's transforms (spec §7, §10), folded into the weights:
//   keys   before RoPE, with H_B the normalised Walsh–Hadamard on each block of B = k-had-dim
//          channels and P a channel permutation from calibration, either
//            "rotate-first" (the original's, default): k' = P · H_B · k — P sorts the rotated
//              channels by ascending signed mean over the calibration tokens;
//            "reorder-first" (this project's first version): k' = H_B · P · k — P deals the raw
//              channels by descending mean |k| round-robin over the Hadamard blocks;
//          folded into k_proj (rows and bias); the cache undoes it before applying RoPE. With a
//          per-head k_norm after k_proj (Qwen3) the rotation would not survive the norm, so it is
//          not folded: the cache applies it to each arriving key (cache/rotatekv.ts).
//   values v' = H_d · v per KV head, folded into v_proj; o_proj's input columns take H_d per query
//          head, so o_proj(attention(v')) = o_proj(attention(v)).

import fs from "node:fs";
import { createFullPrecisionCache } from "../cache/full.js";
import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { Transformer } from "../model/forward.js";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.js";
import type { Weights } from "../model/weights.js";
import { assertHadamardSize, fwht } from "../quant/hadamard.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { isQuantDtype, matrixToF32, type Matrix } from "../tensor/matrix.js";

export type RotateKvOrder = "rotate-first" | "reorder-first";
export const ROTATEKV_ORDERS: readonly RotateKvOrder[] = ["rotate-first", "reorder-first"];

export interface RotateKvTransform {
  /** Hadamard block size over kv_hidden (default: kv_hidden itself). */
  kHadDim: number;
  /** Per block a permutation of kv_hidden channels: position i of k' reads channel perm[i] (of H_B·k, or of k); null = identity. */
  reorder: Int32Array[] | null;
  /** Which comes first; default "rotate-first" (the original's). */
  order?: RotateKvOrder;
}

export function validateRotateKv(c: ModelConfig, t: RotateKvTransform): void {
  const kvHidden = c.numKvHeads * c.headDim;
  assertHadamardSize(t.kHadDim, "--k-had-dim");
  if (kvHidden % t.kHadDim !== 0) throw new UsageError(`--k-had-dim ${t.kHadDim} must divide kv_hidden ${kvHidden}`);
  assertHadamardSize(c.headDim, "head_dim (for the V/O Hadamard)");
  if (t.reorder && t.reorder.length !== c.numLayers) throw new UsageError(`reorder indices for ${t.reorder.length} blocks, the model has ${c.numLayers}`);
}

/** k' = P·H_B·k (rotate-first) or H_B·P·k (reorder-first) for one kv_hidden row, in place via scratch. */
export function rotateKeyRow(row: Float32Array, off: number, n: number, perm: Int32Array | null, B: number, scratch: Float32Array, order: RotateKvOrder = "rotate-first"): void {
  if (order === "rotate-first") {
    for (let b = 0; b < n; b += B) fwht(row, off + b, B);
    if (!perm) return;
    for (let i = 0; i < n; i++) scratch[i] = row[off + perm[i]];
    row.set(scratch.subarray(0, n), off);
    return;
  }
  for (let i = 0; i < n; i++) scratch[i] = row[off + (perm ? perm[i] : i)];
  for (let b = 0; b < n; b += B) fwht(scratch, b, B);
  row.set(scratch.subarray(0, n), off);
}

/** The inverse: k = H_B·Pᵀ·k' (rotate-first) or Pᵀ·H_B·k' (reorder-first); H_B is its own inverse. */
export function unrotateKeyRow(row: Float32Array, off: number, n: number, perm: Int32Array | null, B: number, scratch: Float32Array, order: RotateKvOrder = "rotate-first"): void {
  if (order === "rotate-first") {
    if (perm) {
      for (let i = 0; i < n; i++) scratch[perm[i]] = row[off + i];
      row.set(scratch.subarray(0, n), off);
    }
    for (let b = 0; b < n; b += B) fwht(row, off + b, B);
    return;
  }
  scratch.set(row.subarray(off, off + n));
  for (let b = 0; b < n; b += B) fwht(scratch, b, B);
  for (let i = 0; i < n; i++) row[off + (perm ? perm[i] : i)] = scratch[i];
}

/** Rewrite a matrix through float32, keeping its precision. */
function rewrite(m: Matrix, fn: (f: Float32Array) => void): void {
  if (isQuantDtype(m.dtype)) throw new UsageError(`RotateKV rewrites weights in place; a ${m.dtype} matrix would have to be re-quantized (load float weights)`);
  const f = m.dtype === "f32" ? (m.data as Float32Array) : Float32Array.from(matrixToF32(m));
  fn(f);
  if (m.dtype === "bf16") f32ToBf16(f, m.data as Uint16Array);
  else if (m.dtype === "f16") f32ToF16(f, m.data as Uint16Array);
}

/** Apply a row transform (acting on the output dimension) to every column of W (rows × cols). */
function transformRows(w: Float32Array, rows: number, cols: number, fn: (col: Float32Array) => void): void {
  const col = new Float32Array(rows);
  for (let c = 0; c < cols; c++) {
    for (let r = 0; r < rows; r++) col[r] = w[r * cols + c];
    fn(col);
    for (let r = 0; r < rows; r++) w[r * cols + c] = col[r];
  }
}

/** Fold RotateKV's key (unless the model has q/k norms) and value/output rotations into the weights, in place. */
export function foldRotateKv(w: Weights, c: ModelConfig, t: RotateKvTransform): void {
  validateRotateKv(c, t);
  const d = c.headDim;
  const kvHidden = c.numKvHeads * d;
  const scratch = new Float32Array(kvHidden);
  w.layers.forEach((lw, l) => {
    const perm = t.reorder?.[l] ?? null;
    const keyFn = (v: Float32Array) => rotateKeyRow(v, 0, kvHidden, perm, t.kHadDim, scratch, t.order);
    if (!c.qkNorm) {
      rewrite(lw.wk, (f) => transformRows(f, kvHidden, c.hiddenSize, keyFn));
      if (lw.bk) keyFn(lw.bk);
    }
    const headFn = (v: Float32Array) => {
      for (let h = 0; h < v.length; h += d) fwht(v, h, d);
    };
    rewrite(lw.wv, (f) => transformRows(f, kvHidden, c.hiddenSize, headFn));
    if (lw.bv) headFn(lw.bv);
    // o_proj (dim, numHeads·d): each row's per-head slices take H_d (H symmetric)
    rewrite(lw.wo, (f) => {
      for (let r = 0; r < c.hiddenSize; r++) headFn(f.subarray(r * c.numHeads * d, (r + 1) * c.numHeads * d));
    });
  });
}

/** The original's P: the rotated channels (H_B·k) by ascending signed mean (torch.argsort). */
export function reorderAscending(rotatedMeans: Float64Array): Int32Array {
  return Int32Array.from(Array.from(rotatedMeans, (_, i) => i).sort((a, b) => rotatedMeans[a] - rotatedMeans[b] || a - b));
}

/** Signed mean of H_B·k per kv_hidden channel before RoPE, per block, over calibration samples (the original's channel_mean, up to scale). */
export function rotatedKeyChannelMeans(tf: Transformer, samples: number[][], positions: number[], kHadDim: number, onSample?: (d: number, t: number) => void): Float64Array[] {
  const c = tf.config;
  const n = c.numKvHeads * c.headDim;
  const sums = Array.from({ length: c.numLayers }, () => new Float64Array(n));
  const row = new Float32Array(n);
  let tokens = 0;
  samples.forEach((s, i) => {
    using cache = createFullPrecisionCache(c, c.numLayers);
    tf.forward(s, positions, cache, "none", {
      onKeysBeforeRope: (l, k, T) => {
        for (let t = 0; t < T; t++) {
          row.set(k.subarray(t * n, (t + 1) * n));
          for (let b = 0; b < n; b += kHadDim) fwht(row, b, kHadDim);
          for (let ch = 0; ch < n; ch++) sums[l][ch] += row[ch];
        }
      },
    });
    tokens += s.length;
    onSample?.(i + 1, samples.length);
  });
  return sums.map((s) => s.map((v) => v / tokens));
}

/** This project's first P (reorder-first): channels by descending mean |k| (before RoPE), dealt round-robin over Hadamard blocks. */
export function reorderFromMeans(means: Float64Array, kHadDim: number): Int32Array {
  const n = means.length;
  const blocks = n / kHadDim;
  const byMagnitude = Array.from({ length: n }, (_, i) => i).sort((a, b) => means[b] - means[a] || a - b);
  const perm = new Int32Array(n);
  byMagnitude.forEach((ch, rank) => {
    perm[(rank % blocks) * kHadDim + Math.floor(rank / blocks)] = ch;
  });
  return perm;
}

/** Mean |k| per kv_hidden channel before RoPE, per block, over calibration samples. */
export function keyChannelMeans(tf: Transformer, samples: number[][], positions: number[], onSample?: (d: number, t: number) => void): Float64Array[] {
  const c = tf.config;
  const n = c.numKvHeads * c.headDim;
  const sums = Array.from({ length: c.numLayers }, () => new Float64Array(n));
  let tokens = 0;
  samples.forEach((s, i) => {
    using cache = createFullPrecisionCache(c, c.numLayers);
    tf.forward(s, positions, cache, "none", {
      onKeysBeforeRope: (l, k, T) => {
        for (let t = 0; t < T; t++) for (let ch = 0; ch < n; ch++) sums[l][ch] += Math.abs(k[t * n + ch]);
      },
    });
    tokens += s.length;
    onSample?.(i + 1, samples.length);
  });
  return sums.map((s) => s.map((v) => v / tokens));
}

export function writeReorder(file: string, reorder: Int32Array[], kHadDim: number, metadata: Record<string, string>, order: RotateKvOrder = "rotate-first"): void {
  writeSafetensors(
    file,
    reorder.map((p, l) => ({ name: `layers.${l}.reorder`, dtype: "I32" as const, shape: [p.length], data: p })),
    { format: "pm-kvq-rotatekv-reorder", k_had_dim: String(kHadDim), order, ...metadata },
  );
}

/** A file without an "order" (written before it was recorded) is reorder-first. */
export function readReorder(file: string, c: ModelConfig): { reorder: Int32Array[]; kHadDim: number | null; order: RotateKvOrder } {
  if (!fs.existsSync(file)) throw new UsageError(`--reorder ${file}: no such file (make it with \`pmkvq rotatekv-calib\`)`);
  const f = new SafetensorsFile(file);
  try {
    const n = c.numKvHeads * c.headDim;
    const reorder = Array.from({ length: c.numLayers }, (_, l) => {
      const name = `layers.${l}.reorder`;
      if (!f.header.tensors.has(name)) throw new UsageError(`--reorder ${file}: no tensor "${name}"`);
      const t = f.info(name);
      if (t.dtype !== "I32" || t.shape.length !== 1 || t.shape[0] !== n) throw new UsageError(`--reorder ${file}: "${name}" must be I32 [${n}]`);
      const bytes = f.readBytes(name);
      const p = new Int32Array(bytes.buffer, bytes.byteOffset, n).slice();
      const seen = new Uint8Array(n);
      for (const ch of p) {
        if (ch < 0 || ch >= n || seen[ch]) throw new UsageError(`--reorder ${file}: "${name}" is not a permutation of 0 … ${n - 1}`);
        seen[ch] = 1;
      }
      return p;
    });
    const k = Number(f.header.metadata.k_had_dim);
    const order = f.header.metadata.order ?? "reorder-first";
    if (!(ROTATEKV_ORDERS as readonly string[]).includes(order)) throw new UsageError(`--reorder ${file}: unknown order "${order}" (expected ${ROTATEKV_ORDERS.join(" or ")})`);
    return { reorder, kHadDim: Number.isInteger(k) && k > 0 ? k : null, order: order as RotateKvOrder };
  } finally {
    f.close();
  }
}
