// The folders of src/ form a straight line, bottom to top: a file may import from its own folder
// and from folders below it, never from above (so no two folders import each other). Read from
// the sources' import lines, so a new upward edge fails here the day it is written.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers.js";

/** Bottom to top. */
const ORDER = ["types", "tensor", "util", "quant", "tokenizer", "model", "cache", "generate", "calib", "task", "eval", "train", "frontier", "demo", "cli"];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "assembly" ? [] : sources(p);
    return e.name.endsWith(".ts") ? [p] : [];
  });
}

test("src/ folders import only from themselves and from folders below them", () => {
  const src = path.join(REPO_ROOT, "src");
  const upward: string[] = [];
  const unplaced = new Set<string>();
  for (const file of sources(src)) {
    const rel = path.relative(REPO_ROOT, file).split(path.sep).join("/");
    const parts = rel.split("/");
    if (parts.length < 3) continue; // src/index.ts, src/errors.ts: the package's top
    const from = parts[1];
    for (const m of fs.readFileSync(file, "utf8").matchAll(/from "(\.\.?\/[^"]+)"/g)) {
      const target = path.relative(src, path.resolve(path.dirname(file), m[1])).split(path.sep);
      if (target.length < 2) continue; // a top-level file (errors.ts)
      const to = target[0];
      if (to === from) continue;
      for (const f of [from, to]) if (!ORDER.includes(f)) unplaced.add(f);
      if (ORDER.indexOf(to) > ORDER.indexOf(from)) upward.push(`${rel} imports ${m[1]} (${from} is below ${to})`);
    }
  }
  assert.deepEqual([...unplaced], [], "folders missing from ORDER: place them in the line");
  assert.deepEqual(upward, []);
});
