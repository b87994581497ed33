// The GGUF reader and writer: stories260K converted from its Hugging Face folder by our
// converter gives llama.cpp the same greedy continuation as the shipped GGUF, and a
// written file reads back entry for entry.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { getLlama } from "node-llama-cpp";
import { CheckpointError } from "../../src/errors.js";
import { GGML_TYPE, GGUF_TYPE, readGguf, writeGguf, type GgufEntry } from "../../src/model/gguf.js";
import { convertToGguf, permuteForGguf } from "../../src/model/gguf-convert.js";
import { readStoriesReference, STORIES_DIR, tempDir } from "../helpers.js";

const dir = tempDir();
const ref = readStoriesReference();

test("a written GGUF reads back: metadata of every type, tensor table, 32-byte aligned data", () => {
  const md = new Map<string, GgufEntry>([
    ["a.u32", { type: GGUF_TYPE.u32, value: 7 }],
    ["a.f32", { type: GGUF_TYPE.f32, value: 0.5 }],
    ["a.str", { type: GGUF_TYPE.string, value: "héllo" }],
    ["a.bool", { type: GGUF_TYPE.bool, value: true }],
    ["a.i64", { type: GGUF_TYPE.i64, value: -5n }],
    ["a.arr", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.string, values: ["x", "yy"] } }],
  ]);
  const file = path.join(dir, "t.gguf");
  writeGguf(file, md, [
    { name: "w", dims: [3, 2], type: GGML_TYPE.F32, data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer) },
    { name: "v", dims: [5], type: GGML_TYPE.F32, data: new Uint8Array(20) },
  ]);
  const g = readGguf(file);
  assert.equal(g.version, 3);
  assert.deepEqual([...g.metadata.keys()], [...md.keys()]);
  assert.equal(g.metadata.get("a.str")!.value, "héllo");
  assert.equal(g.metadata.get("a.i64")!.value, -5n);
  assert.deepEqual((g.metadata.get("a.arr")!.value as { values: string[] }).values, ["x", "yy"]);
  assert.deepEqual(g.tensors.map((t) => [t.name, t.dims, t.offset]), [["w", [3, 2], 0], ["v", [5], 32]]);
  assert.equal(g.dataStart % 32, 0);
  assert.throws(() => readGguf(path.join(STORIES_DIR, "config.json")), CheckpointError);
});

test("q/k permutation: rotate-half rows to interleaved pairs", () => {
  // one head, d = 4, rows r0..r3 (1 column): interleaved order r0, r2, r1, r3
  assert.deepEqual([...permuteForGguf(Float32Array.from([10, 11, 12, 13]), 4, 1, 1)], [10, 12, 11, 13]);
});

for (const type of ["F32", "F16"] as const) {
  test(`stories260K → GGUF (${type}) by our converter: llama.cpp's greedy output matches`, async () => {
    const file = path.join(dir, `stories-${type}.gguf`);
    convertToGguf(STORIES_DIR, file, { vocabFrom: path.join(STORIES_DIR, "stories260K.gguf"), type });
    const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
    const model = await llama.loadModel({ modelPath: file });
    const ctx = await model.createContext({ contextSize: 256, threads: 1 });
    const out: number[] = [];
    for await (const t of ctx.getSequence().evaluate(ref.prompt_ids as never, { temperature: 0 })) {
      out.push(t as number);
      if (out.length >= 32) break;
    }
    await ctx.dispose();
    await model.dispose();
    await llama.dispose();
    assert.deepEqual(out, ref.greedy_ids.slice(0, 32));
  });
}

// Malformed files: every count and offset is checked before anything is allocated for it.
// The fixture's byte layout is found by searching for its (unique) key and tensor names.
const FIXTURE_MD = new Map<string, GgufEntry>([
  ["general.alignment", { type: GGUF_TYPE.u32, value: 32 }],
  ["t.name", { type: GGUF_TYPE.string, value: "fixture" }],
  ["t.arr", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.u32, values: [1, 2, 3] } }],
  ["t.nam2", { type: GGUF_TYPE.u8, value: 9 }],
]);
const FIXTURE_TENSORS = [
  { name: "w.f32", dims: [4, 2], type: GGML_TYPE.F32, data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer) },
  { name: "w.f16", dims: [3], type: GGML_TYPE.F16, data: new Uint8Array(6) },
];
function fixture(): Buffer {
  const file = path.join(dir, "fixture.gguf");
  writeGguf(file, FIXTURE_MD, FIXTURE_TENSORS);
  return fs.readFileSync(file);
}
/** Byte offset just after the first occurrence of `s` in `b`. */
function after(b: Buffer, s: string): number {
  const at = b.indexOf(Buffer.from(s, "utf8"));
  assert.ok(at >= 0, s);
  return at + Buffer.byteLength(s);
}
let ggufCount = 0;
function writeBytes(b: Uint8Array): string {
  const file = path.join(dir, `m${ggufCount++}.gguf`);
  fs.writeFileSync(file, b);
  return file;
}
const patchU64 = (at: (b: Buffer) => number, v: bigint) => (b: Buffer) => (b.writeBigUInt64LE(v, at(b)), b);
const patchU32 = (at: (b: Buffer) => number, v: number) => (b: Buffer) => (b.writeUInt32LE(v, at(b)), b);
const rename = (from: string, to: string) => (b: Buffer) => (Buffer.from(to).copy(b, after(b, from) - Buffer.byteLength(from)), b);

const MALFORMED_GGUF: { name: string; patch: (b: Buffer) => Buffer; expect: string[] }[] = [
  { name: "tensor count 2^60", patch: patchU64(() => 8, 2n ** 60n), expect: ["tensor count", "1152921504606846976", "bytes remain"] },
  { name: "metadata entry count 2^60", patch: patchU64(() => 16, 2n ** 60n), expect: ["metadata entry count", "bytes remain"] },
  { name: "both counts plausible alone, too many together", patch: (b) => (b.writeBigUInt64LE(BigInt(Math.floor(b.length / 30)), 8), b.writeBigUInt64LE(BigInt(Math.floor(b.length / 30)), 16), b), expect: ["cannot fit"] },
  { name: "array length 2^60", patch: patchU64((b) => after(b, "t.arr") + 8, 2n ** 60n), expect: ['length of metadata array "t.arr"', "bytes remain"] },
  { name: "array length 2^64 - 1", patch: patchU64((b) => after(b, "t.arr") + 8, 2n ** 64n - 1n), expect: ['metadata array "t.arr"', "18446744073709551615"] },
  { name: "array of arrays", patch: patchU32((b) => after(b, "t.arr") + 4, GGUF_TYPE.array), expect: ['"t.arr"', "element type 9"] },
  { name: "string length past the end", patch: patchU64((b) => after(b, "t.name") + 4, 10n ** 6n), expect: ["length of metadata \"t.name\"", "1000000"] },
  { name: "key length 2^63", patch: patchU64((b) => after(b, "fixture") + 0, 2n ** 63n), expect: ["length of metadata key", "9223372036854775808"] },
  { name: "unknown value type", patch: patchU32((b) => after(b, "t.nam2"), 99), expect: ['metadata "t.nam2"', "unknown GGUF value type 99"] },
  { name: "duplicate metadata key", patch: rename("t.nam2", "t.name"), expect: ['metadata key "t.name" occurs twice'] },
  { name: "duplicate tensor name", patch: rename("w.f16", "w.f32"), expect: ['tensor "w.f32" occurs twice'] },
  { name: "5 dimensions", patch: patchU32((b) => after(b, "w.f32"), 5), expect: ['tensor "w.f32" has 5 dimensions', "at most 4"] },
  { name: "a dimension of 2^62", patch: patchU64((b) => after(b, "w.f32") + 4, 2n ** 62n), expect: ['dimension 0 of tensor "w.f32"', "larger than any file"] },
  { name: "a dimension that overruns the file", patch: patchU64((b) => after(b, "w.f32") + 4, 2n ** 40n), expect: ['tensor "w.f32"', "past the end of the", "data section"] },
  { name: "an unaligned offset", patch: patchU64((b) => after(b, "w.f16") + 4 + 8 + 4, 36n), expect: ['tensor "w.f16": offset 36 is not a multiple of the alignment 32'] },
  { name: "an offset past the data section", patch: patchU64((b) => after(b, "w.f16") + 4 + 8 + 4, 2n ** 20n), expect: ['tensor "w.f16": offset 1048576 is past the end'] },
  { name: "alignment 0", patch: patchU32((b) => after(b, "general.alignment") + 4, 0), expect: ["general.alignment 0 must be a power of two"] },
  { name: "alignment 48", patch: patchU32((b) => after(b, "general.alignment") + 4, 48), expect: ["general.alignment 48 must be a power of two"] },
  { name: "alignment of type f32", patch: patchU32((b) => after(b, "general.alignment"), GGUF_TYPE.f32), expect: ["general.alignment", "must be a power of two"] },
  { name: "version 2", patch: patchU32(() => 4, 2), expect: ["GGUF version 2; supported: 3"] },
  { name: "bad magic", patch: (b) => (b.write("GGUG", 0, "latin1"), b), expect: ["not a GGUF file (bad magic)"] },
  { name: "F16 tensor cut short", patch: (b) => b.subarray(0, b.length - 30), expect: ['tensor "w.f16"', "past the end"] },
];
for (const c of MALFORMED_GGUF) {
  test(`GGUF refused: ${c.name}`, () => {
    const file = writeBytes(c.patch(fixture()));
    assert.throws(() => readGguf(file), (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${String(e)}`);
      for (const part of [file, ...c.expect]) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
      return true;
    });
  });
}

test("GGUF: the fixture reads back; every shorter prefix of it is a CheckpointError naming the file", () => {
  const good = fixture();
  const g = readGguf(writeBytes(good));
  assert.deepEqual(g.tensors.map((t) => [t.name, t.offset]), [["w.f32", 0], ["w.f16", 32]]);
  assert.equal(g.alignment, 32);
  for (let n = 0; n < good.length - 26; n++) {
    // the last 26 bytes are the F16 tensor's zero padding (6 data bytes, then 26 to reach 64): cutting them is harmless
    const file = writeBytes(good.subarray(0, n));
    assert.throws(() => readGguf(file), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(`${file}: `), `prefix of ${n} bytes`);
  }
});

test("GGUF: a missing file or a folder is a CheckpointError naming it", () => {
  for (const p of [path.join(dir, "none.gguf"), dir]) {
    assert.throws(() => readGguf(p), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(`${p}: cannot open`), p);
  }
});

test("writeGguf aligns to general.alignment; refuses two tensors of one name", () => {
  const file = path.join(dir, "a64.gguf");
  const md = new Map<string, GgufEntry>([["general.alignment", { type: GGUF_TYPE.u32, value: 64 }]]);
  writeGguf(file, md, FIXTURE_TENSORS);
  const g = readGguf(file);
  assert.equal(g.dataStart % 64, 0);
  assert.deepEqual(g.tensors.map((t) => t.offset), [0, 64]);
  const f32 = fs.readFileSync(file).subarray(g.dataStart, g.dataStart + 32);
  assert.deepEqual([...new Float32Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + 32))], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.throws(() => writeGguf(file, md, [FIXTURE_TENSORS[0], FIXTURE_TENSORS[0]]), CheckpointError);
});
