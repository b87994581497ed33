// Attention straight from packed codes (spec §3), never materialising dequantized rows:
//   q·k̂  = Σ_groups  s·(q·codes) − z·Σq
//   Σ_j p_j v̂_j = Σ_groups  Σ_j (p_j s_j)·codes_j − Σ_j p_j z_j
// Plain TypeScript reference; the fast kernels are tested against it.

import { attendFloatKernel, attendPackedKernel } from "../tensor/kernels.js";
import { allocF32, inArena, release } from "../tensor/memory.js";
import { softmax } from "../tensor/ops.js";
import type { PackedTokenStore } from "./packed-store.js";
import type { KvShape } from "./types.js";

/**
 * scores[outOff + t] = scale · (q · k̂_t) for rows t < count of one KV head.
 * q: the query head's d values at q[qOff …]; sumQ[g]: Σ of q over group g of the head.
 */
export function packedScores(
  store: PackedTokenStore, count: number, kvHead: number, d: number,
  q: Float32Array, qOff: number, sumQ: Float64Array, scale: number,
  scores: Float32Array, outOff: number,
): void {
  const { bits, G, wordsPerRow, groupsPerRow, codes, scales, zeros } = store;
  const per = 32 / bits;
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  const headGroups = d / G;
  const e0 = kvHead * d;
  const g0 = kvHead * headGroups;
  for (let t = 0; t < count; t++) {
    const wBase = t * wordsPerRow;
    const pBase = t * groupsPerRow + g0;
    let score = 0;
    for (let gi = 0; gi < headGroups; gi++) {
      let dot = 0;
      const eStart = e0 + gi * G;
      const qBase = qOff + gi * G;
      if (eStart % per === 0 && G % per === 0) {
        // whole words: unpack each word's codes with shifts only
        const w0 = wBase + eStart / per;
        for (let w = 0; w < G / per; w++) {
          const word = codes[w0 + w];
          const qw = qBase + w * per;
          for (let k = 0; k < per; k++) dot += q[qw + k] * ((word >>> (k * bits)) & mask);
        }
      } else {
        for (let c = 0; c < G; c++) {
          const e = eStart + c;
          const code = (codes[wBase + Math.floor(e / per)] >>> ((e % per) * bits)) & mask;
          dot += q[qBase + c] * code;
        }
      }
      score += scales[pBase + gi] * dot - zeros[pBase + gi] * sumQ[gi];
    }
    scores[outOff + t] = score * scale;
  }
}

/** out[outOff + c] += Σ_t probs[pOff + t] · v̂_t[c] over rows t < count of one KV head. */
export function packedWeightedSum(
  store: PackedTokenStore, count: number, kvHead: number, d: number,
  probs: Float32Array, pOff: number, out: Float64Array,
): void {
  const { bits, G, wordsPerRow, groupsPerRow, codes, scales, zeros } = store;
  const per = 32 / bits;
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  const headGroups = d / G;
  const e0 = kvHead * d;
  const g0 = kvHead * headGroups;
  for (let t = 0; t < count; t++) {
    const p = probs[pOff + t];
    if (p === 0) continue;
    const wBase = t * wordsPerRow;
    const pBase = t * groupsPerRow + g0;
    for (let gi = 0; gi < headGroups; gi++) {
      const ps = p * scales[pBase + gi];
      const pz = p * zeros[pBase + gi];
      const eStart = e0 + gi * G;
      const oBase = gi * G;
      if (eStart % per === 0 && G % per === 0) {
        const w0 = wBase + eStart / per;
        for (let w = 0; w < G / per; w++) {
          const word = codes[w0 + w];
          const ow = oBase + w * per;
          for (let k = 0; k < per; k++) out[ow + k] += ps * ((word >>> (k * bits)) & mask) - pz;
        }
      } else {
        for (let c = 0; c < G; c++) {
          const e = eStart + c;
          const code = (codes[wBase + Math.floor(e / per)] >>> ((e % per) * bits)) & mask;
          out[oBase + c] += ps * code - pz;
        }
      }
    }
  }
}

/** Query counts from which a call dequantizes the rows once instead of unpacking per query. */
const PREFILL_DEQUANT_MIN = 16;

/**
 * Causal attention over segments of packed K/V stores that hold the tokens in order
 * (e.g. sink, body, window): out (T, numHeads·d) for the last T of the tokens held.
 */
export class PackedAttention {
  private scores = new Float32Array(0);
  private readonly sumQ: Float64Array;
  private readonly acc: Float64Array;

  constructor(readonly shape: KvShape, readonly G: number) {
    this.sumQ = new Float64Array(shape.headDim / G);
    this.acc = new Float64Array(shape.headDim);
  }

  attend(out: Float32Array, queries: Float32Array, T: number, segments: [PackedTokenStore, PackedTokenStore][]): void {
    if (T >= PREFILL_DEQUANT_MIN && this.attendDequantized(out, queries, T, segments)) return;
    if (attendPackedKernel(out, queries, T, this.shape, this.G, segments)) return;
    this.attendPlain(out, queries, T, segments);
  }

  /**
   * Prefill: many queries read every row, so the rows are dequantized once into transient
   * float buffers (given back at once; the cache itself holds only codes) and attended by the
   * float kernel. The values are exactly what the packed path dequantizes.
   */
  private attendDequantized(out: Float32Array, queries: Float32Array, T: number, segments: [PackedTokenStore, PackedTokenStore][]): boolean {
    const row = this.shape.numKvHeads * this.shape.headDim;
    const L = segments.reduce((a, [k]) => a + k.length, 0);
    const keys = allocF32(L * row);
    const values = allocF32(L * row);
    try {
      if (!inArena(keys) || !inArena(out) || !inArena(queries)) return false;
      let t = 0;
      for (const [k, v] of segments) {
        for (let i = 0; i < k.length; i++, t++) {
          k.dequantizeRow(i, keys, t * row);
          v.dequantizeRow(i, values, t * row);
        }
      }
      return attendFloatKernel(out, queries, T, keys, values, L, this.shape);
    } finally {
      release(keys);
      release(values);
    }
  }

  /** The plain-TypeScript twin of the WebAssembly kernel. */
  attendPlain(out: Float32Array, queries: Float32Array, T: number, segments: [PackedTokenStore, PackedTokenStore][]): void {
    const { numHeads, numKvHeads, headDim: d } = this.shape;
    const G = this.G;
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(d);
    const L = segments.reduce((a, [k]) => a + k.length, 0);
    if (this.scores.length < L) this.scores = new Float32Array(Math.ceil(L / 256) * 256);
    const scores = this.scores;
    for (let t = 0; t < T; t++) {
      const seen = L - T + t + 1; // causal limit
      for (let h = 0; h < numHeads; h++) {
        const kvh = Math.floor(h / group);
        const qOff = (t * numHeads + h) * d;
        for (let g = 0; g < d / G; g++) {
          let s = 0;
          for (let c = 0; c < G; c++) s += queries[qOff + g * G + c];
          this.sumQ[g] = s;
        }
        let start = 0;
        for (const [k] of segments) {
          const count = Math.min(k.length, seen - start);
          if (count <= 0) continue;
          packedScores(k, count, kvh, d, queries, qOff, this.sumQ, scale, scores, start);
          start += count;
        }
        softmax(scores, 0, seen);
        this.acc.fill(0);
        start = 0;
        for (const [, v] of segments) {
          const count = Math.min(v.length, seen - start);
          if (count <= 0) continue;
          packedWeightedSum(v, count, kvh, d, scores, start, this.acc);
          start += count;
        }
        for (let c = 0; c < d; c++) out[qOff + c] = this.acc[c];
      }
    }
  }
}
