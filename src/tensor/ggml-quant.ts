// ggml's block-quantized weight formats (ggml-common.h, ggml-quants.c), byte for byte: a block
// type, a size check, a reference quantize/dequantize pair, and one row in a type-traits table.
//   Q8_0  32 values,  34 bytes: f16 d | int8 q[32]                       value = d·q
//   Q4_0  32 values,  18 bytes: f16 d | u8 qs[16]                        value = d·(nibble − 8);
//         low nibbles are elements 0…15, high nibbles 16…31
//   Q4_K 256 values, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
//         8 sub-blocks of 32, each a 6-bit scale sc and min m (get_scale_min_k4):
//         value = d·sc·q − dmin·m; each 32 qs bytes hold 64 values (low nibbles first 32)
//   Q6_K 256 values, 210 bytes: u8 ql[128] | u8 qh[64] | int8 scales[16] | f16 d
//         16 groups of 16, value = d·scale·(q − 32), q = 4 low bits (ql) + 2 high bits (qh)
// Dequantization rounds in float32 in ggml's order, so a value here equals llama.cpp's.

import { f16BitsToNumber, f32ToBf16, f32ToF16, numberToF16Bits, roundHalfEven } from "./dtype.js";

export type QuantDtype = "q8_0" | "q4_0" | "q4_k" | "q6_k";
export type GgmlTypeName = "F32" | "F16" | "BF16" | "Q4_0" | "Q8_0" | "Q4_K" | "Q6_K";

export interface GgmlTypeTraits {
  name: GgmlTypeName;
  /** ggml_type id as stored in GGUF tensor infos. */
  id: number;
  /** Values per block (1 for the float types). */
  blockSize: number;
  /** Bytes per block. */
  blockBytes: number;
  /** Widen n values (n a multiple of blockSize) from blocks at src into out[0 … n). */
  dequantizeRow(src: Uint8Array, out: Float32Array, n: number): void;
  /** Encode n values from src (n a multiple of blockSize) into n / blockSize blocks at out. */
  quantizeRow(src: Float32Array, out: Uint8Array, n: number): void;
}

const f32 = Math.fround;
const f16At = (b: Uint8Array, at: number): number => f16BitsToNumber(b[at] | (b[at + 1] << 8));
/** Write x as f16 at b[at]; returns the f16 value actually stored. */
function putF16(b: Uint8Array, at: number, x: number): number {
  const h = numberToF16Bits(x);
  b[at] = h & 0xff;
  b[at + 1] = h >> 8;
  return f16BitsToNumber(h);
}
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

// ---------------------------------------------------------------------------- Q8_0
export const Q8_0_BYTES = 34;

function dequantizeQ8_0(src: Uint8Array, out: Float32Array, n: number): void {
  for (let b = 0; b < n / 32; b++) {
    const p = b * Q8_0_BYTES;
    const d = f16At(src, p);
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * ((src[p + 2 + i] << 24) >> 24);
  }
}

function quantizeQ8_0(src: Float32Array, out: Uint8Array, n: number): void {
  for (let b = 0; b < n / 32; b++) {
    const p = b * Q8_0_BYTES;
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(src[b * 32 + i]));
    const d = putF16(out, p, amax / 127);
    for (let i = 0; i < 32; i++) out[p + 2 + i] = d ? clamp(roundHalfEven(src[b * 32 + i] / d), -127, 127) & 0xff : 0;
  }
}

// ---------------------------------------------------------------------------- Q4_0
export const Q4_0_BYTES = 18;

function dequantizeQ4_0(src: Uint8Array, out: Float32Array, n: number): void {
  for (let b = 0; b < n / 32; b++) {
    const p = b * Q4_0_BYTES;
    const d = f16At(src, p);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j];
      out[b * 32 + j] = d * ((q & 15) - 8);
      out[b * 32 + 16 + j] = d * ((q >> 4) - 8);
    }
  }
}

// As ggml's reference: the value of largest magnitude maps to −8 (d = max / −8).
function quantizeQ4_0(src: Float32Array, out: Uint8Array, n: number): void {
  for (let b = 0; b < n / 32; b++) {
    const p = b * Q4_0_BYTES;
    let max = 0;
    for (let i = 0; i < 32; i++) if (Math.abs(src[b * 32 + i]) > Math.abs(max)) max = src[b * 32 + i];
    const d = putF16(out, p, max / -8);
    const q = (x: number) => (d ? clamp(roundHalfEven(x / d) + 8, 0, 15) : 8);
    for (let j = 0; j < 16; j++) out[p + 2 + j] = q(src[b * 32 + j]) | (q(src[b * 32 + 16 + j]) << 4);
  }
}

// ---------------------------------------------------------------------------- Q4_K
export const Q4_K_BYTES = 144;

/** ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (0 … 7) from the 12 packed bytes at s. */
export function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 15) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

/** The inverse of scaleMinK4: 8 scales and 8 mins (each 0 … 63) into 12 bytes at s. */
export function packScaleMinK4(b: Uint8Array, s: number, sc: ArrayLike<number>, m: ArrayLike<number>): void {
  for (let j = 0; j < 4; j++) {
    b[s + j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
    b[s + j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
    b[s + j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
  }
}

function dequantizeQ4_K(src: Uint8Array, out: Float32Array, n: number): void {
  for (let b = 0; b < n / 256; b++) {
    const p = b * Q4_K_BYTES;
    const d = f16At(src, p), dmin = f16At(src, p + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(src, p + 4, j);
      const d1 = f32(d * sc), m1 = f32(dmin * m);
      const qs = p + 16 + (j >> 1) * 32, shift = (j & 1) * 4;
      for (let l = 0; l < 32; l++) out[b * 256 + j * 32 + l] = f32(d1 * ((src[qs + l] >> shift) & 15)) - m1;
    }
  }
}

// A simple max-based choice (not ggml's search): per sub-block scale (max − min) / 15 and min
// −min(0, min); the super-block scales d, dmin make the largest of each 63.
function quantizeQ4_K(src: Float32Array, out: Uint8Array, n: number): void {
  const scale = new Float64Array(8), mins = new Float64Array(8), sc = new Uint8Array(8), m = new Uint8Array(8);
  for (let b = 0; b < n / 256; b++) {
    const p = b * Q4_K_BYTES, x = b * 256;
    for (let j = 0; j < 8; j++) {
      let lo = 0, hi = 0;
      for (let l = 0; l < 32; l++) {
        lo = Math.min(lo, src[x + j * 32 + l]);
        hi = Math.max(hi, src[x + j * 32 + l]);
      }
      scale[j] = (hi - lo) / 15;
      mins[j] = -lo;
    }
    const d = putF16(out, p, Math.max(...scale) / 63), dmin = putF16(out, p + 2, Math.max(...mins) / 63);
    for (let j = 0; j < 8; j++) {
      sc[j] = d ? clamp(Math.round(scale[j] / d), 0, 63) : 0;
      m[j] = dmin ? clamp(Math.ceil(mins[j] / dmin - 1e-9), 0, 63) : 0; // ceil: the min stays reachable
    }
    packScaleMinK4(out, p + 4, sc, m);
    out.fill(0, p + 16, p + Q4_K_BYTES);
    for (let j = 0; j < 8; j++) {
      const d1 = f32(d * sc[j]), m1 = f32(dmin * m[j]);
      const qs = p + 16 + (j >> 1) * 32, shift = (j & 1) * 4;
      for (let l = 0; l < 32; l++) {
        const q = d1 ? clamp(roundHalfEven((src[x + j * 32 + l] + m1) / d1), 0, 15) : 0;
        out[qs + l] |= q << shift;
      }
    }
  }
}

// ---------------------------------------------------------------------------- Q6_K
export const Q6_K_BYTES = 210;
const Q6_QH = 128, Q6_SCALES = 192, Q6_D = 208;

/** The 6-bit code (0 … 63) of element e (0 … 255) of the Q6_K block at p. */
export function q6kCode(b: Uint8Array, p: number, e: number): number {
  const half = e >> 7, r = e & 127, l = r & 31, quarter = r >> 5;
  const ql = b[p + half * 64 + l + (quarter & 1) * 32];
  const low = quarter < 2 ? ql & 15 : ql >> 4;
  const high = (b[p + Q6_QH + half * 32 + l] >> (2 * quarter)) & 3;
  return low | (high << 4);
}

function dequantizeQ6_K(src: Uint8Array, out: Float32Array, n: number): void {
  for (let b = 0; b < n / 256; b++) {
    const p = b * Q6_K_BYTES;
    const d = f16At(src, p + Q6_D);
    for (let e = 0; e < 256; e++) {
      const sc = (src[p + Q6_SCALES + (e >> 4)] << 24) >> 24;
      out[b * 256 + e] = f32(d * sc) * (q6kCode(src, p, e) - 32);
    }
  }
}

function quantizeQ6_K(src: Float32Array, out: Uint8Array, n: number): void {
  const scale = new Float64Array(16);
  for (let b = 0; b < n / 256; b++) {
    const p = b * Q6_K_BYTES, x = b * 256;
    out.fill(0, p, p + Q6_K_BYTES);
    for (let g = 0; g < 16; g++) {
      let amax = 0;
      for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(src[x + g * 16 + l]));
      scale[g] = amax / 31;
    }
    const d = putF16(out, p + Q6_D, Math.max(...scale) / 127);
    for (let g = 0; g < 16; g++) {
      const sc = d ? clamp(Math.round(scale[g] / d), 0, 127) : 0;
      out[p + Q6_SCALES + g] = sc;
      const ds = f32(d * sc);
      for (let l = 0; l < 16; l++) {
        const e = g * 16 + l;
        const q = (ds ? clamp(roundHalfEven(src[x + e] / ds), -32, 31) : 0) + 32;
        const half = e >> 7, r = e & 127, ll = r & 31, quarter = r >> 5;
        out[p + half * 64 + ll + (quarter & 1) * 32] |= quarter < 2 ? q & 15 : (q & 15) << 4;
        out[p + Q6_QH + half * 32 + ll] |= (q >> 4) << (2 * quarter);
      }
    }
  }
}

// ---------------------------------------------------------------------------- floats
const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

function floatTraits(name: "F32" | "F16" | "BF16", id: number): GgmlTypeTraits {
  const bytes = name === "F32" ? 4 : 2;
  const view = (b: Uint8Array, n: number) => new DataView(b.buffer, b.byteOffset, n * bytes);
  return {
    name, id, blockSize: 1, blockBytes: bytes,
    dequantizeRow(src, out, n) {
      const v = view(src, n);
      for (let i = 0; i < n; i++) {
        if (name === "F32") out[i] = v.getFloat32(4 * i, true);
        else if (name === "F16") out[i] = f16BitsToNumber(v.getUint16(2 * i, true));
        else {
          u32Bits[0] = v.getUint16(2 * i, true) << 16; // a bf16 is the top half of an f32
          out[i] = f32Bits[0];
        }
      }
    },
    quantizeRow(src, out, n) {
      const v = view(out, n);
      const half = new Uint16Array(n);
      if (name === "F32") for (let i = 0; i < n; i++) v.setFloat32(4 * i, src[i], true);
      else {
        (name === "F16" ? f32ToF16 : f32ToBf16)(src.subarray(0, n), half);
        for (let i = 0; i < n; i++) v.setUint16(2 * i, half[i], true);
      }
    },
  };
}

/** ggml type traits by ggml_type id (the rows this engine reads and writes). */
export const GGML_TRAITS: readonly GgmlTypeTraits[] = [
  floatTraits("F32", 0),
  floatTraits("F16", 1),
  floatTraits("BF16", 30),
  { name: "Q4_0", id: 2, blockSize: 32, blockBytes: Q4_0_BYTES, dequantizeRow: dequantizeQ4_0, quantizeRow: quantizeQ4_0 },
  { name: "Q8_0", id: 8, blockSize: 32, blockBytes: Q8_0_BYTES, dequantizeRow: dequantizeQ8_0, quantizeRow: quantizeQ8_0 },
  { name: "Q4_K", id: 12, blockSize: 256, blockBytes: Q4_K_BYTES, dequantizeRow: dequantizeQ4_K, quantizeRow: quantizeQ4_K },
  { name: "Q6_K", id: 14, blockSize: 256, blockBytes: Q6_K_BYTES, dequantizeRow: dequantizeQ6_K, quantizeRow: quantizeQ6_K },
];

/** The traits of a ggml type id, or undefined for types this engine does not know. */
export function ggmlTraitsById(id: number): GgmlTypeTraits | undefined {
  return GGML_TRAITS.find((t) => t.id === id);
}

export function ggmlTraitsByName(name: GgmlTypeName): GgmlTypeTraits {
  return GGML_TRAITS.find((t) => t.name === name)!;
}

/** The traits of a quantized Matrix dtype. */
export function quantTraits(dtype: QuantDtype): GgmlTypeTraits {
  return ggmlTraitsByName(QUANT_DTYPE_NAMES[dtype]);
}

export const QUANT_DTYPE_NAMES: Record<QuantDtype, GgmlTypeName> = { q8_0: "Q8_0", q4_0: "Q4_0", q4_k: "Q4_K", q6_k: "Q6_K" };

/** The Matrix dtype of a quantized ggml type id (null for float and unknown types). */
export function quantDtypeOfGgmlType(id: number): QuantDtype | null {
  for (const [dtype, name] of Object.entries(QUANT_DTYPE_NAMES) as [QuantDtype, GgmlTypeName][]) if (ggmlTraitsByName(name).id === id) return dtype;
  return null;
}

export function isQuantDtype(d: string): d is QuantDtype {
  return d in QUANT_DTYPE_NAMES;
}

/** Bytes of a row of `cols` values in this type (cols a multiple of the block size). */
export function ggmlRowBytes(t: GgmlTypeTraits, cols: number): number {
  return (cols / t.blockSize) * t.blockBytes;
}
