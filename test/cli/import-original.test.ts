// `pmkvq import-original` as a user runs it: flags (ours and the original's spellings), help,
// exit codes, and the imported files driving a real pm-kvq generation.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseCLI } from "../../src/cli/main.js";
import { REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";

const BIN = path.join(REPO_ROOT, "bin", "pmkvq.js");
const FIXTURES = path.join(REPO_ROOT, "test", "fixtures", "torch");
const ORIGINAL = path.join(FIXTURES, "original");

function pmkvq(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 60000 });
}

test("flags parse, the original's spellings included", async () => {
  const { command, flags } = await parseCLI([
    "import-original", "--out", "o", "--sensitivity_path", "s.pt", "--kv_budgets", "b.pt", "--max_keys_path", "m.pt", "--rep_scales", "r.pt",
    "--hidden_size", "1024", "--max_len", "8192", "--rep-scales-sqrt",
  ]);
  assert.equal(command, "import-original");
  assert.deepEqual(
    { ...flags },
    { out: "o", sensitivityPath: "s.pt", kvBudgets: "b.pt", maxKeysPath: "m.pt", repScales: "r.pt", kvHidden: 1024, maxLen: 8192, repScalesSqrt: true },
  );
  assert.equal((await parseCLI(["import-original", "--in", "d", "--out", "o"])).flags.maxLen, 32768);
  await assert.rejects(parseCLI(["import-original", "--in", "d"]), /--out/);
  await assert.rejects(parseCLI(["import-original", "--out", "o", "--max-len", "0"]));
});

test("--help explains every flag and what the import does with the original's values", () => {
  const r = pmkvq(["import-original", "--help"]);
  assert.equal(r.status, 0, r.stderr);
  for (const flag of ["--in", "--out", "--sensitivity-path", "--kv-budgets", "--max-keys-path", "--rep-scales", "--model", "--kv-hidden", "--max-len", "--rep-scales-sqrt", "--json"]) {
    assert.match(r.stdout, new RegExp(`\\n  ${flag} [^\\n]*\\S`), flag);
  }
  assert.match(r.stdout, /block L−1−i's gradient/);
  assert.match(r.stdout, /r \*\* 0\.5/);
});

test("import, then generate with the imported budgets and rep scales", () => {
  const out = path.join(tempDir(), "calib");
  const r = pmkvq(["import-original", "--in", ORIGINAL, "--out", out, "--model", STORIES_DIR]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /imported 4 artifacts/);
  assert.match(r.stdout, /matches the model: 5 blocks, 4 KV heads, head_dim 8/);
  const g = pmkvq([
    "generate", "--model", STORIES_DIR, "--method", "pm-kvq", "--kv-budgets", path.join(out, "allocation.json"),
    "--rep-scales", path.join(out, "rep_scales.safetensors"), "--prompt", "Once upon a time", "--max-new-tokens", "4", "--json",
  ]);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).outputTokens, 4);
  const a = pmkvq(["allocate", "--sensitivity-path", path.join(out, "sensitivity.json"), "--memory-budget", "3", "--model", STORIES_DIR, "--out", path.join(out, "ours.json")]);
  assert.equal(a.status, 0, a.stderr);
});

test("a hostile file, no inputs, or a missing file: exit code 2 and a message naming the problem", () => {
  const marker = "/tmp/pmkvq-pwned-posix-system";
  fs.rmSync(marker, { force: true });
  const evil = pmkvq(["import-original", "--in", path.join(FIXTURES, "hostile"), "--out", path.join(tempDir(), "o")]);
  assert.equal(evil.status, 2);
  assert.match(evil.stderr, /refused global (builtins\.eval|posix\.system)/);
  assert.equal(fs.existsSync(marker), false);
  const none = pmkvq(["import-original", "--out", tempDir()]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /give --in DIR/);
  const missing = pmkvq(["import-original", "--rep-scales", path.join(FIXTURES, "nope.pt"), "--out", tempDir()]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--rep-scales .*nope\.pt: no such file/);
});
