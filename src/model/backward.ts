// The backward pass for activation gradients (spec §5): from the mean next-token
// cross-entropy of one sequence back to every block's keys (after RoPE) and values.
// The forward saves only each block's input; the backward recomputes the rest of a block
// from it (one block's internals alive at a time).
// Functions follow llm.c's naming: xxxForward / xxxBackward, outputs first.

import { UsageError } from "../errors.js";
import { matmulMatrix, matrixRow, type Matrix } from "../tensor/matrix.js";
import { attentionBackwardKernel, rmsnorm } from "../tensor/kernels.js";
import { AllocScope } from "../tensor/memory.js";
import { BlockActs, blockForwardActs, blockOutput } from "./block.js";
import type { ModelConfig } from "./config.js";
import { ropeTables } from "./rope.js";
import type { Transformer } from "./forward.js";

/** Gradients of one block, handed to the caller as soon as they are known. */
export interface BlockGrads {
  layer: number;
  /** Keys after RoPE and values, (T, numKvHeads·d). */
  keys: Float32Array;
  values: Float32Array;
  /** dLoss/dKeys (after RoPE) and dLoss/dValues, (T, numKvHeads·d). */
  dKeys: Float32Array;
  dValues: Float32Array;
}

export interface LossAndGrads {
  /** Mean next-token cross-entropy over the T − 1 predictions (nats). */
  loss: number;
}

/** dx (T, in) += dy (T, out) · W (out, in) — the input gradient of y = x·Wᵀ. */
export function matmulBackwardInput(dx: Float32Array, dy: Float32Array, w: Matrix, T: number): void {
  const { rows, cols } = w;
  const row = new Float32Array(cols);
  for (let o = 0; o < rows; o++) {
    matrixRow(w, o, row);
    for (let t = 0; t < T; t++) {
      const g = dy[t * rows + o];
      if (g === 0) continue;
      const off = t * cols;
      for (let i = 0; i < cols; i++) dx[off + i] += g * row[i];
    }
  }
}

/** dx += RMSNorm backward: y = x·r·w, r = 1/sqrt(mean(x²) + eps). */
export function rmsnormBackward(dx: Float32Array, dy: Float32Array, x: Float32Array, weight: Float32Array, T: number, n: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const off = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
    const r = 1 / Math.sqrt(ss / n + eps);
    let dot = 0; // Σ_i dy_i w_i x_i
    for (let i = 0; i < n; i++) dot += dy[off + i] * weight[i] * x[off + i];
    const c = (dot * r * r * r) / n;
    for (let i = 0; i < n; i++) dx[off + i] += dy[off + i] * weight[i] * r - x[off + i] * c;
  }
}

/** dx += the backward of headRmsnorm (Qwen3's q_norm/k_norm): x (T, nHeads, d); weight (d) or (nHeads·d). */
export function headRmsnormBackward(dx: Float32Array, dy: Float32Array, x: Float32Array, weight: Float32Array, T: number, nHeads: number, d: number, eps: number): void {
  if (weight.length === d) return rmsnormBackward(dx, dy, x, weight, T * nHeads, d, eps);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * d;
      rmsnormBackward(dx.subarray(o, o + d), dy.subarray(o, o + d), x.subarray(o, o + d), weight.subarray(h * d, (h + 1) * d), 1, d, eps);
    }
  }
}

/** Gradient of rotate-half RoPE: rotate the gradient back by −angle, in place. */
export function ropeBackward(dx: Float32Array, cos: Float32Array, sin: Float32Array, T: number, nHeads: number, d: number): void {
  const half = d / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const off = (t * nHeads + h) * d;
      for (let c = 0; c < half; c++) {
        const ga = dx[off + c];
        const gb = dx[off + c + half];
        const co = cos[t * half + c];
        const si = sin[t * half + c];
        dx[off + c] = ga * co + gb * si;
        dx[off + c + half] = gb * co - ga * si;
      }
    }
  }
}

/**
 * Causal attention backward. Given q, k (after RoPE), v, and dOut (T, numHeads·d), adds
 * into dq (T, numHeads·d), dk and dv (T, numKvHeads·d). Softmax rows are recomputed.
 */
export function attentionBackward(
  dq: Float32Array, dk: Float32Array, dv: Float32Array,
  dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
  T: number, c: Pick<ModelConfig, "numHeads" | "numKvHeads" | "headDim">,
): void {
  const { numHeads, numKvHeads, headDim: d } = c;
  const group = numHeads / numKvHeads;
  const kvStride = numKvHeads * d;
  const scale = 1 / Math.sqrt(d);
  const p = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numHeads; h++) {
      const qOff = (t * numHeads + h) * d;
      const kvOff = Math.floor(h / group) * d;
      // p_j = softmax_j(q·k_j·scale), j ≤ t
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let ch = 0; ch < d; ch++) s += q[qOff + ch] * k[j * kvStride + kvOff + ch];
        p[j] = s * scale;
        if (p[j] > max) max = p[j];
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) {
        p[j] = Math.exp(p[j] - max);
        sum += p[j];
      }
      // dp_j = dOut·v_j; Σ_j p_j dp_j = dOut·out
      let pdp = 0;
      for (let j = 0; j <= t; j++) {
        p[j] /= sum;
        let dp = 0;
        for (let ch = 0; ch < d; ch++) dp += dOut[qOff + ch] * v[j * kvStride + kvOff + ch];
        pdp += p[j] * dp;
      }
      for (let j = 0; j <= t; j++) {
        const kvRow = j * kvStride + kvOff;
        let dp = 0;
        for (let ch = 0; ch < d; ch++) {
          dp += dOut[qOff + ch] * v[kvRow + ch];
          dv[kvRow + ch] += p[j] * dOut[qOff + ch];
        }
        const ds = p[j] * (dp - pdp) * scale;
        for (let ch = 0; ch < d; ch++) {
          dq[qOff + ch] += ds * k[kvRow + ch];
          dk[kvRow + ch] += ds * q[qOff + ch];
        }
      }
    }
  }
}

/**
 * Mean next-token cross-entropy of `tokens` at `positions` and its gradients w.r.t. every
 * block's keys (after RoPE) and values, delivered per block through `onBlock` (last block
 * first, as the backward reaches them).
 */
export function lossAndKvGrads(tf: Transformer, tokens: number[], positions: number[], onBlock: (g: BlockGrads) => void): LossAndGrads {
  const c = tf.config;
  const w = tf.weights;
  const T = tokens.length;
  if (T < 2) throw new UsageError("a calibration sample needs at least 2 tokens");
  if (positions.length !== T) throw new UsageError(`${T} tokens but ${positions.length} positions`);
  const dim = c.hiddenSize;
  const d = c.headDim;
  const half = d / 2;
  const inter = c.intermediateSize;
  const mem = new AllocScope();
  try {
    const cos = mem.f32(T * half);
    const sin = mem.f32(T * half);
    ropeTables(tf.invFreq, positions, cos, sin);
    const acts = new BlockActs(T, c, mem);
    const scores = new Float32Array(T);

    const blockForward = (l: number, x: Float32Array, h: Float32Array): void => blockForwardActs(tf, l, x, T, cos, sin, acts, scores, h);

    // forward, saving each block's input
    const inputs: Float32Array[] = [];
    let x = mem.f32(T * dim);
    for (let t = 0; t < T; t++) matrixRow(w.embed, tokens[t], x.subarray(t * dim, (t + 1) * dim));
    const mid = mem.f32(T * dim);
    for (let l = 0; l < c.numLayers; l++) {
      inputs.push(x);
      blockForward(l, x, mid);
      x = mem.f32(T * dim);
      blockOutput(tf, l, mid, acts, T, x);
    }

    // loss and its gradient w.r.t. the final hidden state, one position at a time
    const dx = mem.f32(T * dim);
    const xn = new Float32Array(dim);
    const logits = new Float32Array(c.vocabSize);
    const headRow = new Float32Array(dim);
    const dxn = mem.f32(T * dim);
    let loss = 0;
    const n = T - 1;
    for (let t = 0; t < n; t++) {
      rmsnorm(xn, x.subarray(t * dim, (t + 1) * dim), w.finalNorm, 1, dim, c.rmsNormEps);
      matmulMatrix(logits, xn, w.lmHead, null, 1);
      let max = -Infinity;
      for (const v of logits) if (v > max) max = v;
      let sum = 0;
      for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
      const target = tokens[t + 1];
      loss += Math.log(sum) + max - logits[target];
      // dlogits = (softmax − onehot)/n; dxn = dlogits · lmHead
      for (let i = 0; i < logits.length; i++) {
        const g = (Math.exp(logits[i] - max) / sum - (i === target ? 1 : 0)) / n;
        if (Math.abs(g) < 1e-12) continue;
        matrixRow(w.lmHead, i, headRow);
        for (let j = 0; j < dim; j++) dxn[t * dim + j] += g * headRow[j];
      }
    }
    rmsnormBackward(dx, dxn, x, w.finalNorm, T, dim, c.rmsNormEps);

    // blocks, last to first
    const dAct = mem.f32(T * inter);
    const dGate = mem.f32(T * inter);
    const dUp = mem.f32(T * inter);
    const dhb = mem.f32(T * dim);
    const dAtt = mem.f32(T * c.numHeads * d);
    const dq = mem.f32(T * c.numHeads * d);
    const dqProj = mem.f32(c.qkNorm ? T * c.numHeads * d : 0); // through q_norm (Qwen3)
    const dxb = mem.f32(T * dim);
    const h = mem.f32(T * dim);
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const lw = w.layers[l];
      const a = acts;
      blockForward(l, inputs[l], h);
      // MLP: out = down(silu(gate)·up); dx flows through the residual unchanged as well
      dAct.fill(0);
      matmulBackwardInput(dAct, dx, lw.wDown, T);
      for (let i = 0; i < T * inter; i++) {
        const g = a.gate[i];
        const sig = 1 / (1 + Math.exp(-g));
        dUp[i] = dAct[i] * g * sig;
        dGate[i] = dAct[i] * a.up[i] * sig * (1 + g * (1 - sig));
      }
      dhb.fill(0);
      matmulBackwardInput(dhb, dGate, lw.wGate, T);
      matmulBackwardInput(dhb, dUp, lw.wUp, T);
      rmsnormBackward(dx, dhb, h, lw.ffnNorm, T, dim, c.rmsNormEps); // dx is now dLoss/dh
      // attention
      dAtt.fill(0);
      matmulBackwardInput(dAtt, dx, lw.wo, T);
      dq.fill(0);
      const dk = mem.f32(T * c.numKvHeads * d);
      const dv = mem.f32(T * c.numKvHeads * d);
      if (!attentionBackwardKernel(dq, dk, dv, dAtt, a.q, a.k, a.v, T, c)) attentionBackward(dq, dk, dv, dAtt, a.q, a.k, a.v, T, c);
      onBlock({ layer: l, keys: Float32Array.from(a.k), values: Float32Array.from(a.v), dKeys: Float32Array.from(dk), dValues: Float32Array.from(dv) });
      ropeBackward(dq, cos, sin, T, c.numHeads, d);
      const dkPre = Float32Array.from(dk);
      ropeBackward(dkPre, cos, sin, T, c.numKvHeads, d);
      // Qwen3: back through the per-head norms to the q_proj / k_proj outputs
      let dqOut = dq;
      let dkOut = dkPre;
      if (lw.qNorm) {
        dqProj.fill(0);
        headRmsnormBackward(dqProj, dq, a.qProj, lw.qNorm, T, c.numHeads, d, c.rmsNormEps);
        dqOut = dqProj;
      }
      if (lw.kNorm) {
        dkOut = new Float32Array(dkPre.length);
        headRmsnormBackward(dkOut, dkPre, a.kProj, lw.kNorm, T, c.numKvHeads, d, c.rmsNormEps);
      }
      dxb.fill(0);
      matmulBackwardInput(dxb, dqOut, lw.wq, T);
      matmulBackwardInput(dxb, dkOut, lw.wk, T);
      matmulBackwardInput(dxb, dv, lw.wv, T);
      rmsnormBackward(dx, dxb, inputs[l], lw.attnNorm, T, dim, c.rmsNormEps); // dx is now dLoss/dx_l
      inputs[l] = new Float32Array(0); // no longer needed
    }
    return { loss: loss / n };
  } finally {
    mem.release();
  }
}
