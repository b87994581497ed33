// Judging LiveCodeBench responses: a folder of responses (ours and the original's schema) with
// known verdicts gives exact per-response reasons, per-problem pass@1 and their mean, no voting;
// stored judgements; the command's report; judging an eval output in place (resumable); and
// `pmkvq eval --benchmark livecodebench` end to end on the tiny model.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseCLI } from "../../src/cli/main.js";
import { runJudge } from "../../src/cli/judge.js";
import { judgeCodeOutput, judgeCodeResponses, VOTING_DOES_NOT_APPLY } from "../../src/eval/code-judge.js";
import { LIVECODEBENCH_PROMPT_TEMPLATE, loadLiveCodeBench } from "../../src/eval/livecodebench.js";
import { readResponseFile, readResponsesDir, writeResponseFile } from "../../src/eval/responses.js";
import { REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";
import { writeLiveCodeBench } from "./lcb-fixtures.js";

const PYTHON = spawnSync("python3", ["--version"]).status === 0;
const skip = PYTHON ? false : "python3 not found: the code judge runs Python programs";

const root = writeLiveCodeBench(tempDir());
const bench = loadLiveCodeBench(root, "release_v2");
const block = (code: string) => `Let me think.\n\`\`\`python\n${code}\n\`\`\`\n`;
const AB = "a, b = map(int, input().split())\nprint(a + b)";
const MAXSUM = "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        return sum(sorted(nums)[-k:])";

// ours: abc001_a (stdin) and 1999_B; the original's schema (seed, response, lengths only): 3000 (functional)
const ours = {
  "abc001_a.0": block(AB),
  "abc001_a.1": block("a, b = map(int, input().split())\nprint(min(a + b, 10))"),
  "abc001_a.2": "I could not write it.",
  "abc001_a.3": block("while True:\n    pass"),
  "1999_B.0": block("n = int(input())\nprint(*range(1, n + 1))"),
  "1999_B.1": block("def f(:\n"),
};
const theirs = {
  "3000.0": block(MAXSUM),
  "3000.1": block("class Solution:\n    def maxSum(self, nums, k):\n        return nums[10]"),
  "3000.2": `<think>\n\`\`\`python\nclass Solution:\n    def maxSum(self, nums, k):\n        return 0\n\`\`\`\n</think>\n${block(MAXSUM)}`,
  "3000.3": block("class Solution:\n    def maxSum(self, nums, k):\n        while True:\n            print('spam' * 1000)"),
};
const rec = (response: string, judgement: boolean | null = null) => ({ seed: 0, response, response_answer: null, gold: null, judgement, input_len: 10, output_len: 20 });
const responses = tempDir();
fs.writeFileSync(path.join(responses, "ours.json"), JSON.stringify(Object.fromEntries(Object.entries(ours).map(([k, v]) => [k, rec(v)]))));
fs.writeFileSync(path.join(responses, "theirs.jsonl"), JSON.stringify(Object.fromEntries(Object.entries(theirs).map(([k, v]) => [k, { seed: 42, response: v, input_len: 5, output_len: 5 }])), null, 4));

const sandbox = { timeoutS: 1, outputLimitBytes: 64 * 1024 };

test("every response's verdict, per-problem pass@1 and their mean; no voting for code", { skip }, async () => {
  const r = await judgeCodeResponses(readResponsesDir(responses), { benchmark: bench, sandbox, jobs: 2, nResponses: 4 });
  assert.deepEqual(r.per_response.map((x) => [x.key, x.judgement, x.reason]), [
    ["abc001_a.0", true, "passed"],
    ["abc001_a.1", false, "wrong answer on test 2 of 3"],
    ["abc001_a.2", false, "no code"],
    ["abc001_a.3", false, "timeout on test 1 of 3"],
    ["3000.0", true, "passed"],
    ["3000.1", false, "runtime error on test 1 of 3"],
    ["3000.2", true, "passed"],
    ["3000.3", false, "output limit on test 1 of 3"],
    ["1999_B.0", true, "passed"],
    ["1999_B.1", false, "compile error"],
  ]);
  assert.equal(r.per_response[5].detail, "IndexError: list index out of range");
  assert.deepEqual(r.per_problem.map((p) => [p.id, p.n_responses, p.pass_at_1, p.voted_answer, p.mean_length]), [
    ["abc001_a", 4, 25, null, 30],
    ["3000", 4, 50, null, 10],
    ["1999_B", 2, 50, null, 30],
  ]);
  assert.deepEqual(r.per_problem[0].verdicts, { passed: 1, "wrong answer": 1, "no code": 1, timeout: 1 });
  assert.ok(Math.abs(r.pass_at_1! - (25 + 50 + 50) / 3) < 1e-9, "the mean over problems, as LiveCodeBench");
  assert.equal(r.voting_accuracy, null);
  assert.equal(r.voting_note, VOTING_DOES_NOT_APPLY);
  assert.deepEqual(r.missing, ["1999_B.2", "1999_B.3"]);
  assert.equal(r.kind, "code");
});

test("stored judgements are used with --trust-stored, and without a dataset only then", async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "r.json"), JSON.stringify({
    "abc001_a.0": { ...rec("x", true), judge_reason: "passed" },
    "abc001_a.1": { ...rec("x", false), judge_reason: "timeout on test 2 of 3", judge_detail: null },
    "3000.0": rec("x", true),
  }));
  const r = await judgeCodeResponses(readResponsesDir(dir), { trustStored: true });
  assert.deepEqual(r.per_response.map((x) => [x.key, x.judgement, x.reason, x.stored]), [
    ["abc001_a.0", true, "passed", true], ["abc001_a.1", false, "timeout on test 2 of 3", true], ["3000.0", true, "passed", true],
  ]);
  assert.equal(r.pass_at_1, 75);
  fs.writeFileSync(path.join(dir, "s.json"), JSON.stringify({ "3000.1": rec("y") }));
  await assert.rejects(judgeCodeResponses(readResponsesDir(dir), { trustStored: true }), /1 code responses carry no stored judgement \(e\.g\. 3000\.1\); give --dataset-path/);
  await assert.rejects(runJudge({ benchmark: "livecodebench", responsesDir: dir }), /judging livecodebench runs each response's tests: give --dataset-path DIR --version V/);
  await assert.rejects(runJudge({ benchmark: "livecodebench", responsesDir: dir, datasetPath: root, version: "v1", judgeRunner: "none" }), /--judge-runner none: judging runs the tests/);
});

const BIN = path.join(REPO_ROOT, "bin", "pmkvq.js");

test("pmkvq judge --benchmark livecodebench: pass@1, that voting does not apply, verdicts and failures", { skip }, () => {
  const dir = tempDir();
  fs.copyFileSync(path.join(responses, "ours.json"), path.join(dir, "ours.json"));
  const judge = (extra: string[] = []) => spawnSync(process.execPath, [BIN, "judge", "--benchmark", "livecodebench", "--version", "release_v2", "--dataset-path", root,
    "--responses-dir", dir, "--judge-timeout", "1", "--judge-jobs", "2", ...extra], { encoding: "utf8" });
  const r = judge();
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  const lines = out.split("\n");
  assert.equal(lines[0], "livecodebench release_v2: 6 responses to 2 problems");
  assert.equal(lines[1], "pass@1 37.5% (mean over problems, as LiveCodeBench)");
  assert.equal(lines[2], "voting accuracy does not apply to code: a response is a program, judged by running its tests (pass@1 only)");
  assert.match(lines[3], /^tests run by python3, 1 s per test, 4096 MiB, 2 at once$/);
  assert.match(out, /\nabc001_a\s+4\s+25\.0%\s+30  passed 1, wrong answer 1, no code 1, timeout 1\n/);
  assert.match(out, /\n  abc001_a\.1: wrong answer on test 2 of 3 — line 1: got 10, expected 12\n/);
  assert.match(out, /\n  1999_B\.1: compile error — SyntaxError: /);
  assert.match(out, /\nmissing 6 responses: 3000\.0, 3000\.1, 3000\.2, 3000\.3, 1999_B\.2, 1999_B\.3\n/);
  const json = JSON.parse(judge(["--json"]).stdout);
  assert.equal(json.voting_accuracy, null);
  assert.equal(json.per_response.length, 6);
});

test("LiveCodeBench responses judged without --benchmark livecodebench are refused, not scored as math", async () => {
  const dir = tempDir();
  const settings = { method: "original", "prompt.instruction": LIVECODEBENCH_PROMPT_TEMPLATE };
  fs.writeFileSync(path.join(dir, "r.json"), JSON.stringify({ "3000.0": { ...rec(block(MAXSUM)), settings } }));
  await assert.rejects(runJudge({ responsesDir: dir }), /1 responses answer LiveCodeBench's prompt; judge them with --benchmark livecodebench/);
});

test("judging an eval output in place: unjudged responses only, written after each", { skip }, async () => {
  const file = path.join(tempDir(), "out.json");
  const order = bench.problems.map((p) => p.id);
  writeResponseFile(file, {
    "abc001_a.0": rec(block(AB)),
    "abc001_a.1": rec(block("print(0)")),
    "3000.0": { ...rec("stale"), judgement: true, judge_reason: "passed" },
    "3000.1": rec(block(MAXSUM)),
  }, order);
  const first = await judgeCodeOutput(file, bench, bench.problems.slice(0, 2), 2, { sandbox });
  assert.equal(first.judged, 3, "the stored judgement of 3000.0 is kept");
  const after = readResponseFile(file);
  assert.deepEqual(Object.entries(after).map(([k, r]) => [k, r.judgement, r.judge_reason]), [
    ["abc001_a.0", true, "passed"], ["abc001_a.1", false, "wrong answer on test 1 of 3"], ["3000.0", true, "passed"], ["3000.1", true, "passed"],
  ]);
  assert.equal(after["abc001_a.0"].response_answer, AB);
  assert.equal(after["abc001_a.1"].judge_detail, "line 1: got 0, expected 3");
  assert.equal((await judgeCodeOutput(file, bench, bench.problems, 2, { sandbox })).judged, 0, "a second run has nothing left to judge");
});

test("eval and judge take the livecodebench flags; --help explains them", async () => {
  const { flags } = await parseCLI(["eval", "--model", "m", "--dataset_path", "d", "--benchmark", "livecodebench", "--version", "release_v5",
    "--start_date", "2024-08-01", "--end-date", "2025-02-01", "--judge-runner", "docker run --rm -i python:3.11 python3", "--judge_timeout", "6", "--judge-jobs", "3"]);
  assert.deepEqual([flags.startDate, flags.endDate, flags.judgeRunner, flags.judgeTimeout, flags.judgeMemoryMb, flags.judgeJobs],
    ["2024-08-01", "2025-02-01", "docker run --rm -i python:3.11 python3", 6, 4096, 3]);
  const judge = await parseCLI(["judge", "--benchmark", "livecodebench", "--responses-dir", "r", "--judge-memory-mb", "0"]);
  assert.equal(judge.flags.judgeMemoryMb, 0);
  await assert.rejects(parseCLI(["judge", "--judge-timeout", "0"]), /--judge-timeout/);
  for (const command of ["eval", "judge"]) {
    const help = spawnSync(process.execPath, [BIN, command, "--help"], { encoding: "utf8" }).stdout.replace(/\s+/g, " ");
    for (const s of ["--judge-runner", "NOT a security boundary", "docker run --rm -i --network none", "--judge-timeout", "--judge-memory-mb", "--start-date", "livecodebench"]) assert.ok(help.includes(s), `${command} --help: ${s}`);
  }
});

test("pmkvq eval --benchmark livecodebench: the original's prompt, gold = question id, judged by its tests", { skip }, () => {
  const out = path.join(tempDir(), "lcb.json");
  const args = (output: string, extra: string[] = []) => [BIN, "eval", "--model", STORIES_DIR, "--dataset-path", root, "--benchmark", "livecodebench", "--version", "release_v1",
    "--end", "2", "--n-responses", "1", "--max-new-tokens", "8", "--output", output, "--judge-timeout", "2", ...extra];
  const r = spawnSync(process.execPath, args(out), { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /judging: tests run by python3, 2 s per test/);
  assert.match(r.stdout, /pass@1 over this range: 0\.0% \(2 responses\)/);
  const data = readResponseFile(out);
  assert.deepEqual(Object.keys(data), ["abc001_a.0", "3000.0"]);
  for (const [key, v] of Object.entries(data)) {
    assert.equal(v.gold, key.split(".")[0]);
    assert.equal(v.response_answer, null, "a tiny story model writes no code block");
    assert.equal(v.judgement, false);
    assert.equal(v.judge_reason, "no code");
    assert.equal(v.settings!["prompt.instruction"], LIVECODEBENCH_PROMPT_TEMPLATE);
    assert.ok(v.input_len > 40, "the prompt holds the question and the format");
  }
  // --judge-runner none leaves them unjudged, for pmkvq judge
  const later = path.join(tempDir(), "later.json");
  const none = spawnSync(process.execPath, args(later, ["--judge-runner", "none", "--end", "1"]), { encoding: "utf8" });
  assert.equal(none.status, 0, none.stderr);
  assert.match(none.stdout, /not judged \(--judge-runner none\)/);
  assert.equal(readResponseFile(later)["abc001_a.0"].judgement, null);
  // a runner that cannot run fails before the model is loaded
  const broken = spawnSync(process.execPath, args(path.join(tempDir(), "x.json"), ["--judge-runner", "/no/such/python"]), { encoding: "utf8" });
  assert.equal(broken.status, 2);
  assert.match(broken.stderr, /cannot be started \(not found on PATH\)/);
  assert.doesNotMatch(broken.stderr, /loaded /);
});
