// A kernel worker thread: instantiates the kernels on every shared memory and runs its slice
// of every job the main thread posts, on the memory the job names (see pool.ts for the protocol).

import { workerData } from "node:worker_threads";
import { ARG_SLOTS, argsView, KERNEL_NAMES, STOP_KERNEL } from "./kernel-args.js";
import { CTRL, CTRL_ARGS_OFFSET } from "./pool.js";
import { runSlice, type KernelExports } from "./slices.js";

const { module, memories, ctrlPtr, index, generation } = workerData as {
  module: WebAssembly.Module;
  memories: WebAssembly.Memory[];
  ctrlPtr: number;
  index: number;
  /** The generation when the pool was made: a job posted before this thread got here still counts. */
  generation: number;
};
const exs = memories.map((memory) => new WebAssembly.Instance(module, { env: { memory, abort: () => {} } }).exports as unknown as KernelExports);
const ctrl = new Int32Array(memories[0].buffer as SharedArrayBuffer, ctrlPtr, CTRL_ARGS_OFFSET / 4);
const args = new Float64Array(memories[0].buffer as SharedArrayBuffer, ctrlPtr + CTRL_ARGS_OFFSET, ARG_SLOTS);
/** Each kernel's arguments as they stand in the slots (no copy, no allocation per job). */
const views = KERNEL_NAMES.map((kernel) => argsView(args, kernel));
const SPIN = 20000;

let seen = generation;
for (;;) {
  let spins = 0;
  while (Atomics.load(ctrl, CTRL.generation) === seen) {
    if (++spins > SPIN) Atomics.wait(ctrl, CTRL.generation, seen);
  }
  seen = Atomics.load(ctrl, CTRL.generation);
  const id = ctrl[CTRL.kernel];
  if (id === STOP_KERNEL) {
    // acknowledge, so the pool may give the control block back
    Atomics.add(ctrl, CTRL.done, 1);
    Atomics.notify(ctrl, CTRL.done);
    break;
  }
  const n = ctrl[CTRL.threads];
  if (index < n) runSlice(exs[ctrl[CTRL.memory]], KERNEL_NAMES[id - 1], views[id - 1], index, n);
  Atomics.add(ctrl, CTRL.done, 1);
  Atomics.notify(ctrl, CTRL.done);
}
