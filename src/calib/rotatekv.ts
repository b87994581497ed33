// RotateKV's calibration (spec §7, §10): the channel permutation P from the calibration keys —
// "rotate-first" (the original's, default): the rotated channels (H_B·k) by ascending signed mean;
// "reorder-first" (this project's first version): raw channels by descending mean |k| dealt
// round-robin over the Hadamard blocks — and its file. The rotation itself is quant/rotation.ts,
// its folding into the weights model/fold-rotatekv.ts, the cache that undoes it cache/rotatekv.ts.

import fs from "node:fs";
import { createFullPrecisionCache } from "../cache/full.js";
import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { Transformer } from "../model/forward.js";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.js";
import { fwht } from "../quant/hadamard.js";
import { ROTATEKV_ORDERS, type RotateKvOrder } from "../quant/rotation.js";

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
