// References for 16-bit scales and zeros (quant/quantizer.ts): every finite f16 value from the
// format's definition (f16BitsToNumber), searched — independent of the bit tricks under test.

import { f16BitsToNumber } from "../src/tensor/dtype.js";

/** Every finite f16 bit pattern with its value, ascending by value (−0 and +0 both present). */
const F16 = Array.from({ length: 0x10000 }, (_, h) => [h, f16BitsToNumber(h)] as const)
  .filter(([, v]) => Number.isFinite(v))
  .sort((a, b) => a[1] - b[1] || b[0] - a[0]);

/** The smallest f16 value ≥ x. */
export function ceil16(x: number): number {
  let lo = 0, hi = F16.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (F16[mid][1] >= x) hi = mid;
    else lo = mid + 1;
  }
  return F16[lo][1] + 0; // −0 → 0
}

/** The nearest f16 to x (ties to the even bit pattern; saturating at ±65504). */
export function nearest16(x: number): number {
  let lo = 0, hi = F16.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (F16[mid][1] <= x) lo = mid;
    else hi = mid - 1;
  }
  if (lo === F16.length - 1 || F16[lo][1] > x) return F16[lo][1];
  const [a, b] = [F16[lo], F16[lo + 1]];
  if (x - a[1] < b[1] - x) return a[1];
  if (x - a[1] > b[1] - x) return b[1];
  return a[0] % 2 === 0 ? a[1] : b[1];
}

const refRound = (v: number): number => {
  const n = Math.round(v);
  return n - v === 0.5 && Math.abs(n % 2) === 1 ? n - 1 : n;
};

/**
 * One group by the rule of quant/quantizer.ts: values saturate at ±65504, z = the smallest f16
 * ≥ −min, s = the smallest f16 ≥ clamp((max + z)/(2^b − 1), 1e-5, 65504), codes against them.
 */
export function refQuantGroup(x: ArrayLike<number>, bits: number): { s: number; z: number; q: number[]; xh: number[] } {
  const vals = Array.from(x, (v) => Math.max(-65504, Math.min(65504, v)));
  const mn = Math.min(...vals), mx = Math.max(...vals);
  const levels = 2 ** bits - 1;
  const z = ceil16(-mn);
  const s = ceil16(Math.min(65504, Math.max(1e-5, (mx + z) / levels)));
  const q = Array.from(x, (v) => Math.min(levels, Math.max(0, refRound((v + z) / s))));
  return { s, z, q, xh: q.map((c) => Math.fround(c * s - z)) };
}

/** Fake quantization of a row group by group with refQuantGroup. */
export function refFakeRow(row: ArrayLike<number>, G: number, bits: number): Float32Array {
  const out = new Float32Array(row.length);
  for (let g = 0; g < row.length; g += G) out.set(refQuantGroup(Array.from(row).slice(g, g + G), bits).xh, g);
  return out;
}
