// Weight gradients: one float32 buffer beside every weight, shaped like it, filled by
// sequenceBackward (backward.ts) when training asks for them.

import { allocF32, release } from "../tensor/memory.js";
import type { Weights } from "./weights.js";

/** Gradients of one block's weights, keys in LayerWeights' order (train.ts pairs them by it). */
export interface LayerGrads {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq: Float32Array | null;
  bk: Float32Array | null;
  bv: Float32Array | null;
  bo: Float32Array | null;
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  ffnNorm: Float32Array;
  wGate: Float32Array;
  wUp: Float32Array;
  wDown: Float32Array;
}

export interface Grads {
  embed: Float32Array;
  layers: LayerGrads[];
  finalNorm: Float32Array;
  /** null when the head is tied to the embedding (its gradient goes to embed). */
  lmHead: Float32Array | null;
}

/** Zeroed gradients for every weight of w (null where the weight is absent or tied). */
export function zeroGrads(w: Weights): Grads {
  const like = (a: Float32Array | null) => (a ? allocF32(a.length) : null);
  const mat = (m: { rows: number; cols: number }) => allocF32(m.rows * m.cols);
  return {
    embed: mat(w.embed),
    layers: w.layers.map((l) => ({
      attnNorm: allocF32(l.attnNorm.length), wq: mat(l.wq), wk: mat(l.wk), wv: mat(l.wv), wo: mat(l.wo),
      bq: like(l.bq), bk: like(l.bk), bv: like(l.bv), bo: like(l.bo), qNorm: like(l.qNorm), kNorm: like(l.kNorm),
      ffnNorm: allocF32(l.ffnNorm.length), wGate: mat(l.wGate), wUp: mat(l.wUp), wDown: mat(l.wDown),
    })),
    finalNorm: allocF32(w.finalNorm.length),
    lmHead: w.lmHead === w.embed ? null : mat(w.lmHead),
  };
}

/** Every gradient buffer, in a fixed order (for clipping, the optimizer and tests). */
export function gradBuffers(g: Grads): Float32Array[] {
  const out = [g.embed, g.finalNorm];
  if (g.lmHead) out.push(g.lmHead);
  for (const l of g.layers) for (const v of Object.values(l)) if (v) out.push(v as Float32Array);
  return out;
}

export function clearGrads(g: Grads): void {
  for (const b of gradBuffers(g)) b.fill(0);
}

export function releaseGrads(g: Grads): void {
  for (const b of gradBuffers(g)) release(b);
}
