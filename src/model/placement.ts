// Which WebAssembly memory (arena) each part of a model lives in. A 32-bit memory holds at
// most 4 GiB, so a bigger model is split at block boundaries: a contiguous range of blocks per
// arena, each block together with its KV cache storage and the forward scratch of its arena;
// the residual stream is copied between arenas where a range ends. Planned from the tensor
// sizes before any weight is read, so a model that cannot fit is refused up front.

import os from "node:os";
import { OutOfMemoryError } from "../errors.js";
import type { ModelConfig } from "./config.js";

/** The float cache (cache/full.ts) grows its storage in steps of this many tokens; the plan reserves by it. */
export const FULL_CACHE_GROW_TOKENS = 256;
const GROW_TOKENS = FULL_CACHE_GROW_TOKENS;

export interface Placement {
  /** Arena index of each block: its weights, its KV cache storage and the forward scratch it uses. */
  blockArena: number[];
  /** Arena of the embedding matrix (read row by row, so any arena will do). */
  embedArena: number;
  /** Arena of the final norm and lm_head (and of the scratch the head's product uses). */
  headArena: number;
}

/** Every part in arena `index` (one memory: the ordinary case). */
export function singlePlacement(numLayers: number, index = 0): Placement {
  return { blockArena: new Array<number>(numLayers).fill(index), embedArena: index, headArena: index };
}

/** The arenas a placement uses, in order. */
export function placementArenas(p: Placement): number[] {
  return [...new Set([p.embedArena, ...p.blockArena, p.headArena])].sort((a, b) => a - b);
}

export interface PlacementNeeds {
  embedBytes: number;
  /** Final norm + lm_head; 0 when the head is the (tied) embedding. */
  headBytes: number;
  tied: boolean;
  /** Weights of each block. */
  blockBytes: number[];
  /** KV cache storage of each block for the run's context, at its peak (room kept beside the block). */
  kvBytes: number[];
  /** The same once grown (what the machine's memory must hold for all blocks at once); default kvBytes. */
  kvHeldBytes?: number[];
  /** Forward scratch (one RunState) of each arena that computes. */
  scratchBytes: number;
  /** Tokens the KV reservation is for (for the message). */
  kvTokens: number;
}

export interface ArenaRoom {
  /** Free bytes of the arenas that exist now, in order. */
  existingFree: number[];
  /** Bytes a fresh arena can hold. */
  capacity: number;
  /** Bytes this process may hold in arenas altogether (os.totalmem() less a margin), less what is in use now. */
  budget: number;
}

const GiB = 2 ** 30;
const gib = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);

/** What the machine lets this process hold: total memory less max(2 GiB, 10 %) for the rest. */
export function processMemoryBudget(): number {
  const total = os.totalmem();
  return total - Math.max(2 * GiB, total / 10);
}

/** Bytes of one RunState for chunks of `tokens` tokens (forward.ts), with the one-row logits. */
export function runStateBytes(c: ModelConfig, tokens: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const floats = tokens * (3 * c.hiddenSize + 2 * q + 3 * kv + 2 * c.intermediateSize + c.headDim) + c.vocabSize;
  return floats * 4 + 13 * 64; // each buffer rounded up to the arena's alignment
}

/**
 * Bytes one block's float32 KV cache holds for `tokens` tokens (storage grows in steps of
 * GROW_TOKENS), and at its peak: while it grows, the old and the new buffers are both held.
 */
export function kvReserveBytes(c: ModelConfig, tokens: number): { held: number; peak: number } {
  if (tokens <= 0) return { held: 0, peak: 0 };
  const cap = Math.ceil(tokens / GROW_TOKENS) * GROW_TOKENS;
  const kv = 2 * c.numKvHeads * c.headDim * 4; // K and V rows, float32
  return { held: cap * kv, peak: (cap + Math.max(0, cap - GROW_TOKENS)) * kv };
}

/**
 * Place the embedding, then the blocks in order (a new arena when the next block with its KV
 * cache does not fit the current one), then the head (last arena, or a new one). Each arena
 * that computes also holds one forward scratch and keeps `kernelReserve` for kernel workspaces.
 */
export function planPlacement(what: string, n: PlacementNeeds, room: ArenaRoom): Placement {
  const reserve = Math.min(16 * 2 ** 20, Math.floor(room.capacity / 8));
  const roomOf = (i: number) => (i < room.existingFree.length ? room.existingFree[i] : room.capacity) - reserve;
  const used: number[] = [];
  const computes = new Set<number>();
  let i = 0;
  const place = (bytes: number, compute: boolean, part: string): number => {
    for (;;) {
      const extra = compute && !computes.has(i) ? n.scratchBytes : 0;
      if ((used[i] ?? 0) + bytes + extra <= roomOf(i)) {
        used[i] = (used[i] ?? 0) + bytes + extra;
        if (compute) computes.add(i);
        return i;
      }
      if (i >= room.existingFree.length && (used[i] ?? 0) === 0) {
        throw new OutOfMemoryError(
          `${what}: ${part} needs ${gib(bytes)}${compute ? ` + forward scratch ${gib(n.scratchBytes)}` : ""}, more than one WebAssembly memory holds ` +
            `(${gib(room.capacity - reserve)} usable of ${gib(room.capacity)}); a smaller --max-new-tokens or KV budget, or PMKVQ_KERNELS=ts for ordinary memory`,
        );
      }
      i++;
    }
  };
  const embedArena = place(n.embedBytes, n.tied, "the embedding");
  const blockArena = n.blockBytes.map((b, l) => place(b + n.kvBytes[l], true, `block ${l} (weights ${gib(b)} + KV cache ${gib(n.kvBytes[l])})`));
  const headArena = n.tied ? embedArena : place(n.headBytes, true, "the output head");
  const weights = n.embedBytes + n.headBytes + n.blockBytes.reduce((a, b) => a + b, 0);
  // the blocks grow one at a time: all hold their grown storage, one arena's worth of growth on top
  const kvHeld = n.kvHeldBytes ?? n.kvBytes;
  const kv = kvHeld.reduce((a, b) => a + b, 0) + Math.max(0, ...n.kvBytes.map((b, l) => b - kvHeld[l])) * Math.max(1, used.length);
  const scratch = computes.size * n.scratchBytes;
  const total = weights + kv + scratch;
  if (total > room.budget) {
    throw new OutOfMemoryError(
      `${what}: weights ${gib(weights)} + KV cache ${gib(kv)} (for ${n.kvTokens} tokens) + forward scratch ${gib(scratch)} = ${gib(total)}, ` +
        `but this process can hold ${gib(room.budget)} in WebAssembly memories (this machine's ${gib(os.totalmem())} less a margin, ` +
        `${Math.max(1, used.length)} memories of at most ${gib(room.capacity)} each); a smaller --max-new-tokens or KV budget, or a smaller model`,
    );
  }
  return { blockArena, embedArena, headArena };
}
