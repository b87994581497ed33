// Attention straight from packed codes (spec §3), never materialising dequantized rows:
//   q·k̂  = Σ_groups  s·(q·codes) − z·Σq
//   Σ_j p_j v̂_j = Σ_groups  Σ_j (p_j s_j)·codes_j − Σ_j p_j z_j
// packedScores / packedWeightedSum are the per-row building blocks the baselines' own
// attention uses (KIVI, MiKV); the progressive cache and RTN attend through the tiled kernel.

import { f16Value } from "../tensor/dtype.js";
import { attendTiledKernel } from "../tensor/kernels.js";
import { attendTiledPlain, packedSegment } from "../tensor/tiled-attention.js";
import { kernelThreads } from "../tensor/wasm.js";
import type { PackedTokenStore } from "./packed-store.js";
import type { PendingTokens } from "./pending.js";
import type { KvShape } from "../model/kv-cache.js";

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
      score += f16Value(scales[pBase + gi]) * dot - f16Value(zeros[pBase + gi]) * sumQ[gi];
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
      const ps = p * f16Value(scales[pBase + gi]);
      const pz = p * f16Value(zeros[pBase + gi]);
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

/**
 * Causal attention over segments of packed K/V stores that hold the tokens in order (e.g.
 * sink, body, window): out (T, numHeads·d) for the last T of the tokens held, straight from
 * the codes (tensor/tiled-attention.ts; the WebAssembly kernel when it can run, else its twin).
 */
export class PackedAttention {
  constructor(readonly shape: KvShape, readonly G: number) {}

  /** `pending`: float rows after the stores' (the current call's tokens, pending.ts). */
  attend(out: Float32Array, queries: Float32Array, T: number, segments: [PackedTokenStore, PackedTokenStore][], pending?: PendingTokens): void {
    const segK = segments.map(([k]) => packedSegment(k));
    const segV = segments.map(([, v]) => packedSegment(v));
    if (pending && pending.length > 0) {
      const [k, v] = pending.segments();
      segK.push(k);
      segV.push(v);
    }
    if (attendTiledKernel(out, queries, T, segK, segV, this.shape, this.G)) return;
    attendTiledPlain(out, queries, T, segK, segV, this.shape, this.G, kernelThreads());
  }
}
