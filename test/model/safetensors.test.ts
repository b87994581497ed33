// The safetensors reader and writer: malformed files built byte by byte must be refused with a
// CheckpointError that names the file (and tensor), valid ones must read back exactly.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { CheckpointError } from "../../src/errors.js";
import {
  encodeSafetensors, MAX_HEADER_BYTES, readSafetensorsHeader, SafetensorsFile, writeSafetensors,
} from "../../src/model/safetensors.js";
import { randomArray, seededRandom, tempDir } from "../helpers.js";

const dir = tempDir();
let fileCount = 0;

/** Our own encoder: u64 LE header length (or `len`) + header (JSON.stringify'd unless a string) + data. */
function rawSafetensors(header: unknown, data: Uint8Array | number = 0, len?: bigint): Buffer {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(len ?? BigInt(json.length));
  return Buffer.concat([lenBuf, json, typeof data === "number" ? Buffer.alloc(data) : data]);
}

function writeTemp(bytes: Uint8Array): string {
  const file = path.join(dir, `t${fileCount++}.safetensors`);
  fs.writeFileSync(file, bytes);
  return file;
}

const f32Bytes = (values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);
const u16Bytes = (values: number[]): Uint8Array => new Uint8Array(new Uint16Array(values).buffer);

/** Asserts `fn` throws a CheckpointError whose message contains the file path and every one of `parts`. */
function assertCheckpointError(fn: () => unknown, file: string, parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${String(e)}`);
    for (const part of [file, ...parts]) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
    return true;
  });
}

const w = (dtype: unknown, shape: unknown, data_offsets: unknown) => ({ dtype, shape, data_offsets });

// Malformed files: each is refused by readSafetensorsHeader and by the SafetensorsFile constructor.
const MALFORMED: { name: string; bytes: () => Uint8Array; expect: string[] }[] = [
  { name: "empty file", bytes: () => new Uint8Array(0), expect: ["truncated", "0 bytes"] },
  { name: "file shorter than 8 bytes", bytes: () => new Uint8Array([2, 0, 0]), expect: ["truncated", "3 bytes"] },
  { name: "header length larger than the file", bytes: () => rawSafetensors("{}", 0, 1000n), expect: ["truncated", "1000 header bytes", "only 2"] },
  { name: "header length 2^40, above MAX_HEADER_BYTES", bytes: () => rawSafetensors("{}", 0, 2n ** 40n), expect: ["1099511627776", `${MAX_HEADER_BYTES}-byte bound`] },
  { name: "header length 2^64 - 1", bytes: () => rawSafetensors("{}", 0, 2n ** 64n - 1n), expect: ["18446744073709551615", "bound"] },
  { name: "header not JSON", bytes: () => rawSafetensors('{"w": {'), expect: ["header is not valid JSON"] },
  { name: "header a JSON array", bytes: () => rawSafetensors("[1, 2]"), expect: ["header is not a JSON object"] },
  { name: "header JSON null", bytes: () => rawSafetensors("null"), expect: ["header is not a JSON object"] },
  { name: "tensor entry not an object", bytes: () => rawSafetensors({ w: 5 }), expect: ['tensor "w"', "entry is not an object"] },
  { name: "unknown dtype F33", bytes: () => rawSafetensors({ w: w("F33", [1], [0, 4]) }, 4), expect: ['tensor "w"', 'unknown dtype "F33"', "F32"] },
  { name: "dtype missing", bytes: () => rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, 4), expect: ['tensor "w"', "unknown dtype"] },
  { name: "shape not a list", bytes: () => rawSafetensors({ w: w("F32", "3", [0, 12]) }, 12), expect: ['tensor "w"', 'shape "3"', "not a list of non-negative integers"] },
  { name: "negative dim", bytes: () => rawSafetensors({ w: w("F32", [2, -1], [0, 8]) }, 8), expect: ['tensor "w"', "shape [2,-1]", "non-negative integers"] },
  { name: "non-integer dim", bytes: () => rawSafetensors({ w: w("F32", [1.5], [0, 6]) }, 6), expect: ['tensor "w"', "shape [1.5]", "integers"] },
  { name: "data_offsets missing", bytes: () => rawSafetensors({ w: { dtype: "F32", shape: [1] } }, 4), expect: ['tensor "w"', "data_offsets", "[begin, end]"] },
  { name: "data_offsets of length 1", bytes: () => rawSafetensors({ w: w("F32", [1], [4]) }, 4), expect: ['tensor "w"', "data_offsets [4]", "[begin, end]"] },
  { name: "data_offsets of length 3", bytes: () => rawSafetensors({ w: w("F32", [1], [0, 4, 8]) }, 8), expect: ['tensor "w"', "data_offsets [0,4,8]"] },
  { name: "data_offsets begin > end", bytes: () => rawSafetensors({ w: w("F32", [1], [8, 4]) }, 8), expect: ['tensor "w"', "data_offsets [8,4]", "begin <= end"] },
  { name: "negative data_offsets", bytes: () => rawSafetensors({ w: w("F32", [1], [-4, 0]) }, 4), expect: ['tensor "w"', "data_offsets [-4,0]"] },
  {
    name: "shape × dtype size ≠ offsets span",
    bytes: () => rawSafetensors({ ok: w("F16", [2], [0, 4]), w: w("F32", [2, 3], [4, 24]) }, 24),
    expect: ['tensor "w"', "shape [2,3] × F32 (4 B) = 24 bytes", "span 20"],
  },
  {
    name: "offsets beyond the data section (valid file cut short by 4 bytes)",
    bytes: () => rawSafetensors({ a: w("F32", [2], [0, 8]), w: w("F32", [2, 2], [8, 24]) }, f32Bytes([1, 2, 3, 4, 5, 6])).subarray(0, -4),
    expect: ['tensor "w"', "data ends at byte 24", "only 20 data bytes", "truncated"],
  },
  {
    name: "two tensors overlapping",
    bytes: () => rawSafetensors({ a: w("F32", [4], [0, 16]), b: w("F32", [4], [8, 24]) }, 24),
    expect: ['tensor "b" overlaps tensor "a"'],
  },
  {
    name: "two tensors on the same bytes",
    bytes: () => rawSafetensors({ a: w("I32", [2], [0, 8]), b: w("F32", [2], [0, 8]) }, 8),
    expect: ['tensor "a"', 'tensor "b"', "overlaps"],
  },
  { name: "__metadata__ with a non-string value", bytes: () => rawSafetensors({ __metadata__: { format: "pt", n: 3 } }), expect: ["__metadata__.n is not a string"] },
  { name: "__metadata__ not an object", bytes: () => rawSafetensors({ __metadata__: ["pt"] }), expect: ["__metadata__ is not an object"] },
];
for (const c of MALFORMED) {
  test(`refused: ${c.name}`, () => {
    const file = writeTemp(c.bytes());
    assertCheckpointError(() => readSafetensorsHeader(file), file, c.expect);
    assertCheckpointError(() => new SafetensorsFile(file), file, c.expect);
  });
}

test("refused: nonexistent file path", () => {
  const file = path.join(dir, "no-such-dir", "model.safetensors");
  assertCheckpointError(() => readSafetensorsHeader(file), file, ["cannot open", "ENOENT"]);
  assertCheckpointError(() => new SafetensorsFile(file), file, ["cannot open"]);
});

// Regression test (fixed): overlap used to be checked only against the previous tensor by offset, so an empty tensor in between hid it.
test("refused: overlap hidden behind a zero-length tensor", () => {
  const file = writeTemp(rawSafetensors({ a: w("F32", [10], [0, 40]), e: w("F32", [0], [8, 8]), c: w("F32", [2], [12, 20]) }, 40));
  assertCheckpointError(() => readSafetensorsHeader(file), file, ["overlaps", 'tensor "a"']);
});

// Reading: non-float dtypes, unknown names and wrong destinations are refused.
test("readF32 of an I32 tensor is refused, naming the supported dtypes", () => {
  const file = writeTemp(rawSafetensors({ ids: w("I32", [3], [0, 12]) }, new Uint8Array(new Int32Array([1, -2, 3]).buffer)));
  const st = new SafetensorsFile(file);
  try {
    assertCheckpointError(() => st.readF32("ids"), file, ['tensor "ids"', "dtype I32", "supported: F32, F16, BF16"]);
    assert.deepEqual([...new Int32Array(st.readBytes("ids").slice().buffer)], [1, -2, 3]);
    assertCheckpointError(() => st.readF32("nope"), file, ['no tensor "nope"']);
  } finally {
    st.close();
  }
});

test("readF32 into a destination of the wrong length is refused", () => {
  const file = writeTemp(rawSafetensors({ w: w("F32", [2, 2], [0, 16]) }, f32Bytes([1, 2, 3, 4])));
  const st = new SafetensorsFile(file);
  try {
    assertCheckpointError(() => st.readF32("w", new Float32Array(3)), file, ['tensor "w"', "4 elements", "destination 3"]);
  } finally {
    st.close();
  }
});

/** Write float tensors with writeSafetensors, read every one back with readF32. */
function roundTrip(tensors: Parameters<typeof writeSafetensors>[1], metadata?: Record<string, string>) {
  const file = path.join(dir, `rt${fileCount++}.safetensors`);
  writeSafetensors(file, tensors, metadata);
  const st = new SafetensorsFile(file);
  try {
    const values = new Map(st.names.map((n) => [n, st.readF32(n)]));
    return { header: st.header, values, bytes: fs.readFileSync(file) };
  } finally {
    st.close();
  }
}

/** Round x to p fraction bits, exponents down to emin, overflow past 2^(emax+1), half to even (arithmetic reference). */
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

// Round trips: F32 bit-exact; F16 and BF16 equal to independently rounded values.
test("F32 round-trips bit-exactly, with header offsets matching the bytes on disk", () => {
  const x = randomArray(24, seededRandom(1), 100);
  x.set([-0, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38]);
  const { header, values, bytes } = roundTrip([{ name: "x", dtype: "F32", shape: [2, 3, 4], data: x }]);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  assert.equal(header.dataStart, 8 + headerLen);
  assert.equal(header.fileBytes, bytes.length);
  assert.deepEqual(header.tensors.get("x"), { name: "x", dtype: "F32", shape: [2, 3, 4], begin: 8 + headerLen, end: 8 + headerLen + 96 });
  assert.ok(Buffer.from(values.get("x")!.buffer).equals(Buffer.from(x.buffer)));
});

const HAND_PICKED = [1, -2.5, 0.1, 65504, 1e-8, 3.14159];
const HALF_FORMATS = [
  // dtype, hand-computed results for HAND_PICKED, fraction bits, min exponent, max exponent, relative precision
  { dtype: "F16", want: [1, -2.5, 1638 / 16384, 65504, 0, 3.140625], p: 10, emin: -14, emax: 15, rel: 2 ** -11 },
  { dtype: "BF16", want: [1, -2.5, 205 / 2048, 65536, 172 * 2 ** -34, 3.140625], p: 7, emin: -126, emax: 127, rel: 2 ** -8 },
] as const;
for (const fmt of HALF_FORMATS) {
  test(`${fmt.dtype} round-trips hand-picked and random values to the nearest-even representable value`, () => {
    const rand = seededRandom(fmt.p);
    const random = new Float32Array(2000).map(() => (rand() < 0.5 ? -1 : 1) * (1 + rand()) * 2 ** Math.floor(rand() * 24 - 12));
    const { values } = roundTrip([
      { name: "hand", dtype: fmt.dtype, shape: [HAND_PICKED.length], data: new Float32Array(HAND_PICKED) },
      { name: "random", dtype: fmt.dtype, shape: [40, 50], data: random },
    ]);
    assert.deepEqual([...values.get("hand")!], [...fmt.want]);
    const got = values.get("random")!;
    for (let i = 0; i < random.length; i++) {
      assert.equal(got[i], refRound(random[i], fmt.p, fmt.emin, fmt.emax), `x = ${random[i]}`);
      assert.ok(Math.abs(got[i] - random[i]) <= fmt.rel * Math.abs(random[i]), `relative error at ${random[i]}`);
    }
  });
}

// Metadata, empty and scalar tensors, integer tensors.
test("metadata round-trips; a file without it has empty metadata", () => {
  const metadata = { format: "pt", note: "héllo ✓", empty: "" };
  assert.deepEqual(roundTrip([{ name: "x", dtype: "F32", shape: [1], data: new Float32Array([7]) }], metadata).header.metadata, metadata);
  assert.deepEqual(roundTrip([{ name: "x", dtype: "F32", shape: [1], data: new Float32Array([7]) }]).header.metadata, {});
});

test("zero-element and scalar tensors read back", () => {
  const { header, values } = roundTrip([
    { name: "empty", dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    { name: "scalar", dtype: "BF16", shape: [], data: new Float32Array([-2.5]) },
    { name: "empty16", dtype: "F16", shape: [3, 0], data: new Float32Array(0) },
  ]);
  const empty = header.tensors.get("empty")!;
  assert.deepEqual([empty.shape, empty.end - empty.begin], [[0, 4], 0]);
  assert.deepEqual([...values.get("empty")!], []);
  assert.deepEqual([...values.get("empty16")!], []);
  assert.deepEqual([...values.get("scalar")!], [-2.5]);
});

test("integer tensors are written as their raw little-endian bytes", () => {
  const file = path.join(dir, "ints.safetensors");
  writeSafetensors(file, [
    { name: "i32", dtype: "I32", shape: [2], data: new Int32Array([1, -2]) },
    { name: "i64", dtype: "I64", shape: [1], data: new BigInt64Array([-3n]) },
    { name: "u8", dtype: "U8", shape: [3], data: new Uint8Array([0, 128, 255]) },
  ]);
  const st = new SafetensorsFile(file);
  try {
    assert.deepEqual([...st.readBytes("i32")], [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
    assert.deepEqual([...st.readBytes("i64")], [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual([...st.readBytes("u8")], [0, 128, 255]);
  } finally {
    st.close();
  }
});

// A hand-built file whose tensors are stored in a different order than the header lists them.
test("tensors stored out of order (offsets not sorted) read correctly", () => {
  const data = Buffer.concat([u16Bytes([0x3f80, 0xc020]), f32Bytes([5, 6]), u16Bytes([0x3c00, 0xc000, 0x7bff]), f32Bytes([1, 2, 3, 4])]);
  const file = writeTemp(rawSafetensors({
    a: w("F32", [2, 2], [18, 34]), h: w("F16", [3], [12, 18]), __metadata__: { k: "v" }, b: w("F32", [2], [4, 12]), bf: w("BF16", [2], [0, 4]),
  }, data));
  const st = new SafetensorsFile(file);
  try {
    assert.deepEqual(st.names, ["a", "h", "b", "bf"]);
    assert.deepEqual([...st.readF32("a")], [1, 2, 3, 4]);
    assert.deepEqual([...st.readF32("b")], [5, 6]);
    assert.deepEqual([...st.readF32("h")], [1, -2, 65504]);
    assert.deepEqual([...st.readF32("bf")], [1, -2.5]);
    const out = new Float32Array(4);
    assert.equal(st.readF32("a", out), out);
    assert.deepEqual([...out], [1, 2, 3, 4]);
  } finally {
    st.close();
  }
});

// Regression test (fixed): padding used to count UTF-16 units, not UTF-8 bytes, so non-ASCII headers left the data unaligned.
test("encodeSafetensors aligns the data section to 8 bytes with a non-ASCII header", () => {
  const bytes = encodeSafetensors([{ name: "x", dtype: "F32", shape: [1], data: new Float32Array([1]) }], { note: "é" });
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
});

// As strict as the reference implementation: the tensors tile the data section exactly.
const TILING: { name: string; bytes: () => Uint8Array; expect: string[] }[] = [
  { name: "a gap between two tensors", bytes: () => rawSafetensors({ a: w("F32", [1], [0, 4]), b: w("F32", [1], [8, 12]) }, 12), expect: ["bytes 4 … 8 of the data section are not covered by any tensor"] },
  { name: "a gap before the first tensor", bytes: () => rawSafetensors({ a: w("F32", [1], [4, 8]) }, 8), expect: ["bytes 0 … 4 of the data section are not covered"] },
  { name: "bytes after the last tensor", bytes: () => rawSafetensors({ a: w("F32", [1], [0, 4]) }, 6), expect: ["2 bytes after the last tensor"] },
  { name: "data but no tensor", bytes: () => rawSafetensors({ __metadata__: { k: "v" } }, 3), expect: ["3 bytes after the last tensor"] },
  { name: "an empty tensor inside another", bytes: () => rawSafetensors({ a: w("F32", [2], [0, 8]), e: w("F16", [0], [4, 4]) }, 8), expect: ['tensor "e" overlaps tensor "a"'] },
  { name: "an empty tensor past the end", bytes: () => rawSafetensors({ a: w("F32", [2], [0, 8]), e: w("F16", [0], [12, 12]) }, 8), expect: ['tensor "e"', "data ends at byte 12"] },
  { name: "header not opening with {", bytes: () => rawSafetensors(' {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 4), expect: ['must start with "{"', "0x20"] },
  { name: "an empty header", bytes: () => rawSafetensors(""), expect: ["header is not a JSON object", "empty"] },
  { name: "a tensor named twice", bytes: () => rawSafetensors('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', 8), expect: ['header has a duplicate key "w" at $'] },
  { name: "a duplicate key inside an entry", bytes: () => rawSafetensors('{"w": {"dtype": "F32", "shape": [2], "shape": [1], "data_offsets": [0, 4]}}', 4), expect: ['duplicate key "shape" at $.w'] },
  { name: "a header that is not UTF-8", bytes: () => Buffer.concat([rawSafetensors("{}").subarray(0, 8), Buffer.from([0x7b, 0xff])]).fill(2, 0, 1), expect: ["header is not valid UTF-8"] },
  { name: "dtype naming an Object property", bytes: () => rawSafetensors({ w: w("toString", [1], [0, 4]) }, 4), expect: ['unknown dtype "toString"'] },
  { name: "a tensor entry that is a list", bytes: () => rawSafetensors({ w: ["F32", [1], [0, 4]] }, 4), expect: ['tensor "w": entry is not an object'] },
  { name: "a shape nested 100000 deep (too deep for JSON.stringify)", bytes: () => rawSafetensors(`{"w": {"dtype": "F32", "shape": ${"[".repeat(1e5)}${"]".repeat(1e5)}, "data_offsets": [0, 4]}}`, 4), expect: ['tensor "w": shape a list nested too deep to show'] },
  { name: "a shape whose size passes 2^53", bytes: () => rawSafetensors({ w: w("F32", [2 ** 30, 2 ** 30, 2 ** 30], [0, 4]) }, 4), expect: ['tensor "w"', "more bytes than any file holds"] },
];
for (const c of TILING) {
  test(`refused: ${c.name}`, () => {
    const file = writeTemp(c.bytes());
    assertCheckpointError(() => readSafetensorsHeader(file), file, c.expect);
    assertCheckpointError(() => new SafetensorsFile(file), file, c.expect);
  });
}

test("empty tensors anywhere in the tiling are accepted", () => {
  const file = writeTemp(rawSafetensors({ z0: w("F32", [0], [0, 0]), a: w("F32", [1], [0, 4]), z1: w("F16", [3, 0], [4, 4]), b: w("F32", [1], [4, 8]), z2: w("I8", [0], [8, 8]) }, f32Bytes([1, 2])));
  const st = new SafetensorsFile(file);
  try {
    assert.deepEqual([...st.readF32("b")], [2]);
    assert.deepEqual([...st.readF32("z1")], []);
  } finally {
    st.close();
  }
});

// The case that used to load shifted weights without a word: the header is padded with spaces,
// so a header length a few bytes short still parses; the data section then starts early.
test("a header length a few bytes short (padding still parses) is refused, not read shifted", () => {
  const good = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }]);
  const headerLen = Number(good.readBigUInt64LE(0));
  const padding = headerLen - good.subarray(8, 8 + headerLen).toString("utf8").trimEnd().length;
  assert.ok(padding >= 3, `the fixture header has ${padding} padding spaces`);
  for (let k = 1; k <= padding; k++) {
    const bytes = Buffer.from(good);
    bytes.writeBigUInt64LE(BigInt(headerLen - k));
    const file = writeTemp(bytes);
    assertCheckpointError(() => new SafetensorsFile(file), file, [`${k} bytes after the last tensor`]);
  }
  for (let k = 1; k <= 16; k++) {
    const bytes = Buffer.from(good);
    bytes.writeBigUInt64LE(BigInt(headerLen + k));
    const file = writeTemp(bytes);
    assert.throws(() => new SafetensorsFile(file), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(file), `+${k}`);
  }
});

test("a folder is refused as a safetensors file, naming it", () => {
  assertCheckpointError(() => new SafetensorsFile(dir), dir, ["cannot open"]);
  assertCheckpointError(() => readSafetensorsHeader(dir), dir, ["cannot open"]);
});

test("encodeSafetensors refuses two tensors of one name and the reserved name; __proto__ is a name like any", () => {
  const t = (name: string) => ({ name, dtype: "F32" as const, shape: [1], data: new Float32Array([1]) });
  assert.throws(() => encodeSafetensors([t("a"), t("a")]), (e: Error) => e instanceof CheckpointError && e.message.includes('"a"'));
  assert.throws(() => encodeSafetensors([t("__metadata__")]), (e: Error) => e instanceof CheckpointError && e.message.includes("reserved"));
  const { values } = roundTrip([t("__proto__"), t("b")]);
  assert.deepEqual([...values.keys()], ["__proto__", "b"]);
});
