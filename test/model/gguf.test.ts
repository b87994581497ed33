// The GGUF reader and writer: stories260K converted from its Hugging Face folder by our
// converter gives llama.cpp the same greedy continuation as the shipped GGUF, and a
// written file reads back entry for entry.

import assert from "node:assert/strict";
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
