// Weight gradients (issue 8) on top of the activation backward of model/backward.ts: the
// mean cross-entropy of the masked next-token predictions of one sequence, back to every
// weight. Products run on the kernels: dx = dy·W (matmulNN), dW += dyᵀ·x (matmulTNAcc).
// Training keeps float32 weights.

import { UsageError } from "../errors.js";
import { attentionBackward, ropeBackward } from "../model/backward.js";
import { BlockActs, blockForwardActs, blockOutput } from "../model/block.js";
import type { Transformer } from "../model/forward.js";
import type { Grads } from "../model/grads.js";
import { ropeTables } from "../model/rope.js";
import { addInPlace, attentionBackwardKernel, matmul, matmulNN, matmulTNAcc, rmsnorm } from "../tensor/kernels.js";
import type { Matrix } from "../tensor/matrix.js";
import { AllocScope } from "../tensor/memory.js";

export { clearGrads, gradBuffers, releaseGrads, zeroGrads, type Grads, type LayerGrads } from "../model/grads.js";

const f32 = (m: Matrix): Float32Array => {
  if (m.dtype !== "f32") throw new UsageError("training needs float32 weights (load with weightsDtype f32)");
  return m.data as Float32Array;
};

/** dx += RMSNorm backward, and dw += Σ_t dy ⊙ x·r (the norm weight's gradient). */
function rmsnormBackwardFull(dx: Float32Array, dw: Float32Array, dy: Float32Array, x: Float32Array, w: Float32Array, T: number, n: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const off = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
    const r = 1 / Math.sqrt(ss / n + eps);
    let dot = 0;
    for (let i = 0; i < n; i++) {
      dot += dy[off + i] * w[i] * x[off + i];
      dw[i] += dy[off + i] * x[off + i] * r;
    }
    const c = (dot * r * r * r) / n;
    for (let i = 0; i < n; i++) dx[off + i] += dy[off + i] * w[i] * r - x[off + i] * c;
  }
}

function addColumnSums(out: Float32Array, m: Float32Array, T: number, n: number): void {
  for (let t = 0; t < T; t++) for (let i = 0; i < n; i++) out[i] += m[t * n + i];
}

export interface SequenceLoss {
  /** Σ of the cross-entropies of the counted predictions (nats). */
  lossSum: number;
  /** Predictions counted (mask > 0). */
  count: number;
  /** Predictions whose argmax was the target. */
  correct: number;
}

/**
 * Forward and backward of one sequence. mask[t] > 0 counts the prediction of tokens[t+1] at
 * position t (weighted by mask[t]·scale in the gradients, which are added into g).
 */
export function sequenceGrads(tf: Transformer, tokens: number[], positions: number[], mask: ArrayLike<number>, scale: number, g: Grads): SequenceLoss {
  const c = tf.config;
  const w = tf.weights;
  // `pmkvq train` builds Llama models only: no q/k norm (Qwen3) or o_proj bias gradients here
  if (c.qkNorm || c.oBias) throw new UsageError(`training computes gradients of Llama/Qwen2 weights only; ${c.architecture}${c.qkNorm ? "'s q_norm/k_norm" : " with attention_bias"} has none here`);
  const T = tokens.length;
  const dim = c.hiddenSize;
  const d = c.headDim;
  const V = c.vocabSize;
  const inter = c.intermediateSize;
  const qDim = c.numHeads * d;
  const kvDim = c.numKvHeads * d;
  const mem = new AllocScope();
  try {
    const cos = mem.f32((T * d) / 2);
    const sin = mem.f32((T * d) / 2);
    ropeTables(tf.invFreq, positions, cos, sin);
    const acts = new BlockActs(T, c, mem);
    const scores = mem.f32(T);
    // forward, keeping each block's input
    const inputs: Float32Array[] = [];
    const mid = mem.f32(T * dim);
    let x = mem.f32(T * dim);
    const embed = f32(w.embed);
    for (let t = 0; t < T; t++) x.set(embed.subarray(tokens[t] * dim, (tokens[t] + 1) * dim), t * dim);
    for (let l = 0; l < c.numLayers; l++) {
      inputs.push(x);
      blockForwardActs(tf, l, x, T, cos, sin, acts, scores, mid);
      x = mem.f32(T * dim);
      blockOutput(tf, l, mid, acts, T, x);
    }
    // head: logits, loss, dlogits
    const xn = mem.f32(T * dim);
    rmsnorm(xn, x, w.finalNorm, T, dim, c.rmsNormEps);
    const logits = mem.f32(T * V);
    matmul(logits, xn, w.lmHead, null, T);
    let lossSum = 0;
    let count = 0;
    let correct = 0;
    for (let t = 0; t < T - 1; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      if (!(mask[t] > 0)) {
        row.fill(0);
        continue;
      }
      let max = -Infinity;
      let arg = 0;
      for (let i = 0; i < V; i++) if (row[i] > max) (max = row[i]), (arg = i);
      let sum = 0;
      for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
      const target = tokens[t + 1];
      lossSum += mask[t] * (Math.log(sum) + max - row[target]);
      count++;
      if (arg === target) correct++;
      const k = mask[t] * scale;
      for (let i = 0; i < V; i++) row[i] = k * (Math.exp(row[i] - max) / sum - (i === target ? 1 : 0));
    }
    logits.fill(0, (T - 1) * V, T * V);
    const dlogits = logits;
    matmulTNAcc(g.lmHead ?? g.embed, dlogits, xn, T, V, dim);
    const dxn = mem.f32(T * dim);
    matmulNN(dxn, dlogits, f32(w.lmHead), T, V, dim);
    const dx = mem.f32(T * dim);
    rmsnormBackwardFull(dx, g.finalNorm, dxn, x, w.finalNorm, T, dim, c.rmsNormEps);
    // blocks, last to first
    const tmpDim = mem.f32(T * dim);
    const dAct = mem.f32(T * inter);
    const dGate = mem.f32(T * inter);
    const dUp = mem.f32(T * inter);
    const dhb = mem.f32(T * dim);
    const dAtt = mem.f32(T * qDim);
    const dq = mem.f32(T * qDim);
    const dk = mem.f32(T * kvDim);
    const dv = mem.f32(T * kvDim);
    const dxb = mem.f32(T * dim);
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const lw = w.layers[l];
      const lg = g.layers[l];
      blockForwardActs(tf, l, inputs[l], T, cos, sin, acts, scores, mid);
      // MLP
      matmulNN(dAct, dx, f32(lw.wDown), T, dim, inter);
      matmulTNAcc(lg.wDown, dx, acts.act, T, dim, inter);
      for (let i = 0; i < T * inter; i++) {
        const gt = acts.gate[i];
        const sig = 1 / (1 + Math.exp(-gt));
        dUp[i] = dAct[i] * gt * sig;
        dGate[i] = dAct[i] * acts.up[i] * sig * (1 + gt * (1 - sig));
      }
      matmulTNAcc(lg.wGate, dGate, acts.hb, T, inter, dim);
      matmulTNAcc(lg.wUp, dUp, acts.hb, T, inter, dim);
      matmulNN(dhb, dGate, f32(lw.wGate), T, inter, dim);
      matmulNN(tmpDim, dUp, f32(lw.wUp), T, inter, dim);
      addInPlace(dhb, tmpDim, T * dim);
      rmsnormBackwardFull(dx, lg.ffnNorm, dhb, mid, lw.ffnNorm, T, dim, c.rmsNormEps);
      // attention
      matmulNN(dAtt, dx, f32(lw.wo), T, dim, qDim);
      matmulTNAcc(lg.wo, dx, acts.att, T, dim, qDim);
      dq.fill(0);
      dk.fill(0);
      dv.fill(0);
      if (!attentionBackwardKernel(dq, dk, dv, dAtt, acts.q, acts.k, acts.v, T, c)) attentionBackward(dq, dk, dv, dAtt, acts.q, acts.k, acts.v, T, c);
      ropeBackward(dq, cos, sin, T, c.numHeads, d);
      ropeBackward(dk, cos, sin, T, c.numKvHeads, d);
      matmulTNAcc(lg.wq, dq, acts.xb, T, qDim, dim);
      matmulTNAcc(lg.wk, dk, acts.xb, T, kvDim, dim);
      matmulTNAcc(lg.wv, dv, acts.xb, T, kvDim, dim);
      if (lg.bq) addColumnSums(lg.bq, dq, T, qDim);
      if (lg.bk) addColumnSums(lg.bk, dk, T, kvDim);
      if (lg.bv) addColumnSums(lg.bv, dv, T, kvDim);
      matmulNN(dxb, dq, f32(lw.wq), T, qDim, dim);
      matmulNN(tmpDim, dk, f32(lw.wk), T, kvDim, dim);
      addInPlace(dxb, tmpDim, T * dim);
      matmulNN(tmpDim, dv, f32(lw.wv), T, kvDim, dim);
      addInPlace(dxb, tmpDim, T * dim);
      rmsnormBackwardFull(dx, lg.attnNorm, dxb, inputs[l], lw.attnNorm, T, dim, c.rmsNormEps);
    }
    // embedding rows
    for (let t = 0; t < T; t++) {
      const row = g.embed.subarray(tokens[t] * dim, (tokens[t] + 1) * dim);
      for (let i = 0; i < dim; i++) row[i] += dx[t * dim + i];
    }
    return { lossSum, count, correct };
  } finally {
    mem.release();
  }
}
