// LiveCodeBench's release files: versions and dates select the problems, tests decode (plain
// JSON and the compressed encoding), the prompt is the original's letter for letter, the code
// of a response is its last fenced block, and malformed files are refused naming file and line.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import { loadBenchmark, problemPrompt } from "../../src/eval/benchmarks.js";
import { extractCode, loadCodeTests, loadLiveCodeBench, versionFiles, type CodeProblem } from "../../src/eval/livecodebench.js";
import { tempDir } from "../helpers.js";
import { lcbRow, ROWS, STARTER, writeLiveCodeBench } from "./lcb-fixtures.js";

const root = tempDir();
writeLiveCodeBench(path.join(root, "livecodebench"));

test("versions pick release files as LiveCodeBench's loader; dates bound contest_date inclusively", () => {
  const ids = (version: string, dates = {}) => loadLiveCodeBench(root, version, dates).problems.map((p) => p.id);
  assert.deepEqual(ids("release_v1"), ["abc001_a", "3000"]);
  assert.deepEqual(ids("release_v2"), ["abc001_a", "3000", "1999_B"]);
  assert.deepEqual(ids("release_latest"), ["abc001_a", "3000", "1999_B"]);
  assert.deepEqual(ids("v2"), ["1999_B"]);
  assert.deepEqual(ids("v1_v2"), ["abc001_a", "3000", "1999_B"]);
  assert.deepEqual(ids("release_v2", { startDate: "2024-09-10" }), ["3000", "1999_B"]);
  assert.deepEqual(ids("release_v2", { endDate: "2024-09-10" }), ["abc001_a", "3000"]);
  assert.deepEqual(ids("release_v2", { startDate: "2024-08-04", endDate: "2025-01-31" }), ["3000"]);
  assert.deepEqual(versionFiles("release_v6", []), ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"]);
  assert.deepEqual(versionFiles("v1", []), ["test.jsonl"]);
  assert.deepEqual(versionFiles("v3_v5", []), ["test3.jsonl", "test4.jsonl", "test5.jsonl"]);
  for (const bad of ["2024", "release_v0", "v2_v1", "latest"]) assert.throws(() => versionFiles(bad, [1]), /no version .*release_vN/, bad);
  assert.throws(() => ids("release_v3"), /needs test3\.jsonl in .*livecodebench \(found: test\.jsonl, test2\.jsonl\)/);
  assert.throws(() => ids("release_v1", { startDate: "2024-13-01" }), /--start-date 2024-13-01: expected a date YYYY-MM-DD/);
  assert.throws(() => ids("release_v1", { endDate: "Sept 10" }), /--end-date Sept 10/);
});

test("the release folder may be DIR itself or DIR/livecodebench; loadBenchmark dispatches to it", () => {
  const direct = writeLiveCodeBench(tempDir());
  assert.equal(loadLiveCodeBench(direct, "v1").problems.length, 2);
  const b = loadBenchmark(root, "livecodebench", "release_v2", { endDate: "2024-08-03" });
  assert.equal(b.kind, "code");
  assert.deepEqual(b.problems.map((p) => [p.id, p.gold, p.number]), [["abc001_a", "abc001_a", 1]]);
  assert.throws(() => loadLiveCodeBench(tempDir(), "v1"), /no LiveCodeBench release files \(test\.jsonl, test2\.jsonl, …\)/);
  assert.throws(() => loadBenchmark(root, "aime", "2024", { startDate: "2024-01-01" }), /select LiveCodeBench problems; aime has no contest dates/);
});

test("problem fields, and tests public then private — plain JSON and the compressed encoding", () => {
  const [stdinP, fnP, cf] = loadLiveCodeBench(root, "release_v2").problems;
  assert.equal(stdinP.fnName, null);
  assert.equal(stdinP.platform, "atcoder");
  assert.equal(fnP.fnName, "maxSum");
  assert.equal(fnP.starterCode, STARTER);
  assert.equal(fnP.contestDate, "2024-09-10T00:00:00");
  assert.deepEqual(loadCodeTests(stdinP), [{ input: "1 2\n", output: "3\n" }, { input: "5 7\n", output: "12\n" }, { input: "-4 4\n", output: "0\n" }]);
  assert.deepEqual(loadCodeTests(fnP), [{ input: "[1, 5, 3]\n2", output: "8" }, { input: "[4]\n1", output: "4" }, { input: "[-1, -2, 7, 7]\n3", output: "13" }]);
  assert.deepEqual(loadCodeTests(cf).map((t) => t.output), ["1 2 3\n", "1\n"]);
});

test("the prompt is the original's (eval_livecodebench.py + livecodebench.py format_prompt), letter for letter", () => {
  const [stdinP, fnP] = loadLiveCodeBench(root, "release_v1").problems;
  assert.equal(
    problemPrompt(stdinP),
    "### Question:\nGiven two integers A and B, print A+B.\n\n" +
      "### Format: Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample inputs). Enclose your code within delimiters as follows.\n" +
      "```python\n# YOUR CODE HERE\n```\n\n" +
      "### Answer: (use the provided format with backticks)\n\n",
  );
  assert.equal(
    problemPrompt(fnP),
    "### Question:\nReturn the largest sum of k elements of nums.\n\n" +
      "### Format: You will use the following starter code to write the solution to the problem and enclose your code within delimiters.\n" +
      "```python\nclass Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        \n```\n\n" +
      "### Answer: (use the provided format with backticks)\n\n",
  );
});

test("the code of a response: between the last two lines holding ```", () => {
  const cases: [string, string | null][] = [
    ["Sure:\n```python\nprint(1)\n```\n", "print(1)"],
    ["```\nx = 1\nprint(x)\n```", "x = 1\nprint(x)"],
    ["<think>\n```python\nprint('draft')\n```\n</think>\nFinal:\n```python\nprint('final')\n```\nDone.", "print('final')"],
    ["Here it is ```python\nprint(2)\nok ``` end", "print(2)"],
    ["no code at all", null],
    ["```python\nprint(3)\n", null],
    ["```python\n   \n```", null],
    // the last two lines holding ``` enclose nothing here: no code, as LiveCodeBench's extraction
    ["```python\na = 1\n```\ntrailing ```", null],
  ];
  for (const [response, want] of cases) assert.equal(extractCode(response), want, JSON.stringify(response));
  // three fences: the last two bound the block, as LiveCodeBench's indexlines[-2:]
  assert.equal(extractCode("```\na\n```\nb\n```"), "b");
});

test("malformed release files are refused, naming the file and line", () => {
  const dir = tempDir();
  const good = JSON.stringify(lcbRow(ROWS["test.jsonl"][0]));
  const cases: [string, RegExp][] = [
    [`${good}\n{not json`, /test\.jsonl:2: not valid JSON/],
    [`${good}\n[1, 2]`, /test\.jsonl:2: a line must be a JSON object/],
    [`${good}\n${JSON.stringify({ ...lcbRow(ROWS["test.jsonl"][1]), metadata: 7 })}`, /test\.jsonl:2: field "metadata" must be a string/],
    [`${good}\n\n${good}`, /test\.jsonl:3: question_id abc001_a again \(first at .*test\.jsonl:1\)/],
    [JSON.stringify({ ...lcbRow(ROWS["test.jsonl"][0]), contest_date: "yesterday" }), /test\.jsonl:1: contest_date "yesterday" is not a date/],
    [JSON.stringify({ ...lcbRow(ROWS["test.jsonl"][0]), metadata: "{func" }), /test\.jsonl:1: field "metadata" is not a JSON string/],
  ];
  for (const [text, message] of cases) {
    fs.writeFileSync(path.join(dir, "test.jsonl"), text);
    assert.throws(() => loadLiveCodeBench(dir, "v1"), (e: unknown) => e instanceof UsageError && message.test(e.message), message.source);
  }
  // broken tests are found when the tests are read, naming the line
  const tests: [Record<string, string>, RegExp][] = [
    [{ private_test_cases: "%%%" }, /test\.jsonl:1: private_test_cases is neither JSON nor base64\(zlib\(pickle of a JSON string\)\): not base64/],
    [{ private_test_cases: Buffer.from("x").toString("base64") }, /not zlib data/],
    [{ public_test_cases: JSON.stringify([{ input: 1, output: "2" }]) }, /test\.jsonl:1: public_test_cases\[0\] must be an object with string "input" and "output"/],
    [{ public_test_cases: JSON.stringify([{ input: "1", output: "2", testtype: "unit" }]) }, /testtype "unit" is neither/],
  ];
  for (const [fields, message] of tests) {
    fs.writeFileSync(path.join(dir, "test.jsonl"), JSON.stringify({ ...lcbRow(ROWS["test.jsonl"][0]), ...fields }) + "\n");
    const [p] = loadLiveCodeBench(dir, "v1").problems as CodeProblem[];
    assert.throws(() => loadCodeTests(p), (e: unknown) => e instanceof UsageError && message.test(e.message), message.source);
  }
});

test("long lines across read chunks keep their offsets (tests are read again from them)", () => {
  const dir = tempDir();
  const big = { ...ROWS["test.jsonl"][0], id: "big", content: "x".repeat(3 * 2 ** 20) + "\n\u00e9" };
  writeLiveCodeBench(dir, { "test.jsonl": [big, ROWS["test.jsonl"][1], { ...ROWS["test.jsonl"][0], id: "after" }] });
  const problems = loadLiveCodeBench(dir, "v1").problems;
  assert.deepEqual(problems.map((p) => p.id), ["big", "3000", "after"]);
  assert.equal(problems[0].text.length, 3 * 2 ** 20 + 2);
  assert.deepEqual(loadCodeTests(problems[2]).map((t) => t.output), ["3\n", "12\n", "0\n"]);
  assert.equal(loadCodeTests(problems[1]).length, 3);
});
