// The full-precision KV cache (method "original"): keys and values as float32, or as float16
// (half the memory; widened inside the attention kernel).

import { FULL_CACHE_GROW_TOKENS } from "../model/placement.js";
import { attendTiledKernel } from "../tensor/kernels.js";
import { floatSegment } from "../tensor/tiled-attention.js";
import { allocF32, allocU16, release, perLayer } from "../tensor/memory.js";
import { f16ToF32, f32ToF16 } from "../tensor/dtype.js";
import { attendFloat } from "../tensor/attention-float.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";

/** Storage grows in steps of this many tokens, so spare capacity stays small (model/placement.ts reserves memory by it). */
const GROW_TOKENS = FULL_CACHE_GROW_TOKENS;

export type KvDtype = "f32" | "f16";

export class FullPrecisionLayerCache implements LayerKvCache {
  private keys: Float32Array | Uint16Array; // (capacity, kvHeads·d)
  private values: Float32Array | Uint16Array; // (capacity, kvHeads·d)
  private scores = new Float32Array(0); // attention scratch of the plain path, (capacity)
  private tokens = 0;
  private readonly rowSize: number;

  constructor(readonly shape: KvShape, readonly dtype: KvDtype = "f32") {
    this.rowSize = shape.numKvHeads * shape.headDim;
    this.keys = this.alloc(0);
    this.values = this.alloc(0);
  }

  private alloc(n: number): Float32Array | Uint16Array {
    return this.dtype === "f32" ? allocF32(n) : allocU16(n);
  }

  get length(): number {
    return this.tokens;
  }

  append(keys: Float32Array, values: Float32Array, nTokens: number): void {
    const need = this.tokens + nTokens;
    if (need * this.rowSize > this.keys.length) this.grow(need);
    const at = this.tokens * this.rowSize;
    const n = nTokens * this.rowSize;
    if (this.dtype === "f32") {
      (this.keys as Float32Array).set(keys.subarray(0, n), at);
      (this.values as Float32Array).set(values.subarray(0, n), at);
    } else {
      f32ToF16(keys.subarray(0, n), (this.keys as Uint16Array).subarray(at, at + n));
      f32ToF16(values.subarray(0, n), (this.values as Uint16Array).subarray(at, at + n));
    }
    this.tokens = need;
  }

  private grow(minTokens: number): void {
    const cap = Math.ceil(minTokens / GROW_TOKENS) * GROW_TOKENS;
    const k = this.alloc(cap * this.rowSize);
    const v = this.alloc(cap * this.rowSize);
    k.set(this.keys.subarray(0, this.tokens * this.rowSize) as never);
    v.set(this.values.subarray(0, this.tokens * this.rowSize) as never);
    release(this.keys);
    release(this.values);
    this.keys = k;
    this.values = v;
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    const segK = [floatSegment(this.keys, this.tokens, this.rowSize)];
    const segV = [floatSegment(this.values, this.tokens, this.rowSize)];
    if (attendTiledKernel(out, queries, nTokens, segK, segV, this.shape, this.shape.headDim)) return;
    if (this.scores.length < this.tokens) this.scores = new Float32Array(Math.ceil(this.tokens / GROW_TOKENS) * GROW_TOKENS);
    if (this.dtype === "f32") {
      attendFloat(out, queries, nTokens, this.keys as Float32Array, this.values as Float32Array, this.tokens, this.shape, this.scores);
    } else {
      // plain path: widen the held rows (the twin of the kernel's in-register widening)
      const n = this.tokens * this.rowSize;
      const k = new Float32Array(n);
      const v = new Float32Array(n);
      f16ToF32((this.keys as Uint16Array).subarray(0, n), k);
      f16ToF32((this.values as Uint16Array).subarray(0, n), v);
      attendFloat(out, queries, nTokens, k, v, this.tokens, this.shape, this.scores);
    }
  }

  truncate(tokens: number): number {
    this.tokens = Math.max(0, Math.min(tokens, this.tokens));
    return this.tokens;
  }

  stats(): KvBlockStats {
    const bits = this.dtype === "f32" ? 32 : 16;
    return {
      bodyBits: bits,
      sinkTokens: 0,
      bodyTokens: this.tokens,
      windowTokens: 0,
      codeBytes: (2 * this.tokens * this.rowSize * bits) / 8,
      heldBytes: this.keys.byteLength + this.values.byteLength,
      budgetBytes: null,
    };
  }

  reset(): void {
    this.tokens = 0;
    release(this.keys);
    release(this.values);
    this.keys = this.alloc(0);
    this.values = this.alloc(0);
    this.scores = new Float32Array(0);
  }

  dispose(): void {
    this.reset();
  }
}

export function createFullPrecisionCache(shape: KvShape, numLayers: number, dtype: KvDtype = "f32"): KvCache {
  return new KvCache(dtype === "f32" ? "original" : "original-f16", perLayer(numLayers, () => new FullPrecisionLayerCache(shape, dtype)));
}
