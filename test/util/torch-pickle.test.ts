// torch.save files as test/fixtures/torch/make_fixtures.py reproduces them (standard-library
// pickle with torch's persistent ids, zipfile; no real torch file was available): values
// against the numbers the script computed from the bits it wrote (expected.json), hostile
// pickles refused with nothing run, damaged files refused with FileErrors.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { FileError, PmkvqError, RefusedGlobalError } from "../../src/errors.js";
import { PyDict, PyTuple, type PyValue } from "../../src/util/pickle.js";
import { parseTorchSave, readTorchSave, TorchTensor } from "../../src/util/torch-pickle.js";
import { REPO_ROOT, seededRandom } from "../helpers.js";

const FIXTURES = path.join(REPO_ROOT, "test", "fixtures", "torch");
const fixture = (name: string) => path.join(FIXTURES, name);
const expected = JSON.parse(fs.readFileSync(fixture("expected.json"), "utf8"));

/** expected.json writes non-finite numbers as strings. */
const number = (x: number | string): number => (x === "inf" ? Infinity : x === "-inf" ? -Infinity : x === "nan" ? NaN : (x as number));

function assertTensor(t: PyValue | undefined, want: { shape: number[]; data: (number | string)[] }, dtype: string, label: string): void {
  assert.ok(t instanceof TorchTensor, `${label} is a tensor`);
  assert.equal(t.dtype, dtype, label);
  assert.deepEqual(t.shape, want.shape, label);
  assert.equal(t.data.length, want.data.length, label);
  // the script's values are float32 already (bf16/f16 widen exactly); Object.is tells -0 from 0
  want.data.forEach((x, i) => assert.ok(Object.is(t.data[i], Math.fround(number(x))), `${label}[${i}]: ${t.data[i]} ≠ ${x}`));
}

function checkTensorsFixture(file: string): void {
  const f = readTorchSave(fixture(file));
  assert.equal(f.formatVersion, 3);
  assert.equal(f.storages, 5, "the transposed view and the slice share the first tensor's storage");
  const d = f.value;
  assert.ok(d instanceof PyDict && d.ordered, "an OrderedDict");
  assert.deepEqual([...d.items.keys()], ["f32", "f32_transposed", "f32_slice", "f16", "bf16", "bf16_dtype_pid", "empty", "scalars", "nested"]);
  const want = expected.tensors;
  assertTensor(d.get("f32"), want.f32, "float32", `${file} f32`);
  assertTensor(d.get("f32_transposed"), want.f32_transposed, "float32", `${file} f32_transposed`);
  assertTensor(d.get("f32_slice"), want.f32_slice, "float32", `${file} f32_slice`);
  assertTensor(d.get("f16"), want.f16, "float16", `${file} f16`);
  assertTensor(d.get("bf16"), want.bf16, "bfloat16", `${file} bf16`);
  assertTensor(d.get("bf16_dtype_pid"), want.bf16_dtype_pid, "bfloat16", `${file} torch.bfloat16 as the storage type`);
  assertTensor(d.get("empty"), want.empty, "float32", `${file} empty`);
  const scalars = d.get("scalars") as PyValue[];
  const ws = want.scalars as unknown[];
  assert.equal(scalars.length, ws.length);
  scalars.forEach((s, i) => {
    if (typeof s === "bigint") assert.equal(String(s), ws[i], `scalar ${i}`);
    else if (s instanceof Uint8Array) assert.deepEqual([...s], ws[i], `scalar ${i}`);
    else assert.ok(Object.is(s, ws[i]), `scalar ${i}: ${String(s)} ≠ ${String(ws[i])}`);
  });
  const nested = d.get("nested") as PyDict;
  assert.deepEqual(nested.get("tuple"), new PyTuple([1, 2.5, "x"]));
  assert.deepEqual(nested.get("lists"), [[], new PyDict(), new PyTuple([])]);
  assert.equal(nested.get(3), "an int key");
  const od = nested.get("od") as PyDict;
  assert.ok(od.ordered);
  assert.deepEqual([...od.items.entries()], [["a", 1]]);
}

test("f32, f16 and bf16 tensors (views, offsets, strides), scalars, nested containers — stored ZIP", () => checkTensorsFixture("tensors.pt"));
test("the same file deflated", () => checkTensorsFixture("tensors_deflated.pt"));
test("the same file in torch's own layout (64-byte-aligned records, ZIP64)", () => checkTensorsFixture("tensors_torch_like.pt"));

test("the original's artifacts: sensitivity dict, numpy float64 budgets (numpy 1 and 2 names), bf16 tensor lists", () => {
  const sens = readTorchSave(fixture("original/sensitivity.pt")).value as PyDict;
  assert.deepEqual([...sens.items.keys()], ["k_sensitivity", "v_sensitivity"]);
  const k = sens.get("k_sensitivity") as PyDict;
  assert.deepEqual([...k.items.keys()], [16, 8, 4, 2, 1], "int keys, in the original's order");
  assert.deepEqual(k.get(4), expected.sensitivity.k["4"]);
  for (const file of ["original/kv_budgets.pt", "kv_budgets_numpy1.pt"]) {
    assert.deepEqual(readTorchSave(fixture(file)).value, expected.kv_budgets.mb, file);
  }
  for (const [file, name] of [["original/max_keys.pt", "max_keys"], ["max_keys_torch_like.pt", "max_keys"], ["original/rep_scales.pt", "rep_scales"]]) {
    const f = readTorchSave(fixture(file));
    const list = f.value as PyValue[];
    assert.equal(list.length, expected.model.num_layers);
    list.forEach((t, l) => assertTensor(t, { shape: [1, 4, 1, 4], data: expected[name][l] }, "bfloat16", `${file} block ${l}`));
  }
});

test("hostile pickles (posix/os system, builtins.eval, subprocess, one inside a sensitivity dict) are refused and nothing runs", () => {
  const markers = expected.evil_marker_files as Record<string, string>;
  for (const m of Object.values(markers)) fs.rmSync(m, { force: true });
  for (const [file, global] of [
    ["posix_system.pt", "posix.system"],
    ["os_system.pt", "os.system"],
    ["builtins_eval.pt", "builtins.eval"],
    ["subprocess_call.pt", "subprocess.call"],
    ["nested_sensitivity.pt", "posix.system"],
  ]) {
    assert.throws(
      () => readTorchSave(fixture(`hostile/${file}`)),
      (e: Error) => e instanceof RefusedGlobalError && e.global === global && e.message.includes(`refused global ${global}`) && e.message.includes("nothing was run"),
      file,
    );
  }
  for (const m of Object.values(markers)) assert.equal(fs.existsSync(m), false, `${m} must not exist`);
});

test("damaged and unsupported files: each a FileError that says what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["wrong_numel.pt", /storage data\/0 holds 24 bytes, but the pickle says 10 × float32 = 40/],
    ["reads_past_storage.pt", /reads past its storage of 6 elements/],
    ["expanded_view.pt", /shape \[100\] has more elements than its storage of 6/],
    ["missing_storage.pt", /has no archive\/data\/0/],
    ["big_endian.pt", /little-endian torch files only/],
    ["no_version.pt", /no archive\/version record/],
    ["bzip2.pt", /bzip2/],
    ["legacy.pt", /legacy \(pre-1\.6\) format/],
    ["not_torch.txt", /not a torch\.save file/],
  ];
  for (const [file, re] of cases) {
    assert.throws(() => readTorchSave(fixture(`damaged/${file}`)), (e: Error) => e instanceof FileError && !(e instanceof RefusedGlobalError) && re.test(e.message), file);
  }
  // RotateKV's reorder indices are int64 tensors: the storage type is not on the allow-list
  assert.throws(() => readTorchSave(fixture("damaged/long_storage.pt")), (e: Error) => e instanceof RefusedGlobalError && e.global === "torch.LongStorage" && /float32, float16 and bfloat16 only/.test(e.message));
  assert.throws(() => readTorchSave(FIXTURES), (e: Error) => e instanceof FileError && /is a folder/.test(e.message));
  assert.throws(() => readTorchSave(fixture("no-such.pt")), (e: Error) => e instanceof FileError && /no such file/.test(e.message));
});

test("truncated or bit-flipped files fail as FileErrors (never another error)", () => {
  const full = new Uint8Array(fs.readFileSync(fixture("original/max_keys.pt")));
  for (let n = 0; n < full.length; n += 5) assert.throws(() => parseTorchSave(full.subarray(0, n), "cut"), FileError, `length ${n}`);
  const rand = seededRandom(11);
  for (let k = 0; k < 400; k++) {
    const b = full.slice();
    b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
    try {
      parseTorchSave(b, "flip");
    } catch (e) {
      assert.ok(e instanceof PmkvqError, `flip ${k}: ${(e as Error).stack}`);
    }
  }
});
