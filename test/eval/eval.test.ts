// pmkvq eval end to end on stories260K with a tiny benchmark folder: the original's schema,
// resume after a run killed at an arbitrary moment (same final file, nothing lost or doubled),
// and judging the result.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";
import { writeToyBenchmark } from "./fixtures.js";

const BIN = path.join(REPO_ROOT, "bin", "pmkvq.js");
const root = tempDir();
writeToyBenchmark(root, [["Once upon a time, Lily had 3 apples.", "3"], ["Tom saw a big dog.", "1"], ["The end.", "2"]]);

function args(output: string, extra: string[] = []): string[] {
  return [BIN, "eval", "--model_path", STORIES_DIR, "--dataset_path", root, "--benchmark", "toy", "--version", "1", "--end", "2",
    "--n_responses", "2", "--max_new_tokens", "16", "--output_path", output, ...extra];
}

test("eval writes the original's schema with finish reason and kv figures", () => {
  const out = path.join(tempDir(), "r.json");
  const r = spawnSync(process.execPath, args(out), { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const data = JSON.parse(fs.readFileSync(out, "utf8"));
  assert.deepEqual(Object.keys(data), ["toy_1.1.0", "toy_1.1.1", "toy_1.2.0", "toy_1.2.1"]);
  for (const [key, v] of Object.entries(data) as [string, Record<string, unknown>][]) {
    for (const f of ["seed", "response", "response_answer", "gold", "judgement", "input_len", "output_len", "finish_reason", "kv"]) assert.ok(f in v, `${key}.${f}`);
    assert.equal(v.seed, 42 + Number(key.at(-1)), "seeds 42 + i, as the original");
    assert.ok((v.output_len as number) <= 16);
  }
  assert.notEqual(data["toy_1.1.0"].response, data["toy_1.1.1"].response, "seed + i gives different samples");
});

test("a run killed at any moment resumes to the same final file", async () => {
  const dir = tempDir();
  const reference = path.join(dir, "reference.json");
  assert.equal(spawnSync(process.execPath, args(reference, ["--max_new_tokens", "150"]), { encoding: "utf8" }).status, 0);
  const want = fs.readFileSync(reference, "utf8");
  const entries = (file: string) => {
    try {
      return Object.keys(JSON.parse(fs.readFileSync(file, "utf8"))).length; // never half-written
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw e;
    }
  };
  const partials: number[] = [];
  // kill moments named by what the run has done, not by the clock (so the same moments are hit
  // however loaded the machine is): once the model is loaded, once the range is announced (before
  // any response), and the moment the file holds 1, 2 and 3 of its 4 responses (mid-generation of
  // the next one)
  const kills: ({ onStderr: RegExp } | { atEntries: number })[] = [
    { onStderr: /^loaded /m },
    { onStderr: /^toy 1: /m },
    ...[1, 2, 3].map((n) => ({ atEntries: n })),
  ];
  for (const [i, kill] of kills.entries()) {
    const out = path.join(dir, `killed-${i}.json`);
    const child = spawn(process.execPath, args(out, ["--max_new_tokens", "150"]), { stdio: ["ignore", "ignore", "pipe"] });
    let done = false;
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise((r) => child.on("exit", () => r((done = true))));
    const reached = () => ("onStderr" in kill ? kill.onStderr.test(stderr) : entries(out) >= kill.atEntries);
    while (!done && !reached()) await new Promise((r) => setTimeout(r, 1));
    child.kill("SIGKILL");
    await exited;
    partials.push(entries(out));
    const rerun = spawnSync(process.execPath, args(out, ["--max_new_tokens", "150"]), { encoding: "utf8" });
    assert.equal(rerun.status, 0, rerun.stderr);
    assert.equal(fs.readFileSync(out, "utf8"), want, `kill ${JSON.stringify(kill)} (left ${partials.at(-1)} responses)`);
  }
  assert.ok(partials.some((n) => n > 0 && n < 4), `at least one kill landed mid-run (responses left: ${partials.join(", ")})`);
  assert.equal(partials[0], 0, "a kill before any response leaves no file behind, or an empty one");
  // judge the folder: complete, one entry per key
  const j = spawnSync(process.execPath, [BIN, "judge", "--responses-dir", dir, "--json"], { encoding: "utf8" });
  assert.equal(j.status, 0, j.stderr);
  const report = JSON.parse(j.stdout);
  assert.equal(report.n_responses, 4);
  assert.deepEqual(report.missing, []);
  assert.equal(report.duplicates.length, 4 * kills.length, "every killed-run file repeats the reference's keys");
});

test("eval flags: --shard, and bad ranges are refused", () => {
  const out = path.join(tempDir(), "s.json");
  const r = spawnSync(process.execPath, [...args(out).filter((a, i, all) => a !== "--end" && all[i - 1] !== "--end"), "--shard", "1/3", "--n_responses", "1"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(out, "utf8"))), ["toy_1.2.0"]);
  const bad = spawnSync(process.execPath, [...args(out), "--start", "5"], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--start 5 is outside 0 … 3/);
});

test("two evals into one --output: the second stops at once, naming the file and the holder", async () => {
  const out = path.join(tempDir(), "shared.json");
  // a run long enough (24 responses of up to 400 tokens) that the second one starts while it works
  const long = ["--end", "3", "--n_responses", "8", "--max_new_tokens", "400"];
  const a = spawn(process.execPath, args(out, long), { stdio: ["ignore", "ignore", "pipe"] });
  let aErr = "";
  a.stderr.on("data", (d) => (aErr += d));
  const aExit = new Promise<number | null>((r) => a.on("exit", r));
  const lock = path.join(path.dirname(out), ".shared.json.lock");
  for (let i = 0; i < 200 && !fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(fs.existsSync(lock), "the first run holds a lock beside its output");
  const b = spawnSync(process.execPath, args(out, long), { encoding: "utf8" });
  const aStillRunning = fs.existsSync(lock); // the first run removes its lock as it finishes
  assert.equal(b.status, 2);
  const lines = b.stderr.trim().split("\n");
  assert.equal(lines.length, 1, b.stderr);
  assert.match(lines[0], new RegExp(`^pmkvq: --output .*shared\\.json: in use by another run \\(pid ${a.pid} on host `));
  assert.ok(aStillRunning, "the second run was refused while the first still worked (it did not wait for the lock)");
  assert.doesNotMatch(b.stderr, /^loaded /m, "refused before loading the model");
  assert.equal(await aExit, 0, aErr);
  assert.equal(Object.keys(JSON.parse(fs.readFileSync(out, "utf8"))).length, 24, "the first run kept every response");
  assert.equal(fs.existsSync(lock), false, "the lock is gone after the run");
});

test("resume refuses an output made with other settings, naming them; --force-resume keeps them", () => {
  const dir = tempDir();
  const out = path.join(dir, "r.json");
  assert.equal(spawnSync(process.execPath, args(out), { encoding: "utf8" }).status, 0);
  const first = JSON.parse(fs.readFileSync(out, "utf8"));
  const rec = first["toy_1.1.0"];
  assert.equal(rec.settings.max_new_tokens, 16);
  assert.equal(rec.settings.method, "original");
  assert.match(rec.settings["model.fingerprint"], /^sha256:[0-9a-f]{64}$/);
  assert.equal(typeof rec.settings_id, "string");
  const cases: [string[], RegExp][] = [
    [["--max_new_tokens", "20"], /max_new_tokens: 16 → 20/],
    [["--method", "rtn", "--k-bits", "2"], /method: original → rtn/],
    [["--temperature", "0.3"], /sampling\.temperature: 0\.6 → 0\.3/],
    [["--model_path", path.join(REPO_ROOT, "models", "default")], /model\.fingerprint: sha256:/],
  ];
  for (const [extra, want] of cases) {
    const r = spawnSync(process.execPath, [...args(out), ...extra], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /responses were made with other settings/);
    assert.match(r.stderr, want);
    assert.match(r.stderr, /--force-resume/);
    assert.deepEqual(JSON.parse(fs.readFileSync(out, "utf8")), first, "the refused run changed nothing");
  }
  // accepted with --force-resume: old responses kept, new ones added under the new settings
  const r = spawnSync(process.execPath, args(out, ["--end", "3", "--max_new_tokens", "20", "--force-resume"]), { encoding: "utf8" }); // the last --end wins
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /kept \(--force-resume\)/);
  const mixed = JSON.parse(fs.readFileSync(out, "utf8"));
  assert.deepEqual(mixed["toy_1.1.0"], first["toy_1.1.0"]);
  assert.equal(mixed["toy_1.3.0"].settings.max_new_tokens, 20);
  // judge sees two settings in the folder and refuses to merge them unless told to
  const j = spawnSync(process.execPath, [BIN, "judge", "--responses-dir", dir], { encoding: "utf8" });
  assert.equal(j.status, 2);
  assert.match(j.stderr, /max_new_tokens: 16 → 20/);
  assert.equal(spawnSync(process.execPath, [BIN, "judge", "--responses-dir", dir, "--allow-mixed-settings"], { encoding: "utf8" }).status, 0);
});

test("a prompt past the context limit is refused before any response is written", () => {
  const out = path.join(tempDir(), "c.json");
  const r = spawnSync(process.execPath, [...args(out), "--context-limit", "8"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /the prompt of problem toy_1\.1 has \d+ tokens, past the model's context of 8 tokens/);
  assert.equal(fs.existsSync(out), false);
  const past = spawnSync(process.execPath, [...args(out), "--context-limit", "100000"], { encoding: "utf8" });
  assert.equal(past.status, 2);
  assert.match(past.stderr, /past this model's max_position_embeddings \(512\) and the model has no RoPE scaling/);
});
