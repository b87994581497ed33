// The multi-threaded kernels' arguments, by name. KERNEL_ARGS lists each kernel's argument
// names once; a caller passes a typed object ({ out, x, w, … }), the pool posts it to the
// workers as one f64 slot per name in the table's order (writeArgs), and each worker reads the
// slots back by name through a view (argsView). Nothing outside this file knows a slot's
// position.

import { KernelLayoutError } from "../errors.js";

/** f64 slots in the pool's control block for one job's arguments. */
export const ARG_SLOTS = 32;

/** Each kernel's arguments (byte offsets into the job's memory, sizes, kinds), in slot order. */
export const KERNEL_ARGS = {
  matmulF32: ["out", "x", "w", "bias", "T", "inDim", "outDim"],
  /** kind: 1 bf16, 2 f16; scratch: four widened rows per thread, thread i at scratch + i·scratchStride. */
  matmul16: ["out", "x", "w", "bias", "T", "inDim", "outDim", "kind", "scratch", "scratchStride"],
  /** x quantized by quantizeX32 (xq int16, xs scales, xsum scaled sums); kind: ggml type id. */
  matvecQ: ["out", "xq", "xs", "xsum", "w", "bias", "rows", "cols", "kind"],
  matmulQ: ["out", "x", "w", "bias", "T", "inDim", "outDim", "kind", "scratch", "scratchStride"],
  /** scores and vrow: per-thread scratch (base, stride); kvKind: 0 f32 rows, 2 f16 rows. */
  attendFloat: ["out", "q", "T", "keys", "values", "L", "numHeads", "numKvHeads", "d", "scores", "scoresStride", "vrow", "vrowStride", "kvKind"],
  swiglu: ["gate", "up", "n"],
  matmulNN: ["out", "x", "w", "T", "k", "n"],
  matmulTNAcc: ["out", "a", "b", "T", "m", "n"],
  /** p: per-thread scratch (base, stride). */
  attentionBackward: ["dq", "dk", "dv", "dOut", "q", "k", "v", "T", "numHeads", "numKvHeads", "d", "p", "pStride"],
  /** plan: the call's plan (layout.ts). */
  attendTiled: ["plan"],
} as const;

export type KernelName = keyof typeof KERNEL_ARGS;
/** A kernel's arguments as a typed object: every name in its KERNEL_ARGS row, a number each. */
export type KernelArgs<K extends KernelName> = { [F in (typeof KERNEL_ARGS)[K][number]]: number };

/** Kernel names in id order: the id a job posts is its index here + 1 (0 is STOP_KERNEL). */
export const KERNEL_NAMES = Object.keys(KERNEL_ARGS) as KernelName[];
export const KERNEL_ID = Object.fromEntries(KERNEL_NAMES.map((k, i) => [k, i + 1])) as { [K in KernelName]: number };
/** The id that tells the workers to stop. */
export const STOP_KERNEL = 0;

/** Every row has distinct names and fits in `slots` slots (thrown at load, so a table that grew too long never runs). */
export function checkArgTable(table: Record<string, readonly string[]>, slots: number): void {
  for (const [kernel, names] of Object.entries(table)) {
    if (names.length > slots) throw new KernelLayoutError(`kernel ${kernel} takes ${names.length} arguments, a job posts at most ${slots} (ARG_SLOTS, src/tensor/kernel-args.ts)`);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new KernelLayoutError(`kernel ${kernel} names argument "${dup}" twice`);
  }
}
checkArgTable(KERNEL_ARGS, ARG_SLOTS);

function slotNames(kernel: KernelName, slots: Float64Array): readonly string[] {
  const n = KERNEL_ARGS[kernel];
  if (n.length > slots.length) throw new KernelLayoutError(`kernel ${kernel} takes ${n.length} arguments, the slot array holds ${slots.length}`);
  return n;
}

/** Post: args into slots[0 …], one per name, in the table's order. */
export function writeArgs<K extends KernelName>(slots: Float64Array, kernel: K, args: KernelArgs<K>): void {
  const n = slotNames(kernel, slots);
  const a = args as Record<string, number>;
  for (let i = 0; i < n.length; i++) slots[i] = a[n[i]];
}

/**
 * The slots as `kernel`'s arguments, read back by name: each field reads its slot when used
 * (a worker makes one view per kernel and reuses it for every job: nothing copied or allocated).
 */
export function argsView<K extends KernelName>(slots: Float64Array, kernel: K): Readonly<KernelArgs<K>> {
  const view = {};
  slotNames(kernel, slots).forEach((name, i) => Object.defineProperty(view, name, { get: () => slots[i], enumerable: true }));
  return view as KernelArgs<K>;
}
