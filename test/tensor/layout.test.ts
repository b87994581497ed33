// The tiled-attention layout (src/tensor/layout.ts), which the host and the AssemblyScript
// kernel both read: every plan and segment field has its own slot inside the size, and the
// kernel's source names each slot instead of writing its number.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import * as layout from "../../src/tensor/layout.js";
import { REPO_ROOT } from "../helpers.js";

const constants = Object.entries(layout) as [string, number][];

/** A plan's fields and a segment's fields: the prefix they share, the constant giving their count, other constants with that prefix. */
const RECORDS = [
  { prefix: "PLAN_", size: "PLAN_INTS", others: [] as string[] },
  { prefix: "SEG_", size: "SEG_INTS", others: ["SEG_F32", "SEG_F16", "SEG_PACKED", "SEG_PACKED16"] },
];

for (const r of RECORDS) {
  test(`${r.prefix}* fields: distinct slots inside ${r.size}`, () => {
    const size = (layout as Record<string, number>)[r.size];
    const named = constants.filter(([name]) => name.startsWith(r.prefix) && name !== r.size && !r.others.includes(name));
    assert.ok(named.length > 0);
    const seen = new Map<number, string>();
    for (const [name, slot] of named) {
      assert.ok(Number.isInteger(slot) && slot >= 0 && slot < size, `${name} = ${slot} lies outside [0, ${size})`);
      assert.equal(seen.get(slot), undefined, `${name} and ${seen.get(slot)} share slot ${slot}`);
      seen.set(slot, name);
    }
  });
}

test("storage kinds and modes are distinct", () => {
  const kinds = [layout.SEG_F32, layout.SEG_F16, layout.SEG_PACKED, layout.SEG_PACKED16];
  assert.equal(new Set(kinds).size, kinds.length);
  assert.notEqual(layout.MODE_DECODE, layout.MODE_PREFILL);
});

test("the kernel reads plan and segment fields by name, not by number", () => {
  const src = fs.readFileSync(path.join(REPO_ROOT, "src", "tensor", "assembly", "attention.ts"), "utf8");
  assert.match(src, /from "\.\.\/layout"/, "attention.ts imports ../layout");
  const bare = [...src.matchAll(/\b(pI|segI)\([^,()]+,\s*\d+\)/g)].map((m) => m[0]);
  assert.deepEqual(bare, [], "reads by a bare slot number");
  assert.doesNotMatch(src, /^const (P_|SEG_)\w+/m, "a second copy of the layout");
});
