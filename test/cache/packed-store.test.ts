// PackedTokenStore: append = fake quantization bit for bit, moveOldestTo = the integer shrink
// chain, halve() within s'/2, heldBytes by the growth rule. Expectations come from references
// written independently: the quantizer's rule with f16 scales and zeros (test/f16-ref.ts), an
// arithmetic unpacker and the closed-form shrink.

import assert from "node:assert/strict";
import { test } from "node:test";
import { PackedTokenStore } from "../../src/cache/packed-store.js";
import { fakeQuantize } from "../../src/quant/quantizer.js";
import { nearest16, refFakeRow } from "../f16-ref.js";
import { f16BitsToNumber } from "../../src/tensor/dtype.js";
import { randomArray, seededRandom } from "../helpers.js";

const f = Math.fround;
const BITS = [16, 8, 4, 2, 1];
const LAYOUTS: [number, number][] = [[2 * 128, 128], [2 * 128, 8], [4 * 8, 8]]; // [rowElems, G]

/** Fake quantization of one row by the quantizer's rule (f16 s and z, test/f16-ref.ts). */
const refFake = refFakeRow;
/** ⌊q/(2^h+1) + 1/2⌋ in integers. */
const refShrink = (q: number, b: number): number => {
  const d = 2 ** (b / 2) + 1, num = 2 * q + d;
  return (num - (num % (2 * d))) / (2 * d);
};
const words = (rowElems: number, bits: number): number => Math.ceil((rowElems * bits) / 32);
/** Bytes held for `cap` rows: codes words × 4 + (scale + zero) × 2 bytes (f16) per group. */
const bytesFor = (cap: number, rowElems: number, G: number, bits: number): number => cap * (words(rowElems, bits) * 4 + (rowElems / G) * 4);
/** Capacity after growth to `tokens` (source doc: steps of growTokens, 0 = exactly what is held). */
const capFor = (tokens: number, grow: number): number => (grow > 0 ? Math.ceil(tokens / grow) * grow : tokens);

type Row = { codes: number[]; scales: number[]; zeros: number[]; deq: Float32Array };
/** Every held row, its codes unpacked arithmetically from the store's words. */
function snapshot(st: PackedTokenStore): Row[] {
  const rows: Row[] = [], gpr = st.rowElems / st.G, wpr = words(st.rowElems, st.bits), per = 32 / st.bits;
  for (let t = 0; t < st.length; t++) {
    const codes = Array.from({ length: st.rowElems }, (_, i) => Math.floor(st.codes[t * wpr + Math.floor(i / per)] / 2 ** ((i % per) * st.bits)) % 2 ** st.bits);
    const deq = new Float32Array(st.rowElems);
    st.dequantizeRow(t, deq);
    rows.push({ codes, scales: Array.from(st.scales.subarray(t * gpr, (t + 1) * gpr), f16BitsToNumber), zeros: Array.from(st.zeros.subarray(t * gpr, (t + 1) * gpr), f16BitsToNumber), deq });
  }
  return rows;
}
/** x̂ = fround(q·s − z) of a row from its codes, scales, zeros. */
const rowDeq = (r: Omit<Row, "deq">, G: number): Float32Array => Float32Array.from(r.codes, (q, i) => f(q * r.scales[Math.floor(i / G)] - r.zeros[Math.floor(i / G)]));

// Appended rows dequantize to exactly the fake-quantized floats, at every bit-width and layout.
test("appendFloats → dequantizeRow = fakeQuantize, bit for bit", () => {
  const rand = seededRandom(1);
  for (const [rowElems, G] of LAYOUTS) {
    for (const bits of BITS) {
      const n = 6, x = randomArray((n + 1) * rowElems, rand, 4);
      const st = new PackedTokenStore(rowElems, G, bits, 0, 4);
      st.appendFloats(x, rowElems, 2); // from an offset, in uneven chunks
      st.appendFloats(x, 3 * rowElems, 4);
      const fake = x.slice(rowElems);
      fakeQuantize(fake, 0, n * rowElems, G, bits);
      const rows = snapshot(st);
      assert.equal(rows.length, n);
      for (let t = 0; t < n; t++) {
        const want = refFake(x.subarray((t + 1) * rowElems, (t + 2) * rowElems), G, bits);
        assert.deepEqual(rows[t].deq, want, `${rowElems}/${G} @${bits} row ${t}: reference`);
        assert.deepEqual(rows[t].deq, fake.subarray(t * rowElems, (t + 1) * rowElems), `row ${t}: fakeQuantize`);
        assert.deepEqual(rowDeq(rows[t], G), want, `row ${t}: codes·scales − zeros`);
        for (const q of rows[t].codes) assert.ok(q <= 2 ** bits - 1);
      }
    }
  }
});

// moveOldestTo: oldest rows move in order through the shrink chain; the rest stay in order.
test("moveOldestTo shrinks the oldest rows into a lower-bit store", () => {
  const rand = seededRandom(2);
  for (const [rowElems, G] of LAYOUTS) {
    for (const from of [16, 8, 4, 2]) {
      for (const to of BITS.filter((b) => b < from)) {
        const src = new PackedTokenStore(rowElems, G, from, 0, 4);
        const dst = new PackedTokenStore(rowElems, G, to, 0, 0);
        src.appendFloats(randomArray(7 * rowElems, rand, 3), 0, 7);
        dst.appendFloats(randomArray(2 * rowElems, rand, 3), 0, 2);
        const before = snapshot(src), dstBefore = snapshot(dst);
        src.moveOldestTo(dst, 3);
        src.moveOldestTo(dst, 2);
        const label = `${rowElems}/${G} ${from}→${to}`;
        const after = snapshot(src), moved = snapshot(dst);
        assert.equal(src.length, 2);
        assert.equal(dst.length, 7);
        assert.deepEqual(after, before.slice(5), `${label}: source keeps rows 5, 6 in order`);
        assert.deepEqual(moved.slice(0, 2), dstBefore, `${label}: dest's own rows untouched`);
        for (let t = 0; t < 5; t++) {
          const old = before[t];
          assert.deepEqual(rowDeq(old, G), old.deq, "source codes consistent with its dequantized row");
          let codes = old.codes, scales = old.scales;
          for (let b = from; b > to; b /= 2) {
            codes = codes.map((q) => refShrink(q, b));
            scales = scales.map((s) => nearest16(s * (2 ** (b / 2) + 1)));
          }
          const want = { codes, scales, zeros: old.zeros };
          const got = moved[2 + t];
          assert.deepEqual({ codes: got.codes, scales: got.scales, zeros: got.zeros }, want, `${label}: moved row ${t}`);
          assert.deepEqual(got.deq, rowDeq(want, G), `${label}: moved row ${t} dequantized`);
        }
      }
    }
  }
});

// halve(): one shrink step for every row, each value within s'/2; heldBytes follows the growth rule.
test("halve(): bits halve, values move ≤ s'/2, heldBytes by the growth rule", () => {
  const rand = seededRandom(3);
  for (const [rowElems, G] of LAYOUTS) {
    for (const grow of [0, 3]) {
      const st = new PackedTokenStore(rowElems, G, 16, 0, grow);
      st.appendFloats(randomArray(5 * rowElems, rand, 2), 0, 2);
      st.appendFloats(randomArray(5 * rowElems, rand, 2), 0, 3);
      assert.equal(st.heldBytes(), bytesFor(capFor(5, grow), rowElems, G, 16), "held after appends");
      for (let from = 16; from > 1; from /= 2) {
        const to = from / 2, label = `${rowElems}/${G} grow ${grow} ${from}→${to}`;
        const before = snapshot(st), heldBefore = st.heldBytes();
        st.halve();
        assert.equal(st.bits, to);
        assert.equal(st.wordsPerRow, words(rowElems, to));
        const after = snapshot(st);
        assert.equal(after.length, before.length);
        for (let t = 0; t < before.length; t++) {
          const want = { codes: before[t].codes.map((q) => refShrink(q, from)), scales: before[t].scales.map((s) => nearest16(s * (2 ** to + 1))), zeros: before[t].zeros };
          assert.deepEqual({ codes: after[t].codes, scales: after[t].scales, zeros: after[t].zeros }, want, `${label} row ${t}`);
          for (let i = 0; i < rowElems; i++) {
            const s2 = want.scales[Math.floor(i / G)], z = want.zeros[Math.floor(i / G)];
            const moved = Math.abs(after[t].deq[i] - before[t].deq[i]);
            // Slack: two float32 roundings of x̂, and s' rounded to f16 (q'·|s' − s·(2^h+1)|).
            const sBefore = before[t].scales[Math.floor(i / G)];
            const tol = 2 ** -22 * (Math.abs(before[t].deq[i]) + Math.abs(z) + s2) + after[t].codes[i] * Math.abs(s2 - sBefore * (2 ** to + 1));
            assert.ok(moved <= s2 / 2 + tol, `${label} row ${t} [${i}]: moved ${moved} > s'/2 = ${s2 / 2}`);
          }
        }
        const held = bytesFor(capFor(5, grow), rowElems, G, to);
        assert.equal(st.heldBytes(), held, `${label}: heldBytes`);
        assert.ok(held < heldBefore, `${label}: heldBytes shrinks`);
        assert.equal(st.codeBytes(), (5 * rowElems * to) / 8);
      }
      // The halved store keeps working: appended rows quantize at 1 bit, older rows unchanged.
      const old = snapshot(st), x = randomArray(2 * rowElems, rand, 2);
      st.appendFloats(x, 0, 2);
      const now = snapshot(st);
      assert.deepEqual(now.slice(0, 5), old);
      for (let t = 0; t < 2; t++) assert.deepEqual(now[5 + t].deq, refFake(x.subarray(t * rowElems, (t + 1) * rowElems), G, 1));
      assert.equal(st.heldBytes(), bytesFor(capFor(7, grow), rowElems, G, 1));
    }
  }
});

// heldBytes while appending and moving: capacity = ⌈tokens / grow⌉·grow (or exactly the tokens held).
test("heldBytes = capacity × (words × 4 + groups × 4) as rows arrive", () => {
  for (const [rowElems, G] of LAYOUTS) {
    for (const bits of BITS) {
      for (const grow of [0, 1, 4, 16]) {
        const st = new PackedTokenStore(rowElems, G, bits, 0, grow);
        const dst = new PackedTokenStore(rowElems, G, bits, 0, grow);
        assert.equal(st.heldBytes(), 0);
        const x = new Float32Array(rowElems).map((_, i) => Math.sin(i));
        let maxCap = 0;
        for (let n = 1; n <= 9; n++) {
          st.appendFloats(x, 0, 1);
          maxCap = Math.max(maxCap, capFor(n, grow));
          assert.equal(st.heldBytes(), bytesFor(maxCap, rowElems, G, bits), `${rowElems}/${G} @${bits} grow ${grow}, ${n} rows`);
        }
        st.moveOldestTo(dst, 4); // the source never shrinks its buffers on a move
        assert.equal(st.heldBytes(), bytesFor(maxCap, rowElems, G, bits));
        assert.equal(dst.heldBytes(), bytesFor(capFor(4, grow), rowElems, G, bits));
      }
    }
  }
});

// An initial capacity that is not a multiple of growTokens, then halve(), then append: halve() sizes
// codes for ⌈length/grow⌉·grow rows but slices scales/zeros from the smaller old arrays.
test("halve() with initialTokens not a multiple of growTokens keeps scales and zeros for the whole capacity", () => {
  const rowElems = 32, G = 8, rand = seededRandom(4);
  const st = new PackedTokenStore(rowElems, G, 8, 5, 4);
  const x = randomArray(7 * rowElems, rand, 2);
  st.appendFloats(x, 0, 5);
  st.halve();
  assert.equal(st.heldBytes(), bytesFor(capFor(5, 4), rowElems, G, 4), "heldBytes after halve");
  st.appendFloats(x, 5 * rowElems, 2);
  const rows = snapshot(st);
  for (let t = 5; t < 7; t++) assert.deepEqual(rows[t].deq, refFake(x.subarray(t * rowElems, (t + 1) * rowElems), G, 4), `row ${t}`);
});
