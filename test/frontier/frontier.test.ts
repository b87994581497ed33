// pmkvq frontier on the embedded default model (a short run): reservations equal to the
// packed layouts' byte formulas, every record written, a rerun that answers nothing again,
// records of other settings refused, a cut-short last line answered again.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/demo/demo.js";
import { SettingsMismatchError } from "../../src/errors.js";
import { runFrontier, type FrontierOptions } from "../../src/frontier/frontier.js";
import { tempDir } from "../helpers.js";

const out = path.join(tempDir(), "frontier");
const base: FrontierOptions = {
  modelDir: DEFAULT_MODEL_DIR, outDir: out, problems: 2, task: { facts: 4, steps: 60 }, minLengthFraction: 1,
  methods: ["original", "rtn", "turboquant", "pm-kvq"], bits: [4, 3, 2], windows: [32], hadamard: false, pmStride: 3, calibrationSamples: 2,
};

test("frontier: reservations by formula, records, resume, refusal", () => {
  const notices: string[] = [];
  const r = runFrontier({ ...base, onNotice: (m) => notices.push(m) });
  const keys = r.settings.map((s) => s.key);
  assert.deepEqual(keys.slice(0, 6), ["original", "rtn-4", "rtn-2", "turboquant-4", "turboquant-3", "turboquant-2"]);
  assert.ok(keys.slice(6).every((k) => k.startsWith("pm-kvq W=32 ")) && keys.length >= 8);
  assert.deepEqual(r.skipped, ["rtn-3: rtn cannot hold 3-bit codes (packed codes are 1, 2, 4 or 8 bits wide)"]);
  // the default model: 2 blocks, 2 KV heads × head_dim 32 (kv_hidden 64), groups of 32;
  // the longest answer (60 steps) is 606 tokens with its prompt, reserved for 1024
  assert.equal(r.longestAnswer, 606);
  assert.equal(r.maxLen, 1024);
  const at = (k: string) => r.settings.find((s) => s.key === k)!;
  const L = 2, kvh = 64, cap = 1024; // storage grows in steps of 128 tokens: 1024 rows held
  assert.equal(at("original").reservedBytes, L * 2 * cap * kvh * 4); // K and V in f32
  const packedRow = (b: number) => (kvh * b) / 8 + (kvh / 32) * 2 * 2; // codes + f16 scale and zero per group
  assert.equal(at("rtn-4").reservedBytes, L * 2 * cap * packedRow(4));
  assert.equal(at("rtn-2").reservedBytes, L * 2 * cap * packedRow(2));
  const turboRow = (b: number) => Math.ceil((kvh * b) / 32) * 4 + 2 * 2; // bit-streamed codes + an f16 σ per head
  assert.equal(at("turboquant-3").reservedBytes, L * 2 * cap * turboRow(3));
  // the full cache answers every problem; held bytes of fixed caches follow their answers' length
  assert.equal(at("original").accuracy, 100);
  assert.ok(at("rtn-4").heldBytes < at("rtn-4").reservedBytes);
  // pm-kvq: budgets sized for max_len; held within reserved
  for (const s of r.settings.filter((x) => x.method === "pm-kvq")) assert.ok(s.heldMaxBytes <= s.reservedBytes, s.key);
  const lines = fs.readFileSync(path.join(out, "records.jsonl"), "utf8").trim().split("\n");
  assert.equal(lines.length, r.settings.length * 2);
  assert.equal(r.generated, lines.length);
  for (const f of ["results.json", "frontier.svg", "frontier-run.json", "calibration/sensitivity.json"]) assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.match(r.verdicts.reserved, /^reserved: /);
  assert.match(r.verdicts.held, /^held \(mean peak per answer\): /);

  // a rerun answers nothing again and reports the same numbers
  const again = runFrontier(base);
  assert.equal(again.generated, 0);
  assert.deepEqual(again.settings.map((s) => [s.key, s.accuracy, s.heldBytes]), r.settings.map((s) => [s.key, s.accuracy, s.heldBytes]));

  // a run stopped while appending: its last line is cut short, and answered again
  fs.writeFileSync(path.join(out, "records.jsonl"), lines.slice(0, -1).join("\n") + "\n" + lines[lines.length - 1].slice(0, 20));
  const seen: string[] = [];
  const fixed = runFrontier({ ...base, onNotice: (m) => seen.push(m) });
  assert.equal(fixed.generated, 1);
  assert.ok(seen.some((m) => /cut short/.test(m)), seen.join("\n"));

  // other settings: refused, naming what differs; --fresh starts over
  assert.throws(() => runFrontier({ ...base, task: { facts: 4, steps: 50 } }), (e: unknown) => e instanceof SettingsMismatchError && /task/.test((e as Error).message));
  assert.throws(() => runFrontier({ ...base, maxLen: 2048 }), (e: unknown) => e instanceof SettingsMismatchError && /max_len: 1024 → 2048/.test((e as Error).message));
  const fresh = runFrontier({ ...base, methods: ["original"], fresh: true });
  assert.equal(fresh.generated, 2);
});

test("frontier refuses a max_len shorter than the longest answer", () => {
  assert.throws(() => runFrontier({ ...base, outDir: path.join(tempDir(), "f2"), maxLen: 300, methods: ["original"] }), /--max-len 300 is shorter than the task's longest answer \(606 tokens/);
});
