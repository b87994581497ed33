// The original's step order (spec §10): attention at step t sees the cache as it stood after
// step t − 1 plus the tokens of the current forward call at full precision; those tokens are
// quantized only once the call's attention is done. A cache holds the call's tokens here, in
// float32, attends over its own storage followed by these rows, and commits them at the end of
// attend. With the whole prompt in one forward call (eval's default, as the original's single
// prefill pass) prefill attention is never quantized.
//
// `stepOrder: "quantize-first"` commits at append instead: every token is quantized before any
// attention sees it, itself included (this project's order before; kept to measure the
// difference).
//
// Storage (R = numKvHeads·headDim): keys, values (capacity, R) f32 in the kernel arena. An
// empty buffer is scratch (not counted in heldBytes, as attention scratch); one grown past
// KEEP_TOKENS by a long prompt is given back at commit.

import { release, allocF32 } from "../tensor/memory.js";
import { floatSegment, type TiledSegment } from "../tensor/tiled-attention.js";

export type StepOrder = "original" | "quantize-first";
export const STEP_ORDERS: readonly StepOrder[] = ["original", "quantize-first"];

/** Pending rows kept allocated between calls (a decode step's token). */
const KEEP_TOKENS = 16;

export class PendingTokens {
  keys: Float32Array = new Float32Array(0);
  values: Float32Array = new Float32Array(0);
  length = 0;

  constructor(readonly rowElems: number) {}

  add(keys: Float32Array, values: Float32Array, n: number): void {
    const need = (this.length + n) * this.rowElems;
    if (need > this.keys.length) {
      const k = allocF32(need);
      const v = allocF32(need);
      k.set(this.keys.subarray(0, this.length * this.rowElems));
      v.set(this.values.subarray(0, this.length * this.rowElems));
      this.releaseBuffers();
      this.keys = k;
      this.values = v;
    }
    this.keys.set(keys.subarray(0, n * this.rowElems), this.length * this.rowElems);
    this.values.set(values.subarray(0, n * this.rowElems), this.length * this.rowElems);
    this.length += n;
  }

  /** The rows as one float segment each for the tiled attention. */
  segments(): [TiledSegment, TiledSegment] {
    return [floatSegment(this.keys, this.length, this.rowElems), floatSegment(this.values, this.length, this.rowElems)];
  }

  /** Forget the rows (after they were committed); a buffer grown by a long prompt is given back. */
  clear(): void {
    this.length = 0;
    if (this.keys.length > KEEP_TOKENS * this.rowElems) {
      this.releaseBuffers();
      this.keys = new Float32Array(0);
      this.values = new Float32Array(0);
    }
  }

  /** Bytes held for rows not yet committed (0 when empty: the buffer is then scratch). */
  heldBytes(): number {
    return this.length > 0 ? this.keys.byteLength + this.values.byteLength : 0;
  }

  dispose(): void {
    this.length = 0;
    this.releaseBuffers();
    this.keys = new Float32Array(0);
    this.values = new Float32Array(0);
  }

  private releaseBuffers(): void {
    release(this.keys);
    release(this.values);
  }
}
