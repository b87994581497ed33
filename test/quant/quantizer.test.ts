// The group quantizer of spec §2 against hand-computed groups and an independent reference
// written from the spec's formulas (float32 scale/zero/x̂, as the source header documents).

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BIT_WIDTHS, dequantizeValue, fakeQuantize, groupParams, quantizeGroups, quantizeValue, roundHalfEven,
} from "../../src/quant/quantizer.js";
import { randomArray, seededRandom } from "../helpers.js";

const f = Math.fround;

/** Round half to even by another route: Math.round (half up), then step back on odd ties. */
function refRound(v: number): number {
  const n = Math.round(v);
  return n - v === 0.5 && Math.abs(n % 2) === 1 ? n - 1 : n;
}

/** Spec §2 for one group: s, z (float32), codes and x̂ = fround(q·s − z). */
function refQuant(x: ArrayLike<number>, bits: number): { s: number; z: number; q: number[]; xh: number[] } {
  const vals = Array.from(x);
  const mn = Math.min(...vals), mx = Math.max(...vals);
  const levels = 2 ** bits - 1;
  const s = f(Math.min(1e5, Math.max(1e-5, (mx - mn) / levels)));
  const z = f(-mn);
  const q = vals.map((v) => Math.min(levels, Math.max(0, refRound((v + z) / s))));
  return { s, z, q, xh: q.map((c) => f(c * s - z)) };
}

/** Runs the module's groupParams / quantizeValue / dequantizeValue on one group. */
function modQuant(x: Float32Array, bits: number): { s: number; z: number; q: number[]; xh: number[] } {
  const [s, z] = groupParams(x, 0, x.length, bits);
  const q = Array.from(x, (v) => quantizeValue(v, s, z, bits));
  return { s, z, q, xh: q.map((c) => dequantizeValue(c, s, z)) };
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
  const cases: { x: number[]; bits: number; s: number; z: number; q: number[]; xh: number[] }[] = [
    { x: [0, 1, 2, 3], bits: 2, s: 1, z: 0, q: [0, 1, 2, 3], xh: [0, 1, 2, 3] },
    { x: [0, 1, 2, 3], bits: 1, s: 3, z: 0, q: [0, 0, 1, 1], xh: [0, 0, 3, 3] },
    // s = 1; 0.5 and 2.5 are ties and go to the even code, 7.5 → 8.
    { x: [0, 0.5, 2.5, 7.5, 15], bits: 4, s: 1, z: 0, q: [0, 0, 2, 8, 15], xh: [0, 0, 2, 8, 15] },
    // Negative min: range 255/128 → s = 1/128, z = 1; (x + 1)·128 = 0, 128, 192, 255.
    { x: [-1, 0, 0.5, -1 + 255 / 128], bits: 8, s: 1 / 128, z: 1, q: [0, 128, 192, 255], xh: [-1, 0, 0.5, -1 + 255 / 128] },
    // 16 bits: range 65535/1024 → s = 1/1024.
    { x: [0, 1, 32, 65535 / 1024], bits: 16, s: 1 / 1024, z: 0, q: [0, 1024, 32768, 65535], xh: [0, 1, 32, 65535 / 1024] },
    // 16 bits, negative values only: range 3 → s = fround(3/65535); the min comes back exactly.
    { x: [-4, -3, -1], bits: 16, s: f(3 / 65535), z: 4, q: [0, 21845, 65535], xh: [-4, f(21845 * f(3 / 65535) - 4), f(65535 * f(3 / 65535) - 4)] },
    // Huge range: (1e9 − 0)/255 ≫ 1e5, so s clamps to 1e5 (a float32 value); 5e4/1e5 = 0.5 is a tie → 0.
    { x: [0, 1e9, 5e4, 2e5], bits: 8, s: 1e5, z: 0, q: [0, 255, 0, 2], xh: [0, 2.55e7, 0, 2e5] },
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
  // A constant group: s clamps to 1e-5 (as float32), every code is 0 and x̂ = x exactly.
  for (const bits of BIT_WIDTHS) {
    for (const v of [0.7, -123.25, 0, 3e4]) {
      const x = new Float32Array(8).fill(v);
      const got = modQuant(x, bits);
      assert.equal(got.s, f(1e-5), `constant s @${bits}`);
      assert.deepEqual(got.q, new Array(8).fill(0));
      for (const y of got.xh) assert.ok(y === x[0], `constant ${v} @${bits}: ${y}`);
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
          // The min maps to code 0 and comes back exactly (x̂ = 0·s − (−min)); the max within s/2.
          assert.equal(got.q[iMin], 0);
          assert.equal(got.xh[iMin], grp[iMin], `${label}: min`);
          assert.ok(Math.abs(got.xh[iMax] - grp[iMax]) <= got.s / 2 + 2 ** -22 * (Math.abs(grp[iMax]) + got.z), `${label}: max`);
        }
        if (bits === 16) {
          // Idempotence: the second pass keeps the exact min, sees max within one float32 rounding,
          // so s moves by a few 2^-24 relative (+ ulp(max)/range), codes stay (grid points are far
          // from a rounding boundary), and each value moves by ≲ 2^-22·(range + |max value|).
          const twice = fake.slice();
          fakeQuantize(twice, 0, x.length, G, bits);
          for (let g = 0; g < 3; g++) {
            const grp = fake.subarray(g * G, (g + 1) * G);
            const range = Math.max(...grp) - Math.min(...grp);
            const big = Math.max(...Array.from(grp, Math.abs));
            for (let i = 0; i < G; i++) {
              const d = Math.abs(twice[g * G + i] - grp[i]);
              assert.ok(d <= 2 ** -20 * (range + big), `idempotence G=${G} trial ${trial}: moved ${d}`);
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
    const scales = new Float32Array(paramsOff + groups + 2).fill(-7);
    const zeros = new Float32Array(paramsOff + groups + 2).fill(-9);
    quantizeGroups(x, xOff, groups * G, G, bits, codes, codesOff, scales, zeros, paramsOff);
    const wantCodes: number[] = new Array(codesOff).fill(-1);
    const wantS: number[] = new Array(paramsOff).fill(-7), wantZ: number[] = new Array(paramsOff).fill(-9);
    for (let g = 0; g < groups; g++) {
      const ref = refQuant(x.subarray(xOff + g * G, xOff + (g + 1) * G), bits);
      wantCodes.push(...ref.q);
      wantS.push(ref.s);
      wantZ.push(ref.z);
    }
    wantCodes.push(-1, -1, -1);
    wantS.push(-7, -7);
    wantZ.push(-9, -9);
    assert.deepEqual(codes, wantCodes, `codes @${bits}`);
    assert.deepEqual(Array.from(scales), wantS, `scales @${bits}`);
    assert.deepEqual(Array.from(zeros), wantZ, `zeros @${bits}`);
  }
});
