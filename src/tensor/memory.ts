// Buffers for the hot data (weights, activations, KV caches) live in shared WebAssembly
// memories (arenas), so WebAssembly kernels and worker threads read them in place. A 32-bit
// memory holds at most 4 GiB, so a bigger model spans several arenas: allocations go to the
// *current* arena (withArena scopes it), and a kernel runs on the instance of the arena its
// buffers live in. A first-fit free list hands out 64-byte aligned blocks; views are plain
// typed arrays (shared memory never detaches them on growth). When WebAssembly is off, the
// same calls return ordinary typed arrays.

import { OutOfMemoryError } from "../errors.js";

const PAGE = 65536;
const ALIGN = 64;
/** The most a 32-bit WebAssembly memory can hold: 65536 pages of 64 KiB. */
export const WASM_MEMORY_LIMIT_BYTES = 65536 * PAGE;
/** The first page stays unused (the kernel module's own statics). */
const BASE = PAGE;

/** The arena each memory buffer belongs to (a grown memory hands out a new buffer object). */
const owners = new WeakMap<ArrayBufferLike, Arena>();

/** PMKVQ_MEMORY_MAX_MIB caps each arena (a testing knob: a tiny model then spans several). */
export function arenaMaxPages(): number {
  const mib = Number(process.env.PMKVQ_MEMORY_MAX_MIB);
  if (!Number.isFinite(mib) || mib <= 0) return 65536;
  return Math.max(2, Math.min(65536, Math.floor(mib * 16)));
}

export class Arena {
  readonly memory: WebAssembly.Memory;
  private free: { ptr: number; size: number }[] = [];
  private readonly sizes = new Map<number, number>();
  private top = BASE;
  /** Bytes currently handed out. */
  inUse = 0;

  /** The most this arena can ever hold. */
  readonly maxBytes: number;

  /** Position in the list of arenas (kernel instances and pool jobs name an arena by it). */
  index = 0;

  constructor(initialPages = 16, maximumPages = arenaMaxPages()) {
    initialPages = Math.min(initialPages, maximumPages);
    this.memory = new WebAssembly.Memory({ initial: initialPages, maximum: maximumPages, shared: true });
    owners.set(this.memory.buffer, this);
    this.maxBytes = maximumPages * PAGE;
  }

  /** Bytes this arena can hold for buffers at most (the first page is the kernels'). */
  get capacityBytes(): number {
    return this.maxBytes - BASE;
  }

  /** Bytes that can still be handed out: never-used space plus freed blocks (fragmentation aside). */
  get freeBytes(): number {
    return this.maxBytes - this.inUse - BASE;
  }

  get buffer(): SharedArrayBuffer {
    const b = this.memory.buffer as unknown as SharedArrayBuffer;
    if (!owners.has(b)) owners.set(b, this);
    return b;
  }

  /** Is this view inside the arena's memory? */
  owns(view: ArrayBufferView): boolean {
    return owners.get(view.buffer) === this;
  }

  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size < size) continue;
      const ptr = f.ptr;
      if (f.size === size) this.free.splice(i, 1);
      else {
        f.ptr += size;
        f.size -= size;
      }
      return this.handOut(ptr, size);
    }
    const ptr = this.top;
    this.top += size;
    const need = Math.ceil(this.top / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (need > 0) {
      try {
        this.memory.grow(need);
      } catch {
        this.top -= size;
        throw new OutOfMemoryError(
          `out of WebAssembly memory: ${formatGiB(bytes)} more wanted, ${formatGiB(this.inUse)} in use of the ${formatGiB(this.maxBytes)} limit ` +
            `(a smaller --max-new-tokens or KV budget, a smaller model, or PMKVQ_KERNELS=ts for ordinary memory)`,
        );
      }
    }
    return this.handOut(ptr, size);
  }

  private handOut(ptr: number, size: number): number {
    this.sizes.set(ptr, size);
    this.inUse += size;
    return ptr;
  }

  release(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) return;
    this.sizes.delete(ptr);
    this.inUse -= size;
    new Uint8Array(this.buffer, ptr, size).fill(0);
    // insert sorted, coalescing with neighbours
    let i = 0;
    while (i < this.free.length && this.free[i].ptr < ptr) i++;
    this.free.splice(i, 0, { ptr, size });
    if (i + 1 < this.free.length && ptr + size === this.free[i + 1].ptr) {
      this.free[i].size += this.free[i + 1].size;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].ptr + this.free[i - 1].size === ptr) {
      this.free[i - 1].size += this.free[i].size;
      this.free.splice(i, 1);
    }
    // a free block that reaches the top gives its space back to the top (the list stays short)
    const last = this.free[this.free.length - 1];
    if (last && last.ptr + last.size === this.top) {
      this.top = last.ptr;
      this.free.pop();
    }
  }

  /** Handed-out blocks (for leak checks). */
  get blocks(): number {
    return this.sizes.size;
  }
}

let arenas: Arena[] = [];
let arena: Arena | null = null;
let starter: (() => void) | null = null;
let onAdded: ((a: Arena) => void) | null = null;

/** Turn the shared arenas on with a first one (done by the WebAssembly runtime when it starts). */
export function useArena(a: Arena | null): void {
  arena = a;
  arenas = a ? [a] : [];
}

/** The runtime registers how to start itself, so the first allocation already lands in the arena. */
export function setArenaStarter(fn: () => void): void {
  starter = fn;
}

/** The runtime registers what to do with a new arena (instantiate the kernels on it, tell the workers). */
export function setArenaAdder(fn: (a: Arena) => void): void {
  onAdded = fn;
}

function ensureStarted(): void {
  if (starter) {
    const s = starter;
    starter = null;
    s();
  }
}

/** The arena allocations go to now (null with the plain TypeScript kernels). */
export function currentArena(): Arena | null {
  ensureStarted();
  return arena;
}

/** Every arena of this process, in order (empty with the plain TypeScript kernels). */
export function arenaList(): readonly Arena[] {
  ensureStarted();
  return arenas;
}

/** Arena `index`, made (with any before it) when it does not exist yet. Null without WebAssembly. */
export function arenaAt(index: number): Arena | null {
  ensureStarted();
  if (arenas.length === 0) return null;
  while (arenas.length <= index) {
    const a = new Arena();
    a.index = arenas.length;
    arenas.push(a);
    onAdded?.(a);
  }
  return arenas[index];
}

/** Run fn with allocations going to arena `index` (made if needed); a plain call without WebAssembly. */
export function withArena<T>(index: number, fn: () => T): T {
  const a = arenaAt(index);
  if (!a || a === arena) return fn();
  const before = arena;
  arena = a;
  try {
    return fn();
  } finally {
    arena = before;
  }
}

let layerArenas: readonly number[] | null = null;

/** Run fn (which builds per-layer storage with perLayer) with layer l's storage going to arena arenas[l]. */
export function withLayerArenas<T>(arenas: readonly number[] | null, fn: () => T): T {
  const before = layerArenas;
  layerArenas = arenas;
  try {
    return fn();
  } finally {
    layerArenas = before;
  }
}

/** One object per layer, each made with allocations going to its layer's arena (see withLayerArenas). */
export function perLayer<T>(n: number, make: (layer: number) => T): T[] {
  const arenas = layerArenas;
  return Array.from({ length: n }, (_, l) => (arenas ? withArena(arenas[l], () => make(l)) : make(l)));
}

/** The arena a view lives in, or null for ordinary memory. */
export function arenaOf(view: ArrayBufferView): Arena | null {
  return owners.get(view.buffer) ?? null;
}

/** Bytes of the kernel arenas handed out right now, all arenas together (0 with the plain TypeScript kernels) — for leak checks and reports. */
export function arenaBytesInUse(): number {
  ensureStarted();
  let n = 0;
  for (const a of arenas) n += a.inUse;
  return n;
}

function formatGiB(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

export function allocF32(n: number): Float32Array {
  ensureStarted();
  if (!arena || n === 0) return new Float32Array(n);
  const ptr = arena.alloc(n * 4); // before taking the buffer: alloc may grow the memory
  return new Float32Array(arena.buffer, ptr, n);
}

export function allocU16(n: number): Uint16Array {
  ensureStarted();
  if (!arena || n === 0) return new Uint16Array(n);
  const ptr = arena.alloc(n * 2); // before taking the buffer: alloc may grow the memory
  return new Uint16Array(arena.buffer, ptr, n);
}

export function allocU8(n: number): Uint8Array {
  ensureStarted();
  if (!arena || n === 0) return new Uint8Array(n);
  const ptr = arena.alloc(n); // before taking the buffer: alloc may grow the memory
  return new Uint8Array(arena.buffer, ptr, n);
}

export function allocU32(n: number): Uint32Array {
  ensureStarted();
  if (!arena || n === 0) return new Uint32Array(n);
  const ptr = arena.alloc(n * 4); // before taking the buffer: alloc may grow the memory
  return new Uint32Array(arena.buffer, ptr, n);
}

/** Give a buffer back (a no-op for ordinary typed arrays). The view must not be used after. */
export function release(view: ArrayBufferView | null | undefined): void {
  if (!view || view.byteLength === 0) return;
  owners.get(view.buffer)?.release(view.byteOffset);
}

/** Is the view in WebAssembly memory (so kernels can read it in place)? */
export function inArena(view: ArrayBufferView): boolean {
  return owners.has(view.buffer);
}

/** Buffers that live for one computation: allocate through it, give them all back at the end. */
export class AllocScope {
  private readonly views: ArrayBufferView[] = [];

  f32(n: number): Float32Array {
    const v = allocF32(n);
    this.views.push(v);
    return v;
  }

  release(): void {
    for (const v of this.views) release(v);
    this.views.length = 0;
  }
}
