// The progressive mixed-precision KV cache of PM-KVQ (spec §3), one per block:
//   sink (first nSinkTokens, at sinkBits forever) | body (bodyBits, halved under pressure)
//   | window (the latest < W tokens, at windowBits)
// Two storage backends share the policy: "real" holds bit-packed codes and shrinks them as
// integers; "fake" (the original's simulated mode) holds dequantized floats and re-quantizes
// with fresh per-group min/max at every step down.
// Step order (pending.ts): by default the original's — a forward call's tokens are attended in
// float32 after the sink, body and window, and placed (sink, window, body, halving) once the
// call's attention is done, so a halving at step t first shows in step t + 1's attention.

import { KvBudgetError, UsageError } from "../errors.js";
import { fakeQuantize, isBitWidth } from "../quant/quantizer.js";
import { attendFloat } from "../tensor/attention-float.js";
import { PackedAttention } from "./packed-attention.js";
import { PackedTokenStore } from "./packed-store.js";
import { PendingTokens, type StepOrder } from "./pending.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";
import { perLayer } from "../tensor/memory.js";

export type ProgressiveBackend = "real" | "fake";

export interface ProgressiveOptions {
  nSinkTokens: number; // original default 1
  sinkBits: number; // 16
  nWindowTokens: number; // W, 128
  windowBits: number; // 16
  initBodyBits: number; // 16
  groupSize: number; // 128, or head_dim when smaller
  backend: ProgressiveBackend;
  /** Default "original" (pending.ts). */
  stepOrder?: StepOrder;
}

/** The original's defaults (spec §3); groupSize from the model's head_dim. */
export function defaultProgressiveOptions(headDim: number): ProgressiveOptions {
  return { nSinkTokens: 1, sinkBits: 16, nWindowTokens: 128, windowBits: 16, initBodyBits: 16, groupSize: Math.min(128, headDim), backend: "real" };
}

/** The lowest body bit-width; a body there that still does not fit means the cache is full. */
export const MIN_BODY_BITS = 2;

export function validateProgressiveOptions(o: ProgressiveOptions, headDim: number): void {
  const bad = (m: string) => {
    throw new UsageError(m);
  };
  if (!Number.isInteger(o.groupSize) || o.groupSize < 1 || headDim % o.groupSize !== 0) bad(`group size ${o.groupSize} must divide head_dim ${headDim}`);
  if (!Number.isInteger(o.nSinkTokens) || o.nSinkTokens < 0) bad(`n-sink-token must be ≥ 0 (got ${o.nSinkTokens})`);
  if (!Number.isInteger(o.nWindowTokens) || o.nWindowTokens < 0) bad(`n-window-token must be ≥ 0 (got ${o.nWindowTokens})`);
  if (!isBitWidth(o.sinkBits)) bad(`n-sink-token-bits must be one of 16, 8, 4, 2, 1 (got ${o.sinkBits})`);
  for (const [name, b] of [["n-window-token-bits", o.windowBits], ["n-init-kv-bits", o.initBodyBits]] as const) {
    if (![16, 8, 4, 2].includes(b)) bad(`${name} must be one of 16, 8, 4, 2 (got ${b})`);
  }
  if (o.initBodyBits > o.windowBits) bad(`n-init-kv-bits (${o.initBodyBits}) cannot exceed n-window-token-bits (${o.windowBits}): window tokens are shrunk into the body`);
}

abstract class ProgressiveLayerCacheBase implements LayerKvCache {
  protected sinkCount = 0;
  protected bodyCount = 0;
  protected windowCount = 0;
  bodyBits: number;
  protected readonly rowElems: number;
  /** The current call's tokens, in float until its attention is done. */
  protected readonly pending: PendingTokens;

  constructor(readonly shape: KvShape, readonly opts: ProgressiveOptions, readonly budgetBytes: number, readonly layer: number) {
    this.rowElems = shape.numKvHeads * shape.headDim;
    this.bodyBits = opts.initBodyBits;
    this.pending = new PendingTokens(this.rowElems);
  }

  get length(): number {
    return this.sinkCount + this.bodyCount + this.windowCount + this.pending.length;
  }

  /** The original's memory figure: K and V elements × bits / 8 over sink, body and window (pending tokens at window bits). */
  codeBytes(): number {
    const o = this.opts;
    return ((this.sinkCount * o.sinkBits + this.bodyCount * this.bodyBits + (this.windowCount + this.pending.length) * o.windowBits) * this.rowElems * 2) / 8;
  }

  append(keys: Float32Array, values: Float32Array, nTokens: number): void {
    this.pending.add(keys, values, nTokens);
    if (this.opts.stepOrder === "quantize-first") this.commit();
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    this.attendHeld(queries, nTokens, out);
    this.commit();
  }

  /** Place the pending tokens (spec §3): sink, window, body, halving under the budget. */
  protected commit(): void {
    const p = this.pending;
    const n = p.length;
    if (n === 0) return;
    p.length = 0; // placed rows are counted by sink/body/window from here on
    try {
      this.place(p.keys, p.values, n);
    } finally {
      p.clear();
    }
  }

  private place(keys: Float32Array, values: Float32Array, nTokens: number): void {
    const W = this.opts.nWindowTokens;
    let i = 0;
    // 1. the sink fills first
    const toSink = Math.min(nTokens, this.opts.nSinkTokens - this.sinkCount);
    if (toSink > 0) {
      this.storeSink(keys, values, 0, toSink);
      this.sinkCount += toSink;
      i = toSink;
    }
    // 2. the rest enters the window; each time it holds W tokens they move to the body
    //    (equivalent to moving the oldest ⌊count/W⌋·W once at the end of the update)
    while (i < nTokens) {
      const take = W === 0 ? nTokens - i : Math.min(nTokens - i, W - this.windowCount);
      this.storeWindow(keys, values, i, take);
      this.windowCount += take;
      i += take;
      if (this.windowCount >= W) {
        const move = W === 0 ? this.windowCount : Math.floor(this.windowCount / W) * W;
        this.flushWindow(move);
        this.windowCount -= move;
        this.bodyCount += move;
      }
    }
    // 3. memory check: halve the body until the budget holds, or report the cache full
    while (this.codeBytes() > this.budgetBytes) {
      if (this.bodyCount === 0 || this.bodyBits <= MIN_BODY_BITS) {
        throw new KvBudgetError(
          `block ${this.layer}: KV cache of ${this.length} tokens needs ${this.codeBytes()} bytes at a ${this.bodyBits}-bit body, ` +
            `over its budget of ${this.budgetBytes} bytes (${(this.budgetBytes / 2 ** 20).toFixed(4)} MB)`,
          this.layer,
        );
      }
      this.halveBody();
      this.bodyBits /= 2;
    }
  }

  /**
   * Drop the newest tokens: window first, then body, then sink. The tokens kept stay at the
   * precision they have reached (the body does not widen back).
   */
  truncate(tokens: number): number {
    this.commit();
    const drop = this.length - Math.max(0, Math.min(tokens, this.length));
    const fromWindow = Math.min(drop, this.windowCount);
    const fromBody = Math.min(drop - fromWindow, this.bodyCount);
    const fromSink = drop - fromWindow - fromBody;
    this.dropStored(fromSink, fromBody, fromWindow);
    this.windowCount -= fromWindow;
    this.bodyCount -= fromBody;
    this.sinkCount -= fromSink;
    return this.length;
  }

  stats(): KvBlockStats {
    return {
      bodyBits: this.bodyBits,
      sinkTokens: this.sinkCount,
      bodyTokens: this.bodyCount,
      windowTokens: this.windowCount + this.pending.length,
      codeBytes: this.codeBytes(),
      heldBytes: this.heldBytes() + this.pending.heldBytes(),
      budgetBytes: this.budgetBytes,
    };
  }

  reset(): void {
    this.sinkCount = this.bodyCount = this.windowCount = 0;
    this.bodyBits = this.opts.initBodyBits;
    this.pending.dispose();
    this.clearStorage();
  }

  dispose(): void {
    this.reset();
  }

  /** Dequantized keys and values of every token held, in token order (tests, comparisons). */
  abstract dequantized(): { keys: Float32Array; values: Float32Array };
  /** Attention of the last nTokens (pending) over the held tokens and the pending ones. */
  protected abstract attendHeld(queries: Float32Array, nTokens: number, out: Float32Array): void;
  protected abstract storeSink(k: Float32Array, v: Float32Array, from: number, n: number): void;
  protected abstract storeWindow(k: Float32Array, v: Float32Array, from: number, n: number): void;
  /** Move the oldest n window tokens into the body at the current body bit-width. */
  protected abstract flushWindow(n: number): void;
  /** Halve the bit-width of every body token (bodyBits is updated by the caller). */
  protected abstract halveBody(): void;
  protected abstract heldBytes(): number;
  /** Forget the newest n tokens of the sink, body and window storage (counts are updated by the caller). */
  protected abstract dropStored(sink: number, body: number, window: number): void;
  protected abstract clearStorage(): void;
}

/** Real backend: bit-packed codes, integer shrinking, attention from the codes. */
export class RealProgressiveLayerCache extends ProgressiveLayerCacheBase {
  private readonly sink: [PackedTokenStore, PackedTokenStore];
  private readonly body: [PackedTokenStore, PackedTokenStore];
  private readonly window: [PackedTokenStore, PackedTokenStore];
  private readonly attention: PackedAttention;

  constructor(shape: KvShape, opts: ProgressiveOptions, budgetBytes: number, layer: number) {
    super(shape, opts, budgetBytes, layer);
    const { groupSize: G, nSinkTokens, nWindowTokens: W } = opts;
    const store = (bits: number, grow: number) => new PackedTokenStore(this.rowElems, G, bits, 0, grow);
    this.sink = [store(opts.sinkBits, Math.max(1, nSinkTokens)), store(opts.sinkBits, Math.max(1, nSinkTokens))];
    this.window = [store(opts.windowBits, Math.max(1, W)), store(opts.windowBits, Math.max(1, W))];
    this.body = [store(opts.initBodyBits, Math.max(1, W)), store(opts.initBodyBits, Math.max(1, W))];
    this.attention = new PackedAttention(shape, G);
  }

  protected storeSink(k: Float32Array, v: Float32Array, from: number, n: number): void {
    this.sink[0].appendFloats(k, from * this.rowElems, n);
    this.sink[1].appendFloats(v, from * this.rowElems, n);
  }

  protected storeWindow(k: Float32Array, v: Float32Array, from: number, n: number): void {
    this.window[0].appendFloats(k, from * this.rowElems, n);
    this.window[1].appendFloats(v, from * this.rowElems, n);
  }

  protected flushWindow(n: number): void {
    this.window[0].moveOldestTo(this.body[0], n);
    this.window[1].moveOldestTo(this.body[1], n);
  }

  protected halveBody(): void {
    this.body[0].halve();
    this.body[1].halve();
  }

  protected heldBytes(): number {
    return [...this.sink, ...this.body, ...this.window].reduce((a, s) => a + s.heldBytes(), 0);
  }

  protected dropStored(sink: number, body: number, window: number): void {
    for (const s of this.sink) s.dropNewest(sink);
    for (const s of this.body) s.dropNewest(body);
    for (const s of this.window) s.dropNewest(window);
  }

  protected clearStorage(): void {
    for (const s of [...this.sink, ...this.window]) s.reset();
    for (const s of this.body) s.reset(this.opts.initBodyBits);
  }

  protected attendHeld(queries: Float32Array, T: number, out: Float32Array): void {
    this.attention.attend(out, queries, T, [this.sink, this.body, this.window], this.pending);
  }

  dequantized(): { keys: Float32Array; values: Float32Array } {
    const keys = new Float32Array(this.length * this.rowElems);
    const values = new Float32Array(this.length * this.rowElems);
    let row = 0;
    for (const [k, v] of [this.sink, this.body, this.window]) {
      for (let t = 0; t < k.length; t++, row++) {
        k.dequantizeRow(t, keys, row * this.rowElems);
        v.dequantizeRow(t, values, row * this.rowElems);
      }
    }
    return { keys, values };
  }
}

/** Fake backend (the original's simulated mode): dequantized floats in token order. */
export class FakeProgressiveLayerCache extends ProgressiveLayerCacheBase {
  private keys = new Float32Array(0); // (capacity, rowElems)
  private values = new Float32Array(0);
  private scores = new Float32Array(0);

  private reserve(tokens: number): void {
    if (tokens * this.rowElems <= this.keys.length) return;
    const cap = Math.ceil(tokens / 256) * 256;
    const k = new Float32Array(cap * this.rowElems);
    const v = new Float32Array(cap * this.rowElems);
    k.set(this.keys.subarray(0, this.length * this.rowElems));
    v.set(this.values.subarray(0, this.length * this.rowElems));
    this.keys = k;
    this.values = v;
    this.scores = new Float32Array(cap);
  }

  private storeAt(k: Float32Array, v: Float32Array, from: number, n: number, bits: number): void {
    const at = this.length * this.rowElems;
    this.reserve(this.length + n);
    const len = n * this.rowElems;
    this.keys.set(k.subarray(from * this.rowElems, from * this.rowElems + len), at);
    this.values.set(v.subarray(from * this.rowElems, from * this.rowElems + len), at);
    fakeQuantize(this.keys, at, len, this.opts.groupSize, bits);
    fakeQuantize(this.values, at, len, this.opts.groupSize, bits);
  }

  protected storeSink(k: Float32Array, v: Float32Array, from: number, n: number): void {
    this.storeAt(k, v, from, n, this.opts.sinkBits);
  }

  protected storeWindow(k: Float32Array, v: Float32Array, from: number, n: number): void {
    this.storeAt(k, v, from, n, this.opts.windowBits);
  }

  /** Re-quantize rows [first, first+n) at each bit-width below `fromBits` down to `toBits`. */
  private stepDown(first: number, n: number, fromBits: number, toBits: number): void {
    const off = first * this.rowElems;
    const len = n * this.rowElems;
    for (let b = fromBits / 2; b >= toBits; b /= 2) {
      fakeQuantize(this.keys, off, len, this.opts.groupSize, b);
      fakeQuantize(this.values, off, len, this.opts.groupSize, b);
    }
  }

  protected flushWindow(n: number): void {
    // the oldest window tokens follow the body directly: only their precision changes
    this.stepDown(this.sinkCount + this.bodyCount, n, this.opts.windowBits, this.bodyBits);
  }

  protected halveBody(): void {
    this.stepDown(this.sinkCount, this.bodyCount, this.bodyBits, this.bodyBits / 2);
  }

  protected heldBytes(): number {
    return this.keys.byteLength + this.values.byteLength;
  }

  protected dropStored(): void {
    // rows are in token order and the counts say how many are held: nothing to move
  }

  protected clearStorage(): void {
    this.keys = new Float32Array(0);
    this.values = new Float32Array(0);
    this.scores = new Float32Array(0);
  }

  protected attendHeld(queries: Float32Array, nTokens: number, out: Float32Array): void {
    // the pending rows follow the held ones, as floats, outside the held count
    const held = this.length - this.pending.length;
    const n = this.pending.length * this.rowElems;
    this.reserve(this.length);
    this.keys.set(this.pending.keys.subarray(0, n), held * this.rowElems);
    this.values.set(this.pending.values.subarray(0, n), held * this.rowElems);
    attendFloat(out, queries, nTokens, this.keys, this.values, this.length, this.shape, this.scores);
  }

  dequantized(): { keys: Float32Array; values: Float32Array } {
    const n = this.length * this.rowElems;
    return { keys: this.keys.slice(0, n), values: this.values.slice(0, n) };
  }
}

export type ProgressiveLayerCache = RealProgressiveLayerCache | FakeProgressiveLayerCache;

/** One progressive cache per block; budgetsBytes[i] is block i's budget. */
export function createProgressiveCache(shape: KvShape, budgetsBytes: number[], opts: ProgressiveOptions): KvCache {
  validateProgressiveOptions(opts, shape.headDim);
  const Layer = opts.backend === "real" ? RealProgressiveLayerCache : FakeProgressiveLayerCache;
  return new KvCache(`pm-kvq/${opts.backend}`, perLayer(budgetsBytes.length, (i) => new Layer(shape, opts, budgetsBytes[i], i)));
}
