// --kv-budgets: a number for every block, a JSON list, or `pmkvq allocate` output.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseKvBudgetsMB } from "../../src/cache/budgets.js";
import { UsageError } from "../../src/errors.js";
import { tempDir } from "../helpers.js";

const dir = tempDir();
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

test("one number applies to every block", () => {
  assert.deepEqual(parseKvBudgetsMB("0.5", 3), [0.5, 0.5, 0.5]);
  assert.deepEqual(parseKvBudgetsMB("2", 2), [2, 2]);
});

test("a JSON list or an allocate result with budgetsMB", () => {
  assert.deepEqual(parseKvBudgetsMB(file("list.json", "[1, 2.5, 3]"), 3), [1, 2.5, 3]);
  assert.deepEqual(parseKvBudgetsMB(file("alloc.json", JSON.stringify({ bits: [4, 2], budgetsMB: [4, 2], totalMB: 6 })), 2), [4, 2]);
});

test("bad budgets are refused with the reason", () => {
  const cases: [string, RegExp][] = [
    ["0", /must be > 0/],
    [path.join(dir, "missing.json"), /neither a number of MB nor an existing file/],
    [file("bad.json", "{oops"), /not valid JSON/],
    [file("short.json", "[1, 2]"), /2 budgets, but the model has 3 blocks/],
    [file("neg.json", "[1, -2, 3]"), /block 1 budget -2/],
    [file("obj.json", '{"bits": [4]}'), /expected a JSON list/],
  ];
  for (const [arg, msg] of cases) assert.throws(() => parseKvBudgetsMB(arg, 3), (e: Error) => e instanceof UsageError && msg.test(e.message), arg);
});

test("non-finite budgets, folders and duplicate keys are refused, naming the file", () => {
  const folder = fs.mkdtempSync(path.join(dir, "folder-"));
  const cases: [string, string[]][] = [
    ["1e999", ["--kv-budgets 1e999", "must be > 0 MB (and finite)"]],
    ["1e-400", ["must be > 0 MB"]],
    [file("inf.json", "[1, 1e999, 3]"), ["inf.json", "block 1 budget Infinity", "finite positive number of MB"]],
    [file("inf-alloc.json", '{"budgetsMB": [1, 2, -1e999]}'), ["inf-alloc.json", "block 2 budget -Infinity"]],
    [file("str.json", '[1, "2", 3]'), ["str.json", 'block 1 budget "2"']],
    [file("null.json", "null"), ["null.json", "expected a JSON list"]],
    [file("dup.json", '{"budgetsMB": [1, 1, 1], "budgetsMB": [2, 2, 2]}'), ["dup.json", 'duplicate key "budgetsMB" at $']],
    [folder, [folder, "cannot read", "is a folder, not a file (EISDIR)"]],
  ];
  for (const [arg, parts] of cases) {
    assert.throws(() => parseKvBudgetsMB(arg, 3), (e: unknown) => {
      assert.ok(e instanceof UsageError, `expected a UsageError, got ${String(e)}`);
      for (const part of parts) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    }, arg);
  }
});
