// Judging a synthetic responses folder with known answers: pass@1, voting (equivalent answers
// vote together, ties to the first seen), missing and duplicate responses, stored judgements.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
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
