// Conversions between the 16-bit float formats of checkpoints and float32.

const f16Table = buildF16Table();

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = f16BitsToNumber(h);
  return table;
}

/** IEEE 754 half (binary16) bit pattern to a number, by the definition of the format. */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Round to the nearest integer, ties to even (exact for the scaled values used here). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Round a number to the nearest binary16 bit pattern (round half to even, one rounding). */
export function numberToF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // 65520 is halfway between 65504 and 2^16: ties to even → ∞
  if (a < 2 ** -14) {
    const m = roundHalfEven(a * 2 ** 24); // subnormal: units of 2^-24 (scaling by 2^k is exact)
    return sign | m; // m = 1024 is exactly the smallest normal, 0x0400
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven(a * 2 ** (10 - e)); // 1024 … 2048
  if (m === 2048) {
    m = 1024;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** Widen little-endian f16 values into `out`. */
export function f16ToF32(src: Uint16Array, out: Float32Array): void {
  for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]];
}

/** Widen bf16 values into `out`: a bf16 is the top half of an f32. */
export function bf16ToF32(src: Uint16Array, out: Float32Array): void {
  const u32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) u32[i] = src[i] << 16;
}

/** Round f32 to bf16 (round half to even), as torch does. */
export function f32ToBf16(src: Float32Array, out: Uint16Array): void {
  const u32 = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const u = u32[i];
    if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) {
      out[i] = (u >>> 16) | 0x40; // keep NaN a NaN
      continue;
    }
    out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * A float32 value to the nearest binary16 bit pattern (round half to even), from its bits —
 * equal to numberToF16Bits for every float32 (the test checks every f16 boundary), without
 * Math.log2: appending to an f16 cache converts every value.
 */
export function f32BitsToF16(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x7f800000) return sign | (a > 0x7f800000 ? 0x7e00 : 0x7c00); // NaN, ±∞
  if (a >= 0x477ff000) return sign | 0x7c00; // ≥ 65520: rounds to ∞
  if (a >= 0x38800000) {
    // normal f16: rebias the exponent, round the 13 dropped bits half to even
    const m = a - 0x38000000;
    return sign | ((m + 0x0fff + ((m >>> 13) & 1)) >>> 13);
  }
  if (a < 0x33000000) return sign; // below half the smallest subnormal (2^-25): ±0
  // subnormal f16: the value in units of 2^-24, rounded half to even
  const e = a >>> 23; // biased f32 exponent, 102 … 112
  const mant = (a & 0x7fffff) | 0x800000;
  const shift = 126 - e; // 14 … 24
  const q = mant >>> shift;
  const rest = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (rest > half || (rest === half && (q & 1) === 1) ? q + 1 : q);
}

export function f32ToF16(src: Float32Array, out: Uint16Array): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16(u[i]);
}

/** The nearest f16 of a number (through float32), as its bit pattern. */
export function f16Bits(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToF16(u32Scratch[0]);
}

/** The value of an f16 bit pattern (a table lookup). */
export function f16Value(h: number): number {
  return f16Table[h];
}

/** The f16 bit pattern of the smallest f16 value ≥ x (x finite and within ±65504). */
export function f16CeilBits(x: number): number {
  let h = f16Bits(x);
  if (f16Table[h] >= x) return h;
  // one step towards +∞
  if (h === 0x8000) return 0x0001; // −0 → the smallest positive subnormal
  h = h & 0x8000 ? h - 1 : h + 1;
  return h;
}
