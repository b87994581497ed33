// The WebAssembly kernel runtime: the compiled kernels (dist/kernels.wasm, built from
// src/tensor/assembly by `npm run build`), the shared memory arena and the worker pool.
// It starts when first needed; PMKVQ_KERNELS=ts keeps everything in plain TypeScript, and
// PMKVQ_THREADS=n (or configureKernels) sets the thread count (default: the machine's cores).

import fs from "node:fs";
import os from "node:os";
import v8 from "node:v8";
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

function start(): WasmRuntime | null {
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
