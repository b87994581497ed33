// Dense bit packing: exhaustive round trips, odd lengths, hand-computed word layouts, density.
// Expected words are computed arithmetically (Σ code·2^(k·b)), without bit operations.

import assert from "node:assert/strict";
import { test } from "node:test";
import { packCodes, unpackCodes, wordsFor } from "../../src/quant/pack.js";
import { seededRandom } from "../helpers.js";

const BITS = [1, 2, 4, 8, 16];
const SENTINEL = 0xdeadbeef;

/** Reference layout: code i goes to word ⌊i/per⌋ at bit (i mod per)·b, first code lowest. */
function refWords(codes: ArrayLike<number>, bits: number): number[] {
  const per = 32 / bits;
  const words: number[] = new Array(Math.ceil(codes.length / per)).fill(0);
  for (let i = 0; i < codes.length; i++) words[Math.floor(i / per)] += codes[i] * 2 ** ((i % per) * bits);
  return words;
}

/** Packs at an offset into a sentinel-filled buffer; returns the whole buffer. */
function packInto(codes: ArrayLike<number>, codesOff: number, n: number, bits: number, outOff: number, extra = 3): Uint32Array {
  const out = new Uint32Array(outOff + wordsFor(n, bits) + extra).fill(SENTINEL);
  packCodes(codes, codesOff, n, bits, out, outOff);
  return out;
}

// Every code value in every slot of a word: code i = (i + ⌊i/per⌋) mod 2^b over per·2^b codes
// (slot k of word w holds (per+1)·w + k, and per+1 is odd, so w ↦ value is a bijection).
test("exhaustive round trip: every code at every slot, bits 1 … 16", () => {
  for (const bits of BITS) {
    const per = 32 / bits, m = 2 ** bits, n = per * m;
    const codes = new Uint16Array(n);
    for (let i = 0; i < n; i++) codes[i] = (i + Math.floor(i / per)) % m;
    const out = packInto(codes, 0, n, bits, 0, 0);
    assert.equal(out.length, m, `words @${bits}`);
    assert.deepEqual(Array.from(out), refWords(codes, bits), `layout @${bits}`);
    const back = new Uint16Array(n);
    unpackCodes(out, 0, n, bits, back, 0);
    assert.deepEqual(back, codes, `round trip @${bits}`);
    // The plain ascending sequence 0 … 2^b − 1 as well (all 65536 codes for 16 bits).
    const asc = Uint16Array.from({ length: m }, (_, i) => i);
    const back2 = new Uint16Array(m);
    unpackCodes(packInto(asc, 0, m, bits, 0, 0), 0, m, bits, back2, 0);
    assert.deepEqual(back2, asc, `ascending @${bits}`);
  }
});

// Lengths that are not multiples of codes-per-word, at offsets; words/codes beyond are untouched.
test("odd lengths and offsets round-trip; nothing beyond is written", () => {
  const rand = seededRandom(3);
  for (const bits of BITS) {
    for (const n of [1, 3, 17, 33, 100]) {
      const codesOff = 4, outOff = 2;
      const src = Array.from({ length: codesOff + n + 5 }, () => Math.floor(rand() * 2 ** bits));
      const out = packInto(src, codesOff, n, bits, outOff);
      const want = [SENTINEL, SENTINEL, ...refWords(src.slice(codesOff, codesOff + n), bits), SENTINEL, SENTINEL, SENTINEL];
      assert.deepEqual(Array.from(out), want, `pack @${bits} n=${n}`);
      const back = new Array(3 + n + 4).fill(-1);
      unpackCodes(out, outOff, n, bits, back, 3);
      assert.deepEqual(back, [-1, -1, -1, ...src.slice(codesOff, codesOff + n), -1, -1, -1, -1], `unpack @${bits} n=${n}`);
      if (bits <= 8) {
        const u8 = new Uint8Array(n);
        unpackCodes(out, outOff, n, bits, u8, 0);
        assert.deepEqual(Array.from(u8), src.slice(codesOff, codesOff + n), `unpack to Uint8Array @${bits} n=${n}`);
      }
    }
  }
});

// Hand-computed words, unsigned; and wordsFor = ⌈n·b/32⌉ by hand.
test("layout against hand-computed words; wordsFor", () => {
  const cases: [number[], number, number[]][] = [
    [[1, 2, 3, 0, 1], 2, [1 | (2 << 2) | (3 << 4) | (0 << 6) | (1 << 8)]], // = 0x139
    [[0xabcd, 0x1234], 16, [0x1234abcd]],
    [[0xabcd, 0x1234, 0xffff], 16, [0x1234abcd, 0x0000ffff]],
    [new Array(32).fill(1), 1, [0xffffffff]],
    [[1, 0, 1, 1], 1, [0b1101]],
    [[0x12, 0x34, 0x56, 0x78, 0xff], 8, [0x78563412, 0xff]],
    [[0, 0, 0, 0xff], 8, [0xff000000]],
    [[0xf, 0, 0, 0, 0, 0, 0, 0xf], 4, [0xf000000f]],
    [[0xffff, 0xffff], 16, [0xffffffff]],
  ];
  assert.equal(cases[0][2][0], 0x139);
  for (const [codes, bits, words] of cases) {
    const out = packInto(codes, 0, codes.length, bits, 0, 0);
    assert.deepEqual(Array.from(out), words, `[${codes.map((c) => c.toString(16))}] @${bits}`);
    for (const w of out) assert.ok(w >= 0 && w <= 0xffffffff);
    const back: number[] = new Array(codes.length).fill(0);
    unpackCodes(out, 0, codes.length, bits, back, 0);
    assert.deepEqual(back, codes);
  }
  const sizes: [number, number, number][] = [
    [0, 4, 0], [1, 1, 1], [32, 1, 1], [33, 1, 2], [5, 2, 1], [16, 2, 1], [17, 2, 2], [8, 4, 1], [9, 4, 2],
    [4, 8, 1], [5, 8, 2], [1, 16, 1], [2, 16, 1], [3, 16, 2], [256, 2, 16], [256, 16, 128], [128, 1, 4],
  ];
  for (const [n, bits, want] of sizes) assert.equal(wordsFor(n, bits), want, `wordsFor(${n}, ${bits})`);
});

// Density: codes fill words completely — 16 codes of 2 bits are exactly one 32-bit word.
test("density: 16 two-bit codes use exactly one word", () => {
  const codes = [3, 0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3, 1, 2, 0];
  assert.equal(wordsFor(16, 2), 1);
  const out = packInto(codes, 0, 16, 2, 1, 2);
  assert.equal(out[0], SENTINEL);
  assert.equal(out[2], SENTINEL, "second word untouched");
  assert.equal(out[1], refWords(codes, 2)[0]);
  const back: number[] = new Array(16).fill(0);
  unpackCodes(out, 1, 16, 2, back, 0);
  assert.deepEqual(back, codes);
  for (const bits of BITS) assert.equal(wordsFor(1024, bits) * 32, 1024 * bits, `no padding bits @${bits}`);
});
