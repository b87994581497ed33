// Importing the original's torch.save artifacts (fixtures from test/fixtures/torch/
// make_fixtures.py, shaped for stories260K: 5 blocks, 4 KV heads, head_dim 8): what is written
// is read back by the readers `allocate`, `generate` and `eval` use, and compared with the
// numbers the fixture script computed; bad inputs stop the import before anything is written.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { readSensitivity } from "../../src/calib/allocate.js";
import { importOriginal, IMPORT_NOTES } from "../../src/calib/import-original.js";
import { readMaxKeys } from "../../src/calib/max-keys.js";
import { readRepScales } from "../../src/calib/rep-scales.js";
import { parseKvBudgetsMB } from "../../src/cache/budgets.js";
import { RefusedGlobalError, UsageError } from "../../src/errors.js";
import { parseModelConfig } from "../../src/model/config.js";
import { SafetensorsFile } from "../../src/model/safetensors.js";
import { REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";

const FIXTURES = path.join(REPO_ROOT, "test", "fixtures", "torch");
const ORIGINAL = path.join(FIXTURES, "original");
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, "expected.json"), "utf8"));
const config = parseModelConfig(JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "config.json"), "utf8")));
const OUTPUTS = ["sensitivity.json", "allocation.json", "max_keys.safetensors", "rep_scales.safetensors", "import.json"];

/** A folder holding copies of `files` (paths under test/fixtures/torch), under the names given. */
function folderWith(files: Record<string, string>): string {
  const dir = tempDir("pmkvq-import-in-");
  for (const [name, from] of Object.entries(files)) fs.copyFileSync(path.join(FIXTURES, from), path.join(dir, name));
  return dir;
}

const originals = { "sensitivity.pt": "original/sensitivity.pt", "kv_budgets.pt": "original/kv_budgets.pt", "max_keys.pt": "original/max_keys.pt", "rep_scales.pt": "original/rep_scales.pt" };

test("all four artifacts, checked against the model, read back by pm-kvq's own readers with the original's values", () => {
  const out = path.join(tempDir(), "calib");
  const r = importOriginal({ inDir: ORIGINAL, outDir: out, model: config, maxLen: 32768 });
  assert.deepEqual(r.imported.map((a) => a.step), ["sensitivity", "allocation", "max-keys", "rep-scales"]);
  assert.deepEqual(fs.readdirSync(out).sort(), [...OUTPUTS].sort());
  assert.ok(r.checks.some((c) => /matches the model: 5 blocks, 4 KV heads, head_dim 8/.test(c)), r.checks.join("; "));

  const sens = readSensitivity(path.join(out, "sensitivity.json"), [4, 2]);
  for (const b of ["16", "8", "4", "2", "1"]) {
    assert.deepEqual(sens.kSensitivity[b], expected.sensitivity.k[b], `k ${b}`);
    assert.deepEqual(sens.vSensitivity[b], expected.sensitivity.v[b], `v ${b}`);
  }
  assert.match(String(sens.meta?.note), /block L−1−i's gradient/);

  assert.deepEqual(parseKvBudgetsMB(path.join(out, "allocation.json"), config.numLayers), expected.kv_budgets.mb);
  const alloc = JSON.parse(fs.readFileSync(path.join(out, "allocation.json"), "utf8"));
  assert.deepEqual(alloc.bits, expected.kv_budgets.bits, "bit-widths read back from MB at kv_hidden 32, max_len 32768");

  const { maxKeys, metadata } = readMaxKeys(path.join(out, "max_keys.safetensors"), config);
  assert.equal(metadata.format, "pm-kvq-max-keys");
  assert.equal(metadata.source_dtype, "bfloat16");
  maxKeys.forEach((m, l) => assert.deepEqual([...m], expected.max_keys[l], `max keys block ${l}`));
  const { scales } = readRepScales(path.join(out, "rep_scales.safetensors"), config);
  scales.forEach((s, l) => assert.deepEqual([...s], expected.rep_scales[l], `rep scales block ${l}`));
  const st = new SafetensorsFile(path.join(out, "rep_scales.safetensors"));
  assert.equal(st.header.metadata.applied, "as stored");
  assert.equal(st.header.metadata.note, IMPORT_NOTES["rep-scales"]);
  st.close();

  const prov = JSON.parse(fs.readFileSync(r.provenanceFile, "utf8"));
  assert.equal(prov.artifacts["max-keys"].source, path.join(ORIGINAL, "max_keys.pt"));
  assert.match(prov.artifacts["max-keys"].sha256, /^[0-9a-f]{64}$/);
});

test("--rep-scales-sqrt writes √r rounded to bf16, what the original's evaluation folds", () => {
  const out = tempDir();
  importOriginal({ files: { "rep-scales": path.join(ORIGINAL, "rep_scales.pt") }, outDir: out, model: config, maxLen: 32768, repScalesSqrt: true });
  assert.deepEqual(fs.readdirSync(out).sort(), ["import.json", "rep_scales.safetensors"]);
  const { scales } = readRepScales(path.join(out, "rep_scales.safetensors"), config);
  scales.forEach((s, l) => assert.deepEqual([...s], expected.rep_scales_sqrt[l].map(Math.fround), `block ${l}`));
});

test("without a model: the artifacts' agreement is checked, budgets become bit-widths only with a kv_hidden that fits", () => {
  const out = tempDir();
  const r = importOriginal({ inDir: ORIGINAL, outDir: out, maxLen: 32768 });
  assert.ok(r.checks.some((c) => /not checked against a model/.test(c)));
  assert.ok(r.checks.some((c) => /4 KV heads × 4 RoPE pairs/.test(c)));
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, "allocation.json"), "utf8")).bits, undefined);
  const r1024 = importOriginal({ files: { allocation: path.join(ORIGINAL, "kv_budgets.pt") }, outDir: tempDir(), kvHidden: 1024, maxLen: 32768 });
  assert.ok(r1024.imported[0].notes.some((n) => /not whole bit-widths at kv_hidden 1024/.test(n)));
});

test("files are recognised by content; max keys vs rep scales by name, else the user is asked", () => {
  // user-chosen names, as the original's --save_path allows
  const dir = folderWith({ "llama_sens.pth": "original/sensitivity.pt", "budget_1024MB": "original/kv_budgets.pt", "keys_max.bin": "original/max_keys.pt", "smooth_scales.pt": "original/rep_scales.pt", "notes.txt": "damaged/not_torch.txt", "old.pt": "damaged/legacy.pt", "reorder.pt": "damaged/long_storage.pt" });
  const r = importOriginal({ inDir: dir, outDir: tempDir(), model: config, maxLen: 32768 });
  assert.deepEqual(Object.fromEntries(r.imported.map((a) => [a.step, path.basename(a.source)])), { sensitivity: "llama_sens.pth", allocation: "budget_1024MB", "max-keys": "keys_max.bin", "rep-scales": "smooth_scales.pt" });
  assert.deepEqual(r.skipped.map((s) => path.basename(s.file)), ["notes.txt", "old.pt", "reorder.pt"]);
  assert.match(r.skipped[0].reason, /not a torch.save archive/);
  assert.match(r.skipped[1].reason, /legacy \(pre-1\.6\) format/);
  assert.match(r.skipped[2].reason, /torch\.LongStorage/); // RotateKV's reorder indices sit beside the artifacts
  const vague = folderWith({ "a.pt": "original/max_keys.pt" });
  assert.throws(() => importOriginal({ inDir: vague, outDir: tempDir(), maxLen: 32768 }), (e: Error) => e instanceof UsageError && /--max-keys-path FILE or --rep-scales FILE/.test(e.message));
  const named = importOriginal({ inDir: vague, files: { "max-keys": path.join(vague, "a.pt") }, outDir: tempDir(), maxLen: 32768 });
  assert.deepEqual(named.imported.map((a) => a.step), ["max-keys"]);
  const twice = folderWith({ "max_keys.pt": "original/max_keys.pt", "max_keys_copy.pt": "max_keys_torch_like.pt" });
  assert.throws(() => importOriginal({ inDir: twice, outDir: tempDir(), maxLen: 32768 }), /both .* hold max-keys; name the one to import with --max-keys-path/);
  assert.throws(() => importOriginal({ inDir: folderWith({ "n.txt": "damaged/not_torch.txt" }), outDir: tempDir(), maxLen: 32768 }), /no artifacts of the original found.*n\.txt: not a torch.save archive/s);
  assert.throws(() => importOriginal({ files: { sensitivity: path.join(ORIGINAL, "max_keys.pt") }, outDir: tempDir(), maxLen: 32768 }), /not the original's sensitivity/);
  const np1 = importOriginal({ files: { allocation: path.join(FIXTURES, "kv_budgets_numpy1.pt") }, outDir: tempDir(), model: config, maxLen: 32768 });
  assert.equal(np1.imported[0].blocks, 5);
});

test("a hostile file among the originals stops the import: nothing runs, nothing is written", () => {
  const marker = expected.evil_marker_files.posix as string;
  fs.rmSync(marker, { force: true });
  const dir = folderWith({ ...originals, "zz_extra.pt": "hostile/posix_system.pt" });
  const out = path.join(tempDir(), "out");
  assert.throws(() => importOriginal({ inDir: dir, outDir: out, model: config, maxLen: 32768 }), (e: Error) => e instanceof RefusedGlobalError && e.global === "posix.system" && /zz_extra\.pt/.test(e.message) && /--max-keys-path/.test(e.message));
  assert.equal(fs.existsSync(out), false);
  assert.equal(fs.existsSync(marker), false);
});

test("artifacts that disagree with each other or with the model are refused before anything is written", () => {
  const cases: [Record<string, string>, RegExp, boolean][] = [
    [{ ...originals, "max_keys.pt": "mismatch/max_keys_4_blocks.pt" }, /disagree on the number of blocks: sensitivity 5, allocation 5, max-keys 4, rep-scales 5/, false],
    [{ "sensitivity.pt": "mismatch/sensitivity_ragged.pt" }, /kSensitivity\["4"\] has 4 blocks, other lists have 5/, false],
    [{ "rep_scales.pt": "mismatch/rep_scales_8_heads.pt" }, /8 heads × 4 pairs per block, the model needs 4 × 4/, true],
    [{ "rep_scales.pt": "mismatch/rep_scales_zero.pt" }, /block 0 value 0 \(head 0, pair 0\) is 0; a key scale must be a finite number > 0/, false],
    [{ "kv_budgets.pt": "mismatch/kv_budgets_negative.pt" }, /budget of block 4 is -1, not a finite number of MB > 0/, false],
    [{ "max_keys.pt": "original/max_keys.pt", "rep_scales.pt": "mismatch/rep_scales_8_heads.pt" }, /max keys are 4 heads × 4 pairs per block, rep scales 8 × 4/, false],
  ];
  for (const [files, re, withModel] of cases) {
    const out = path.join(tempDir(), "out");
    assert.throws(() => importOriginal({ inDir: folderWith(files), outDir: out, maxLen: 32768, ...(withModel ? { model: config } : {}) }), (e: Error) => e instanceof UsageError && re.test(e.message), re.source);
    assert.equal(fs.existsSync(out), false, re.source);
  }
  const small = { ...config, numLayers: 4 };
  assert.throws(() => importOriginal({ inDir: ORIGINAL, outDir: tempDir(), model: small, maxLen: 32768 }), /the artifacts have 5 blocks, the model 4/);
});
