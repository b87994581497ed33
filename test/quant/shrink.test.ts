// Bit-width shrinking (spec §2): the integer trick vs the closed form vs an integer reference,
// the dequantized error of one step and of a chain, and shrinking vs direct quantization.

import assert from "node:assert/strict";
import { test } from "node:test";
import { quantizeGroups } from "../../src/quant/quantizer.js";
import { shrinkCode, shrinkCodeClosedForm, shrinkScale, shrinkTable } from "../../src/quant/shrink.js";
import { f16BitsToNumber } from "../../src/tensor/dtype.js";
import { nearest16 } from "../f16-ref.js";
import { randomArray, seededRandom } from "../helpers.js";

const f = Math.fround;

/** f16 values of a bit-pattern array. */
const values16 = (a: Uint16Array): number[] => Array.from(a, f16BitsToNumber);

/** ⌊q/d + 1/2⌋ = ⌊(2q + d) / 2d⌋ with d = 2^h + 1, in pure integer arithmetic. */
function refShrink(q: number, fromBits: number): number {
  const d = 2 ** (fromBits / 2) + 1;
  const num = 2 * q + d;
  return (num - (num % (2 * d))) / (2 * d);
}

/** Min and max of a group. */
function refRange(x: ArrayLike<number>): [number, number] {
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < x.length; i++) (mn = Math.min(mn, x[i])), (mx = Math.max(mx, x[i]));
  return [mn, mx];
}

// Exhaustive over every code of 16, 8, 4 and 2 bits: trick = closed form = reference = table.
test("shrinkCode = shrinkCodeClosedForm = ⌊q/(2^h+1) + 1/2⌋ = shrinkTable for every code", () => {
  for (const b of [16, 8, 4, 2]) {
    const h = b / 2, table = shrinkTable(b);
    assert.equal(table.length, 2 ** b);
    let prev = 0;
    for (let q = 0; q < 2 ** b; q++) {
      const want = refShrink(q, b);
      const trick = shrinkCode(q, b), closed = shrinkCodeClosedForm(q, b);
      if (trick !== want || closed !== want || table[q] !== want) {
        assert.fail(`b=${b} q=${q}: trick ${trick}, closed form ${closed}, table ${table[q]}, want ${want}`);
      }
      assert.ok(want <= 2 ** h - 1 && want >= prev, `b=${b} q=${q}: ${want} out of range or not monotone`);
      prev = want;
    }
    assert.equal(prev, 2 ** h - 1, `b=${b}: the top code maps to the top code`);
  }
  // A few by hand: 2 → 1 bit divides by 3; 4 → 2 by 5; 16 → 8 by 257.
  assert.deepEqual([0, 1, 2, 3].map((q) => shrinkCode(q, 2)), [0, 0, 1, 1]);
  assert.deepEqual([0, 2, 3, 7, 8, 15].map((q) => shrinkCode(q, 4)), [0, 0, 1, 1, 2, 3]);
  assert.deepEqual([128, 129, 385, 386, 65535].map((q) => shrinkCode(q, 16)), [0, 1, 1, 2, 255]);
});

// One step moves a dequantized value by at most s'/2, s' = s·(2^h+1): |q'(2^h+1) − q| ≤ (2^h+1)/2.
test("one shrink step: dequantized error ≤ s'/2", () => {
  const rand = seededRandom(11);
  for (const b of [16, 8, 4, 2]) {
    const d = 2 ** (b / 2) + 1;
    const trials = b === 16 ? 3 : 20;
    for (let t = 0; t < trials; t++) {
      // scales and zeros are f16 values; s' is s·(2^h+1) rounded to the nearest f16
      const s = nearest16(10 ** (rand() * 6 - 4)), z = nearest16(Math.abs((rand() * 2 - 1) * 2 ** b * s)) * (rand() < 0.5 ? -1 : 1);
      const s2 = nearest16(s * d);
      assert.equal(shrinkScale(s, b), s2, `shrinkScale(${s}, ${b})`);
      for (let q = 0; q < 2 ** b; q++) {
        const q2 = shrinkCode(q, b);
        if (Math.abs(q2 * d - q) > d / 2) assert.fail(`b=${b} q=${q}: integer error ${q2 * d - q}`);
        const before = f(q * s - z), after = f(q2 * s2 - z);
        // Slack: each x̂ rounded to float32 (2^-24 relative), and s' rounded to f16 (q'·|s' − s·d|).
        const tol = 2 ** -22 * (q * s + Math.abs(z) + s2) + q2 * Math.abs(s2 - s * d);
        if (!(Math.abs(after - before) <= s2 / 2 + tol)) assert.fail(`b=${b} q=${q} s=${s} z=${z}: moved ${after - before} > s'/2 = ${s2 / 2}`);
      }
    }
  }
});

// Chain 16 → 8 → 4 → 2 (→ 1) on a real quantized group. Bound, by the triangle inequality:
// |x̂_k − x| ≤ s16/2 + Σ_steps (s'/2 + q'·|s' − s·(2^h+1)|) — each step's s'/2 plus what
// rounding s' to f16 moves the codes' values.
test("chain 16 → 8 → 4 → 2 → 1 stays within the sum of half-steps", () => {
  const rand = seededRandom(5);
  const G = 128;
  for (let trial = 0; trial < 20; trial++) {
    const x = randomArray(G, rand, 10 ** (rand() * 3)); // range/65535 > 1e-5: no scale clamp
    const codes = new Uint16Array(G), sc = new Uint16Array(1), zs = new Uint16Array(1);
    quantizeGroups(x, 0, G, G, 16, codes, 0, sc, zs, 0);
    const [mn, mx] = refRange(x);
    const z = values16(zs)[0];
    assert.ok(z >= -mn && z - -mn <= 2 ** -10 * Math.abs(mn) + 2 ** -24, "z: the f16 at or just above −min");
    let s = values16(sc)[0], q = Array.from(codes), refQ = Array.from(codes), refS = s;
    assert.ok(s >= (mx + z) / 65535 && s <= ((mx + z) / 65535) * (1 + 2 ** -10) + 2 ** -24, "s: the f16 at or just above (max + z)/65535");
    let bound = s / 2;
    for (const b of [16, 8, 4, 2]) {
      const d = 2 ** (b / 2) + 1;
      q = q.map((c) => shrinkCode(c, b));
      const prev = s;
      s = shrinkScale(s, b);
      refQ = refQ.map((c) => refShrink(c, b));
      refS = nearest16(refS * d);
      assert.deepEqual(q, refQ, `codes after ${b} → ${b / 2}`);
      assert.equal(s, refS);
      bound += s / 2 + (2 ** (b / 2) - 1) * Math.abs(s - prev * d);
      for (let i = 0; i < G; i++) {
        const err = Math.abs(f(q[i] * s - z) - x[i]);
        const tol = 2 ** -21 * (Math.abs(x[i]) + Math.abs(z) + s);
        assert.ok(err <= bound + tol, `trial ${trial}, ${b / 2} bits, i=${i}: error ${err} > ${bound}`);
      }
    }
    // 16-bit codes shrunk to 1 bit: s1 ≈ s16·257·17·5·3 = s16·65535 ≈ max + z (each f16 rounding ≤ 2^-11).
    assert.ok(Math.abs(s - (mx + z)) <= 2 ** -8 * (mx + z), `s1 ${s} vs max + z ${mx + z}`);
  }
});

// One step b → h vs quantizing the floats directly at h bits. s' = s_b·(2^h+1) = range/(2^h−1) = s_direct,
// so |x̂_shrunk − x| ≤ s_b/2 + s'/2 = (s_direct/2)·(1 + 1/(2^h+1)) ≤ 2·(s_direct/2), the direct bound doubled.
test("shrinking vs direct quantization at the lower bit-width", (t) => {
  const rand = seededRandom(9);
  const G = 128, groups = 64, n = G * groups;
  const x = randomArray(n, rand, 3);
  for (const b of [16, 8, 4, 2]) {
    const h = b / 2, d = 2 ** h + 1;
    const qb = new Uint16Array(n), sbBits = new Uint16Array(groups), zbBits = new Uint16Array(groups);
    const qh = new Uint16Array(n), shBits = new Uint16Array(groups), zhBits = new Uint16Array(groups);
    quantizeGroups(x, 0, n, G, b, qb, 0, sbBits, zbBits, 0);
    quantizeGroups(x, 0, n, G, h, qh, 0, shBits, zhBits, 0);
    const [sb, zb, sh, zh] = [sbBits, zbBits, shBits, zhBits].map(values16);
    let sumShrunk = 0, sumDirect = 0, worstRatio = 0, differ = 0;
    for (let g = 0; g < groups; g++) {
      const [, mx] = refRange(x.subarray(g * G, (g + 1) * G));
      const sDirect = sh[g];
      const s2 = shrinkScale(sb[g], b);
      // both ≈ (max + z)/(2^h − 1), each rounded to f16 (s_b up, s' to nearest, s_direct up)
      assert.ok(Math.abs(s2 - sDirect) <= 2 ** -8 * sDirect, `b=${b} g=${g}: s' ${s2} vs s_direct ${sDirect}`);
      assert.ok(sDirect >= (mx + zh[g]) / (2 ** h - 1), "s_direct covers the range");
      for (let i = g * G; i < (g + 1) * G; i++) {
        const shrunk = Math.abs(f(refShrink(qb[i], b) * s2 - zb[g]) - x[i]);
        const direct = Math.abs(f(qh[i] * sh[g] - zh[g]) - x[i]);
        const tol = 2 ** -21 * (Math.abs(x[i]) + Math.abs(zb[g]) + sDirect) + (2 ** h - 1) * Math.abs(s2 - sb[g] * d);
        assert.ok(direct <= sDirect / 2 + tol, `direct b=${h}: ${direct}`);
        assert.ok(shrunk <= (s2 / 2) * (1 + 1 / d) + tol, `shrunk ${b}→${h}: ${shrunk} > tight bound`);
        assert.ok(shrunk <= 2 * (s2 / 2) + tol, `shrunk ${b}→${h}: ${shrunk} > 2 × s'/2`);
        if (refShrink(qb[i], b) !== qh[i]) differ++;
        sumShrunk += shrunk;
        sumDirect += direct;
        worstRatio = Math.max(worstRatio, shrunk / sDirect);
      }
    }
    // In exact arithmetic the shrunk codes equal the direct ones: the direct threshold (k + 1/2)·(2^h+1)
    // (in units of s_b) is a half-integer, i.e. also a rounding boundary of q. With f16 scales, s'
    // and s_direct are each rounded on their own (≤ 2^-10), so codes near a boundary may differ.
    assert.ok(differ <= n / 50, `${b}→${h}: ${differ} codes differ from direct quantization`);
    t.diagnostic(`${b}→${h} bits: MAE shrunk ${(sumShrunk / n).toExponential(4)}, direct ${(sumDirect / n).toExponential(4)}, ` +
      `ratio ${(sumShrunk / sumDirect).toFixed(4)}, worst shrunk error ${worstRatio.toFixed(4)}·s_direct, codes differing ${differ}/${n}`);
  }
});
