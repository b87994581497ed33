// The group quantizer of spec §2: asymmetric, "zero = −min", per group of G channels.
//   s = clamp((max − min) / (2^b − 1), 1e-5, 1e5),  z = −min
//   q = clamp(round((x + z) / s), 0, 2^b − 1),      x̂ = q·s − z
// Scales and zeros are held as float32; x̂ is computed as fround(q·s − z) everywhere, so the
// real (codes) and fake (floats) caches dequantize to identical values.

export const BIT_WIDTHS = [16, 8, 4, 2, 1] as const;
export type BitWidth = (typeof BIT_WIDTHS)[number];

export const SCALE_MIN = 1e-5;
export const SCALE_MAX = 1e5;

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

/** Scale and zero of one group x[off … off+G). Returns [scale, zero] as float32 values. */
export function groupParams(x: ArrayLike<number>, off: number, G: number, bits: number): [number, number] {
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < G; i++) {
    const v = x[off + i];
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const levels = 2 ** bits - 1;
  const s = Math.min(SCALE_MAX, Math.max(SCALE_MIN, (mx - mn) / levels));
  return [Math.fround(s), Math.fround(-mn)];
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
 * Real quantization of n values in groups of G: codes[i], scales[g], zeros[g].
 * n must be a multiple of G.
 */
export function quantizeGroups(
  x: ArrayLike<number>, xOff: number, n: number, G: number, bits: number,
  codes: Uint16Array | Uint8Array | number[], codesOff: number,
  scales: Float32Array, zeros: Float32Array, paramsOff: number,
): void {
  for (let g = 0; g < n / G; g++) {
    const off = xOff + g * G;
    const [s, z] = groupParams(x, off, G, bits);
    scales[paramsOff + g] = s;
    zeros[paramsOff + g] = z;
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
