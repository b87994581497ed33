// Worker threads that share the kernels' memories. A job is posted through a control block in
// the first memory: [generation, kernel, threads, done, memory] then 32 f64 arguments (byte
// offsets inside the memory the job names). Every worker holds one kernel instance per memory.
// The main thread bumps the generation, runs slice 0 itself, and waits until every worker has
// counted in.

import { Worker } from "node:worker_threads";
import { KERNEL, runSlice, type KernelExports } from "./slices.js";

const SPIN = 20000;
/** No single kernel slice takes this long; a worker that stays silent has died. */
const WORKER_TIMEOUT_MS = 120000;

export class ThreadPool {
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array;
  readonly args: Float64Array;

  /** memories[0] holds the control block at ctrlPtr; exs[i] is this thread's instance on memories[i]. */
  constructor(module: WebAssembly.Module, memories: WebAssembly.Memory[], private readonly exs: KernelExports[], ctrlPtr: number, readonly threads: number) {
    const buf = memories[0].buffer as SharedArrayBuffer;
    this.ctrl = new Int32Array(buf, ctrlPtr, 16);
    this.args = new Float64Array(buf, ctrlPtr + 64, 32);
    for (let i = 1; i < threads; i++) {
      const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: { module, memories, ctrlPtr, index: i, generation: Atomics.load(this.ctrl, 0) } });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Run a kernel over all threads on memory `memory` (args already written to this.args). */
  run(kernel: number, memory = 0): void {
    const n = this.threads;
    const ex = this.exs[memory];
    if (n === 1) {
      runSlice(ex, kernel, this.args, 0, 1);
      return;
    }
    const ctrl = this.ctrl;
    ctrl[1] = kernel;
    ctrl[2] = n;
    ctrl[4] = memory;
    Atomics.store(ctrl, 3, 0);
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    runSlice(ex, kernel, this.args, 0, n);
    const want = this.workers.length;
    let spins = 0;
    const t0 = performance.now();
    for (let done = Atomics.load(ctrl, 3); done < want; done = Atomics.load(ctrl, 3)) {
      if (++spins > SPIN) {
        Atomics.wait(ctrl, 3, done, 1);
        if (performance.now() - t0 > WORKER_TIMEOUT_MS) {
          throw new Error(`a kernel worker did not answer within ${WORKER_TIMEOUT_MS / 1000} s (did it fail to start?); run with PMKVQ_THREADS=1 or PMKVQ_KERNELS=ts`);
        }
      }
    }
  }

  /**
   * Stop the workers and wait (at most `waitMs`) until each has acknowledged; after that none
   * reads the control block again. Returns false if some did not answer in time (then the
   * control block must stay allocated).
   */
  close(waitMs = 10000): boolean {
    const ctrl = this.ctrl;
    const want = this.workers.length;
    ctrl[1] = KERNEL.stop;
    Atomics.store(ctrl, 3, 0);
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    const t0 = performance.now();
    for (let done = Atomics.load(ctrl, 3); done < want; done = Atomics.load(ctrl, 3)) {
      if (performance.now() - t0 > waitMs) return false;
      Atomics.wait(ctrl, 3, done, 5);
    }
    return true;
  }
}
