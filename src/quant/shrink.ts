// Bit-width shrinking (spec §2): from b bits to h = b/2 bits on integer codes, without going
// back to floats. Since 2^b − 1 = (2^h − 1)(2^h + 1):
//   q' = ⌊q / (2^h + 1) + 1/2⌋,   s' = s·(2^h + 1),   z' = z
// (s' rounded to the nearest f16, as scales are stored)

import { f16Bits, f16Value } from "../tensor/dtype.js";

/** The closed form q' = floor(q / (2^h + 1) + 1/2). */
export function shrinkCodeClosedForm(q: number, fromBits: number): number {
  const h = fromBits / 2;
  return Math.floor(q / (2 ** h + 1) + 0.5);
}

/**
 * The original's integer trick: (q·(2^{2h} − 2^h + 1) + 2^{3h−1} − 2^{2h−1} + 2^{h−1}) >> 3h.
 * Products reach 2^48 for 16-bit codes, exact in float64; the shift is a division by 2^{3h}.
 */
export function shrinkCode(q: number, fromBits: number): number {
  const h = fromBits / 2;
  const num = q * (2 ** (2 * h) - 2 ** h + 1) + 2 ** (3 * h - 1) - 2 ** (2 * h - 1) + 2 ** (h - 1);
  return Math.floor(num / 2 ** (3 * h));
}

/** Scale after one shrink step from `fromBits`, as the f16 bit pattern the cache stores (nearest; saturates at 65504). */
export function shrinkScaleBits(sBits: number, fromBits: number): number {
  return f16Bits(Math.min(65504, f16Value(sBits) * (2 ** (fromBits / 2) + 1)));
}

/** Scale after one shrink step from `fromBits`, as a number (the f16 value). */
export function shrinkScale(s: number, fromBits: number): number {
  return f16Value(shrinkScaleBits(f16Bits(s), fromBits));
}

/** Lookup table of shrunk codes for every code of fromBits ∈ {16, 8, 4, 2}. */
const tables = new Map<number, Uint16Array>();
export function shrinkTable(fromBits: number): Uint16Array {
  let t = tables.get(fromBits);
  if (!t) {
    t = new Uint16Array(2 ** fromBits);
    for (let q = 0; q < t.length; q++) t[q] = shrinkCode(q, fromBits);
    tables.set(fromBits, t);
  }
  return t;
}
