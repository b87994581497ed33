// The 16-bit float conversions against hand-computed values and independent references:
// a bit-level binary16 decoder and an arithmetic round-half-to-even.

import assert from "node:assert/strict";
import { test } from "node:test";
import { bf16ToF32, f16BitsToNumber, f16ToF32, f32ToBf16, f32ToF16, numberToF16Bits } from "../../src/tensor/dtype.js";
import { seededRandom } from "../helpers.js";

const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);
const bitsToF32 = (bits: number): number => ((u32[0] = bits >>> 0), f32[0]);
const f32Bits = (x: number): number => ((f32[0] = x), u32[0]);
const isF16NaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBf16NaN = (b: number): boolean => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
const hex = (n: number): string => "0x" + n.toString(16).padStart(4, "0");

/** Reference binary16 decode: move the fields into a float32 (normals, inf, NaN) or scale the fraction (subnormals). */
function refF16(h: number): number {
  const sign = h >> 15, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return ((sign ? -1 : 1) * frac) / 2 ** 24;
  if (exp === 31) return bitsToF32((sign << 31) | 0x7f800000 | (frac << 13));
  return bitsToF32((sign << 31) | ((exp + 112) << 23) | (frac << 13));
}

/** Round x to a binary format with p fraction bits and exponents emin..emax, half to even, by arithmetic. */
function refRound(x: number, p: number, emin: number, emax: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, emin) - p);
  const q = a / ulp;
  const f = Math.floor(q);
  const r = (q - f > 0.5 || (q - f === 0.5 && f % 2 === 1) ? f + 1 : f) * ulp;
  return Math.sign(x) * (r >= 2 ** (emax + 1) ? Infinity : r);
}

/** f32 values spread over many binades (including ones that over- and underflow the target). */
function spreadValues(n: number, seed: number, minExp: number, maxExp: number): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() < 0.5 ? -1 : 1) * (1 + rand()) * 2 ** Math.floor(minExp + rand() * (maxExp - minExp));
  return out;
}

// f16BitsToNumber: bit patterns decoded by hand.
const F16_DECODE: [number, number][] = [
  [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14],
  [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity], [0x0000, 0], [0x8000, -0], [0x8001, -(2 ** -24)],
];
for (const [bits, want] of F16_DECODE) {
  test(`f16BitsToNumber(${hex(bits)}) = ${Object.is(want, -0) ? "-0" : want}`, () => {
    assert.equal(f16BitsToNumber(bits), want); // strict equal is Object.is: -0 !== 0
  });
}

test("f16BitsToNumber of NaN patterns is NaN", () => {
  for (const bits of [0x7e00, 0x7c01, 0xfe00, 0x7fff]) assert.ok(Number.isNaN(f16BitsToNumber(bits)), hex(bits));
});

// Exhaustive: every pattern decodes like the reference, and every non-NaN pattern re-encodes to itself.
test("f16: all 65536 patterns decode like the reference and non-NaN ones round-trip", () => {
  const bad: string[] = [];
  const src = new Uint16Array(65536);
  for (let h = 0; h < 65536; h++) src[h] = h;
  const widened = new Float32Array(65536);
  f16ToF32(src, widened);
  for (let h = 0; h < 65536; h++) {
    const want = refF16(h);
    if (!Object.is(f16BitsToNumber(h), want)) bad.push(`decode ${hex(h)}`);
    if (!Object.is(widened[h], Math.fround(want))) bad.push(`f16ToF32 ${hex(h)}`);
    if (isF16NaN(h)) {
      if (!isF16NaN(numberToF16Bits(want))) bad.push(`NaN ${hex(h)} re-encoded to non-NaN`);
    } else if (numberToF16Bits(want) !== h) bad.push(`round trip ${hex(h)} -> ${hex(numberToF16Bits(want))}`);
  }
  assert.deepEqual(bad.slice(0, 10), []);
});

// numberToF16Bits: rounding, ties to even, overflow and underflow, by hand.
const F16_ENCODE: [string, number, number][] = [
  ["1", 1, 0x3c00], ["-2", -2, 0xc000], ["0.1", 0.1, 0x2e66], ["65504", 65504, 0x7bff],
  ["1 + 2^-11 (tie, down to even)", 1 + 2 ** -11, 0x3c00], ["1 + 3·2^-11 (tie, up to even)", 1 + 3 * 2 ** -11, 0x3c02],
  ["1 + 2^-11 + 2^-23 (just above the tie)", 1 + 2 ** -11 + 2 ** -23, 0x3c01],
  ["65519 (below the overflow tie)", 65519, 0x7bff], ["65520 (tie, to even = Infinity)", 65520, 0x7c00],
  ["1e6 overflows", 1e6, 0x7c00], ["-1e6 overflows", -1e6, 0xfc00], ["Infinity", Infinity, 0x7c00], ["-Infinity", -Infinity, 0xfc00],
  ["2^-24 (smallest subnormal)", 2 ** -24, 0x0001], ["2^-25 (tie, to zero)", 2 ** -25, 0x0000],
  ["3·2^-25 (tie, up to 2·2^-24)", 3 * 2 ** -25, 0x0002], ["0.75·2^-24 rounds up", 0.75 * 2 ** -24, 0x0001],
  ["1e-10 to +0", 1e-10, 0x0000], ["-1e-10 to -0", -1e-10, 0x8000], ["-2^-26 to -0", -(2 ** -26), 0x8000],
  ["0", 0, 0x0000], ["-0", -0, 0x8000],
];
for (const [label, x, want] of F16_ENCODE) {
  test(`numberToF16Bits(${label}) = ${hex(want)}`, () => assert.equal(hex(numberToF16Bits(x)), hex(want)));
}

test("numberToF16Bits(NaN) is a NaN pattern", () => {
  assert.ok(isF16NaN(numberToF16Bits(NaN)));
  assert.ok(isF16NaN(numberToF16Bits(-NaN)));
});

// Every midpoint between neighbouring finite f16 values goes to the even one; one f32 ulp off it goes to the nearer.
test("numberToF16Bits: all midpoints tie to even, neighbours of midpoints go to the nearer value", () => {
  const bad: string[] = [];
  for (let h = 0; h < 0x7bff; h++) {
    const mid = (refF16(h) + refF16(h + 1)) / 2;
    const above = bitsToF32(f32Bits(mid) + 1);
    const below = bitsToF32(f32Bits(mid) - 1);
    const even = h % 2 === 0 ? h : h + 1;
    for (const sign of [0, 0x8000]) {
      const s = sign ? -1 : 1;
      if (numberToF16Bits(s * mid) !== (sign | even)) bad.push(`mid ${hex(sign | h)}`);
      if (numberToF16Bits(s * above) !== (sign | (h + 1))) bad.push(`above ${hex(sign | h)}`);
      if (h > 0 && numberToF16Bits(s * below) !== (sign | h)) bad.push(`below ${hex(sign | h)}`);
    }
  }
  assert.deepEqual(bad.slice(0, 10), []);
  assert.equal(numberToF16Bits(bitsToF32(f32Bits(65520) - 1)), 0x7bff);
});

// Random f32 values over many binades against the arithmetic reference.
test("numberToF16Bits and f32ToF16 match round-half-to-even on 20000 random f32 values", () => {
  const xs = spreadValues(20000, 7, -30, 18);
  const out = new Uint16Array(xs.length);
  f32ToF16(xs, out);
  for (let i = 0; i < xs.length; i++) {
    const want = refRound(xs[i], 10, -14, 15);
    assert.equal(refF16(numberToF16Bits(xs[i])), want, `x = ${xs[i]}`);
    assert.equal(refF16(out[i]), want, `f32ToF16 x = ${xs[i]}`);
    if (Math.abs(xs[i]) >= 2 ** -14 && Math.abs(xs[i]) <= 65504) {
      assert.ok(Math.abs(want - xs[i]) <= 2 ** -11 * Math.abs(xs[i]), `relative error at ${xs[i]}`);
    }
  }
});

// Fixed bug, kept as a regression test: the number used to be rounded to float32 first, then to f16 (double rounding).
const DOUBLE_ROUNDING: [string, number, number][] = [
  ["1 + 2^-11 + 2^-30 (above the tie, needs more than f32 precision)", 1 + 2 ** -11 + 2 ** -30, 0x3c01],
  ["65519.999 (below the overflow tie)", 65519.999, 0x7bff],
];
for (const [label, x, want] of DOUBLE_ROUNDING) {
  test(`numberToF16Bits(${label}) = ${hex(want)}`, () => {
    assert.equal(hex(numberToF16Bits(x)), hex(want));
  });
}

// bf16: exhaustive widening (top half of an f32) and round trip of every non-NaN pattern.
test("bf16: all 65536 patterns widen to bits << 16, non-NaN ones round-trip, NaN stays NaN", () => {
  const src = new Uint16Array(65536);
  for (let b = 0; b < 65536; b++) src[b] = b;
  const wide = new Float32Array(65536);
  bf16ToF32(src, wide);
  const wideBits = new Uint32Array(wide.buffer);
  const back = new Uint16Array(65536);
  f32ToBf16(wide, back);
  const bad: string[] = [];
  for (let b = 0; b < 65536; b++) {
    if (wideBits[b] !== ((b << 16) >>> 0)) bad.push(`widen ${hex(b)}`);
    if (isBf16NaN(b) ? !isBf16NaN(back[b]) : back[b] !== b) bad.push(`round trip ${hex(b)} -> ${hex(back[b])}`);
  }
  assert.deepEqual(bad.slice(0, 10), []);
});

// f32ToBf16 on constructed ties and near-ties below every finite bf16 value.
test("f32ToBf16: low half 0x8000 ties to even, 0x7fff rounds down, 0x8001 rounds up", () => {
  const xs = new Uint32Array(3 * 65536);
  const want: number[] = [];
  let n = 0;
  for (let b = 0; b < 65536; b++) {
    if ((b & 0x7f80) === 0x7f80) continue; // Infinity and NaN
    const hi = (b << 16) >>> 0;
    xs[n++] = hi | 0x8000; want.push(b % 2 === 0 ? b : b + 1);
    xs[n++] = hi | 0x7fff; want.push(b);
    xs[n++] = hi | 0x8001; want.push(b + 1);
  }
  const out = new Uint16Array(n);
  f32ToBf16(new Float32Array(xs.buffer, 0, n), out);
  const bad: string[] = [];
  for (let i = 0; i < n; i++) if (out[i] !== want[i]) bad.push(`0x${xs[i].toString(16)} -> ${hex(out[i])}, want ${hex(want[i])}`);
  assert.deepEqual(bad.slice(0, 10), []);
});

// f32ToBf16 on hand-picked values and NaN payloads that truncation would turn into Infinity.
const BF16_ENCODE: [string, number, number][] = [
  ["1", 0x3f800000, 0x3f80], ["-2.5", 0xc0200000, 0xc020], ["0.1", f32Bits(0.1), 0x3dcd], ["65504 (up to 65536)", f32Bits(65504), 0x4780],
  ["3.14159", f32Bits(3.14159), 0x4049], ["max f32 (to Infinity)", 0x7f7fffff, 0x7f80], ["Infinity", 0x7f800000, 0x7f80],
  ["-0", 0x80000000, 0x8000], ["smallest f32 subnormal (to 0)", 0x00000001, 0x0000],
];
for (const [label, bits, want] of BF16_ENCODE) {
  test(`f32ToBf16(${label}) = ${hex(want)}`, () => {
    const out = new Uint16Array(1);
    f32ToBf16(new Float32Array(new Uint32Array([bits]).buffer), out);
    assert.equal(hex(out[0]), hex(want));
  });
}

test("f32ToBf16 keeps every kind of NaN a NaN", () => {
  const nans = new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff, 0x7f80ffff]);
  const out = new Uint16Array(nans.length);
  f32ToBf16(new Float32Array(nans.buffer), out);
  for (let i = 0; i < nans.length; i++) assert.ok(isBf16NaN(out[i]), `0x${nans[i].toString(16)} -> ${hex(out[i])}`);
  assert.equal(out[2] & 0x8000, 0x8000, "sign of a negative NaN is kept");
});

test("f32ToBf16 matches round-half-to-even on 20000 random f32 values", () => {
  const xs = spreadValues(20000, 11, -140, 128);
  const out = new Uint16Array(xs.length);
  f32ToBf16(xs, out);
  for (let i = 0; i < xs.length; i++) {
    const want = refRound(xs[i], 7, -126, 127);
    assert.equal(bitsToF32(out[i] << 16), want, `x = ${xs[i]}`);
    if (Number.isFinite(want) && Math.abs(xs[i]) >= 2 ** -126) assert.ok(Math.abs(want - xs[i]) <= 2 ** -8 * Math.abs(xs[i]));
  }
});
