// The KV cache interface (owned by the model: the forward pass is written against it; cache/
// implements it). Attention reads keys and values only through a per-block cache:
// the forward pass appends each new token's K (after RoPE) and V, then asks the cache to
// attend. A cache that stores quantized codes can therefore compute attention straight
// from its own storage.

import type { Placement } from "./placement.js";

/** Memory figures of one block's cache (the names are part of the JSON output contract). */
export interface KvBlockStats {
  /** Bit-width of the body (16 or 32 for a float cache, as stored). */
  bodyBits: number;
  sinkTokens: number;
  bodyTokens: number;
  windowTokens: number;
  /** The original's figure: K and V elements × bits / 8, codes only. */
  codeBytes: number;
  /** The honest figure: bytes of the buffers actually held (codes + scales + zeros + spare capacity). */
  heldBytes: number;
  /** Per-block budget, or null when the cache has none. */
  budgetBytes: number | null;
}

export interface KvStats {
  method: string;
  blocks: KvBlockStats[];
  totalCodeBytes: number;
  totalHeldBytes: number;
}

/** Shapes every block cache needs. */
export interface KvShape {
  numHeads: number; // query heads
  numKvHeads: number;
  headDim: number;
}

/** What the forward pass knows about the tokens it appends, for caches that need more than K/V. */
export interface AppendContext {
  /** Position ids of the new tokens. */
  positions: ArrayLike<number>;
  /** The block's input hidden states of the new tokens, (nTokens, hiddenSize). */
  hidden: Float32Array;
  hiddenSize: number;
}

export interface LayerKvCache {
  /** Tokens held (sink + body + window). */
  readonly length: number;
  /**
   * When true, the forward pass appends keys *before* RoPE and the cache applies RoPE itself
   * (for transforms folded into k_proj that do not commute with RoPE, e.g. RotateKV).
   */
  readonly keysBeforeRope?: boolean;
  /**
   * Append nTokens new tokens. keys/values: (nTokens, numKvHeads × headDim), keys after RoPE
   * (unless keysBeforeRope). Throws KvBudgetError when they cannot be held within the budget.
   */
  append(keys: Float32Array, values: Float32Array, nTokens: number, ctx?: AppendContext): void;
  /**
   * Causal attention for the last nTokens appended: query i sees cached tokens
   * 0 … length − nTokens + i. queries: (nTokens, numHeads × headDim); out: same shape.
   */
  attend(queries: Float32Array, nTokens: number, out: Float32Array): void;
  stats(): KvBlockStats;
  /**
   * Keep only the first `tokens` tokens (for reusing a shared prefix), as they are held. A
   * cache that cannot cut there keeps fewer; returns how many it kept (0: it emptied itself).
   */
  truncate(tokens: number): number;
  /** Empty the cache, giving its storage back (it can be filled again). */
  reset(): void;
  /** Give back everything the cache holds, scratch included (as reset, and it stays usable). */
  dispose(): void;
}

/**
 * The caches of all blocks of one sequence. It owns its memory: `dispose()` (or `using cache =
 * …`) gives it back to the kernel arena; `generate` disposes the caches it creates itself.
 */
export class KvCache {
  /** The model placement its layers' storage was made for (createCache); null: the current arena. */
  placement: Placement | null = null;

  constructor(readonly method: string, readonly layers: LayerKvCache[]) {}

  dispose(): void {
    for (const l of this.layers) l.dispose();
  }

  /** Keep the first `tokens` tokens in every block (or fewer, the same in all); returns how many are kept. */
  truncate(tokens: number): number {
    let keep = Math.max(0, Math.min(tokens, this.length));
    for (let round = 0; round < 4; round++) {
      const kept = Math.min(...this.layers.map((l) => l.truncate(keep)));
      if (kept === keep && this.layers.every((l) => l.length === keep)) return keep;
      keep = kept;
    }
    this.reset();
    return 0;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Tokens held (every block holds the same number). */
  get length(): number {
    return this.layers.length ? this.layers[0].length : 0;
  }

  reset(): void {
    for (const l of this.layers) l.reset();
  }

  stats(): KvStats {
    const blocks = this.layers.map((l) => l.stats());
    return {
      method: this.method,
      blocks,
      totalCodeBytes: blocks.reduce((a, b) => a + b.codeBytes, 0),
      totalHeldBytes: blocks.reduce((a, b) => a + b.heldBytes, 0),
    };
  }
}
