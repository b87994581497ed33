// The group quantizer of spec §2: asymmetric, "zero = −min", per group of G channels.
//   s = clamp((max − min) / (2^b − 1), 1e-5, 1e5),  z = −min
//   q = clamp(round((x + z) / s), 0, 2^b − 1),      x̂ = q·s − z
// Scales and zeros are stored as 16-bit floats (IEEE f16: 11 significant bits where KV values
// live, against bf16's 8), as the original stores bf16 (spec §10): 2.25 bits per value at a
// 2-bit body with G = 128. z is rounded up to the next f16 ≥ −min and s up to the next f16 ≥
// (max + z)/(2^b − 1), and the codes are computed against those stored values, so no code
// clips and the rounding costs at most one f16 step of scale, not a systematic error. Values
// past ±65504 (f16's range) saturate. x̂ is fround(q·s − z) everywhere, so the real (codes) and
// fake (floats) caches dequantize to identical values.

export const BIT_WIDTHS = [16, 8, 4, 2, 1] as const;
export type BitWidth = (typeof BIT_WIDTHS)[number];

import { f16CeilBits, f16Value } from "../tensor/dtype.js";

export const SCALE_MIN = 1e-5;
/** f16's largest finite value: the spec's 1e5 bound does not fit in 16 bits. */
export const SCALE_MAX = 65504;
/** Inputs saturate here (f16's range). */
export const VALUE_LIMIT = 65504;

/** Round half to even, as torch.round does. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function isBitWidth(b: number): b is BitWidth {
  return (BIT_WIDTHS as readonly number[]).includes(b);
}

/** Default group size: 128, or head_dim when smaller (spec §2). */
export function defaultGroupSize(headDim: number): number {
  return Math.min(128, headDim);
}

/** Scale and zero of one group x[off … off+G) as their f16 bit patterns (see the top of this file). */
export function groupParamBits(x: ArrayLike<number>, off: number, G: number, bits: number): [number, number] {
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < G; i++) {
    const v = x[off + i];
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  mn = Math.max(-VALUE_LIMIT, Math.min(VALUE_LIMIT, mn));
  mx = Math.max(-VALUE_LIMIT, Math.min(VALUE_LIMIT, mx));
  const zBits = f16CeilBits(-mn);
  const levels = 2 ** bits - 1;
  const s = Math.min(SCALE_MAX, Math.max(SCALE_MIN, (mx + f16Value(zBits)) / levels));
  return [f16CeilBits(s), zBits];
}

/** Scale and zero of one group as numbers (the f16 values the cache stores). */
export function groupParams(x: ArrayLike<number>, off: number, G: number, bits: number): [number, number] {
  const [s, z] = groupParamBits(x, off, G, bits);
  return [f16Value(s), f16Value(z)];
}

/** Integer code of one value. */
export function quantizeValue(x: number, s: number, z: number, bits: number): number {
  const q = roundHalfEven((x + z) / s);
  const max = 2 ** bits - 1;
  return q < 0 ? 0 : q > max ? max : q;
}

export function dequantizeValue(q: number, s: number, z: number): number {
  return Math.fround(q * s - z);
}

/**
 * Real quantization of n values in groups of G: codes[i], and scales[g], zeros[g] as f16 bit
 * patterns. n must be a multiple of G.
 */
export function quantizeGroups(
  x: ArrayLike<number>, xOff: number, n: number, G: number, bits: number,
  codes: Uint16Array | Uint8Array | number[], codesOff: number,
  scales: Uint16Array, zeros: Uint16Array, paramsOff: number,
): void {
  for (let g = 0; g < n / G; g++) {
    const off = xOff + g * G;
    const [sb, zb] = groupParamBits(x, off, G, bits);
    scales[paramsOff + g] = sb;
    zeros[paramsOff + g] = zb;
    const s = f16Value(sb);
    const z = f16Value(zb);
    for (let i = 0; i < G; i++) codes[codesOff + g * G + i] = quantizeValue(x[off + i], s, z, bits);
  }
}

/** Fake quantization in place: each group of G values replaced by its dequantized value. */
export function fakeQuantize(x: Float32Array, off: number, n: number, G: number, bits: number): void {
  if (bits >= 32) return;
  for (let g = off; g < off + n; g += G) {
    const [s, z] = groupParams(x, g, G, bits);
    for (let i = g; i < g + G; i++) x[i] = dequantizeValue(quantizeValue(x[i], s, z, bits), s, z);
  }
}
