// The shipped deeper model (issue 18): its shape is what the issue asks for, the file is the
// one whose sha256 the README gives, and it answers held-out countdown problems exactly with a
// full-precision cache (checked against the task generator's own sums, an exact solver) while
// 2-bit RTN loses them.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { trainedTask } from "../../src/demo/demo.js";
import { runFrontier } from "../../src/frontier/frontier.js";
import { tempDir } from "../helpers.js";

const DIR = fileURLToPath(new URL("../../../models/default-deep", import.meta.url));
const README = fileURLToPath(new URL("../../../README.md", import.meta.url));

test("default-deep: ≥ 6 blocks, head_dim ≥ 64, GQA, trained on 16-fact countdown problems", () => {
  const c = JSON.parse(fs.readFileSync(path.join(DIR, "config.json"), "utf8"));
  assert.ok(c.num_hidden_layers >= 6);
  assert.ok(c.head_dim >= 64);
  assert.ok(c.num_key_value_heads < c.num_attention_heads && c.num_attention_heads % c.num_key_value_heads === 0);
  assert.deepEqual(trainedTask(DIR), { facts: 16, steps: 99, countdown: true });
});

test("default-deep: the README's sha256 is the shipped file's", () => {
  const sha = crypto.createHash("sha256").update(fs.readFileSync(path.join(DIR, "model.safetensors"))).digest("hex");
  assert.ok(fs.readFileSync(README, "utf8").includes(`\`model.safetensors\` has sha256 \`${sha}\``), `README.md does not give ${sha}`);
});

test("default-deep: held-out answers exact at full precision, lost with 2-bit RTN", () => {
  const r = runFrontier({
    modelDir: DIR, outDir: path.join(tempDir(), "frontier-deep"), problems: 3, task: trainedTask(DIR), minLengthFraction: 0.5,
    methods: ["original", "rtn"], bits: [2], windows: [32], hadamard: false, calibrationSamples: 2,
  });
  const at = (k: string) => r.settings.find((s) => s.key === k)!;
  assert.equal(at("original").accuracy, 100);
  assert.equal(at("rtn-2").accuracy, 0);
  assert.ok(r.longestAnswer > 500, `longest answer ${r.longestAnswer} tokens`);
});
