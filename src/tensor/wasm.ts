// The WebAssembly kernel runtime: the compiled kernels (dist/kernels.wasm, built from
// src/tensor/assembly by `npm run build`), the shared memory arena and the worker pool.
// It starts when first needed; PMKVQ_KERNELS=ts keeps everything in plain TypeScript, and
// PMKVQ_THREADS=n (or configureKernels) sets the thread count (default: the machine's cores).

import fs from "node:fs";
import os from "node:os";
import { Arena, setArenaStarter, useArena } from "./memory.js";
import { ThreadPool } from "./pool.js";
import type { KernelExports } from "./slices.js";

export interface WasmRuntime {
  arena: Arena;
  ex: KernelExports;
  pool: ThreadPool;
  module: WebAssembly.Module;
  /** The pool's control block in the arena. */
  ctrlPtr: number;
}

let runtime: WasmRuntime | null | undefined;
let threadsWanted: number | null = null;
let scratchPtr = 0;
let scratchBytes = 0;

const WASM_FILE = new URL("../../kernels.wasm", import.meta.url);

function defaultThreads(): number {
  const env = Number(process.env.PMKVQ_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, os.availableParallelism());
}

function start(): WasmRuntime | null {
  if (process.env.PMKVQ_KERNELS === "ts") return null;
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(WASM_FILE);
  } catch {
    process.emitWarning(`pm-kvq: ${WASM_FILE.pathname} not found (run \`npm run build\`); using the plain TypeScript kernels`);
    return null;
  }
  const module = new WebAssembly.Module(bytes);
  const arena = new Arena();
  const instance = new WebAssembly.Instance(module, { env: { memory: arena.memory, abort: () => {} } });
  const ex = instance.exports as unknown as KernelExports;
  useArena(arena);
  const ctrlPtr = arena.alloc(64 + 32 * 8);
  const pool = new ThreadPool(module, arena.memory, ex, ctrlPtr, threadsWanted ?? defaultThreads());
  return { arena, ex, pool, module, ctrlPtr };
}

/** The runtime, started on first use; null when the plain TypeScript kernels are in use. */
export function wasm(): WasmRuntime | null {
  if (runtime === undefined) runtime = start();
  return runtime;
}

/** Choose the number of threads (before or after start; a running pool is replaced). */
export function configureKernels(o: { threads?: number }): void {
  if (o.threads === undefined) return;
  threadsWanted = Math.max(1, Math.floor(o.threads));
  if (runtime) {
    // the old workers acknowledge the stop before their control block is given back
    if (runtime.pool.close()) runtime.arena.release(runtime.ctrlPtr);
    runtime.ctrlPtr = runtime.arena.alloc(64 + 32 * 8);
    runtime.pool = new ThreadPool(runtime.module, runtime.arena.memory, runtime.ex, runtime.ctrlPtr, threadsWanted);
  }
}

/** Which kernels run: "wasm" (WebAssembly SIMD) or "ts" (plain TypeScript). Float results differ slightly between them. */
export function kernelKind(): "wasm" | "ts" {
  return wasm() ? "wasm" : "ts";
}

export function kernelThreads(): number {
  return runtime?.pool.threads ?? 1;
}

/** Per-thread scratch: returns the base pointer; thread i uses base + i·stride (stride ≥ bytes). */
export function threadScratch(rt: WasmRuntime, bytesPerThread: number): { base: number; stride: number } {
  const stride = Math.ceil(bytesPerThread / 64) * 64;
  const need = stride * rt.pool.threads;
  if (need > scratchBytes) {
    if (scratchPtr) rt.arena.release(scratchPtr);
    scratchBytes = Math.max(need, scratchBytes * 2);
    scratchPtr = rt.arena.alloc(scratchBytes);
  }
  return { base: scratchPtr, stride };
}

const workspaces = new Map<string, { ptr: number; bytes: number }>();

/**
 * A named buffer of at least `bytes` in the arena that kernels reuse from call to call (plans,
 * segment tables, prepared queries); its contents do not survive a call that grows it.
 */
export function workspace(rt: WasmRuntime, name: string, bytes: number): number {
  const w = workspaces.get(name);
  if (w && w.bytes >= bytes) return w.ptr;
  if (w) rt.arena.release(w.ptr);
  const size = Math.max(bytes, (w?.bytes ?? 0) * 2, 64);
  const ptr = rt.arena.alloc(size);
  workspaces.set(name, { ptr, bytes: size });
  return ptr;
}

/**
 * Give the kernels' per-thread scratch and workspaces back to the arena (the next kernel call
 * takes what it needs again). Scratch grows with the longest attention seen; long runs may drop it.
 */
export function releaseKernelScratch(): void {
  if (!runtime) return;
  if (scratchPtr) runtime.arena.release(scratchPtr);
  scratchPtr = 0;
  scratchBytes = 0;
  for (const w of workspaces.values()) runtime.arena.release(w.ptr);
  workspaces.clear();
}

setArenaStarter(() => void wasm());
