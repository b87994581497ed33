// Scale search (spec §6): per block, for α_n = 1 − n/grid (n = 0 … grid−1), the MSE between the
// block's original attention output (after o_proj) and the output with keys reparameterized by
// r = clamp(m^α, 1e-4, 1e4) and K, V fake-quantized per token (RTN, §2); keep the best α.
// Block inputs come from the original model; samples stream one at a time (a sample's hidden
// state is all that is held), so memory does not grow with the number of samples.

import { attendFloat } from "../tensor/attention-float.js";
import { BlockActs, blockForwardActs, blockOutput } from "../model/block.js";
import type { Transformer } from "../model/forward.js";
import { ropeTables } from "../model/rope.js";
import { fakeQuantize } from "../quant/quantizer.js";
import { matmulMatrix, matrixRow } from "../tensor/matrix.js";
import { AllocScope } from "../tensor/memory.js";
import { keyScaleVector, repScalesFor } from "./rep-scales.js";

export interface ScaleSearchOptions {
  kBits: number;
  vBits: number;
  groupSize: number;
  grid: number;
  onSample?: (done: number, total: number) => void;
}

export interface ScaleSearchResult {
  /** Chosen r per block, (numKvHeads × d/2). */
  scales: Float32Array[];
  alphas: number[];
  /** Mean squared error per block and grid point. */
  mse: Float64Array[];
  /** MSE per block without reparameterization (r = 1), for comparison. */
  baselineMse: number[];
}

export function gridAlphas(grid: number): number[] {
  return Array.from({ length: grid }, (_, n) => 1 - n / grid);
}

export function searchRepScales(tf: Transformer, samples: number[][], positions: number[], maxKeys: Float32Array[], o: ScaleSearchOptions): ScaleSearchResult {
  const c = tf.config;
  const T = positions.length;
  const dim = c.hiddenSize;
  const d = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const alphas = gridAlphas(o.grid);
  // per block and α: the key scale vector (numKvHeads·d)
  const keyScales = maxKeys.map((m) => [...alphas.map((a) => keyScaleVector(repScalesFor(m, a), c)), new Float32Array(c.numKvHeads * d).fill(1)]);
  const mse = maxKeys.map(() => new Float64Array(o.grid + 1)); // the last entry: no reparameterization
  const cos = new Float32Array((T * d) / 2);
  const sin = new Float32Array((T * d) / 2);
  ropeTables(tf.invFreq, positions, cos, sin);
  const mem = new AllocScope();
  const acts = new BlockActs(T, c, mem);
  const scores = new Float32Array(T);
  const h = new Float32Array(T * dim);
  const ref = new Float32Array(T * dim);
  const out = new Float32Array(T * dim);
  const qs = new Float32Array(T * c.numHeads * d);
  const ks = new Float32Array(T * c.numKvHeads * d);
  const vq = new Float32Array(T * c.numKvHeads * d);
  const att = new Float32Array(T * c.numHeads * d);
  samples.forEach((tokens, s) => {
    let x = new Float32Array(T * dim);
    for (let t = 0; t < T; t++) matrixRow(tf.weights.embed, tokens[t], x.subarray(t * dim, (t + 1) * dim));
    for (let l = 0; l < c.numLayers; l++) {
      const lw = tf.weights.layers[l];
      blockForwardActs(tf, l, x, T, cos, sin, acts, scores, h);
      matmulMatrix(ref, acts.att, lw.wo, lw.bo, T); // original attention output
      vq.set(acts.v);
      fakeQuantize(vq, 0, vq.length, o.groupSize, o.vBits);
      keyScales[l].forEach((k, a) => {
        // q ⊙ k and K ⊘ k: q·K is unchanged before quantization (RoPE commutes: pairs share r)
        for (let t = 0; t < T; t++) {
          for (let hq = 0; hq < c.numHeads; hq++) {
            const qOff = (t * c.numHeads + hq) * d;
            const kOff = Math.floor(hq / group) * d;
            for (let ch = 0; ch < d; ch++) qs[qOff + ch] = acts.q[qOff + ch] * k[kOff + ch];
          }
          for (let i = 0; i < c.numKvHeads * d; i++) ks[t * c.numKvHeads * d + i] = acts.k[t * c.numKvHeads * d + i] / k[i];
        }
        fakeQuantize(ks, 0, ks.length, o.groupSize, o.kBits);
        attendFloat(att, qs, T, ks, vq, T, c, scores);
        matmulMatrix(out, att, lw.wo, lw.bo, T);
        let err = 0;
        for (let i = 0; i < T * dim; i++) err += (out[i] - ref[i]) ** 2;
        mse[l][a] += err / (T * dim) / samples.length;
      });
      const next = new Float32Array(T * dim);
      blockOutput(tf, l, h, acts, T, next);
      x = next;
    }
    o.onSample?.(s + 1, samples.length);
  });
  const grids = mse.map((m) => m.slice(0, o.grid));
  mem.release();
  const best = grids.map((m) => m.indexOf(Math.min(...m)));
  return {
    scales: best.map((n, l) => repScalesFor(maxKeys[l], alphas[n])),
    alphas: best.map((n) => alphas[n]),
    mse: grids,
    baselineMse: mse.map((m) => m[o.grid]),
  };
}
