// Worker threads that share the kernels' memory. A job is posted through a control block in
// that memory: [generation, kernel, threads, done] then 32 f64 arguments. The main thread
// bumps the generation, runs slice 0 itself, and waits until every worker has counted in.

import { Worker } from "node:worker_threads";
import { KERNEL, runSlice, type KernelExports } from "./slices.js";

const SPIN = 20000;
/** No single kernel slice takes this long; a worker that stays silent has died. */
const WORKER_TIMEOUT_MS = 120000;

export class ThreadPool {
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array;
  readonly args: Float64Array;

  constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, private readonly ex: KernelExports, ctrlPtr: number, readonly threads: number) {
    this.ctrl = new Int32Array(memory.buffer as SharedArrayBuffer, ctrlPtr, 16);
    this.args = new Float64Array(memory.buffer as SharedArrayBuffer, ctrlPtr + 64, 32);
    for (let i = 1; i < threads; i++) {
      const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: { module, memory, ctrlPtr, index: i, generation: Atomics.load(this.ctrl, 0) } });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Run a kernel over all threads (args already written to this.args). */
  run(kernel: number): void {
    const n = this.threads;
    if (n === 1) {
      runSlice(this.ex, kernel, this.args, 0, 1);
      return;
    }
    const ctrl = this.ctrl;
    ctrl[1] = kernel;
    ctrl[2] = n;
    Atomics.store(ctrl, 3, 0);
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    runSlice(this.ex, kernel, this.args, 0, n);
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
