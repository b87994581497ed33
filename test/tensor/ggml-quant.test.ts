// ggml's block formats: hand-built blocks whose values this test works out from the layout
// description by its own bit arithmetic (exact floats), the round-trip error of the reference
// quantizers within a named limit per format, and the Matrix constructor's checks.

import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import { GGML_TRAITS, ggmlTraitsByName, type GgmlTypeName } from "../../src/tensor/ggml-quant.js";
import { matrixRow, matrixToF32, quantMatrix, scaleMatrixRows } from "../../src/tensor/matrix.js";
import { release } from "../../src/tensor/memory.js";
import { randomArray, seededRandom } from "../helpers.js";

const dequant = (name: GgmlTypeName, block: Uint8Array, n: number): Float32Array => {
  const out = new Float32Array(n);
  ggmlTraitsByName(name).dequantizeRow(block, out, n);
  return out;
};
/** A pseudo-random byte pattern (no relation to any format). */
const pattern = (n: number, mul: number, add: number): number[] => Array.from({ length: n }, (_, i) => (i * mul + add) & 0xff);
const int8 = (b: number): number => (b >= 128 ? b - 256 : b);

test("Q8_0: f16 d then 32 int8; value = d·q", () => {
  const qs = pattern(32, 37, 5);
  const block = Uint8Array.from([0x00, 0xb8, ...qs]); // d = −0.5 (f16 0xb800, little-endian)
  assert.equal(block.length, ggmlTraitsByName("Q8_0").blockBytes);
  assert.deepEqual([...dequant("Q8_0", block, 32)], qs.map((b) => -0.5 * int8(b)));
});

test("Q4_0: f16 d then 16 bytes; low nibbles are elements 0…15, high nibbles 16…31; value = (nibble − 8)·d", () => {
  const qs = pattern(16, 53, 9);
  const block = Uint8Array.from([0x00, 0x40, ...qs]); // d = 2
  assert.equal(block.length, ggmlTraitsByName("Q4_0").blockBytes);
  const want = Array.from({ length: 32 }, (_, e) => 2 * ((e < 16 ? qs[e] & 15 : qs[e - 16] >> 4) - 8));
  assert.deepEqual([...dequant("Q4_0", block, 32)], want);
});

test("Q4_K: d, dmin, 12 bytes of 6-bit scales/mins, 128 qs; value = d·sc·q − dmin·m", () => {
  // scales[j] low 6 bits: sc 0…3 (bytes 0…3), m 0…3 (bytes 4…7); sc/m 4…7: low 4 bits from the
  // low/high nibble of bytes 8…11, high 2 bits from the top bits of bytes 0…3 / 4…7
  const scales = [0x41, 0x82, 0xc3, 0x04, 0x45, 0x86, 0xc7, 0x08, 0x9a, 0xbc, 0xde, 0xf1];
  const SC = [1, 2, 3, 4, 0xa | (1 << 4), 0xc | (2 << 4), 0xe | (3 << 4), 0x1];
  const M = [5, 6, 7, 8, 0x9 | (1 << 4), 0xb | (2 << 4), 0xd | (3 << 4), 0xf];
  const qs = pattern(128, 29, 3);
  const block = Uint8Array.from([0x00, 0x38, 0x00, 0x34, ...scales, ...qs]); // d = 0.5, dmin = 0.25
  assert.equal(block.length, ggmlTraitsByName("Q4_K").blockBytes);
  // each 32 qs bytes hold 64 values: sub-block 2k in their low nibbles, 2k + 1 in the high ones
  const want = Array.from({ length: 256 }, (_, e) => {
    const j = e >> 5, byte = qs[(j >> 1) * 32 + (e & 31)];
    return 0.5 * SC[j] * (j % 2 ? byte >> 4 : byte & 15) - 0.25 * M[j];
  });
  const got = dequant("Q4_K", block, 256);
  assert.deepEqual([...got], want);
  // two blocks in a row: the second starts 144 bytes on
  const two = Uint8Array.from([...block, ...block.map((b, i) => (i < 4 ? b : b ^ 0xff))]);
  assert.deepEqual([...dequant("Q4_K", two, 512).subarray(0, 256)], want);
});

test("Q6_K: ql[128], qh[64], int8 scales[16], f16 d; value = d·scale·(q − 32)", () => {
  const ql = pattern(128, 41, 7), qh = pattern(64, 23, 11);
  const scales = [-128, 127, -1, 1, 5, -7, 33, -64, 0, 2, -3, 100, -100, 12, 64, -5].map((v) => v & 0xff);
  const block = Uint8Array.from([...ql, ...qh, ...scales, 0x00, 0x30]); // d = 0.125
  assert.equal(block.length, ggmlTraitsByName("Q6_K").blockBytes);
  // per half of 128 values: low 4 bits of element r from ql[r] (r < 64) or the high nibble of
  // ql[r − 64]; its 2 high bits are bits 2·(r / 32) … of qh[r mod 32]
  const want = Array.from({ length: 256 }, (_, e) => {
    const h = e >> 7, r = e & 127;
    const low = r < 64 ? ql[h * 64 + r] & 15 : ql[h * 64 + r - 64] >> 4;
    const high = (qh[h * 32 + (r % 32)] >> (2 * Math.floor(r / 32))) & 3;
    return 0.125 * int8(scales[e >> 4]) * ((low | (high << 4)) - 32);
  });
  assert.deepEqual([...dequant("Q6_K", block, 256)], want);
});

test("F32, F16, BF16 rows: little-endian values", () => {
  assert.deepEqual([...dequant("F32", new Uint8Array(new Float32Array([1.5, -2]).buffer), 2)], [1.5, -2]);
  assert.deepEqual([...dequant("F16", Uint8Array.from([0x00, 0x3c, 0x00, 0xc0]), 2)], [1, -2]);
  assert.deepEqual([...dequant("BF16", Uint8Array.from([0x80, 0x3f, 0x40, 0xc0]), 2)], [1, -3]);
});

/** Round trip quantize → dequantize: RMS error / RMS of the data (as ggml's MAX_QUANTIZATION_TOTAL_ERROR, per format). */
export const MAX_QUANTIZATION_RMS_ERROR: Record<GgmlTypeName, number> = {
  F32: 0, F16: 3e-4, BF16: 2.5e-3, Q8_0: 5e-3, Q6_K: 2e-2, Q4_K: 7.5e-2, Q4_0: 8e-2,
};

for (const t of GGML_TRAITS) {
  test(`${t.name} round trip: relative RMS error ≤ ${MAX_QUANTIZATION_RMS_ERROR[t.name]}`, () => {
    const n = 4096, rand = seededRandom(7);
    const sets: [string, Float32Array][] = [
      ["uniform [−1, 1)", randomArray(n, rand)],
      ["0.1 + 2 cos(i + 0.3) (ggml's test data)", Float32Array.from({ length: n }, (_, i) => 0.1 + 2 * Math.cos(i + 0.3))],
      ["uniform ×1e−3", randomArray(n, rand, 1e-3)],
    ];
    for (const [label, x] of sets) {
      const raw = new Uint8Array((n / t.blockSize) * t.blockBytes);
      t.quantizeRow(x, raw, n);
      const y = new Float32Array(n);
      t.dequantizeRow(raw, y, n);
      let e = 0, s = 0;
      for (let i = 0; i < n; i++) {
        e += (x[i] - y[i]) ** 2;
        s += x[i] ** 2;
      }
      const err = Math.sqrt(e / s);
      assert.ok(err <= MAX_QUANTIZATION_RMS_ERROR[t.name], `${label}: ${err.toExponential(3)}`);
    }
    // all zeros stay zeros (no NaN from a zero scale)
    const raw = new Uint8Array((256 / t.blockSize) * t.blockBytes);
    t.quantizeRow(new Float32Array(256), raw, 256);
    const y = new Float32Array(256).fill(NaN);
    t.dequantizeRow(raw, y, 256);
    assert.ok(y.every((v) => v === 0));
  });
}

test("quantMatrix: checks the block count and byte length; rows dequantize; row scaling is refused", () => {
  const t = ggmlTraitsByName("Q4_K");
  const x = randomArray(3 * 512, seededRandom(3));
  const raw = new Uint8Array(3 * 2 * t.blockBytes);
  for (let r = 0; r < 3; r++) t.quantizeRow(x.subarray(r * 512), raw.subarray(r * 2 * t.blockBytes), 512);
  const m = quantMatrix("q4_k", 3, 512, raw);
  assert.equal(m.data.byteLength, raw.length);
  const want = new Float32Array(512), row = new Float32Array(512);
  t.dequantizeRow(raw.subarray(2 * 2 * t.blockBytes), want, 512);
  matrixRow(m, 2, row);
  assert.deepEqual(row, want);
  assert.deepEqual(matrixToF32(m).subarray(1024), want);
  assert.throws(() => quantMatrix("q4_k", 3, 500, raw), UsageError);
  assert.throws(() => quantMatrix("q4_k", 3, 512, raw.subarray(1)), UsageError);
  assert.throws(() => quantMatrix("q8_0", 3, 512, raw), UsageError); // 3 × 512 Q8_0 is 1632 bytes
  assert.throws(() => scaleMatrixRows(m, [1, 2, 3]), /re-quantize/);
  release(m.data);
});
