// RotateKV baseline (spec §7). The model's k_proj/v_proj/o_proj carry RotateKV's rotations
// (calib/rotatekv.ts), so this cache receives keys *before* RoPE already rotated (k' = H_B·P·k)
// and values rotated per head. Models with a per-head k_norm after k_proj (Qwen3) cannot carry
// the key rotation in k_proj: there the cache rotates each key as it arrives (rotateKeysOnAppend).
// It quantizes both per token (groups of G channels, k/v bits) as
// they arrive, before any attention sees them (the original's order for RotateKV), except the
// pivot tokens (attention sinks) of each multi-token call (the prefill), which stay in float:
//   "elements" (the original's, default): the tokens holding the n_pivot_token = 20 largest
//     |hidden| elements of the block's input (torch.topk over the call's flattened hidden states);
//   "tokens" (this project's first version): the n_pivot_token tokens of the first call with the
//     largest ‖hidden‖.
// Attention undoes the key rotation, applies RoPE at each token's position and attends; the
// o_proj fold undoes the value rotation.

import { UsageError } from "../errors.js";
import { rotateKeyRow, unrotateKeyRow, type RotateKvTransform } from "../quant/rotation.js";
import type { RopeTable } from "../model/rope.js";
import { PackedTokenStore } from "./packed-store.js";
import { KvCache, type AppendContext, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";
import { perLayer } from "../tensor/memory.js";

export type PivotRule = "elements" | "tokens";
export const PIVOT_RULES: readonly PivotRule[] = ["elements", "tokens"];
/** The original's n_pivot_token: 20 elements. */
export const DEFAULT_PIVOTS = 20;

export interface RotateKvOptions extends RotateKvTransform {
  kBits: number;
  vBits: number;
  groupSize: number;
  /** Elements (rule "elements") or tokens (rule "tokens") that choose the pivots. */
  nPivotTokens: number;
  pivotRule?: PivotRule;
  /** Rotate keys here on append instead of in k_proj (models with q/k norms, e.g. Qwen3). */
  rotateKeysOnAppend?: boolean;
}

/** Indices (into the call's tokens) of the pivots of one multi-token call. */
export function choosePivots(hidden: Float32Array, n: number, hiddenSize: number, count: number, rule: PivotRule): Set<number> {
  const pivots = new Set<number>();
  if (count <= 0 || n === 0) return pivots;
  if (rule === "tokens") {
    const norms = Array.from({ length: n }, (_, t) => {
      let s = 0;
      for (let i = 0; i < hiddenSize; i++) s += hidden[t * hiddenSize + i] ** 2;
      return s;
    });
    const order = norms.map((_, t) => t).sort((a, b) => norms[b] - norms[a] || a - b);
    for (const t of order.slice(0, count)) pivots.add(t);
    return pivots;
  }
  // the `count` largest |h| over the call's n × hiddenSize elements (ties: the earlier element), by a bounded insertion list
  const top: { v: number; i: number }[] = [];
  for (let i = 0; i < n * hiddenSize; i++) {
    const v = Math.abs(hidden[i]);
    if (top.length === count && v <= top[top.length - 1].v) continue;
    let at = top.length;
    while (at > 0 && top[at - 1].v < v) at--;
    top.splice(at, 0, { v, i });
    if (top.length > count) top.pop();
  }
  for (const e of top) pivots.add(Math.floor(e.i / hiddenSize));
  return pivots;
}

const GROW_TOKENS = 128;

export class RotateKvLayerCache implements LayerKvCache {
  readonly keysBeforeRope = true;
  private readonly keys: PackedTokenStore;
  private readonly values: PackedTokenStore;
  private pivotKeys = new Float32Array(0); // (pivots, kvHidden) rotated, before RoPE
  private pivotValues = new Float32Array(0);
  private pivots = 0;
  private slot = new Int32Array(0); // per token: row ≥ 0 in the packed stores, or −1 − pivot index
  private positions = new Int32Array(0); // per token
  private tokens = 0;
  private readonly kvHidden: number;
  private readonly perm: Int32Array | null;
  private readonly rotated: Float32Array; // (kvHidden) one key rotated on append, with its scratch
  private readonly rotateScratch: Float32Array;

  constructor(readonly shape: KvShape, readonly opts: RotateKvOptions, readonly layer: number, private readonly rope: RopeTable) {
    this.kvHidden = shape.numKvHeads * shape.headDim;
    this.keys = new PackedTokenStore(this.kvHidden, opts.groupSize, opts.kBits, 0, GROW_TOKENS);
    this.values = new PackedTokenStore(this.kvHidden, opts.groupSize, opts.vBits, 0, GROW_TOKENS);
    this.perm = opts.reorder?.[layer] ?? null;
    this.rotated = new Float32Array(opts.rotateKeysOnAppend ? this.kvHidden : 0);
    this.rotateScratch = new Float32Array(opts.rotateKeysOnAppend ? this.kvHidden : 0);
  }

  get length(): number {
    return this.tokens;
  }

  append(keys: Float32Array, values: Float32Array, n: number, ctx?: AppendContext): void {
    if (!ctx) throw new UsageError("RotateKV needs each token's position and hidden state");
    const n0 = this.tokens;
    if (this.slot.length < n0 + n) {
      const cap = Math.ceil((n0 + n) / GROW_TOKENS) * GROW_TOKENS;
      const slot = new Int32Array(cap);
      slot.set(this.slot.subarray(0, n0));
      const pos = new Int32Array(cap);
      pos.set(this.positions.subarray(0, n0));
      this.slot = slot;
      this.positions = pos;
    }
    const rule = this.opts.pivotRule ?? "elements";
    const chooses = rule === "elements" ? n > 1 : n0 === 0;
    const pivot = chooses ? choosePivots(ctx.hidden, n, ctx.hiddenSize, this.opts.nPivotTokens, rule) : new Set<number>();
    const row = this.kvHidden;
    if (pivot.size > 0) {
      const k = new Float32Array((this.pivots + pivot.size) * row);
      const v = new Float32Array((this.pivots + pivot.size) * row);
      k.set(this.pivotKeys.subarray(0, this.pivots * row));
      v.set(this.pivotValues.subarray(0, this.pivots * row));
      this.pivotKeys = k;
      this.pivotValues = v;
    }
    for (let t = 0; t < n; t++) {
      this.positions[n0 + t] = ctx.positions[t];
      let key = keys;
      let keyOff = t * row;
      if (this.opts.rotateKeysOnAppend) {
        this.rotated.set(keys.subarray(t * row, (t + 1) * row));
        rotateKeyRow(this.rotated, 0, row, this.perm, this.opts.kHadDim, this.rotateScratch, this.opts.order);
        key = this.rotated;
        keyOff = 0;
      }
      if (pivot.has(t)) {
        this.pivotKeys.set(key.subarray(keyOff, keyOff + row), this.pivots * row);
        this.pivotValues.set(values.subarray(t * row, (t + 1) * row), this.pivots * row);
        this.slot[n0 + t] = -1 - this.pivots++;
      } else {
        this.slot[n0 + t] = this.keys.length;
        this.keys.appendFloats(key, keyOff, 1);
        this.values.appendFloats(values, t * row, 1);
      }
    }
    this.tokens += n;
  }

  /** Token j's key after RoPE (unrotated) into out; its value (rotated) into vOut. */
  private readToken(j: number, kOut: Float32Array, vOut: Float32Array | null, scratch: Float32Array): void {
    const row = this.kvHidden;
    const s = this.slot[j];
    if (s < 0) {
      kOut.set(this.pivotKeys.subarray((-1 - s) * row, (-s) * row));
      vOut?.set(this.pivotValues.subarray((-1 - s) * row, (-s) * row));
    } else {
      this.keys.dequantizeRow(s, kOut, 0);
      if (vOut) this.values.dequantizeRow(s, vOut, 0);
    }
    unrotateKeyRow(kOut, 0, row, this.perm, this.opts.kHadDim, scratch, this.opts.order);
    // RoPE (rotate-half) at the token's position, per KV head
    const d = this.shape.headDim;
    const half = d / 2;
    const r = this.rope.row(this.positions[j]);
    for (let h = 0; h < this.shape.numKvHeads; h++) {
      for (let c = 0; c < half; c++) {
        const a = kOut[h * d + c];
        const b = kOut[h * d + c + half];
        const co = this.rope.cos[r + c];
        const si = this.rope.sin[r + c];
        kOut[h * d + c] = a * co - b * si;
        kOut[h * d + c + half] = b * co + a * si;
      }
    }
  }

  attend(queries: Float32Array, T: number, out: Float32Array): void {
    const { numHeads: H, numKvHeads, headDim: d } = this.shape;
    const group = H / numKvHeads;
    const L = this.tokens;
    const scale = 1 / Math.sqrt(d);
    const probs = new Float32Array(T * H * L).fill(-Infinity); // transient: (query, head, token)
    const k = new Float32Array(this.kvHidden);
    const v = new Float32Array(this.kvHidden);
    const scratch = new Float32Array(this.kvHidden);
    for (let j = 0; j < L; j++) {
      this.readToken(j, k, null, scratch);
      for (let t = Math.max(0, j - (L - T)); t < T; t++) {
        for (let h = 0; h < H; h++) {
          const qOff = (t * H + h) * d;
          const kOff = Math.floor(h / group) * d;
          let s = 0;
          for (let c = 0; c < d; c++) s += queries[qOff + c] * k[kOff + c];
          probs[(t * H + h) * L + j] = s * scale;
        }
      }
    }
    for (let r = 0; r < T * H; r++) {
      let max = -Infinity;
      for (let j = 0; j < L; j++) max = Math.max(max, probs[r * L + j]);
      let sum = 0;
      for (let j = 0; j < L; j++) sum += probs[r * L + j] = Math.exp(probs[r * L + j] - max);
      for (let j = 0; j < L; j++) probs[r * L + j] /= sum;
    }
    out.fill(0, 0, T * H * d);
    for (let j = 0; j < L; j++) {
      this.readToken(j, k, v, scratch);
      for (let t = Math.max(0, j - (L - T)); t < T; t++) {
        for (let h = 0; h < H; h++) {
          const p = probs[(t * H + h) * L + j];
          const oOff = (t * H + h) * d;
          const vOff = Math.floor(h / group) * d;
          for (let c = 0; c < d; c++) out[oOff + c] += p * v[vOff + c];
        }
      }
    }
  }

  /** Pivot tokens are chosen over the whole prefill: a cut cannot be undone, so it empties (unless nothing is cut). */
  truncate(tokens: number): number {
    if (tokens >= this.tokens) return this.tokens;
    this.reset();
    return 0;
  }

  stats(): KvBlockStats {
    const { kBits, vBits } = this.opts;
    return {
      bodyBits: kBits === vBits ? kBits : (kBits + vBits) / 2,
      sinkTokens: this.pivots,
      bodyTokens: this.keys.length,
      windowTokens: 0,
      // codes of quantized tokens, and pivot tokens counted at 16 bits as the original's fp16
      codeBytes: this.keys.codeBytes() + this.values.codeBytes() + (this.pivots * this.kvHidden * 2 * 16) / 8,
      heldBytes:
        this.keys.heldBytes() + this.values.heldBytes() + this.pivotKeys.byteLength + this.pivotValues.byteLength +
        this.slot.byteLength + this.positions.byteLength,
      budgetBytes: null,
    };
  }

  reset(): void {
    this.keys.reset();
    this.values.reset();
    this.pivots = 0;
    this.tokens = 0;
    this.pivotKeys = new Float32Array(0);
    this.pivotValues = new Float32Array(0);
    this.slot = new Int32Array(0);
    this.positions = new Int32Array(0);
  }

  dispose(): void {
    this.reset();
  }
}

export function createRotateKvCache(shape: KvShape, numLayers: number, opts: RotateKvOptions, rope: RopeTable): KvCache {
  return new KvCache(
    `rotatekv-k${opts.kBits}v${opts.vBits}`,
    perLayer(numLayers, (l) => new RotateKvLayerCache(shape, opts, l, rope)),
  );
}
