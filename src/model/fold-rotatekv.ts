// RotateKV folded into the weights (spec §7, §10): the key rotation into k_proj's rows and bias
// (unless a per-head k_norm follows k_proj, as in Qwen3: the norm would undo it, so the cache
// rotates each arriving key instead), v' = H_d · v per KV head into v_proj, and H_d per query head
// into o_proj's input columns, so o_proj(attention(v')) = o_proj(attention(v)).

import { UsageError } from "../errors.js";
import { assertHadamardSize, fwht } from "../quant/hadamard.js";
import { rotateKeyRow, type RotateKvTransform } from "../quant/rotation.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { isQuantDtype, matrixToF32, type Matrix } from "../tensor/matrix.js";
import type { ModelConfig } from "./config.js";
import type { Weights } from "./weights.js";

export function validateRotateKv(c: ModelConfig, t: RotateKvTransform): void {
  const kvHidden = c.numKvHeads * c.headDim;
  assertHadamardSize(t.kHadDim, "--k-had-dim");
  if (kvHidden % t.kHadDim !== 0) throw new UsageError(`--k-had-dim ${t.kHadDim} must divide kv_hidden ${kvHidden}`);
  assertHadamardSize(c.headDim, "head_dim (for the V/O Hadamard)");
  if (t.reorder && t.reorder.length !== c.numLayers) throw new UsageError(`reorder indices for ${t.reorder.length} blocks, the model has ${c.numLayers}`);
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
