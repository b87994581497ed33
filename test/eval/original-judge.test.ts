// `judge --rules original`: the original's string rules on hand-made inputs. Each expected value
// is worked out by hand from the rules of thu-nics/PM-KVQ's eval_aime.py / judge.py (the step
// that decides it is in the comment); the same cases, and 3,000 random ones, were also checked
// against the original's Python functions when this was written.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { runJudge } from "../../src/cli/judge.js";
import { loadBenchmark } from "../../src/eval/benchmarks.js";
import { judgeResponses, readResponsesDir } from "../../src/eval/judge.js";
import {
  normalizeFinalAnswer, originalExtractAnswer, originalJudge, originalVote, pandasColumnStrings, pyFloatRepr, stripString,
} from "../../src/eval/original-judge.js";
import { tempDir } from "../helpers.js";
import { writeToyBenchmark } from "./fixtures.js";

test("extraction: last balanced \\boxed, one pair of outer braces, else the FIRST answer sentence, else the first sentence", () => {
  assert.equal(originalExtractAnswer("So the answer is \\boxed{025}."), "025", "boxed content as written, no number parsing");
  assert.equal(originalExtractAnswer("We get \\boxed{\\frac{1}{2}} and then \\boxed{{7}}"), "7", "the last box; {7} loses one brace pair");
  // \fbox is found, but remove_boxed only accepts "\boxed{": the answer falls to the first sentence
  assert.equal(originalExtractAnswer("Thus \\fbox{12} is it."), "Thus\\fbox{12}isit");
  assert.equal(originalExtractAnswer("First. The final answer is $42$. Done."), "42", "first sentence with 'final answer', then $…$");
  assert.equal(originalExtractAnswer("I think 17 is right. Therefore answer is 18."), "18");
  assert.equal(originalExtractAnswer("Unbalanced \\boxed{12"), "Unbalanced\\boxed{12", "no closing brace: the first sentence, spaces removed");
  assert.equal(originalExtractAnswer("empty \\boxed{} then. The answer is 5."), "5", "an empty box is falsy in Python");
  assert.equal(originalExtractAnswer("3.5 apples. Then"), "3", "sentences split at every '.', even a decimal point");
});

test("judge: strings after _strip_string / normalize_final_answer only — no numeric equivalence", () => {
  const cases: [string, string, boolean, string][] = [
    ["025", "25", false, "leading zero: no step removes it"],
    ["\\frac{1}{2}", "1/2", true, "_fix_a_slash_b turns 1/2 into \\frac{1}{2}"],
    ["\\dfrac12", "\\frac{1}{2}", true, "dfrac → frac, then _fix_fracs braces 12"],
    ["x/2", "\\frac{x}{2}", false, "int('x') raises in _strip_string: only the normalize and raw comparisons remain"],
    ["10.0", "10", true, "(\\d+)\\.0+$ → 10"],
    ["100,000", "100000", true, "normalize: digits once commas go"],
    ["k = 5", "5", true, "a short left side of = is dropped"],
    ["5 \\text{ dollars}", "5", true, "a trailing \\text{…} unit is dropped"],
    ["0.5", ".5", true, "a leading '.' gets a 0"],
    ["12^\\circ", "12", true, "degrees removed"],
    ["50\\%", "50", true, "percent removed"],
    ["2j", "2i", true, "j → i when there is no i"],
    ["+3/4", "\\frac{3}{4}", false, "int('+3') = 3 but '3/4' ≠ '+3/4': the string stays"],
    ["0.5", "\\frac{1}{2}", false, "no value comparison"],
  ];
  for (const [a, b, want, why] of cases) assert.equal(originalJudge(a, b), want, `${a} vs ${b}: ${why}`);
  assert.equal(originalJudge(null, null), true);
  assert.equal(originalJudge(null, "1"), false);
});

test("_strip_string and normalize_final_answer, step by step", () => {
  assert.equal(stripString(" 3.000 "), "3");
  assert.equal(stripString("\\sqrt2 + \\sqrt{3}"), "\\sqrt{2}+\\sqrt{3}");
  assert.equal(stripString("infinity and inf"), "\\inftyinf", "'and' removed; inf is not replaced once \\infty is there");
  assert.throws(() => stripString("x/2"), /invalid literal for int/);
  assert.equal(normalizeFinalAnswer("an apple is 3 units"), "appleis3", "'an ' and 'units' removed, spaces gone");
  assert.equal(normalizeFinalAnswer("rac12"), "\\frac{1}{2}", "a lost \\f (form feed) restored, then shorthand braced");
  assert.equal(normalizeFinalAnswer("a \\le b"), "<b", "'a ' removed first, then \\le → <");
  assert.equal(normalizeFinalAnswer("answeris: 44"), "44");
  assert.equal(normalizeFinalAnswer("1,234"), "1234");
});

test("voting: the first of the most frequent raw strings (Python's max(list, key=list.count))", () => {
  assert.equal(originalVote(["25", "025", "24", "25"]), "25");
  assert.equal(originalVote(["8", "7"]), "8", "a tie goes to the first");
  assert.equal(originalVote(["0.5", "\\frac{1}{2}", "1/2"]), "0.5", "equivalent answers do not vote together");
  assert.equal(originalVote([]), null);
});

test("gold through pandas: integer columns lose leading zeros, mixed numeric columns print floats, text stays", () => {
  assert.deepEqual(pandasColumnStrings(["025", "7", "-3"]), ["25", "7", "-3"]);
  assert.deepEqual(pandasColumnStrings(["3", "0.5", "1e20"]), ["3.0", "0.5", "1e+20"]);
  assert.deepEqual(pandasColumnStrings(["025", "\\frac{1}{2}"]), ["025", "\\frac{1}{2}"]);
  assert.deepEqual(pandasColumnStrings(["7", ""]), ["7.0", "nan"], "a missing value makes the column float");
  assert.equal(pyFloatRepr(1e16), "1e+16");
  assert.equal(pyFloatRepr(0.0001), "0.0001");
  assert.equal(pyFloatRepr(0.00001), "1e-05");
  assert.equal(pyFloatRepr(123.25), "123.25");
});

test("a folder judged by both rule sets (hand-computed), and --rules both prints both", async () => {
  const root = tempDir();
  writeToyBenchmark(root, [["What is 5 squared?", "25"], ["Half of one?", "\\frac{1}{2}"], ["3 + 4?", "7"]]);
  const bench = loadBenchmark(root, "toy", "1");
  const rec = (response: string, gold: string) => ({ seed: 0, response, response_answer: null, gold, judgement: true, input_len: 1, output_len: 1 });
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({
    "toy_1.1.0": rec("so \\boxed{25}", "25"), // ours ✓ original ✓
    "toy_1.1.1": rec("I get \\boxed{025}.", "25"), // ours ✓ (value) original ✗ (string)
    "toy_1.1.2": rec("\\boxed{24}", "25"),
    "toy_1.1.3": rec("The final answer is 25.", "25"), // both ✓
    "toy_1.2.0": rec("\\boxed{0.5}", "\\frac{1}{2}"), // ours ✓ original ✗
    "toy_1.2.1": rec("\\boxed{1}", "\\frac{1}{2}"),
    "toy_1.2.2": rec("$\\boxed{\\dfrac12}$", "\\frac{1}{2}"), // both ✓
    "toy_1.3.0": rec("\\boxed{8}", "7"),
    "toy_1.3.1": rec("\\boxed{7}", "7"),
  }));
  const merged = readResponsesDir(dir);
  const ours = judgeResponses(merged, { benchmark: bench });
  const original = judgeResponses(merged, { benchmark: bench, rules: "original" });
  assert.equal(ours.pass_at_1, (100 * 6) / 9);
  assert.equal(original.pass_at_1, (100 * 4) / 9);
  // votes, original: p1 ["25","025","24","25"] → 25 ✓; p2 all distinct → "0.5" ≠ "\frac{1}{2}" ✗; p3 tie → "8" ✗
  assert.deepEqual(original.per_problem.map((p) => [p.voted_answer, p.voting_correct]), [["25", true], ["0.5", false], ["8", false]]);
  assert.equal(original.voting_accuracy, 100 / 3);
  // ours: p2's 0.5 and \dfrac12 vote together → ✓
  assert.equal(ours.voting_accuracy, 200 / 3);
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
  try {
    await runJudge({ responsesDir: dir, datasetPath: root, benchmark: "toy", version: "1", rules: "both" });
  } finally {
    process.stdout.write = write;
  }
  assert.match(out.join(""), /\nour rules: pass@1 66\.7% · voting accuracy 66\.7%\noriginal's rules: pass@1 44\.4% · voting accuracy 33\.3%\n/);
});

test("gold from a benchmark of integers: '025' in answers.csv is 25 to the original, so a boxed 025 is wrong there", () => {
  const root = tempDir();
  writeToyBenchmark(root, [["q1", "025"], ["q2", "7"]]);
  const bench = loadBenchmark(root, "toy", "1");
  const dir = tempDir();
  const rec = (response: string) => ({ seed: 0, response, response_answer: null, gold: "025", judgement: true, input_len: 1, output_len: 1 });
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({ "toy_1.1.0": rec("\\boxed{025}"), "toy_1.1.1": rec("\\boxed{25}") }));
  const r = judgeResponses(readResponsesDir(dir), { benchmark: bench, rules: "original" });
  assert.equal(r.per_problem[0].pass_at_1, 50, "025 ✗ (string ≠ '25'), 25 ✓");
  const ours = judgeResponses(readResponsesDir(dir), { benchmark: bench });
  assert.equal(ours.per_problem[0].pass_at_1, 100, "ours compares values");
});
