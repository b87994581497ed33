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

/** Round a number to the nearest binary16 bit pattern (round half to even). */
export function numberToF16Bits(x: number): number {
  const f32 = new Float32Array([x]);
  const u = new Uint32Array(f32.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
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

export function f32ToF16(src: Float32Array, out: Uint16Array): void {
  for (let i = 0; i < src.length; i++) out[i] = numberToF16Bits(src[i]);
}
