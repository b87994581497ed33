// Frontiers and verdicts on hand-made results whose answers are worked out by hand.

import assert from "node:assert/strict";
import { test } from "node:test";
import { compareAtLevels, frontier, heldRanges, heldVerdict, reservedVerdict, type SettingResult } from "../../src/frontier/analysis.js";

const KiB = 1024;
function s(key: string, method: string, reservedKiB: number, heldKiB: number, accuracy: number, family = method): SettingResult {
  return {
    key, family, method, reservedBytes: reservedKiB * KiB, heldBytes: heldKiB * KiB, heldMaxBytes: heldKiB * KiB,
    correct: accuracy, problems: 100, accuracy, meanOutputTokens: 500, kvBudgetStops: 0, tokensPerS: 1000,
  };
}

// A world like the paper's: fixed-bit methods reserve for max_len (reserved ≈ 1.7× held);
// pm-kvq fills what it is given (held ≈ reserved).
const world: SettingResult[] = [
  s("original", "original", 1024, 600, 100),
  s("rtn-4", "rtn", 160, 100, 100),
  s("rtn-2", "rtn", 96, 30, 0),
  s("kivi-4", "kivi", 192, 122, 100),
  s("kivi-2", "kivi", 128, 56, 5),
  s("pm 4,2", "pm-kvq", 140, 136, 97, "pm-kvq W=32"),
  s("pm 2,2", "pm-kvq", 110, 102, 40, "pm-kvq W=32"),
  s("pm 8,8", "pm-kvq", 360, 320, 100, "pm-kvq W=32"),
  s("pm-had 2,2", "pm-kvq", 111, 103, 90, "pm-kvq W=32 hadamard"),
];

test("frontier: ascending memory, strictly rising accuracy", () => {
  assert.deepEqual(frontier(world.filter((r) => r.method === "pm-kvq" && !r.family.includes("hadamard")), "reserved").map((q) => q.key), ["pm 2,2", "pm 4,2", "pm 8,8"]);
  // a more accurate point at equal memory wins; a less accurate one at more memory is dropped
  const f = frontier([s("a", "x", 10, 10, 50), s("b", "x", 10, 10, 60), s("c", "x", 20, 20, 55), s("d", "x", 30, 30, 70)], "held");
  assert.deepEqual(f.map((q) => q.key), ["b", "d"]);
});

test("reserved levels: pm-kvq's best within each fixed-bit reservation", () => {
  const levels = compareAtLevels(world, "reserved");
  assert.deepEqual(levels.map((l) => l.bytes / KiB), [96, 128, 160, 192]);
  // 96: nothing of pm-kvq fits, rtn-2 answers 0% → at or above (0 ≥ 0)
  assert.equal(levels[0].pm, null);
  assert.equal(levels[0].atOrAbove, true);
  // 128: pm 2,2 (40%) vs kivi-2 (5%) and rtn-2 (0%)
  assert.equal(levels[1].pm!.key, "pm 2,2");
  assert.equal(levels[1].strongest!.method, "kivi");
  assert.equal(levels[1].atOrAbove, true);
  // 160: pm 4,2 (97%) vs rtn-4 (100%) → below
  assert.equal(levels[2].pm!.key, "pm 4,2");
  assert.equal(levels[2].atOrAbove, false);
  assert.equal(levels[3].atOrAbove, false);
});

test("reserved verdict names the largest lead, what the others need, and the levels below", () => {
  const v = reservedVerdict(world, 1024);
  // largest lead: at 128 KiB, 40% against kivi-2's 5% (35 points)
  assert.match(v, /at 128\.0 KiB reserved for 1024 tokens pm-kvq answers 40\.0% \(rtn 0\.0%, kivi 5\.0%\)/);
  assert.match(v, /to answer ≥ 40\.0% rtn 160\.0 KiB, kivi 192\.0 KiB/);
  assert.match(v, /below a fixed-bit method's at 2 of 4 levels \(160\.0 KiB: rtn 100\.0% vs 97\.0%; 192\.0 KiB: rtn 100\.0% vs 97\.0%\)/);
});

test("held ranges and verdict: where pm-kvq is strictly better, and where not", () => {
  const r = heldRanges(world);
  // x: 30 rtn-2 (0) · 56 kivi-2 (5) · 100 rtn-4 (100) · 102 pm 2,2 · 122 · 136 · 320 · 600
  // 30: nothing answers → none; 56: kivi 5% vs nothing → worse; 100 and up: rtn-4 100% ≥ pm → worse/equal
  assert.deepEqual(r.map((x) => [x.from / KiB, x.outcome]), [[30, "none"], [56, "worse"], [320, "equal"]]);
  const v = heldVerdict(world);
  assert.match(v, /strictly better nowhere/);
  // a world where rtn-4 holds 150 KiB: pm-kvq leads from its first point (102) to kivi-4's (122, 100%)
  const w2 = world.map((x) => (x.key === "rtn-4" ? s("rtn-4", "rtn", 160, 150, 100) : x));
  const r2 = heldRanges(w2);
  assert.deepEqual(r2.map((x) => [x.from / KiB, x.to / KiB, x.outcome]), [[30, 56, "none"], [56, 102, "worse"], [102, 122, "better"], [122, 320, "worse"], [320, Infinity, "equal"]]);
  assert.match(heldVerdict(w2), /strictly better 102\.0 KiB–122\.0 KiB \(pm-kvq 40\.0% vs kivi 5\.0%\)/);
  // within a merged range the accuracies are given as spans: 122–320 KiB behind kivi-4 / rtn-4
  assert.match(heldVerdict(w2), /122\.0 KiB–320\.0 KiB \(behind: pm-kvq 40\.0%–97\.0% vs kivi\/rtn 100\.0%\)/);
});
