// RTN baseline (spec §7): K (after RoPE) and V of every token quantized per token, groups of
// G channels, at k/v bits — direct quantization, no progression. Held bit-packed (real
// memory); attention is computed from the codes. Dequantized values equal the original's
// simulated RTN (fake quantization) exactly. Step order (pending.ts): the original's by default —
// a call's tokens are attended in float and quantized after.

import { PackedAttention } from "./packed-attention.js";
import { PackedTokenStore } from "./packed-store.js";
import { PendingTokens, type StepOrder } from "./pending.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";
import { perLayer } from "../tensor/memory.js";

export interface RtnOptions {
  kBits: number;
  vBits: number;
  groupSize: number;
  /** Default "original". */
  stepOrder?: StepOrder;
}

/** Storage grows in steps of this many tokens. */
const GROW_TOKENS = 128;

export class RtnLayerCache implements LayerKvCache {
  private readonly keys: PackedTokenStore;
  private readonly values: PackedTokenStore;
  private readonly attention: PackedAttention;
  private readonly pending: PendingTokens;

  constructor(readonly shape: KvShape, readonly opts: RtnOptions) {
    const row = shape.numKvHeads * shape.headDim;
    this.keys = new PackedTokenStore(row, opts.groupSize, opts.kBits, 0, GROW_TOKENS);
    this.values = new PackedTokenStore(row, opts.groupSize, opts.vBits, 0, GROW_TOKENS);
    this.attention = new PackedAttention(shape, opts.groupSize);
    this.pending = new PendingTokens(row);
  }

  get length(): number {
    return this.keys.length + this.pending.length;
  }

  append(keys: Float32Array, values: Float32Array, n: number): void {
    this.pending.add(keys, values, n);
    if (this.opts.stepOrder === "quantize-first") this.commit();
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    this.attention.attend(out, queries, nTokens, [[this.keys, this.values]], this.pending);
    this.commit();
  }

  /** Quantize the pending tokens into the stores. */
  private commit(): void {
    const p = this.pending;
    if (p.length === 0) return;
    this.keys.appendFloats(p.keys, 0, p.length);
    this.values.appendFloats(p.values, 0, p.length);
    p.clear();
  }

  /** Dequantized keys and values in token order (tests). */
  dequantized(): { keys: Float32Array; values: Float32Array } {
    const row = this.keys.rowElems;
    const keys = new Float32Array(this.length * row);
    const values = new Float32Array(this.length * row);
    for (let t = 0; t < this.length; t++) {
      this.keys.dequantizeRow(t, keys, t * row);
      this.values.dequantizeRow(t, values, t * row);
    }
    return { keys, values };
  }

  /** Tokens are quantized independently: dropping the newest leaves exactly a shorter run's cache. */
  truncate(tokens: number): number {
    this.commit();
    const drop = this.length - Math.max(0, Math.min(tokens, this.length));
    this.keys.dropNewest(drop);
    this.values.dropNewest(drop);
    return this.length;
  }

  stats(): KvBlockStats {
    const { kBits, vBits } = this.opts;
    return {
      bodyBits: kBits === vBits ? kBits : (kBits + vBits) / 2,
      sinkTokens: 0,
      bodyTokens: this.length,
      windowTokens: 0,
      codeBytes: this.keys.codeBytes() + this.values.codeBytes(),
      heldBytes: this.keys.heldBytes() + this.values.heldBytes() + this.pending.heldBytes(),
      budgetBytes: null,
    };
  }

  reset(): void {
    this.keys.reset();
    this.values.reset();
    this.pending.dispose();
  }

  dispose(): void {
    this.reset();
  }
}

export function createRtnCache(shape: KvShape, numLayers: number, opts: RtnOptions): KvCache {
  return new KvCache(`rtn-k${opts.kBits}v${opts.vBits}`, perLayer(numLayers, () => new RtnLayerCache(shape, opts)));
}
