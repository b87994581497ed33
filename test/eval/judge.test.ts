// Judging a synthetic responses folder with known answers: pass@1, voting (equivalent answers
// vote together, ties to the first seen), missing and duplicate responses, stored judgements;
// the original's .jsonl files, JSON lines, settings that must not be mixed, the command's report.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { judgeCommand, runJudge } from "../../src/cli/judge.js";
import { loadBenchmark, parseCsv, shardRange } from "../../src/eval/benchmarks.js";
import { judgeResponses, majorityAnswer, readResponsesDir } from "../../src/eval/judge.js";
import { tempDir } from "../helpers.js";
import { writeToyBenchmark } from "./fixtures.js";

const root = tempDir();
writeToyBenchmark(root, [["What is 5 squared?", "25"], ["Half of one?", "\\frac{1}{2}"], ["3 + 4?", "7"]]);
const bench = loadBenchmark(root, "toy", "1");

const rec = (response: string, gold: string, inLen: number, outLen: number, judgement = true) => ({
  seed: 0, response, response_answer: null, gold, judgement, input_len: inLen, output_len: outLen,
});

const responses = tempDir();
// shard A (sorted first): problem 1 complete, problem 3 half
fs.writeFileSync(path.join(responses, "a.json"), JSON.stringify({
  "toy_1.1.0": rec("so \\boxed{25}", "25", 10, 20),
  "toy_1.1.1": rec("I get \\boxed{025}.", "25", 10, 30),
  "toy_1.1.2": rec("\\boxed{24}", "25", 10, 40),
  "toy_1.1.3": rec("The final answer is 25.", "25", 10, 50),
  "toy_1.3.0": rec("\\boxed{8}", "7", 5, 5),
  "toy_1.3.1": rec("\\boxed{7}", "7", 5, 15, false),
}));
// shard B, in the original's format (no finish_reason, kv): problem 2, and a duplicate key
fs.writeFileSync(path.join(responses, "b.json"), JSON.stringify({
  "toy_1.2.0": rec("\\boxed{0.5}", "\\frac{1}{2}", 8, 8),
  "toy_1.2.1": rec("\\boxed{1}", "\\frac{1}{2}", 8, 8),
  "toy_1.2.2": rec("\\boxed{2}", "\\frac{1}{2}", 8, 8),
  "toy_1.2.3": rec("$\\boxed{\\dfrac12}$", "\\frac{1}{2}", 8, 8),
  "toy_1.1.0": rec("\\boxed{99}", "25", 10, 20),
}));
fs.writeFileSync(path.join(responses, ".partial.json.123.tmp"), "{ half written");

test("pass@1, voting, per-problem figures, missing and duplicates (hand-computed)", () => {
  const r = judgeResponses(readResponsesDir(responses), { benchmark: bench });
  // problem 1: 25 ✓, 025 ✓, 24 ✗, "answer is 25" ✓ → 75%; votes {25: 3, 24: 1} → 25 ✓
  // problem 2: 0.5 ✓, 1 ✗, 2 ✗, \dfrac12 ✓ → 50%; votes {0.5: 2, 1: 1, 2: 1} → 0.5 ✓
  // problem 3: 8 ✗, 7 ✓ → 50%; votes tie 1–1 → the first seen, 8 ✗
  assert.equal(r.n_responses, 10);
  assert.equal(r.pass_at_1, 60);
  assert.ok(Math.abs(r.voting_accuracy! - 200 / 3) < 1e-9);
  assert.deepEqual(r.missing, ["toy_1.3.2", "toy_1.3.3"]);
  assert.deepEqual(r.duplicates, ["toy_1.1.0"]);
  assert.deepEqual(r.files.map((f) => [path.basename(f.file), f.n_responses]), [["a.json", 6], ["b.json", 5]]);
  assert.deepEqual(r.skipped_files.map((s) => [path.basename(s.file), s.hidden]), [[".partial.json.123.tmp", true]]);
  assert.deepEqual(r.outside_benchmark, []);
  assert.deepEqual(r.per_problem.map((p) => [p.id, p.n_responses, p.pass_at_1, p.voted_answer, p.voting_correct, p.mean_length]), [
    ["toy_1.1", 4, 75, "25", true, 45],
    ["toy_1.2", 4, 50, "0.5", true, 16],
    ["toy_1.3", 2, 50, "8", false, 15],
  ]);
});

test("stored judgements are only used with --trust-stored", () => {
  const trusted = judgeResponses(readResponsesDir(responses), { benchmark: bench, trustStored: true });
  // stored: every judgement true except toy_1.3.1
  assert.equal(trusted.pass_at_1, 90);
});

test("without the benchmark, completeness is judged among the problems present", () => {
  const r = judgeResponses(readResponsesDir(responses), { nResponses: 5 });
  assert.equal(r.missing.length, 3 * 5 - 10);
});

test("majority vote: equivalent answers share a class; ties go to the first seen", () => {
  assert.equal(majorityAnswer(["7", "8", "008", null, "7"]), "7");
  assert.equal(majorityAnswer(["8", "7"]), "8");
  assert.equal(majorityAnswer(["1,000", "999", "1000"]), "1,000");
  assert.equal(majorityAnswer([null, null]), null);
});

test("the dataset layout: quoted CSV answers, subset order, shards", () => {
  assert.deepEqual(parseCsv('id,answer\n1,"a, b"\n2,"say ""hi"""\n3,\\frac{1}{2}\n'), [
    { id: "1", answer: "a, b" }, { id: "2", answer: 'say "hi"' }, { id: "3", answer: "\\frac{1}{2}" },
  ]);
  assert.deepEqual(bench.problems.map((p) => [p.id, p.gold]), [["toy_1.1", "25"], ["toy_1.2", "\\frac{1}{2}"], ["toy_1.3", "7"]]);
  assert.deepEqual([0, 1, 2, 3].map((i) => shardRange(`${i}/4`, 30)), [{ start: 0, end: 7 }, { start: 7, end: 15 }, { start: 15, end: 22 }, { start: 22, end: 30 }]);
  assert.throws(() => shardRange("4/4", 30), /0 ≤ i < n/);
  assert.throws(() => loadBenchmark(root, "toy", "2"), /no version "2".*found: 1/);
});

// ---- response formats, folder entries and settings, as judged ----------------------------

const settingsA = {
  "model.architecture": "llama", "model.fingerprint": "0123456789abcdef0123", method: "pm-kvq", "kv.body_bits": 2,
  "sampling.temperature": 0.6, "sampling.top_p": 0.95, "sampling.seed": 0, max_new_tokens: 32768, "pmkvq.version": "0.1.0",
};
const settingsB = { ...settingsA, method: "kivi", max_new_tokens: 4096 };
const withSettings = (r: ReturnType<typeof rec>, settings: Record<string, string | number>) => ({ ...r, settings });

/** Problem 1 of the toy benchmark, responses 0–3, as the original writes it: one object, indent 4. */
const originalJsonl = (keys: number[]) => JSON.stringify(
  Object.fromEntries(keys.map((i) => [`toy_1.1.${i}`, rec(i === 2 ? "\\boxed{24}" : "\\boxed{25}", "25", 10, 20)])), null, 4);

test("a folder of the original's .jsonl files is judged alone", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "aime_0_2.jsonl"), originalJsonl([0, 1]));
  fs.writeFileSync(path.join(dir, "aime_2_4.jsonl"), originalJsonl([2, 3]));
  const r = judgeResponses(readResponsesDir(dir));
  // 25 ✓, 25 ✓, 24 ✗, 25 ✓
  assert.equal(r.n_responses, 4);
  assert.equal(r.pass_at_1, 75);
  assert.deepEqual(r.missing, []);
  assert.deepEqual(r.files.map((f) => [path.basename(f.file), f.n_responses]), [["aime_0_2.jsonl", 2], ["aime_2_4.jsonl", 2]]);
  // files without settings alone are one group: judged without complaint
  assert.equal(r.settings_groups.length, 1);
  assert.equal(r.settings_groups[0].settings_id, null);
  assert.equal(r.mixed_settings, false);
});

test("a .jsonl beside a .json: both read, counts add up", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({ "toy_1.1.0": rec("\\boxed{25}", "25", 1, 1), "toy_1.1.1": rec("\\boxed{25}", "25", 1, 1) }));
  fs.writeFileSync(path.join(dir, "b.jsonl"), [
    JSON.stringify({ key: "toy_1.1.2", ...rec("\\boxed{24}", "25", 1, 1) }),
    JSON.stringify({ "toy_1.1.3": rec("\\boxed{7}", "25", 1, 1), "toy_1.2.0": rec("\\boxed{0.5}", "\\frac{1}{2}", 1, 1) }),
  ].join("\n") + "\n");
  const r = judgeResponses(readResponsesDir(dir), { nResponses: 4 });
  assert.equal(r.n_responses, 5);
  assert.deepEqual(r.files.map((f) => [path.basename(f.file), f.format, f.n_responses]), [["a.json", "object", 2], ["b.jsonl", "json-lines", 3]]);
  // problem 1: 2 of 4; problem 2: 1 of 1 → 3 of 5
  assert.equal(r.pass_at_1, 60);
  assert.deepEqual(r.missing, ["toy_1.2.1", "toy_1.2.2", "toy_1.2.3"]);
});

test("responses to problems outside the benchmark are reported, not judged", async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({ "toy_1.1.0": rec("\\boxed{25}", "25", 1, 1), "toy_1.9.0": rec("\\boxed{1}", "1", 1, 1) }));
  const r = judgeResponses(readResponsesDir(dir), { benchmark: bench, nResponses: 1 });
  assert.equal(r.n_responses, 1);
  assert.deepEqual(r.outside_benchmark, ["toy_1.9"]);
  const { out } = await captured(() => runJudge({ responsesDir: dir, datasetPath: root, benchmark: "toy", version: "1", nResponses: 1 }));
  assert.match(out, /^toy 1: 1 response to 1 problem\n/);
  assert.match(out, /not in the benchmark \(not judged\): toy_1\.9\n/);
  assert.match(out, /missing 2 responses: toy_1\.2\.0, toy_1\.3\.0\n/);
});

test("settings: per file and per group; two settings refuse, naming the differing keys, unless allowed", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({ "toy_1.1.0": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA), "toy_1.1.1": withSettings(rec("\\boxed{24}", "25", 1, 1), settingsA) }));
  fs.writeFileSync(path.join(dir, "b.json"), JSON.stringify({ "toy_1.2.0": withSettings(rec("\\boxed{1/2}", "\\frac{1}{2}", 1, 1), settingsB) }));
  const merged = readResponsesDir(dir);
  assert.deepEqual(merged.files.map((f) => [path.basename(f.file), f.settings.map((s) => [s.group, s.n_responses])]), [["a.json", [[1, 2]]], ["b.json", [[2, 1]]]]);
  assert.deepEqual(merged.settings_groups.map((g) => [g.group, g.n_responses, g.files.map((f) => path.basename(f))]), [[1, 2, ["a.json"]], [2, 1, ["b.json"]]]);
  assert.match(merged.settings_groups[0].description, /method pm-kvq \(body_bits=2\).*max 32768 new tokens/);
  assert.throws(() => judgeResponses(merged), (e: Error) => {
    assert.equal(e.name, "UsageError");
    assert.ok(!e.message.includes("\n"), "one line");
    for (const s of [dir, "2 different settings", "[1] a.json (2 responses)", "[2] b.json (1 response)", "max_new_tokens: 32768 → 4096", "method: pm-kvq → kivi", "--allow-mixed-settings"]) assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
    assert.ok(!e.message.includes("sampling."), "only the differing keys are named");
    return true;
  });
  const r = judgeResponses(merged, { allowMixedSettings: true });
  assert.equal(r.mixed_settings, true);
  assert.equal(r.pass_at_1, 100 * 2 / 3);
});

test("a file holding two settings is refused; records without settings beside ours are a group of their own", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "mixed.json"), JSON.stringify({
    "toy_1.1.0": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA),
    "toy_1.1.1": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsB),
    "toy_1.1.2": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA),
  }));
  const merged = readResponsesDir(dir);
  assert.deepEqual(merged.files[0].settings.map((s) => [s.group, s.n_responses]), [[1, 2], [2, 1]]);
  assert.throws(() => judgeResponses(merged), /\[1\] mixed\.json \(2 responses\); \[2\] mixed\.json \(1 response\).*max_new_tokens: 32768 → 4096; method: pm-kvq → kivi/);

  const dir2 = tempDir();
  fs.writeFileSync(path.join(dir2, "ours.json"), JSON.stringify({ "toy_1.1.0": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA) }));
  fs.writeFileSync(path.join(dir2, "theirs.jsonl"), originalJsonl([1]));
  assert.throws(() => judgeResponses(readResponsesDir(dir2)), /\[1\] ours\.json \(1 response\); \[2\] no settings recorded: theirs\.jsonl \(1 response\); \[1\] → \[2\]: no settings recorded in \[2\]/);
});

// ---- the command, run in-process ---------------------------------------------------------

async function captured(fn: () => Promise<void>): Promise<{ out: string; err: string }> {
  const [write, writeErr] = [process.stdout.write, process.stderr.write];
  let out = "";
  let err = "";
  process.stdout.write = ((c: string | Uint8Array) => ((out += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((err += String(c)), true)) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
  return { out, err };
}

/** A folder: our a.json (settings A, problem 1 complete), b.jsonl (settings B), clutter. */
function settingsFolder(): string {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({ "toy_1.1.0": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA), "toy_1.1.1": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA) }));
  fs.writeFileSync(path.join(dir, "b.jsonl"), JSON.stringify({ key: "toy_1.2.0", ...withSettings(rec("\\boxed{2}", "\\frac{1}{2}", 1, 1), settingsB) }) + "\n" +
    JSON.stringify({ key: "toy_1.2.1", ...withSettings(rec("\\boxed{0.5}", "\\frac{1}{2}", 1, 1), settingsB) }) + "\n");
  fs.writeFileSync(path.join(dir, "notes.txt"), "x");
  fs.mkdirSync(path.join(dir, "old"));
  fs.writeFileSync(path.join(dir, ".a.json.99.1700000000000.tmp"), "{");
  fs.writeFileSync(path.join(dir, ".a.json.lock"), "99");
  return dir;
}

test("judge prints files with their settings and every entry not read, before \"complete\"", async () => {
  const dir = settingsFolder();
  await assert.rejects(captured(() => runJudge({ responsesDir: dir })), /UsageError: .*method: pm-kvq → kivi/);
  const { out, err } = await captured(() => runJudge({ responsesDir: dir, allowMixedSettings: true }));
  const lines = out.split("\n");
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  assert.match(out, /4 responses to 2 problems/);
  assert.match(out, /pass@1 75\.0%/);
  assert.match(lines[at(/^\s+a\.json/)], /2 responses\s+\[1\] .*method pm-kvq \(body_bits=2\).*max 32768 new tokens/);
  assert.match(lines[at(/^\s+b\.jsonl/)], /2 responses \(JSON lines\)\s+\[2\] .*method kivi .*max 4096 new tokens/);
  assert.match(out, /skipped 2 entries, not response files: notes\.txt \(not a response file.*\), old\/ \(sub-folder/);
  assert.match(out, /ignored 2 hidden files: \.a\.json\.99\.1700000000000\.tmp \(temp file.*\), \.a\.json\.lock \(lock file/);
  assert.ok(at(/^complete$/) > at(/^ignored/) && at(/^ignored/) > at(/^skipped/), out);
  assert.match(out, /mixed settings judged together/);
  assert.match(err, /^warning: .*2 different settings together \(--allow-mixed-settings\)\n$/);

  const json = JSON.parse((await captured(() => runJudge({ responsesDir: dir, allowMixedSettings: true, json: true }))).out);
  assert.deepEqual(json.files.map((f: { file: string; n_responses: number }) => [path.basename(f.file), f.n_responses]), [["a.json", 2], ["b.jsonl", 2]]);
  assert.deepEqual(json.settings_groups.map((g: { settings: { method: string } }) => g.settings.method), ["pm-kvq", "kivi"]);
  assert.deepEqual(json.skipped_files.map((s: { file: string; hidden: boolean }) => [path.basename(s.file), s.hidden]), [
    [".a.json.99.1700000000000.tmp", true], [".a.json.lock", true], ["notes.txt", false], ["old", false],
  ]);
  assert.equal(json.mixed_settings, true);
});

test("--compare checks each side on its own and shows how their settings differ", async () => {
  const a = tempDir();
  const b = tempDir();
  fs.writeFileSync(path.join(a, "a.json"), JSON.stringify({ "toy_1.1.0": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA) }));
  fs.writeFileSync(path.join(b, "b.jsonl"), JSON.stringify({ key: "toy_1.1.0", ...withSettings(rec("\\boxed{24}", "25", 1, 1), settingsB) }) + "\n");
  fs.writeFileSync(path.join(b, "notes.md"), "x");
  const { out } = await captured(() => runJudge({ compare: [a, b] }));
  assert.match(out, /settings A → B: max_new_tokens: 32768 → 4096; method: pm-kvq → kivi\n/);
  assert.match(out, /B = .*\n(.*\n)*\s+skipped 1 entry, not response files: notes\.md/);
  assert.match(out, /overall\s+100\.0%\s+0\.0%/);
  const json = JSON.parse((await captured(() => runJudge({ compare: [a, b], json: true }))).out);
  assert.deepEqual(json.settings_differences.map((d: { key: string }) => d.key), ["max_new_tokens", "method"]);
  // a side holding two settings refuses on its own
  fs.writeFileSync(path.join(b, "c.json"), JSON.stringify({ "toy_1.1.1": withSettings(rec("\\boxed{25}", "25", 1, 1), settingsA) }));
  await assert.rejects(captured(() => runJudge({ compare: [a, b] })), (e: Error) => e.name === "UsageError" && e.message.startsWith(b));
});

test("--help explains every flag", () => {
  const cmd = judgeCommand(() => {});
  const help = cmd.helpInformation();
  for (const o of cmd.options) {
    assert.ok(help.includes(o.long!), o.long);
    assert.ok(o.description.length > 15, `${o.long} is explained`);
  }
  for (const s of ["--allow-mixed-settings", ".jsonl", "JSON lines", "skipped"]) assert.ok(help.includes(s), s);
});
