// KIVI baseline (spec §7): keys quantized per channel over blocks of G tokens, values per
// token in groups of G channels; the most recent (len mod G) tokens stay at full precision
// (the residual) until their block completes. Held bit-packed (real memory); attention is
// computed from the codes, the residual in float.
//
// Storage (one block = G consecutive tokens; R = numKvHeads·headDim channels per token):
//   keyCodes   (blocks, ⌈R·G·kBits/32⌉) u32  block b's R·G codes packed densely in the order
//              [channel][token-in-block] (pack.ts layout), so a channel's G codes are contiguous
//   keyScales, keyZeros  (blocks, R) f16      one group per (block, channel)
//   values     PackedTokenStore: (tokens, ⌈R·vBits/32⌉) u32 + (tokens, R/G) f16 scale and zero
//   residualK, residualV  (G, R) f32          the incomplete last block, allocated on first append
// Everything grows one block at a time, so the quantized part holds no spare capacity.
// Step order as the original's KIVI: a decode step completing a block quantizes it (the new
// token with it) before attending; a multi-token call (the prefill) attends its tokens in float
// from a residual grown to hold them, and its complete blocks are quantized after the attend.
// `stepOrder: "quantize-first"` quantizes complete blocks at append in every call.

import { UsageError } from "../errors.js";
import { wordsFor } from "../quant/pack.js";
import { dequantizeValue, groupParamBits, isBitWidth, quantizeValue } from "../quant/quantizer.js";
import { f16Value } from "../tensor/dtype.js";
import { softmax } from "../tensor/ops.js";
import { packedWeightedSum } from "./packed-attention.js";
import { PackedTokenStore } from "./packed-store.js";
import type { StepOrder } from "./pending.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";
import { perLayer } from "../tensor/memory.js";

export interface KiviOptions {
  kBits: number;
  vBits: number;
  groupSize: number; // G: tokens per key block and channels per value group
  /** Default "original". */
  stepOrder?: StepOrder;
}

export function validateKiviOptions(o: KiviOptions, headDim: number): void {
  if (!Number.isInteger(o.groupSize) || o.groupSize < 1 || headDim % o.groupSize !== 0) {
    throw new UsageError(`KIVI group size ${o.groupSize} must divide head_dim ${headDim}`);
  }
  for (const [name, b] of [["k-bits", o.kBits], ["v-bits", o.vBits]] as const) {
    if (!isBitWidth(b)) throw new UsageError(`KIVI ${name} must be one of 16, 8, 4, 2, 1 (got ${b})`);
  }
}

export class KiviLayerCache implements LayerKvCache {
  private keyCodes = new Uint32Array(0); // (blocks, wordsPerKeyBlock)
  private keyScales = new Uint16Array(0); // (blocks, R) f16
  private keyZeros = new Uint16Array(0); // (blocks, R) f16
  private readonly values: PackedTokenStore; // quantized tokens' values, per token
  private residualK = new Float32Array(0); // (G, R) the incomplete block's keys
  private residualV = new Float32Array(0); // (G, R) and values
  private blocks = 0; // completed (quantized) blocks
  private residualTokens = 0; // tokens in the residual, < G between calls
  private flushAfterAttend = false; // a multi-token call's complete blocks wait for its attend
  private readonly rowElems: number;
  private readonly wordsPerKeyBlock: number;
  // attention scratch (not storage; like full.ts and rtn.ts, not counted in heldBytes)
  private scores = new Float32Array(0);
  private readonly channel: Float32Array; // one channel's G values of a block
  private readonly dots: Float64Array; // Σ_c (q_c·s_c)·code_c for the G tokens of a block
  private readonly acc: Float64Array; // one head's output

  constructor(readonly shape: KvShape, readonly opts: KiviOptions) {
    validateKiviOptions(opts, shape.headDim);
    const G = opts.groupSize;
    this.rowElems = shape.numKvHeads * shape.headDim;
    this.wordsPerKeyBlock = wordsFor(this.rowElems * G, opts.kBits);
    this.values = new PackedTokenStore(this.rowElems, G, opts.vBits, 0, G);
    this.channel = new Float32Array(G);
    this.dots = new Float64Array(G);
    this.acc = new Float64Array(shape.headDim);
  }

  get length(): number {
    return this.blocks * this.opts.groupSize + this.residualTokens;
  }

  append(keys: Float32Array, values: Float32Array, nTokens: number): void {
    const G = this.opts.groupSize;
    const R = this.rowElems;
    if (this.residualK.length === 0) {
      this.residualK = new Float32Array(G * R);
      this.residualV = new Float32Array(G * R);
    }
    if (nTokens > 1 && this.opts.stepOrder !== "quantize-first") {
      // the original's prefill: every token of the call attended in float, blocks quantized after
      const need = (this.residualTokens + nTokens) * R;
      if (need > this.residualK.length) {
        const k = new Float32Array(need);
        const v = new Float32Array(need);
        k.set(this.residualK.subarray(0, this.residualTokens * R));
        v.set(this.residualV.subarray(0, this.residualTokens * R));
        this.residualK = k;
        this.residualV = v;
      }
      this.residualK.set(keys.subarray(0, nTokens * R), this.residualTokens * R);
      this.residualV.set(values.subarray(0, nTokens * R), this.residualTokens * R);
      this.residualTokens += nTokens;
      this.flushAfterAttend = true;
      return;
    }
    for (let i = 0; i < nTokens; ) {
      // fill the residual up to one block
      const take = Math.min(nTokens - i, G - this.residualTokens);
      this.residualK.set(keys.subarray(i * R, (i + take) * R), this.residualTokens * R);
      this.residualV.set(values.subarray(i * R, (i + take) * R), this.residualTokens * R);
      this.residualTokens += take;
      i += take;
      // a complete block is quantized: keys per channel, values per token
      if (this.residualTokens === G) {
        this.quantizeKeyBlock();
        this.values.appendFloats(this.residualV, 0, G);
        this.blocks++;
        this.residualTokens = 0;
      }
    }
  }

  /** Quantize the residual's G keys per channel into block `this.blocks` (spec §2 per group). */
  private quantizeKeyBlock(): void {
    const { groupSize: G, kBits: bits } = this.opts;
    const R = this.rowElems;
    const b = this.blocks;
    // grow by exactly one block
    const codes = new Uint32Array((b + 1) * this.wordsPerKeyBlock);
    codes.set(this.keyCodes);
    const scales = new Uint16Array((b + 1) * R);
    scales.set(this.keyScales);
    const zeros = new Uint16Array((b + 1) * R);
    zeros.set(this.keyZeros);
    const per = 32 / bits;
    const w0 = b * this.wordsPerKeyBlock; // the new block's words are zero
    for (let e = 0; e < R; e++) {
      // gather channel e over the block's tokens, then one group's scale and zero
      for (let j = 0; j < G; j++) this.channel[j] = this.residualK[j * R + e];
      const [sb, zb] = groupParamBits(this.channel, 0, G, bits);
      scales[b * R + e] = sb;
      zeros[b * R + e] = zb;
      const s = f16Value(sb);
      const z = f16Value(zb);
      // code i = e·G + j of the block goes to word ⌊i/per⌋ at bit (i mod per)·bits
      for (let j = 0; j < G; j++) {
        const i = e * G + j;
        codes[w0 + Math.floor(i / per)] |= quantizeValue(this.channel[j], s, z, bits) << ((i % per) * bits);
      }
    }
    this.keyCodes = codes;
    this.keyScales = scales;
    this.keyZeros = zeros;
  }

  /** dots[j] = Σ_c (q_c·s_{b,c})·code_{b,c,j} over the head's channels, for j < count (count ≤ G). */
  private keyBlockDots(b: number, kvHead: number, q: Float32Array, qOff: number, count: number): number {
    const { groupSize: G, kBits: bits } = this.opts;
    const d = this.shape.headDim;
    const R = this.rowElems;
    const per = 32 / bits;
    const mask = (1 << bits) - 1;
    const codes = this.keyCodes;
    const w0 = b * this.wordsPerKeyBlock;
    const dots = this.dots;
    dots.fill(0, 0, count);
    let qz = 0; // Σ_c q_c·z_{b,c}
    for (let c = 0; c < d; c++) {
      const e = kvHead * d + c;
      const qs = q[qOff + c] * f16Value(this.keyScales[b * R + e]);
      qz += q[qOff + c] * f16Value(this.keyZeros[b * R + e]);
      const i0 = e * G;
      if (i0 % per === 0) {
        // the channel starts on a word: unpack each word with shifts only
        for (let j = 0; j < count; j += per) {
          const word = codes[w0 + (i0 + j) / per];
          const n = Math.min(per, count - j);
          for (let k = 0; k < n; k++) dots[j + k] += qs * ((word >>> (k * bits)) & mask);
        }
      } else {
        for (let j = 0; j < count; j++) {
          const i = i0 + j;
          dots[j] += qs * ((codes[w0 + Math.floor(i / per)] >>> ((i % per) * bits)) & mask);
        }
      }
    }
    return qz;
  }

  attend(queries: Float32Array, T: number, out: Float32Array): void {
    const { numHeads, numKvHeads, headDim: d } = this.shape;
    const G = this.opts.groupSize;
    const R = this.rowElems;
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(d);
    const L = this.length;
    const quantized = this.blocks * G;
    if (this.scores.length < L) this.scores = new Float32Array(Math.ceil(L / 256) * 256);
    const scores = this.scores;
    for (let t = 0; t < T; t++) {
      const seen = L - T + t + 1; // causal: tokens 0 … L−T+t
      for (let h = 0; h < numHeads; h++) {
        const kvh = Math.floor(h / group);
        const qOff = (t * numHeads + h) * d;
        // scores of quantized blocks from the codes: q·k̂ = Σ_c (q_c·s_c)·code_c − Σ_c q_c·z_c
        for (let b = 0; b * G < Math.min(seen, quantized); b++) {
          const count = Math.min(G, seen - b * G);
          const qz = this.keyBlockDots(b, kvh, queries, qOff, count);
          for (let j = 0; j < count; j++) scores[b * G + j] = (this.dots[j] - qz) * scale;
        }
        // scores of residual tokens in float
        for (let j = quantized; j < seen; j++) {
          const kOff = (j - quantized) * R + kvh * d;
          let s = 0;
          for (let c = 0; c < d; c++) s += queries[qOff + c] * this.residualK[kOff + c];
          scores[j] = s * scale;
        }
        softmax(scores, 0, seen);
        // values: quantized tokens from their codes, then the residual in float
        this.acc.fill(0);
        packedWeightedSum(this.values, Math.min(seen, quantized), kvh, d, scores, 0, this.acc);
        for (let j = quantized; j < seen; j++) {
          const p = scores[j];
          const vOff = (j - quantized) * R + kvh * d;
          for (let c = 0; c < d; c++) this.acc[c] += p * this.residualV[vOff + c];
        }
        for (let c = 0; c < d; c++) out[qOff + c] = this.acc[c];
      }
    }
    if (this.flushAfterAttend) this.flushBlocks();
  }

  /** Quantize the residual's complete blocks (after a multi-token call's attend); the residual shrinks back to one block. */
  private flushBlocks(): void {
    const G = this.opts.groupSize;
    const R = this.rowElems;
    let first = 0;
    for (; this.residualTokens - first >= G; first += G) {
      if (first > 0) {
        this.residualK.copyWithin(0, first * R, (first + G) * R);
        this.residualV.copyWithin(0, first * R, (first + G) * R);
      }
      this.quantizeKeyBlock();
      this.values.appendFloats(this.residualV, 0, G);
      this.blocks++;
    }
    const rest = this.residualTokens - first;
    const k = new Float32Array(G * R);
    const v = new Float32Array(G * R);
    k.set(this.residualK.subarray(first * R, (first + rest) * R));
    v.set(this.residualV.subarray(first * R, (first + rest) * R));
    this.residualK = k;
    this.residualV = v;
    this.residualTokens = rest;
    this.flushAfterAttend = false;
  }

  /** Dequantized keys and values in token order, the residual as held (tests, comparisons). */
  dequantized(): { keys: Float32Array; values: Float32Array } {
    const G = this.opts.groupSize;
    const R = this.rowElems;
    const bits = this.opts.kBits;
    const per = 32 / bits;
    const mask = (1 << bits) - 1;
    const keys = new Float32Array(this.length * R);
    const values = new Float32Array(this.length * R);
    for (let b = 0; b < this.blocks; b++) {
      for (let e = 0; e < R; e++) {
        for (let j = 0; j < G; j++) {
          const i = e * G + j;
          const code = (this.keyCodes[b * this.wordsPerKeyBlock + Math.floor(i / per)] >>> ((i % per) * bits)) & mask;
          keys[(b * G + j) * R + e] = dequantizeValue(code, f16Value(this.keyScales[b * R + e]), f16Value(this.keyZeros[b * R + e]));
        }
      }
    }
    for (let t = 0; t < this.values.length; t++) this.values.dequantizeRow(t, values, t * R);
    const at = this.blocks * G * R;
    keys.set(this.residualK.subarray(0, this.residualTokens * R), at);
    values.set(this.residualV.subarray(0, this.residualTokens * R), at);
    return { keys, values };
  }

  /**
   * The residual is float: it can be cut anywhere. A quantized key block was quantized per
   * channel over its G tokens, so a cut inside one keeps only the blocks before it.
   */
  truncate(tokens: number): number {
    if (this.flushAfterAttend) this.flushBlocks();
    const G = this.opts.groupSize;
    const keep = Math.max(0, Math.min(tokens, this.length));
    if (keep >= this.blocks * G) {
      this.residualTokens = keep - this.blocks * G;
      return keep;
    }
    const blocks = Math.floor(keep / G);
    this.values.dropNewest(this.values.length - blocks * G);
    this.keyCodes = this.keyCodes.slice(0, blocks * this.wordsPerKeyBlock);
    this.keyScales = this.keyScales.slice(0, blocks * this.rowElems);
    this.keyZeros = this.keyZeros.slice(0, blocks * this.rowElems);
    this.blocks = blocks;
    this.residualTokens = 0;
    return blocks * G;
  }

  stats(): KvBlockStats {
    const { kBits, vBits, groupSize: G } = this.opts;
    const R = this.rowElems;
    const quantizedElems = this.blocks * G * R; // per K and per V
    return {
      bodyBits: kBits === vBits ? kBits : (kBits + vBits) / 2,
      sinkTokens: 0,
      bodyTokens: this.blocks * G,
      windowTokens: this.residualTokens,
      // the original's figure: quantized K and V codes at their bits, plus the full-precision
      // residual counted at 16 bits per element (the original keeps it in fp16); scales and
      // zeros are not counted, and our residual is really held as float32 (see heldBytes)
      codeBytes: (quantizedElems * (kBits + vBits)) / 8 + (this.residualTokens * R * 2 * 16) / 8,
      heldBytes:
        this.keyCodes.byteLength + this.keyScales.byteLength + this.keyZeros.byteLength +
        this.values.heldBytes() + this.residualK.byteLength + this.residualV.byteLength,
      budgetBytes: null,
    };
  }

  reset(): void {
    this.blocks = 0;
    this.residualTokens = 0;
    this.flushAfterAttend = false;
    this.keyCodes = new Uint32Array(0);
    this.keyScales = new Uint16Array(0);
    this.keyZeros = new Uint16Array(0);
    this.residualK = new Float32Array(0);
    this.residualV = new Float32Array(0);
    this.scores = new Float32Array(0);
    this.values.reset();
  }

  dispose(): void {
    this.reset();
  }
}

export function createKiviCache(shape: KvShape, numLayers: number, opts: KiviOptions): KvCache {
  validateKiviOptions(opts, shape.headDim);
  return new KvCache(`kivi-k${opts.kBits}v${opts.vBits}`, perLayer(numLayers, () => new KiviLayerCache(shape, opts)));
}
