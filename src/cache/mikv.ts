// MiKV baseline (spec §7): query/key channel balancing plus importance-based mixed precision.
//
// Rules, one block:
// - Balancing. At the first attend (the prefill; its keys are still float), per KV head h and
//   channel c: b[h][c] = sqrt(max|q| / max|k|), max|q| over the call's queries of the query
//   heads of group h, max|k| over the held keys of head h (b = 1 when either max is 0). From
//   then on keys are held as k·b and queries used as q/b, so q·k is unchanged. Later chunks
//   and decode steps reuse b. Option `balance: false` forces b = 1 (ablation).
// - Importance. Every full-precision token carries its accumulated attention: after each
//   attend, the probabilities it received summed over all query heads and queries of the call.
//   New tokens enter at full precision (float32, balanced keys). When more than nSinkTokens are
//   at full precision after an attend, the lowest-scored (ties: the older) are quantized —
//   balanced keys at kBits, values at vBits, per token in groups of G channels (spec §2) —
//   until nSinkTokens remain. This is H2O-style eviction to low precision: a quantized token
//   never returns (its floats are gone), and its score is no longer kept.
// - Attention is invariant to the order of keys once causality is settled; quantized tokens
//   are always older than the call's queries (eviction happens only at the end of attend), so
//   every query sees all of them. Scores are laid out [quantized rows | visible float slots],
//   and quantized rows are scored and summed straight from their codes (packed-attention.ts).
//
// Storage (R = numKvHeads·headDim):
//   fpKeys, fpValues  (fpCap, R) f32   full-precision tokens in token order (balanced keys)
//   fpTokens          (fpCap) i32      slot → token index
//   fpScores          (fpCap) f64      accumulated attention of each slot
//   quantKeys/Values  PackedTokenStore (rows, ⌈R·bits/32⌉) u32 + (rows, R/G) f16 scale, zero,
//                     rows in the order they were quantized
//   balance           (R) f32          b, allocated at the first attend
// fpCap grows to ⌈need/GROW⌉·GROW; after an eviction it shrinks to fp + 1 when larger (one
// slot for the next decode token, so steady decoding reallocates nothing). The packed stores
// grow in steps of GROW rows.
// heldBytes counts all of the above; per-call attention scratch is not counted (as full.ts).

import { UsageError } from "../errors.js";
import { isBitWidth } from "../quant/quantizer.js";
import { softmax } from "../tensor/ops.js";
import { packedScores, packedWeightedSum } from "./packed-attention.js";
import { PackedTokenStore } from "./packed-store.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";
import { perLayer } from "../tensor/memory.js";

export interface MikvOptions {
  kBits: number;
  vBits: number;
  groupSize: number; // G channels per quantization group
  nSinkTokens: number; // N: tokens kept at full precision (the most attended)
  balance?: boolean; // channel balancing (default true)
}

/**
 * Full-precision tokens MiKV keeps by default: 0, the original's default (its `n_sink_tokens`),
 * so the baseline is channel balancing + RTN; the new tokens of a step are still attended at
 * full precision (they are quantized at the end of the attend). `--n-sink-tokens` keeps more.
 */
export const MIKV_DEFAULT_SINK_TOKENS = 0;

/** Float slots and packed rows grow in steps of this many tokens. */
export const MIKV_GROW_TOKENS = 64;

export function validateMikvOptions(o: MikvOptions, headDim: number): void {
  if (!Number.isInteger(o.groupSize) || o.groupSize < 1 || headDim % o.groupSize !== 0) {
    throw new UsageError(`MiKV group size ${o.groupSize} must divide head_dim ${headDim}`);
  }
  for (const [name, b] of [["k-bits", o.kBits], ["v-bits", o.vBits]] as const) {
    if (!isBitWidth(b)) throw new UsageError(`MiKV ${name} must be one of 16, 8, 4, 2, 1 (got ${b})`);
  }
  if (!Number.isInteger(o.nSinkTokens) || o.nSinkTokens < 0) throw new UsageError(`n-sink-tokens must be an integer ≥ 0 (got ${o.nSinkTokens})`);
}

export class MikvLayerCache implements LayerKvCache {
  private fpKeys = new Float32Array(0); // (fpCap, R) balanced keys once b is known
  private fpValues = new Float32Array(0); // (fpCap, R)
  private fpTokens = new Int32Array(0); // (fpCap) token index of each slot, increasing
  private fpScores = new Float64Array(0); // (fpCap) accumulated attention
  private fpCount = 0;
  private readonly quantKeys: PackedTokenStore;
  private readonly quantValues: PackedTokenStore;
  private balance = new Float32Array(0); // (R) b; empty until the first attend
  private tokens = 0;
  private readonly rowElems: number;
  // attention scratch (not storage)
  private scores = new Float32Array(0);
  private readonly query: Float32Array; // one balanced query head
  private readonly sumQ: Float64Array;
  private readonly acc: Float64Array;

  constructor(readonly shape: KvShape, readonly opts: MikvOptions) {
    validateMikvOptions(opts, shape.headDim);
    this.rowElems = shape.numKvHeads * shape.headDim;
    this.quantKeys = new PackedTokenStore(this.rowElems, opts.groupSize, opts.kBits, 0, MIKV_GROW_TOKENS);
    this.quantValues = new PackedTokenStore(this.rowElems, opts.groupSize, opts.vBits, 0, MIKV_GROW_TOKENS);
    this.query = new Float32Array(shape.headDim);
    this.sumQ = new Float64Array(shape.headDim / opts.groupSize);
    this.acc = new Float64Array(shape.headDim);
  }

  get length(): number {
    return this.tokens;
  }

  /** The channel balance b, (R); empty before the first attend (tests). */
  get channelBalance(): Float32Array {
    return this.balance;
  }

  /** Token indices held at full precision, ascending (tests, traces). */
  fullPrecisionTokens(): number[] {
    return Array.from(this.fpTokens.subarray(0, this.fpCount));
  }

  append(keys: Float32Array, values: Float32Array, nTokens: number): void {
    const R = this.rowElems;
    const need = this.fpCount + nTokens;
    if (need > this.fpTokens.length) this.resizeFloat(Math.ceil(need / MIKV_GROW_TOKENS) * MIKV_GROW_TOKENS);
    // new tokens enter at full precision, keys balanced when b is known
    const at = this.fpCount * R;
    this.fpKeys.set(keys.subarray(0, nTokens * R), at);
    this.fpValues.set(values.subarray(0, nTokens * R), at);
    if (this.balance.length) this.scaleKeys(at, nTokens);
    for (let t = 0; t < nTokens; t++) {
      this.fpTokens[this.fpCount + t] = this.tokens + t;
      this.fpScores[this.fpCount + t] = 0;
    }
    this.fpCount = need;
    this.tokens += nTokens;
  }

  /** fpKeys rows [at/R, +n) ← k·b. */
  private scaleKeys(at: number, n: number): void {
    const R = this.rowElems;
    for (let i = 0; i < n * R; i++) this.fpKeys[at + i] *= this.balance[i % R];
  }

  /** Reallocate the float slots to cap tokens (cap ≥ fpCount). */
  private resizeFloat(cap: number): void {
    const R = this.rowElems;
    const keys = new Float32Array(cap * R);
    keys.set(this.fpKeys.subarray(0, this.fpCount * R));
    const values = new Float32Array(cap * R);
    values.set(this.fpValues.subarray(0, this.fpCount * R));
    const tokens = new Int32Array(cap);
    tokens.set(this.fpTokens.subarray(0, this.fpCount));
    const scores = new Float64Array(cap);
    scores.set(this.fpScores.subarray(0, this.fpCount));
    this.fpKeys = keys;
    this.fpValues = values;
    this.fpTokens = tokens;
    this.fpScores = scores;
  }

  /** b from the prefill's queries and every key held (all still float), then keys ← k·b. */
  private computeBalance(queries: Float32Array, T: number): void {
    const { numHeads, numKvHeads, headDim: d } = this.shape;
    const R = this.rowElems;
    const group = numHeads / numKvHeads;
    const maxQ = new Float32Array(R);
    const maxK = new Float32Array(R);
    // max|q| per (KV head, channel) over the call's queries of the group's query heads
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < numHeads; h++) {
        const e0 = Math.floor(h / group) * d;
        for (let c = 0; c < d; c++) maxQ[e0 + c] = Math.max(maxQ[e0 + c], Math.abs(queries[(t * numHeads + h) * d + c]));
      }
    }
    // max|k| per (KV head, channel) over the keys held
    for (let i = 0; i < this.fpCount * R; i++) maxK[i % R] = Math.max(maxK[i % R], Math.abs(this.fpKeys[i]));
    this.balance = new Float32Array(R);
    for (let e = 0; e < R; e++) {
      const ok = this.opts.balance !== false && maxQ[e] > 0 && maxK[e] > 0;
      this.balance[e] = ok ? Math.sqrt(maxQ[e] / maxK[e]) : 1;
    }
    this.scaleKeys(0, this.fpCount);
  }

  attend(queries: Float32Array, T: number, out: Float32Array): void {
    if (T === 0) return;
    if (!this.balance.length) this.computeBalance(queries, T);
    const { numHeads, numKvHeads, headDim: d } = this.shape;
    const G = this.opts.groupSize;
    const R = this.rowElems;
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(d);
    const L = this.tokens;
    const nq = this.quantKeys.length; // every query sees every quantized token
    if (this.scores.length < L) this.scores = new Float32Array(Math.ceil(L / 256) * 256);
    const scores = this.scores;
    const q = this.query;
    for (let t = 0; t < T; t++) {
      const last = L - T + t; // causal: tokens 0 … last
      let visible = 0; // float slots are in token order: the visible ones are a prefix
      while (visible < this.fpCount && this.fpTokens[visible] <= last) visible++;
      for (let h = 0; h < numHeads; h++) {
        const kvh = Math.floor(h / group);
        const qOff = (t * numHeads + h) * d;
        // balanced query q/b and its per-group sums (for the packed scores' zero term)
        for (let c = 0; c < d; c++) q[c] = queries[qOff + c] / this.balance[kvh * d + c];
        for (let g = 0; g < d / G; g++) {
          let s = 0;
          for (let c = 0; c < G; c++) s += q[g * G + c];
          this.sumQ[g] = s;
        }
        // scores: quantized rows from their codes, then the visible float slots
        packedScores(this.quantKeys, nq, kvh, d, q, 0, this.sumQ, scale, scores, 0);
        for (let s = 0; s < visible; s++) {
          const kOff = s * R + kvh * d;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[c] * this.fpKeys[kOff + c];
          scores[nq + s] = dot * scale;
        }
        softmax(scores, 0, nq + visible);
        // weighted values, and the float slots' importance
        this.acc.fill(0);
        packedWeightedSum(this.quantValues, nq, kvh, d, scores, 0, this.acc);
        for (let s = 0; s < visible; s++) {
          const p = scores[nq + s];
          this.fpScores[s] += p;
          const vOff = s * R + kvh * d;
          for (let c = 0; c < d; c++) this.acc[c] += p * this.fpValues[vOff + c];
        }
        for (let c = 0; c < d; c++) out[qOff + c] = this.acc[c];
      }
    }
    this.evict();
  }

  /** Quantize the least-attended float tokens (ties: the older) until nSinkTokens remain. */
  private evict(): void {
    const excess = this.fpCount - this.opts.nSinkTokens;
    if (excess <= 0) return;
    const R = this.rowElems;
    // slots by (score, token); slots are in token order, so the slot index breaks ties
    const order = Array.from({ length: this.fpCount }, (_, s) => s);
    order.sort((a, b) => this.fpScores[a] - this.fpScores[b] || a - b);
    const evicted = new Uint8Array(this.fpCount);
    for (const s of order.slice(0, excess)) {
      evicted[s] = 1;
      this.quantKeys.appendFloats(this.fpKeys, s * R, 1);
      this.quantValues.appendFloats(this.fpValues, s * R, 1);
    }
    // compact the kept slots, keeping token order
    let kept = 0;
    for (let s = 0; s < this.fpCount; s++) {
      if (evicted[s]) continue;
      this.fpKeys.copyWithin(kept * R, s * R, (s + 1) * R);
      this.fpValues.copyWithin(kept * R, s * R, (s + 1) * R);
      this.fpTokens[kept] = this.fpTokens[s];
      this.fpScores[kept] = this.fpScores[s];
      kept++;
    }
    this.fpCount = kept;
    // give back spare float capacity, keeping exactly one slot for the next decode token
    if (this.fpTokens.length > kept + 1) this.resizeFloat(kept + 1);
  }

  /** Tokens are evicted out of order by attention: a shorter cache cannot be recovered, so it empties (unless nothing is cut). */
  truncate(tokens: number): number {
    if (tokens >= this.tokens) return this.tokens;
    this.reset();
    return 0;
  }

  stats(): KvBlockStats {
    const { kBits, vBits } = this.opts;
    const R = this.rowElems;
    return {
      bodyBits: kBits === vBits ? kBits : (kBits + vBits) / 2,
      sinkTokens: this.fpCount,
      bodyTokens: this.quantKeys.length,
      windowTokens: 0,
      // the original's figure: quantized K and V codes at their bits, full-precision tokens at
      // 16 bits per element (the original keeps them in fp16); no scales, zeros or bookkeeping
      codeBytes: this.quantKeys.codeBytes() + this.quantValues.codeBytes() + (this.fpCount * R * 2 * 16) / 8,
      heldBytes:
        this.fpKeys.byteLength + this.fpValues.byteLength + this.fpTokens.byteLength + this.fpScores.byteLength +
        this.quantKeys.heldBytes() + this.quantValues.heldBytes() + this.balance.byteLength,
      budgetBytes: null,
    };
  }

  reset(): void {
    this.tokens = 0;
    this.fpCount = 0;
    this.resizeFloat(0);
    this.quantKeys.reset();
    this.quantValues.reset();
    this.balance = new Float32Array(0);
    this.scores = new Float32Array(0);
  }

  dispose(): void {
    this.reset();
  }
}

export function createMikvCache(shape: KvShape, numLayers: number, opts: MikvOptions): KvCache {
  validateMikvOptions(opts, shape.headDim);
  return new KvCache(`mikv-k${opts.kBits}v${opts.vBits}`, perLayer(numLayers, () => new MikvLayerCache(shape, opts)));
}
