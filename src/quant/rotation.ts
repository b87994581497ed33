// RotateKV's key rotation as inference runs it (spec §7): k' = P · H_B · k ("rotate-first", the
// original's) or H_B · P · k ("reorder-first"), H_B the normalised Walsh–Hadamard on each block of
// B channels, P a channel permutation from calibration — and its inverse, which the cache applies
// before RoPE. Folding into the weights is model/fold-rotatekv.ts; calibrating P is calib/rotatekv.ts.

import { fwht } from "./hadamard.js";

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
