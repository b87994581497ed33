// Kernel arguments by name (src/tensor/kernel-args.ts): what a caller posts is what a worker
// reads back, field for field, for every kernel; a table that outgrows the slots, names an
// argument twice, or meets a short slot array is refused. (That every field reaches the right
// kernel parameter is kernels.test.ts's part: 2 threads against the twins.)

import assert from "node:assert/strict";
import { test } from "node:test";
import { KernelLayoutError } from "../../src/errors.js";
import { ARG_SLOTS, argsView, checkArgTable, KERNEL_ARGS, KERNEL_ID, KERNEL_NAMES, STOP_KERNEL, writeArgs, type KernelArgs, type KernelName } from "../../src/tensor/kernel-args.js";

/** Distinct values for each argument of a kernel (byte offsets, sizes, a 0). */
function sample<K extends KernelName>(kernel: K, seed: number): KernelArgs<K> {
  return Object.fromEntries(KERNEL_ARGS[kernel].map((n, i) => [n, i === 1 ? 0 : seed * 1000 + i * 17 + 2 ** 20 * (i % 3)])) as KernelArgs<K>;
}

test("every kernel: the arguments posted are the arguments read back, by name", () => {
  const slots = new Float64Array(ARG_SLOTS).fill(NaN);
  const views = KERNEL_NAMES.map((k) => argsView(slots, k));
  KERNEL_NAMES.forEach((kernel, seed) => {
    const args = sample(kernel, seed + 1);
    writeArgs(slots, kernel, args);
    assert.deepEqual({ ...views[seed] }, args, kernel);
  });
});

test("the view reads the slots as they are now (a worker's view serves every job)", () => {
  const slots = new Float64Array(ARG_SLOTS);
  const view = argsView(slots, "swiglu");
  writeArgs(slots, "swiglu", { gate: 64, up: 128, n: 4096 });
  writeArgs(slots, "swiglu", { n: 16, up: 256, gate: 512 });
  assert.deepEqual({ ...view }, { gate: 512, up: 256, n: 16 });
});

test("kernel ids: one per kernel, none is STOP_KERNEL", () => {
  const ids = KERNEL_NAMES.map((k) => KERNEL_ID[k]);
  assert.equal(new Set(ids).size, KERNEL_NAMES.length);
  assert.ok(!ids.includes(STOP_KERNEL));
  KERNEL_NAMES.forEach((k) => assert.equal(KERNEL_NAMES[KERNEL_ID[k] - 1], k));
});

test("a table row longer than the slots, or naming an argument twice, is a KernelLayoutError", () => {
  checkArgTable(KERNEL_ARGS, ARG_SLOTS);
  const long = { wide: Array.from({ length: ARG_SLOTS + 1 }, (_, i) => `a${i}`) };
  assert.throws(() => checkArgTable(long, ARG_SLOTS), (e: unknown) => e instanceof KernelLayoutError && /wide takes 33 arguments, a job posts at most 32/.test(e.message));
  assert.throws(() => checkArgTable({ twice: ["out", "x", "out"] }, ARG_SLOTS), (e: unknown) => e instanceof KernelLayoutError && /"out" twice/.test(e.message));
});

test("a slot array shorter than the kernel's arguments is refused, not written past", () => {
  const short = new Float64Array(new ArrayBuffer(8 * 8), 0, 4).fill(-1);
  const after = new Float64Array(short.buffer, 4 * 8, 4);
  assert.throws(() => writeArgs(short, "matmulF32", sample("matmulF32", 1)), KernelLayoutError);
  assert.throws(() => argsView(short, "matmulF32"), KernelLayoutError);
  assert.deepEqual([...after], [0, 0, 0, 0], "nothing written beyond the array");
});
