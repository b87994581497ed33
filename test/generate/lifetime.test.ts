// Memory that comes back: every cache, scratch buffer and model gives its kernel-arena memory
// back. Measured as the arena's bytes in use (what it has handed out), not estimated: after 1
// and after 50 generations with every method, after 50 loads, after failed loads, and over
// eval runs, the figure returns to the same number.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { createCache, prepareModelForMethod, type CacheSpec } from "../../src/cache/factory.js";
import { loadBenchmark } from "../../src/eval/benchmarks.js";
import { runEval } from "../../src/eval/runner.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { encodeSafetensors, readSafetensorsHeader, SafetensorsFile } from "../../src/model/safetensors.js";
import { arenaBytesInUse, currentArena, release } from "../../src/tensor/memory.js";
import { configureKernels, releaseKernelScratch } from "../../src/tensor/wasm.js";
import { writeToyBenchmark } from "../eval/fixtures.js";
import { REPO_ROOT, tempDir } from "../helpers.js";

const DEFAULT_MODEL = path.join(REPO_ROOT, "models", "default");
const PROMPT = "a = 3 , b = 5 , c = a + b";

const SPECS: CacheSpec[] = [
  { method: "original" },
  { method: "original", kvDtype: "f16" },
  // budgets small enough that bodies shrink (halve) during the answer
  { method: "pm-kvq", budgetsMB: [0.004, 0.004], progressive: { nWindowTokens: 8 } },
  { method: "pm-kvq", budgetsMB: [0.004, 0.004], progressive: { nWindowTokens: 8, backend: "fake" } },
  { method: "rtn", kBits: 2, vBits: 2 },
  { method: "kivi", kBits: 2, vBits: 4 },
  { method: "mikv", kBits: 2, vBits: 2, mikvSinkTokens: 4 },
];

/** What the arena holds once the kernels' scratch is given back too. */
function settled(): number {
  releaseKernelScratch();
  return arenaBytesInUse();
}

test("the kernels run on the arena in this test (else nothing here is measured)", () => {
  arenaBytesInUse(); // starts the runtime
  assert.ok(currentArena(), "the WebAssembly runtime must be on (dist/kernels.wasm built)");
});

test("bytes in use return to the same figure after one round and after 54 generations with every method", () => {
  const start = settled();
  const model = loadModel(DEFAULT_MODEL);
  const loaded = arenaBytesInUse();
  assert.ok(loaded - start >= model.weightBytes, "the weights live in the arena");
  const rotated = loadModel(DEFAULT_MODEL);
  const rotatekv: CacheSpec = { method: "rotatekv", kBits: 2, vBits: 2 };
  prepareModelForMethod(rotated.transformer, rotatekv);
  const round = () => {
    for (const spec of SPECS) {
      using cache = createCache(model.config, spec);
      const r = generate(model, PROMPT, { cache, maxNewTokens: 32, temperature: 0 });
      assert.ok(r.outputTokens > 0);
    }
    using cache = createCache(rotated.config, rotatekv);
    generate(rotated, PROMPT, { cache, maxNewTokens: 32 });
    generate(model, PROMPT, { maxNewTokens: 32 }); // generate's own cache
  };
  round();
  const after1 = arenaBytesInUse();
  const blocks1 = currentArena()!.blocks;
  for (let i = 1; i < 6; i++) round();
  const after50 = arenaBytesInUse();
  console.log(`arena bytes in use: before load ${start}, loaded ${loaded}, after 1 round of ${SPECS.length + 2} generations ${after1}, after 6 rounds (${6 * (SPECS.length + 2)} generations) ${after50}`);
  assert.equal(after50, after1, "six rounds hold exactly what one round holds");
  assert.equal(currentArena()!.blocks, blocks1);
  model.dispose();
  rotated.dispose();
  assert.equal(settled(), start, "disposing the models gives every byte back");
  assert.throws(() => generate(model, PROMPT, { maxNewTokens: 2 }), /disposed/);
});

test("50 loads (with `using`) and their generations leave the arena where it was", () => {
  const start = settled();
  for (let i = 0; i < 50; i++) {
    using m = loadModel(DEFAULT_MODEL);
    generate(m, PROMPT, { maxNewTokens: 16 });
  }
  const after = settled();
  console.log(`arena bytes in use: before 50 loads ${start}, after ${after}`);
  assert.equal(after, start);
});

/** A copy of the default model whose tensor `name` is stored as I32 (read fails after earlier tensors were read). */
function modelWithBadTensor(name: string): string {
  const dir = tempDir("pmkvq-badload-");
  for (const f of fs.readdirSync(DEFAULT_MODEL)) fs.copyFileSync(path.join(DEFAULT_MODEL, f), path.join(dir, f));
  const file = path.join(dir, "model.safetensors");
  const h = readSafetensorsHeader(file);
  const st = new SafetensorsFile(file);
  const tensors = [...h.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => {
    const bytes = st.readBytes(t.name);
    if (t.name !== name) {
      const f = st.readF32(t.name);
      const data = f.slice();
      release(f);
      return { name: t.name, dtype: t.dtype as "F16", shape: t.shape, data };
    }
    // same bytes as I32: 2-byte F16 values make half as many 4-byte ints, so the shape halves
    return { name: t.name, dtype: "I32" as const, shape: [t.shape[0], t.shape[1] / 2], data: new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4).slice() };
  });
  st.close();
  fs.writeFileSync(file, encodeSafetensors(tensors));
  return dir;
}

test("failed loads give back what they took: a bad tensor late in the file, a broken tokenizer", () => {
  const badTensor = modelWithBadTensor("model.layers.1.mlp.down_proj.weight");
  const badTokenizer = tempDir("pmkvq-badtok-");
  for (const f of fs.readdirSync(DEFAULT_MODEL)) fs.copyFileSync(path.join(DEFAULT_MODEL, f), path.join(badTokenizer, f));
  fs.writeFileSync(path.join(badTokenizer, "tokenizer.json"), "{ not json");
  const start = settled();
  for (let i = 0; i < 10; i++) {
    assert.throws(() => loadModel(badTensor), /down_proj/);
    assert.throws(() => loadModel(badTokenizer), /tokenizer\.json/);
  }
  const after = settled();
  console.log(`arena bytes in use: before 20 failed loads ${start}, after ${after}`);
  assert.equal(after, start);
});

test("eval runs free each response's cache: a second identical run ends where the first did", () => {
  const root = tempDir();
  writeToyBenchmark(root, [["a = 3 , b = 5 , c = a + b", "8"], ["a = 2 , b = 4 , c = b + a", "6"], ["a = 1 , b = 1 , c = a + b", "2"]]);
  const bench = loadBenchmark(root, "toy", "1");
  const out = tempDir();
  const start = settled();
  const model = loadModel(DEFAULT_MODEL);
  const loaded = arenaBytesInUse();
  const run = (file: string) =>
    runEval(model, {
      benchmark: bench, problems: bench.problems, nResponses: 5, seed: 0, maxNewTokens: 40, temperature: 0.6, topP: 0.95,
      cache: { method: "pm-kvq", budgetsMB: [0.004, 0.004], progressive: { nWindowTokens: 8 } }, output: path.join(out, file),
    });
  assert.equal(run("a.json").generated, 15);
  const afterA = arenaBytesInUse();
  assert.equal(run("b.json").generated, 15);
  const afterB = arenaBytesInUse();
  console.log(`arena bytes in use over eval runs of 15 responses: before load ${start}, model loaded ${loaded}, after run 1 ${afterA}, after run 2 ${afterB}`);
  assert.equal(afterB, afterA);
  model.dispose();
  assert.equal(settled(), start);
});

test("changing the thread count gives the old pool's control block back", () => {
  const start = settled();
  for (let i = 0; i < 5; i++) configureKernels({ threads: 1 + (i % 2) });
  assert.equal(settled(), start);
  using m = loadModel(DEFAULT_MODEL);
  const a = generate(m, PROMPT, { maxNewTokens: 8 }).ids;
  configureKernels({ threads: 2 });
  assert.deepEqual(generate(m, PROMPT, { maxNewTokens: 8 }).ids, a, "the new pool computes the same");
});
