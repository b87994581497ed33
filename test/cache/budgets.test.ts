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
