// Worker threads that share the kernels' memories. A job is posted through a control block in
// the first memory: the CTRL fields (i32), then the kernel's arguments at byte 64, ARG_SLOTS
// f64 (byte offsets inside the memory the job names, sizes; kernel-args.ts). Every worker
// holds one kernel instance per memory. The main thread bumps the generation, runs slice 0
// itself, and waits until every worker has counted in.

import { Worker } from "node:worker_threads";
import { ARG_SLOTS, KERNEL_ID, STOP_KERNEL, writeArgs, type KernelArgs, type KernelName } from "./kernel-args.js";
import { runSlice, type KernelExports } from "./slices.js";

/** The control block's i32 fields (written here, read by worker.ts). */
export const CTRL = {
  /** Bumped once per job. */
  generation: 0,
  /** KERNEL_ID of the job, or STOP_KERNEL. */
  kernel: 1,
  /** Threads the job is split over. */
  threads: 2,
  /** Workers that have finished the job. */
  done: 3,
  /** Index of the memory (arena) the job runs on. */
  memory: 4,
} as const;
/** The i32 fields take the first 64 bytes, the argument slots follow. */
export const CTRL_ARGS_OFFSET = 64;
export const CTRL_BYTES = CTRL_ARGS_OFFSET + ARG_SLOTS * 8;

const SPIN = 20000;
/** No single kernel slice takes this long; a worker that stays silent has died. */
const WORKER_TIMEOUT_MS = 120000;

export class ThreadPool {
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array;
  private readonly args: Float64Array;

  /** memories[0] holds the control block at ctrlPtr; exs[i] is this thread's instance on memories[i]. */
  constructor(module: WebAssembly.Module, memories: WebAssembly.Memory[], private readonly exs: KernelExports[], ctrlPtr: number, readonly threads: number) {
    const buf = memories[0].buffer as SharedArrayBuffer;
    this.ctrl = new Int32Array(buf, ctrlPtr, CTRL_ARGS_OFFSET / 4);
    this.args = new Float64Array(buf, ctrlPtr + CTRL_ARGS_OFFSET, ARG_SLOTS);
    for (let i = 1; i < threads; i++) {
      const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: { module, memories, ctrlPtr, index: i, generation: Atomics.load(this.ctrl, CTRL.generation) } });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Run a kernel over all threads on memory `memory`. */
  run<K extends KernelName>(kernel: K, args: KernelArgs<K>, memory = 0): void {
    const n = this.threads;
    const ex = this.exs[memory];
    if (n === 1) {
      runSlice(ex, kernel, args, 0, 1);
      return;
    }
    const ctrl = this.ctrl;
    writeArgs(this.args, kernel, args);
    ctrl[CTRL.kernel] = KERNEL_ID[kernel];
    ctrl[CTRL.threads] = n;
    ctrl[CTRL.memory] = memory;
    Atomics.store(ctrl, CTRL.done, 0);
    Atomics.add(ctrl, CTRL.generation, 1);
    Atomics.notify(ctrl, CTRL.generation);
    runSlice(ex, kernel, args, 0, n);
    const want = this.workers.length;
    let spins = 0;
    const t0 = performance.now();
    for (let done = Atomics.load(ctrl, CTRL.done); done < want; done = Atomics.load(ctrl, CTRL.done)) {
      if (++spins > SPIN) {
        Atomics.wait(ctrl, CTRL.done, done, 1);
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
    ctrl[CTRL.kernel] = STOP_KERNEL;
    Atomics.store(ctrl, CTRL.done, 0);
    Atomics.add(ctrl, CTRL.generation, 1);
    Atomics.notify(ctrl, CTRL.generation);
    const t0 = performance.now();
    for (let done = Atomics.load(ctrl, CTRL.done); done < want; done = Atomics.load(ctrl, CTRL.done)) {
      if (performance.now() - t0 > waitMs) return false;
      Atomics.wait(ctrl, CTRL.done, done, 5);
    }
    return true;
  }
}
