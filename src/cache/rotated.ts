// A Hadamard-rotated view of any block cache (`rotate: "hadamard"`): every head vector of K
// (after RoPE) and V is stored as R·x with R = H·D (normalised Walsh–Hadamard after fixed
// random signs, orthonormal), the query is rotated with the keys (q·k = (Rq)·(Rk)), and the
// attention output, a weighted sum of rotated values, is rotated back once per head
// (Σ p·v = Rᵀ·Σ p·(Rv)). Without quantization the attention is unchanged; with it, outlier
// channels are spread over the whole head, so a group's min/max (and every grid below it)
// covers the values more evenly. The inner cache quantizes and shrinks as it always does — a
// uniform grid over rotated values keeps pm-kvq's integer shrink exact.

import { UsageError } from "../errors.js";
import { assertHadamardSize } from "../quant/hadamard.js";
import { allocF32, release } from "../tensor/memory.js";
import { rotate, rotationSigns, unrotate } from "./turboquant.js";
import { KvCache, type AppendContext, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";

/** Seed of the random signs (one sign vector for every head and block). */
export const ROTATION_SEED = 0x4ad;

export class RotatedLayerCache implements LayerKvCache {
  private readonly signs: Float32Array;
  private k = allocF32(0);
  private v = allocF32(0);
  private q = allocF32(0);

  constructor(readonly shape: KvShape, readonly inner: LayerKvCache) {
    assertHadamardSize(shape.headDim, "--rotate hadamard: head_dim");
    if (inner.keysBeforeRope) throw new UsageError("--rotate hadamard needs keys after RoPE");
    this.signs = rotationSigns(shape.headDim, ROTATION_SEED);
  }

  get length(): number {
    return this.inner.length;
  }

  private rows(buf: Float32Array, src: Float32Array, n: number, heads: number): Float32Array {
    const d = this.shape.headDim;
    const size = n * heads * d;
    let b = buf;
    if (b.length < size) {
      release(b);
      b = allocF32(size);
    }
    b.set(src.subarray(0, size));
    for (let r = 0; r < n * heads; r++) rotate(b, r * d, d, this.signs);
    return b;
  }

  append(keys: Float32Array, values: Float32Array, nTokens: number, ctx?: AppendContext): void {
    const Hk = this.shape.numKvHeads;
    this.k = this.rows(this.k, keys, nTokens, Hk);
    this.v = this.rows(this.v, values, nTokens, Hk);
    const size = nTokens * Hk * this.shape.headDim;
    this.inner.append(this.k.subarray(0, size), this.v.subarray(0, size), nTokens, ctx);
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    const { numHeads: H, headDim: d } = this.shape;
    this.q = this.rows(this.q, queries, nTokens, H);
    this.inner.attend(this.q.subarray(0, nTokens * H * d), nTokens, out);
    for (let r = 0; r < nTokens * H; r++) unrotate(out, r * d, d, this.signs);
  }

  stats(): KvBlockStats {
    const s = this.inner.stats();
    return { ...s, heldBytes: s.heldBytes + this.signs.byteLength };
  }

  truncate(tokens: number): number {
    return this.inner.truncate(tokens);
  }

  reset(): void {
    this.inner.reset();
  }

  dispose(): void {
    this.inner.dispose();
    for (const b of [this.k, this.v, this.q]) release(b);
    this.k = this.v = this.q = allocF32(0);
  }
}

/** Wrap every block of a cache in the rotation. */
export function rotateCache(shape: KvShape, cache: KvCache): KvCache {
  return new KvCache(`${cache.method}+hadamard`, cache.layers.map((l) => new RotatedLayerCache(shape, l)));
}
