// Placement of a model over WebAssembly memories, against plans worked out by hand.

import assert from "node:assert/strict";
import { test } from "node:test";
import { OutOfMemoryError } from "../../src/errors.js";
import { planPlacement, placementArenas, type PlacementNeeds } from "../../src/model/placement.js";

const MiB = 2 ** 20;
// capacity 80 MiB: 10 MiB reserve (capacity / 8) leaves 70 MiB per memory
const room = (existingFree: number[] = [], budget = 1e12) => ({ existingFree, capacity: 80 * MiB, budget });
const needs = (o: Partial<PlacementNeeds>): PlacementNeeds => ({
  embedBytes: 10 * MiB, headBytes: 10 * MiB, tied: false, blockBytes: new Array(6).fill(15 * MiB), kvBytes: new Array(6).fill(5 * MiB), scratchBytes: 5 * MiB, kvTokens: 100, ...o,
});

test("blocks fill a memory in order, a new one starts at the block that does not fit, the head goes last", () => {
  // memory 0: embed 10 + scratch 5 + 2 blocks × 20 = 55 (a third would be 75 > 70);
  // memory 1: scratch 5 + 3 × 20 = 65; memory 2: 5 + 20 + head 10 = 35
  const p = planPlacement("m", needs({}), room());
  assert.deepEqual(p, { embedArena: 0, blockArena: [0, 0, 1, 1, 1, 2], headArena: 2 });
  assert.deepEqual(placementArenas(p), [0, 1, 2]);
});

test("a head that does not fit the last memory gets its own; a tied head stays with the embedding", () => {
  // memory 2 would hold 5 + 20 + 50 = 75 > 70: the head moves to memory 3 (with its scratch)
  assert.deepEqual(planPlacement("m", needs({ headBytes: 50 * MiB }), room()).headArena, 3);
  const tied = planPlacement("m", needs({ headBytes: 0, tied: true }), room());
  assert.equal(tied.headArena, 0);
  assert.deepEqual(tied.blockArena, [0, 0, 1, 1, 1, 2]);
});

test("memories that exist are filled first, up to what they have free", () => {
  // memory 0 has only 30 free (− 10 reserve = 20): the embedding fits, block 0 (20 + 5 scratch) does not;
  // memories 1 and 2 take 5 + 3 × 20 = 65 each, so the head (10) goes to memory 3
  const p = planPlacement("m", needs({}), room([30 * MiB]));
  assert.deepEqual(p, { embedArena: 0, blockArena: [1, 1, 1, 2, 2, 2], headArena: 3 });
});

test("refusals: one part larger than a memory, or more than the machine lets this process hold — with the numbers", () => {
  assert.throws(() => planPlacement("m", needs({ blockBytes: [15 * MiB, 80 * MiB] , kvBytes: [0, 0] }), room()), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /^m: block 1 \(weights 80\.0 MiB \+ KV cache 0\.0 MiB\) needs 80\.0 MiB \+ forward scratch 5\.0 MiB, more than one WebAssembly memory holds \(70\.0 MiB usable of 80\.0 MiB\)/);
    return true;
  });
  // weights 20 + 90 = 110, KV 30, scratch 3 × 5 = 15: 155 MiB > 150
  assert.throws(() => planPlacement("m", needs({}), room([], 150 * MiB)), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /weights 110\.0 MiB \+ KV cache 30\.0 MiB \(for 100 tokens\) \+ forward scratch 15\.0 MiB = 155\.0 MiB, but this process can hold 150\.0 MiB/);
    return true;
  });
  assert.doesNotThrow(() => planPlacement("m", needs({}), room([], 155 * MiB)));
});
