// A kernel worker thread: instantiates the kernels on every shared memory and runs its slice
// of every job the main thread posts, on the memory the job names (see pool.ts for the protocol).

import { workerData } from "node:worker_threads";
import { KERNEL, runSlice, type KernelExports } from "./slices.js";

const { module, memories, ctrlPtr, index, generation } = workerData as {
  module: WebAssembly.Module;
  memories: WebAssembly.Memory[];
  ctrlPtr: number;
  index: number;
  /** The generation when the pool was made: a job posted before this thread got here still counts. */
  generation: number;
};
const exs = memories.map((memory) => new WebAssembly.Instance(module, { env: { memory, abort: () => {} } }).exports as unknown as KernelExports);
const ctrl = new Int32Array(memories[0].buffer as SharedArrayBuffer, ctrlPtr, 16);
const args = new Float64Array(memories[0].buffer as SharedArrayBuffer, ctrlPtr + 64, 32);
const SPIN = 20000;

let seen = generation;
for (;;) {
  let spins = 0;
  while (Atomics.load(ctrl, 0) === seen) {
    if (++spins > SPIN) Atomics.wait(ctrl, 0, seen);
  }
  seen = Atomics.load(ctrl, 0);
  const kernel = ctrl[1];
  if (kernel === KERNEL.stop) {
    // acknowledge, so the pool may give the control block back
    Atomics.add(ctrl, 3, 1);
    Atomics.notify(ctrl, 3);
    break;
  }
  const n = ctrl[2];
  if (index < n) runSlice(exs[ctrl[4]], kernel, args, index, n);
  Atomics.add(ctrl, 3, 1);
  Atomics.notify(ctrl, 3);
}
