// The original's objects turned into ours: classification by shape, budgets read back as
// bit-widths (spec §4's mem_i(b)), and the √r of the original's evaluation.

import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { blockTensorsFromOriginal, budgetBits, budgetsFromOriginal, classify, evaluatedScales, sensitivityFromOriginal } from "../../src/calib/original-artifacts.js";
import { PyDict, PyTuple } from "../../src/util/pickle.js";
import { readTorchSave, TorchTensor } from "../../src/util/torch-pickle.js";
import { REPO_ROOT } from "../helpers.js";

const ORIGINAL = path.join(REPO_ROOT, "test", "fixtures", "torch", "original");

test("each of the original's files is recognised by what it holds", () => {
  assert.equal(classify(readTorchSave(path.join(ORIGINAL, "sensitivity.pt")).value), "sensitivity");
  assert.equal(classify(readTorchSave(path.join(ORIGINAL, "kv_budgets.pt")).value), "allocation");
  assert.equal(classify(readTorchSave(path.join(ORIGINAL, "max_keys.pt")).value), "tensor-list");
  assert.equal(classify(readTorchSave(path.join(ORIGINAL, "rep_scales.pt")).value), "tensor-list");
  assert.equal(classify([]), null);
  assert.equal(classify(new PyDict()), null);
  assert.equal(classify(["a"]), null);
  assert.equal(classify(new PyTuple([1.5, 2])), "allocation");
});

test("budgets in MB read back as bit-widths: b × kv_hidden × 2 × max_len / 8 / 2^20", () => {
  assert.deepEqual(budgetBits([1, 0.5, 4], 32, 32768), [4, 2, 16]); // 0.25 MB per bit at kv_hidden 32
  assert.deepEqual(budgetBits([256, 128], 1024, 32768), [32, 16]);
  assert.equal(budgetBits([1, 0.6], 32, 32768), null);
  assert.equal(budgetBits([0.1], 32, 32768), null);
  assert.deepEqual(budgetsFromOriginal(new PyTuple([1, 2.5]), "f"), [1, 2.5]);
  assert.throws(() => budgetsFromOriginal([1, Infinity], "f"), /block 1 is Infinity/);
  assert.throws(() => budgetsFromOriginal([1, true], "f"), /block 1 is a bool/);
});

test("sensitivity tables: int bit-width keys become strings; non-numbers and odd keys are refused", () => {
  const table = (entries: [unknown, unknown][]) => {
    const d = new PyDict();
    for (const [k, v] of entries) d.items.set(k as number, v as number[]);
    return d;
  };
  const orig = (k: PyDict, v: PyDict) => {
    const d = new PyDict();
    d.items.set("k_sensitivity", k);
    d.items.set("v_sensitivity", v);
    return d;
  };
  const s = sensitivityFromOriginal(orig(table([[4, [0.5, 1]], [2, [2, 3]]]), table([[4, [0, 0]], [2, [1, 1]]])), "f");
  assert.deepEqual(s.kSensitivity, { "4": [0.5, 1], "2": [2, 3] });
  assert.throws(() => sensitivityFromOriginal(orig(table([[4, [0.5, "x"]]]), table([])), "f"), /k_sensitivity\[4\]\[1\] is a str/);
  assert.throws(() => sensitivityFromOriginal(orig(table([[0, [1]]]), table([])), "f"), /the key 0, not a bit-width/);
  assert.throws(() => sensitivityFromOriginal(orig(table([[4, [1, 2]]]), table([[4, [1]]])), "f"), /has 1 blocks, other lists have 2/);
});

test("per-block tensors: (1, H, 1, d/2) or (H, d/2), one shape and dtype for every block", () => {
  const t = (shape: number[], v = 1) => new TorchTensor("bfloat16", shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v));
  const ok = blockTensorsFromOriginal([t([1, 2, 1, 3]), t([1, 2, 1, 3])], "f", "max-keys");
  assert.deepEqual([ok.heads, ok.pairs, ok.perBlock.length], [2, 3, 2]);
  assert.deepEqual([blockTensorsFromOriginal([t([2, 3])], "f", "rep-scales").heads], [2]);
  assert.throws(() => blockTensorsFromOriginal([t([2, 1, 1, 3])], "f", "max-keys"), /expected \(1, kv_heads, 1, head_dim\/2\)/);
  assert.throws(() => blockTensorsFromOriginal([t([1, 2, 1, 3]), t([1, 2, 1, 2])], "f", "max-keys"), /block 1 is bfloat16 \[1, 2, 1, 2\]/);
  assert.throws(() => blockTensorsFromOriginal([t([2, 3], -1)], "f", "max-keys"), /finite and ≥ 0/);
  assert.deepEqual([...blockTensorsFromOriginal([t([2, 3], 0)], "f", "max-keys").perBlock[0]], [0, 0, 0, 0, 0, 0]);
  assert.throws(() => blockTensorsFromOriginal([t([2, 3]), 1.5], "f", "max-keys"), /not a list of per-block tensors/);
});

test("√r as the original's evaluation computes it: float32 sqrt, rounded to the stored dtype, clamped to [1e-4, 1e4]", () => {
  assert.deepEqual([...evaluatedScales(Float32Array.from([0, 1e12, 4, 2]), "float32")], [Math.fround(1e-4), Math.fround(1e4), 2, Math.fround(Math.SQRT2)]);
  // √2 = 1.41421…: bf16 keeps 8 significant bits → 1.4140625 (0x3fb5); f16 keeps 11 → 1.4140625 too (0x3da8)
  assert.deepEqual([...evaluatedScales(Float32Array.from([2]), "bfloat16")], [1.4140625]);
  assert.deepEqual([...evaluatedScales(Float32Array.from([2]), "float16")], [1.4140625]);
  // √3 = 1.7320508…: bf16 1.734375 (0x3fde), f16 1.732421875 (0x3eee)
  assert.deepEqual([...evaluatedScales(Float32Array.from([3]), "bfloat16")], [1.734375]);
  assert.deepEqual([...evaluatedScales(Float32Array.from([3]), "float16")], [1.732421875]);
});
