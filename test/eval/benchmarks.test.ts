// Benchmark folders that are malformed give one message naming the file, never a TypeError.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import { loadBenchmark, parseCsv, parseSimpleYaml } from "../../src/eval/benchmarks.js";
import { tempDir } from "../helpers.js";

function bench(answers: string, yaml = "n_problems: 1\n"): string {
  const root = tempDir();
  const dir = path.join(root, "toy", "toy_1");
  fs.mkdirSync(path.join(dir, "problems"), { recursive: true });
  fs.writeFileSync(path.join(dir, "config.yaml"), yaml);
  fs.writeFileSync(path.join(dir, "answers.csv"), answers);
  fs.writeFileSync(path.join(dir, "problems", "1.tex"), "One?");
  return root;
}

test("answers.csv without an id or answer column names the file and the columns it has", () => {
  assert.throws(() => loadBenchmark(bench("problem,solution\n1,3\n"), "toy", "1"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /answers\.csv: the header must name the columns "id" and "answer" \(found: problem, solution\)/);
    return true;
  });
  assert.equal(loadBenchmark(bench('id,answer\n1,"3"\n'), "toy", "1").problems[0].gold, "3");
  assert.deepEqual(parseCsv(""), []);
});

test("a config.yaml value in broken double quotes is kept as written", () => {
  assert.deepEqual(parseSimpleYaml('instruction: "unterminated\nn_problems: 3\n'), { instruction: '"unterminated', n_problems: 3 });
  assert.equal(loadBenchmark(bench("id,answer\n1,3\n", 'instruction: "bad \\q escape"\n'), "toy", "1").problems.length, 1);
});
