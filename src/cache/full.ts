// The full-precision KV cache (method "original"): keys and values kept as float32.

import { attendFloat } from "./attention.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "./types.js";

/** Capacity grows in steps of this many tokens, so spare capacity stays small. */
const GROW_TOKENS = 256;

export class FullPrecisionLayerCache implements LayerKvCache {
  private keys = new Float32Array(0); // (capacity, kvHeads·d)
  private values = new Float32Array(0); // (capacity, kvHeads·d)
  private scores = new Float32Array(0); // attention scratch, (capacity)
  private tokens = 0;
  private readonly rowSize: number;

  constructor(readonly shape: KvShape) {
    this.rowSize = shape.numKvHeads * shape.headDim;
  }

  get length(): number {
    return this.tokens;
  }

  append(keys: Float32Array, values: Float32Array, nTokens: number): void {
    const need = this.tokens + nTokens;
    if (need * this.rowSize > this.keys.length) this.grow(need);
    this.keys.set(keys.subarray(0, nTokens * this.rowSize), this.tokens * this.rowSize);
    this.values.set(values.subarray(0, nTokens * this.rowSize), this.tokens * this.rowSize);
    this.tokens = need;
  }

  private grow(minTokens: number): void {
    const cap = Math.ceil(minTokens / GROW_TOKENS) * GROW_TOKENS;
    const k = new Float32Array(cap * this.rowSize);
    const v = new Float32Array(cap * this.rowSize);
    k.set(this.keys.subarray(0, this.tokens * this.rowSize));
    v.set(this.values.subarray(0, this.tokens * this.rowSize));
    this.keys = k;
    this.values = v;
    this.scores = new Float32Array(cap);
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    attendFloat(out, queries, nTokens, this.keys, this.values, this.tokens, this.shape, this.scores);
  }

  stats(): KvBlockStats {
    return {
      bodyBits: 32,
      sinkTokens: 0,
      bodyTokens: this.tokens,
      windowTokens: 0,
      codeBytes: 2 * this.tokens * this.rowSize * 4,
      heldBytes: this.keys.byteLength + this.values.byteLength,
      budgetBytes: null,
    };
  }

  reset(): void {
    this.tokens = 0;
    this.keys = new Float32Array(0);
    this.values = new Float32Array(0);
    this.scores = new Float32Array(0);
  }
}

export function createFullPrecisionCache(shape: KvShape, numLayers: number): KvCache {
  return new KvCache("original", Array.from({ length: numLayers }, () => new FullPrecisionLayerCache(shape)));
}
