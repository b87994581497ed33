// The WebAssembly kernel runtime: the compiled kernels (dist/kernels.wasm, built from
// src/tensor/assembly by `npm run build`), the shared memory arenas and the worker pool.
// The kernels are instantiated once per arena (memory), on this thread and in every worker;
// a kernel call runs on the instance of the arena its buffers live in (runtimeOf).
// It starts when first needed; PMKVQ_KERNELS=ts keeps everything in plain TypeScript, and
// PMKVQ_THREADS=n (or configureKernels) sets the thread count (default: the machine's cores).

import fs from "node:fs";
import os from "node:os";
import v8 from "node:v8";
import { Arena, arenaOf, setArenaAdder, setArenaStarter, useArena } from "./memory.js";
import type { KernelArgs, KernelName } from "./kernel-args.js";
import { CTRL_BYTES, ThreadPool } from "./pool.js";
import type { KernelExports } from "./slices.js";

/** The pool as one arena's kernels see it: jobs run on that arena's memory. */
export interface PoolHandle {
  readonly threads: number;
  run<K extends KernelName>(kernel: K, args: KernelArgs<K>): void;
}

/** The kernels on one arena: its instance, the pool, its scratch and workspaces. */
export interface WasmRuntime {
  arena: Arena;
  ex: KernelExports;
  pool: PoolHandle;
  module: WebAssembly.Module;
  scratch: { ptr: number; bytes: number };
  workspaces: Map<string, { ptr: number; bytes: number }>;
}

interface Shared {
  module: WebAssembly.Module;
  pool: ThreadPool;
  /** The pool's control block in the first arena. */
  ctrlPtr: number;
  /** One per arena, in arena order. */
  runtimes: WasmRuntime[];
}

let shared: Shared | null | undefined;
let threadsWanted: number | null = null;

const WASM_FILE = new URL("../../kernels.wasm", import.meta.url);
/** The same kernels built with relaxed SIMD (fused multiply-add in the prefill tiles). */
const RELAXED_WASM_FILE = new URL("../../kernels-relaxed.wasm", import.meta.url);

/** f32x4.relaxed_madd in a tiny module: does this runtime take relaxed SIMD? */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00, 0x0a,
  0x3d, 0x01, 0x3b, 0x00, 0xfd, 0x0c, ...new Array(16).fill(0), 0xfd, 0x0c, ...new Array(16).fill(0), 0xfd, 0x0c,
  ...new Array(16).fill(0), 0xfd, 0x85, 0x02, 0x0b,
]);

/**
 * Relaxed SIMD ships unflagged from Node 22 (V8 11.4+); Node 20's V8 has it behind a flag, which
 * it accepts at run time. PMKVQ_RELAXED_SIMD=0 keeps the plain SIMD build (same results up to
 * the rounding a fused multiply-add saves).
 */
export function relaxedSimd(): boolean {
  if (process.env.PMKVQ_RELAXED_SIMD === "0") return false;
  if (WebAssembly.validate(RELAXED_PROBE)) return true;
  try {
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    return false;
  }
  return WebAssembly.validate(RELAXED_PROBE);
}

function defaultThreads(): number {
  const env = Number(process.env.PMKVQ_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, os.availableParallelism());
}

function instantiate(sh: Pick<Shared, "module">, arena: Arena): KernelExports {
  return new WebAssembly.Instance(sh.module, { env: { memory: arena.memory, abort: () => {} } }).exports as unknown as KernelExports;
}

function runtimeFor(sh: Shared, arena: Arena, ex: KernelExports): WasmRuntime {
  const memory = arena.index;
  const pool: PoolHandle = {
    get threads() {
      return sh.pool.threads;
    },
    run: (kernel, args) => sh.pool.run(kernel, args, memory),
  };
  return { arena, ex, pool, module: sh.module, scratch: { ptr: 0, bytes: 0 }, workspaces: new Map() };
}

/** (Re)start the workers with an instance on every arena (after a thread-count change or a new arena). */
function restartPool(sh: Shared, threads: number): void {
  const first = sh.runtimes[0].arena;
  // the old workers acknowledge the stop before their control block is given back
  if (sh.pool.close()) first.release(sh.ctrlPtr);
  sh.ctrlPtr = first.alloc(CTRL_BYTES);
  sh.pool = new ThreadPool(sh.module, sh.runtimes.map((r) => r.arena.memory), sh.runtimes.map((r) => r.ex), sh.ctrlPtr, threads);
}

function start(): Shared | null {
  if (process.env.PMKVQ_KERNELS === "ts") return null;
  let bytes: Buffer;
  try {
    bytes = relaxedSimd() && fs.existsSync(RELAXED_WASM_FILE) ? fs.readFileSync(RELAXED_WASM_FILE) : fs.readFileSync(WASM_FILE);
  } catch {
    process.emitWarning(`pm-kvq: ${WASM_FILE.pathname} not found (run \`npm run build\`); using the plain TypeScript kernels`);
    return null;
  }
  const module = new WebAssembly.Module(bytes);
  const arena = new Arena();
  const ex = instantiate({ module }, arena);
  useArena(arena);
  const ctrlPtr = arena.alloc(CTRL_BYTES);
  const sh: Shared = { module, ctrlPtr, runtimes: [], pool: new ThreadPool(module, [arena.memory], [ex], ctrlPtr, threadsWanted ?? defaultThreads()) };
  sh.runtimes.push(runtimeFor(sh, arena, ex));
  setArenaAdder((a) => {
    sh.runtimes.push(runtimeFor(sh, a, instantiate(sh, a)));
    restartPool(sh, sh.pool.threads);
  });
  return sh;
}

function started(): Shared | null {
  if (shared === undefined) shared = start();
  return shared;
}

/** The runtime of the first arena, started on first use; null when the plain TypeScript kernels are in use. */
export function wasm(): WasmRuntime | null {
  return started()?.runtimes[0] ?? null;
}

/**
 * The runtime whose arena holds every given view (nulls are skipped), or null: WebAssembly
 * off, a view in ordinary memory, or views in different arenas (then the plain twins run).
 */
export function runtimeOf(...views: (ArrayBufferView | null)[]): WasmRuntime | null {
  const sh = started();
  if (!sh) return null;
  let a: Arena | null = null;
  for (const v of views) {
    if (v === null) continue;
    const o = arenaOf(v);
    if (o === null || (a !== null && o !== a)) return null;
    a = o;
  }
  return a ? sh.runtimes[a.index] : sh.runtimes[0];
}

/** Choose the number of threads (before or after start; a running pool is replaced). */
export function configureKernels(o: { threads?: number }): void {
  if (o.threads === undefined) return;
  threadsWanted = Math.max(1, Math.floor(o.threads));
  if (shared) restartPool(shared, threadsWanted);
}

/** Which kernels run: "wasm" (WebAssembly SIMD) or "ts" (plain TypeScript). Float results differ slightly between them. */
export function kernelKind(): "wasm" | "ts" {
  return wasm() ? "wasm" : "ts";
}

export function kernelThreads(): number {
  return shared?.pool.threads ?? 1;
}

/** Per-thread scratch in the runtime's arena: returns the base pointer; thread i uses base + i·stride (stride ≥ bytes). */
export function threadScratch(rt: WasmRuntime, bytesPerThread: number): { base: number; stride: number } {
  const stride = Math.ceil(bytesPerThread / 64) * 64;
  const need = stride * rt.pool.threads;
  const s = rt.scratch;
  if (need > s.bytes) {
    if (s.ptr) rt.arena.release(s.ptr);
    s.ptr = 0;
    const bytes = Math.max(need, s.bytes * 2);
    s.bytes = 0;
    s.ptr = rt.arena.alloc(bytes);
    s.bytes = bytes;
  }
  return { base: s.ptr, stride };
}

/**
 * A named buffer of at least `bytes` in the runtime's arena that kernels reuse from call to call
 * (plans, segment tables, prepared queries); its contents do not survive a call that grows it.
 */
export function workspace(rt: WasmRuntime, name: string, bytes: number): number {
  const w = rt.workspaces.get(name);
  if (w && w.bytes >= bytes) return w.ptr;
  if (w) {
    rt.arena.release(w.ptr);
    rt.workspaces.delete(name);
  }
  const size = Math.max(bytes, (w?.bytes ?? 0) * 2, 64);
  const ptr = rt.arena.alloc(size);
  rt.workspaces.set(name, { ptr, bytes: size });
  return ptr;
}

/**
 * Give the kernels' per-thread scratch and workspaces back to their arenas (the next kernel call
 * takes what it needs again). Scratch grows with the longest attention seen; long runs may drop it.
 */
export function releaseKernelScratch(): void {
  if (!shared) return;
  for (const rt of shared.runtimes) {
    if (rt.scratch.ptr) rt.arena.release(rt.scratch.ptr);
    rt.scratch = { ptr: 0, bytes: 0 };
    for (const w of rt.workspaces.values()) rt.arena.release(w.ptr);
    rt.workspaces.clear();
  }
}

setArenaStarter(() => void started());
