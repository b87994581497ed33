// Causal scaled-dot-product attention over float keys/values (the plain reference).

import { softmax } from "./ops.js";

/** Heads and head size (model/kv-cache.ts's KvShape has these fields). */
interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * out (T, numHeads·d) = attention of the last T of L cached tokens.
 * keys/values: (L, numKvHeads·d) rows. scores: scratch of at least L floats.
 */
export function attendFloat(
  out: Float32Array, queries: Float32Array, T: number,
  keys: Float32Array, values: Float32Array, L: number,
  shape: AttentionShape, scores: Float32Array,
): void {
  const { numHeads, numKvHeads, headDim: d } = shape;
  const group = numHeads / numKvHeads;
  const kvStride = numKvHeads * d;
  const scale = 1 / Math.sqrt(d);
  for (let t = 0; t < T; t++) {
    const seen = L - T + t + 1; // causal: tokens 0 … L−T+t
    for (let h = 0; h < numHeads; h++) {
      const qOff = (t * numHeads + h) * d;
      const kvOff = Math.floor(h / group) * d;
      for (let j = 0; j < seen; j++) {
        const kOff = j * kvStride + kvOff;
        let s = 0;
        for (let c = 0; c < d; c++) s += queries[qOff + c] * keys[kOff + c];
        scores[j] = s * scale;
      }
      softmax(scores, 0, seen);
      out.fill(0, qOff, qOff + d);
      for (let j = 0; j < seen; j++) {
        const p = scores[j];
        const vOff = j * kvStride + kvOff;
        for (let c = 0; c < d; c++) out[qOff + c] += p * values[vOff + c];
      }
    }
  }
}
