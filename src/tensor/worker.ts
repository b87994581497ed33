// A kernel worker thread: instantiates the kernels on the shared memory and runs its slice of
// every job the main thread posts (see pool.ts for the protocol).

import { workerData } from "node:worker_threads";
import { KERNEL, runSlice, type KernelExports } from "./slices.js";

const { module, memory, ctrlPtr, index, generation } = workerData as {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrlPtr: number;
  index: number;
  /** The generation when the pool was made: a job posted before this thread got here still counts. */
  generation: number;
};
const instance = new WebAssembly.Instance(module, { env: { memory, abort: () => {} } });
const ex = instance.exports as unknown as KernelExports;
const ctrl = new Int32Array(memory.buffer as SharedArrayBuffer, ctrlPtr, 16);
const args = new Float64Array(memory.buffer as SharedArrayBuffer, ctrlPtr + 64, 32);
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
  if (index < n) runSlice(ex, kernel, args, index, n);
  Atomics.add(ctrl, 3, 1);
  Atomics.notify(ctrl, 3);
}
