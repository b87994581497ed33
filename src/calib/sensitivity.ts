// Sensitivity profiling (spec §5): for each calibration sample, back-propagate the mean
// next-token cross-entropy to every block's keys (after RoPE) and values, and add
// mean(|(Q_b(K) − K) ⊙ G_K|) for each bit-width b (likewise V); average over samples.

import { sequenceBackward } from "../model/backward.js";
import type { Transformer } from "../model/forward.js";
import { fakeQuantize } from "../quant/quantizer.js";

export const SENSITIVITY_BITS = [16, 8, 4, 2, 1] as const;

export interface SensitivityResult {
  kSensitivity: Record<string, number[]>;
  vSensitivity: Record<string, number[]>;
  meta: Record<string, unknown>;
}

export interface SensitivityOptions {
  groupSize: number;
  /** Called after each sample with its loss. */
  onSample?: (done: number, total: number, loss: number) => void;
}

/** mean |(Q_b(x) − x) ⊙ g| over all elements, with per-token groups of G channels. */
export function quantErrorTimesGrad(x: Float32Array, g: Float32Array, bits: number, G: number): number {
  const q = Float32Array.from(x);
  fakeQuantize(q, 0, q.length, G, bits);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.abs((q[i] - x[i]) * g[i]);
  return sum / x.length;
}

export function computeSensitivity(tf: Transformer, samples: number[][], positions: number[], o: SensitivityOptions): SensitivityResult {
  const L = tf.config.numLayers;
  const k: Record<string, number[]> = {};
  const v: Record<string, number[]> = {};
  for (const b of SENSITIVITY_BITS) {
    k[b] = new Array(L).fill(0);
    v[b] = new Array(L).fill(0);
  }
  let meanLoss = 0;
  samples.forEach((tokens, s) => {
    // activation gradients only: no weight gradient is computed
    const r = sequenceBackward(tf, tokens, positions, {
      onKv: (g) => {
        for (const b of SENSITIVITY_BITS) {
          k[b][g.layer] += quantErrorTimesGrad(g.keys, g.dKeys, b, o.groupSize) / samples.length;
          v[b][g.layer] += quantErrorTimesGrad(g.values, g.dValues, b, o.groupSize) / samples.length;
        }
      },
    });
    const loss = r.lossSum / r.count;
    meanLoss += loss / samples.length;
    o.onSample?.(s + 1, samples.length, loss);
  });
  return { kSensitivity: k, vSensitivity: v, meta: { meanLoss, groupSize: o.groupSize, nSamples: samples.length, seqLen: positions.length } };
}
