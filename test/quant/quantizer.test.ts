// The group quantizer of spec §2 against hand-computed groups and an independent reference
// written from the formulas in the source header: z the smallest f16 ≥ −min, s the smallest
// f16 ≥ clamp((max + z)/(2^b − 1), 1e-5, 65504), codes against those, x̂ = fround(q·s − z).

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BIT_WIDTHS, dequantizeValue, fakeQuantize, groupParams, quantizeGroups, quantizeValue, roundHalfEven,
} from "../../src/quant/quantizer.js";
import { f16BitsToNumber, numberToF16Bits } from "../../src/tensor/dtype.js";
import { ceil16, refQuantGroup } from "../f16-ref.js";
import { randomArray, seededRandom } from "../helpers.js";

const f = Math.fround;
/** The f16 bit pattern of an f16 value (the format's own encoder). */
const f32ToF16Bits = (v: number): number => numberToF16Bits(v) & (v === 0 ? 0x7fff : 0xffff);

/** Round half to even by another route: Math.round (half up), then step back on odd ties. */
function refRound(v: number): number {
  const n = Math.round(v);
  return n - v === 0.5 && Math.abs(n % 2) === 1 ? n - 1 : n;
}

/** One group by the rule of the source header (the shared reference, test/f16-ref.ts). */
const refQuant = refQuantGroup;

/** Runs the module's groupParams / quantizeValue / dequantizeValue on one group. */
function modQuant(x: Float32Array, bits: number): { s: number; z: number; q: number[]; xh: number[] } {
  const [s, z] = groupParams(x, 0, x.length, bits);
  const q = Array.from(x, (v) => quantizeValue(v, s, z, bits));
  return { s, z: z + 0, q, xh: q.map((c) => dequantizeValue(c, s, z)) };
}

// Ties go to the even neighbour; everything else to the nearest integer.
test("roundHalfEven: ties to even, non-ties to nearest", () => {
  const ties: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-1.5, -2], [-2.5, -2], [65534.5, 65534], [65535.5, 65536]];
  for (const [x, want] of ties) assert.equal(roundHalfEven(x), want, `round(${x})`);
  assert.ok(roundHalfEven(-0.5) === 0, "round(-0.5) is ±0"); // -0 === 0
  const nonTies: [number, number][] = [[0, 0], [0.49, 0], [0.51, 1], [1.2, 1], [1.7, 2], [-0.2, 0], [-0.7, -1], [-2.6, -3], [7, 7], [-7, -7]];
  for (const [x, want] of nonTies) assert.ok(roundHalfEven(x) === want, `round(${x}) = ${roundHalfEven(x)}, want ${want}`);
  const rand = seededRandom(1);
  for (let i = 0; i < 2000; i++) {
    const x = (rand() - 0.5) * 200;
    const h = Math.round(x * 2) / 2; // also random ties
    for (const v of [x, h]) assert.ok(roundHalfEven(v) === refRound(v), `round(${v})`);
  }
});

// Hand-made groups at every bit-width, exact literal expectations plus the reference.
test("groupParams / quantizeValue / dequantizeValue on hand-made groups", () => {
  const s3 = 769 * 2 ** -24; // the f16 just above 3/65535 (subnormal: steps of 2^-24)
  const cases: { x: number[]; bits: number; s: number; z: number; q: number[]; xh: number[] }[] = [
    { x: [0, 1, 2, 3], bits: 2, s: 1, z: 0, q: [0, 1, 2, 3], xh: [0, 1, 2, 3] },
    { x: [0, 1, 2, 3], bits: 1, s: 3, z: 0, q: [0, 0, 1, 1], xh: [0, 0, 3, 3] },
    // s = 1; 0.5 and 2.5 are ties and go to the even code, 7.5 → 8.
    { x: [0, 0.5, 2.5, 7.5, 15], bits: 4, s: 1, z: 0, q: [0, 0, 2, 8, 15], xh: [0, 0, 2, 8, 15] },
    // Negative min: range 255/128 → s = 1/128, z = 1 (both f16); (x + 1)·128 = 0, 128, 192, 255.
    { x: [-1, 0, 0.5, -1 + 255 / 128], bits: 8, s: 1 / 128, z: 1, q: [0, 128, 192, 255], xh: [-1, 0, 0.5, -1 + 255 / 128] },
    // 16 bits: range 65535/1024 → s = 1/1024.
    { x: [0, 1, 32, 65535 / 1024], bits: 16, s: 1 / 1024, z: 0, q: [0, 1024, 32768, 65535], xh: [0, 1, 32, 65535 / 1024] },
    // 16 bits, negative values only: range 3 → s = 3/65535 rounded up to f16 (769·2^-24); codes against it, none clips.
    { x: [-4, -3, -1], bits: 16, s: s3, z: 4, q: [0, Math.round(1 / s3), Math.round(3 / s3)], xh: [-4, f(Math.round(1 / s3) * s3 - 4), f(Math.round(3 / s3) * s3 - 4)] },
    // The zero rounds up to the next f16 (−0.7 → −0.69970703125) and the codes absorb it: x̂ of 0.7 stays within s/2.
    { x: [0.7, 0.7, 0.8], bits: 2, s: ceil16((0.8 - 0.69970703125) / 3), z: -0.69970703125, q: [0, 0, 3], xh: [f(0.69970703125), f(0.69970703125), f(3 * ceil16((0.8 - 0.69970703125) / 3) + 0.69970703125)] },
    // Past f16's range the values saturate at ±65504: s = 65504/255 rounded up = 257, 1e9 → code 255.
    { x: [0, 1e9, 5e4, 2e5], bits: 8, s: 257, z: 0, q: [0, 255, 195, 255], xh: [0, 65535, 50115, 65535] },
  ];
  for (const c of cases) {
    const x = Float32Array.from(c.x);
    const got = modQuant(x, c.bits);
    const label = `[${c.x}] @${c.bits}`;
    assert.equal(got.s, c.s, `s ${label}`);
    assert.ok(got.z === c.z, `z ${label}: ${got.z}`); // z = −0 is fine for min 0
    assert.deepEqual(got.q, c.q, `q ${label}`);
    assert.deepEqual(got.xh.map((v) => v + 0), c.xh.map(f), `x̂ ${label}`);
    const ref = refQuant(x, c.bits);
    assert.deepEqual([got.s, got.q, got.xh], [ref.s, ref.q, ref.xh], `reference ${label}`);
  }
  // A constant group: the zero rounds up to the f16 at or above −v, the codes take up the rest:
  // x̂ is within s/2 of v (exact when v is an f16).
  for (const bits of BIT_WIDTHS) {
    for (const v of [0.7, -123.25, 0, 3e4]) {
      const x = new Float32Array(8).fill(v);
      const got = modQuant(x, bits);
      assert.deepEqual([got.s, got.q], [refQuant(x, bits).s, refQuant(x, bits).q], `constant ${v} @${bits}`);
      for (const y of got.xh) assert.ok(Math.abs(y - x[0]) <= got.s / 2 + 2 ** -22 * Math.abs(v), `constant ${v} @${bits}: ${y}`);
      const f16Exact = f16BitsToNumber(f32ToF16Bits(v)) === x[0];
      if (f16Exact) for (const y of got.xh) assert.equal(y, x[0], `constant ${v} (an f16) @${bits} comes back exactly`);
    }
  }
});

// Random groups: codes in range, error ≤ s/2, extremes kept, fake = real, 16-bit idempotence.
test("property: random groups at every G and bit-width", () => {
  const rand = seededRandom(42);
  for (const G of [4, 8, 32, 128]) {
    for (const bits of BIT_WIDTHS) {
      for (let trial = 0; trial < 25; trial++) {
        const amp = 10 ** (rand() * 6 - 3); // 1e-3 … 1e3, so some groups hit the 1e-5 scale floor
        const x = randomArray(3 * G, rand, amp).map((v) => v + (rand() * 4 - 2) * amp);
        const fake = x.slice();
        fakeQuantize(fake, 0, x.length, G, bits);
        for (let g = 0; g < 3; g++) {
          const grp = x.subarray(g * G, (g + 1) * G);
          const got = modQuant(grp, bits);
          const ref = refQuant(grp, bits);
          const label = `G=${G} b=${bits} trial ${trial} group ${g}`;
          assert.deepEqual([got.s, got.z, got.q, got.xh], [ref.s, ref.z, ref.q, ref.xh], label);
          let iMin = 0, iMax = 0;
          for (let i = 0; i < G; i++) {
            const q = got.q[i];
            assert.ok(Number.isInteger(q) && q >= 0 && q <= 2 ** bits - 1, `${label}: code ${q}`);
            // Tolerance: x̂ is rounded to float32 (≤ 2^-24·|x̂|) and (x + z)/s, q·s − z are float64
            // operations on float32 inputs (≲ 2^-52 relative): 2^-22·(|x| + |z|) bounds both.
            const tol = 2 ** -22 * (Math.abs(grp[i]) + Math.abs(got.z));
            assert.ok(Math.abs(got.xh[i] - grp[i]) <= got.s / 2 + tol, `${label}: |x̂ − x| = ${Math.abs(got.xh[i] - grp[i])}, s = ${got.s}`);
            assert.ok(fake[g * G + i] === ref.xh[i], `${label}: fakeQuantize[${i}]`);
            if (grp[i] < grp[iMin]) iMin = i;
            if (grp[i] > grp[iMax]) iMax = i;
          }
          // No code clips: the min and the max are within s/2 too (z and s were rounded up, not down).
          assert.ok(Math.abs(got.xh[iMin] - grp[iMin]) <= got.s / 2 + 2 ** -22 * (Math.abs(grp[iMin]) + Math.abs(got.z)), `${label}: min`);
          assert.ok(Math.abs(got.xh[iMax] - grp[iMax]) <= got.s / 2 + 2 ** -22 * (Math.abs(grp[iMax]) + Math.abs(got.z)), `${label}: max`);
          // s and z are f16 values
          for (const v of [got.s, got.z]) assert.equal(f16BitsToNumber(f32ToF16Bits(v)), v, `${label}: ${v} is an f16`);
        }
        if (bits === 16) {
          // Idempotence: the second pass keeps the zero (−min of the fake values is already an f16)
          // and sees the max within a code step, so s moves by at most one f16 step (2^-10
          // relative, or 2^-24 absolute below 2^-14): each value moves by ≤ range·2^-10 + 65535·2^-24 + s,
          // plus float32 rounding.
          const twice = fake.slice();
          fakeQuantize(twice, 0, x.length, G, bits);
          for (let g = 0; g < 3; g++) {
            const grp = fake.subarray(g * G, (g + 1) * G);
            const range = Math.max(...grp) - Math.min(...grp);
            const big = Math.max(...Array.from(grp, Math.abs));
            const sNow = groupParams(grp, 0, G, 16)[0];
            for (let i = 0; i < G; i++) {
              const d = Math.abs(twice[g * G + i] - grp[i]);
              assert.ok(d <= range * 2 ** -10 + 65535 * 2 ** -24 + sNow + 2 ** -22 * big, `idempotence G=${G} trial ${trial}: moved ${d}`);
            }
          }
        }
      }
    }
  }
});

// quantizeGroups: codes, scales and zeros land at their offsets and nothing else is written.
test("quantizeGroups writes per-group scales/zeros at the right offsets", () => {
  const rand = seededRandom(7);
  const G = 4, groups = 3, xOff = 3, codesOff = 5, paramsOff = 2;
  const x = randomArray(xOff + groups * G + 2, rand, 5);
  for (const bits of BIT_WIDTHS) {
    const codes: number[] = new Array(codesOff + groups * G + 3).fill(-1);
    const scales = new Uint16Array(paramsOff + groups + 2).fill(7);
    const zeros = new Uint16Array(paramsOff + groups + 2).fill(9);
    quantizeGroups(x, xOff, groups * G, G, bits, codes, codesOff, scales, zeros, paramsOff);
    const wantCodes: number[] = new Array(codesOff).fill(-1);
    const wantS: number[] = new Array(paramsOff).fill(7), wantZ: number[] = new Array(paramsOff).fill(9);
    for (let g = 0; g < groups; g++) {
      const ref = refQuant(x.subarray(xOff + g * G, xOff + (g + 1) * G), bits);
      wantCodes.push(...ref.q);
      wantS.push(f32ToF16Bits(ref.s));
      wantZ.push(f32ToF16Bits(ref.z));
    }
    wantCodes.push(-1, -1, -1);
    wantS.push(7, 7);
    wantZ.push(9, 9);
    assert.deepEqual(codes, wantCodes, `codes @${bits}`);
    assert.deepEqual(Array.from(scales), wantS, `scales (f16 bits) @${bits}`);
    assert.deepEqual(Array.from(zeros).map((h, i) => (i >= paramsOff && i < paramsOff + groups && h === 0x8000 ? 0 : h)), wantZ, `zeros (f16 bits) @${bits}`);
  }
});
