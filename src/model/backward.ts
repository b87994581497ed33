// The one backward pass (spec §5, issue 8): from the next-token cross-entropy of one sequence
// back to every block's keys (after RoPE) and values — what sensitivity profiling needs — and,
// when asked, to every weight — what training needs. The forward saves only each block's
// input; the backward recomputes the rest of a block from it (one block's internals alive at
// a time). Functions follow llm.c's naming: xxxForward / xxxBackward, outputs first.

import { UsageError } from "../errors.js";
import { addInPlace, attentionBackwardKernel, matmulNN, matmulTNAcc, rmsnorm } from "../tensor/kernels.js";
import { matmulMatrix, matrixRow, type Matrix } from "../tensor/matrix.js";
import { AllocScope } from "../tensor/memory.js";
import { BlockActs, blockForwardActs, blockOutput } from "./block.js";
import type { ModelConfig } from "./config.js";
import type { Transformer } from "./forward.js";
import type { Grads, LayerGrads } from "./grads.js";
import { ropeTables } from "./rope.js";

/** One block's keys, values and their gradients, handed to the caller as soon as they are known. */
export interface KvGrads {
  layer: number;
  /** Keys after RoPE and values, (T, numKvHeads·d). */
  keys: Float32Array;
  values: Float32Array;
  /** dLoss/dKeys (after RoPE) and dLoss/dValues, (T, numKvHeads·d). */
  dKeys: Float32Array;
  dValues: Float32Array;
}

export interface BackwardOptions {
  /** mask[t] > 0 counts the prediction of tokens[t+1] at position t, weighted by mask[t]; default: all T − 1. */
  mask?: ArrayLike<number>;
  /** The gradients are of scale · Σ_t mask[t]·loss_t; default 1/count (the sequence's mean loss). */
  scale?: number;
  /** Weight gradients are added into these when given; without, none is computed. */
  grads?: Grads;
  /** Every block's K/V and dK/dV, last block first, as the backward reaches them. */
  onKv?: (g: KvGrads) => void;
  /** Positions whose logits the loss head holds at once; default: as many as fit in HEAD_CHUNK_FLOATS. */
  headChunk?: number;
}

export interface SequenceLoss {
  /** Σ of mask[t] · the cross-entropy of the counted predictions (nats). */
  lossSum: number;
  /** Predictions counted (mask > 0). */
  count: number;
  /** Predictions whose argmax was the target. */
  correct: number;
}

/**
 * dinp (T, in) = dout (T, out) · W, the input gradient of out = inp·Wᵀ + b; when given,
 * dweight (out, in) += doutᵀ · inp and dbias (out) += Σ_t dout.
 */
export function matmulBackward(
  dinp: Float32Array, dweight: Float32Array | null, dbias: Float32Array | null,
  dout: Float32Array, inp: Float32Array, weight: Matrix, T: number,
): void {
  const { rows, cols } = weight;
  if (weight.dtype === "f32") matmulNN(dinp, dout, weight.data as Float32Array, T, rows, cols);
  else matmulNNWidened(dinp, dout, weight, T);
  if (dweight) matmulTNAcc(dweight, dout, inp, T, rows, cols);
  if (dbias) for (let t = 0; t < T; t++) for (let o = 0; o < rows; o++) dbias[o] += dout[t * rows + o];
}

/** dinp (T, in) = dout (T, out) · W for 16-bit and quantized W, widening one row at a time. */
function matmulNNWidened(dinp: Float32Array, dout: Float32Array, w: Matrix, T: number): void {
  const { rows, cols } = w;
  const row = new Float32Array(cols);
  dinp.fill(0, 0, T * cols);
  for (let o = 0; o < rows; o++) {
    matrixRow(w, o, row);
    for (let t = 0; t < T; t++) {
      const g = dout[t * rows + o];
      if (g === 0) continue;
      const off = t * cols;
      for (let i = 0; i < cols; i++) dinp[off + i] += g * row[i];
    }
  }
}

/** dx += RMSNorm backward (y = x·r·w, r = 1/sqrt(mean(x²) + eps)); dweight += Σ_t dy ⊙ x·r when given. */
export function rmsnormBackward(
  dx: Float32Array, dweight: Float32Array | null,
  dy: Float32Array, x: Float32Array, weight: Float32Array, T: number, n: number, eps: number,
): void {
  for (let t = 0; t < T; t++) {
    const off = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
    const r = 1 / Math.sqrt(ss / n + eps);
    let dot = 0; // Σ_i dy_i w_i x_i
    for (let i = 0; i < n; i++) dot += dy[off + i] * weight[i] * x[off + i];
    if (dweight) for (let i = 0; i < n; i++) dweight[i] += dy[off + i] * x[off + i] * r;
    const c = (dot * r * r * r) / n;
    for (let i = 0; i < n; i++) dx[off + i] += dy[off + i] * weight[i] * r - x[off + i] * c;
  }
}

/** dx (+ dweight) += the backward of headRmsnorm (Qwen3's q_norm/k_norm): x (T, nHeads, d); weight (d) or (nHeads·d). */
export function headRmsnormBackward(
  dx: Float32Array, dweight: Float32Array | null,
  dy: Float32Array, x: Float32Array, weight: Float32Array, T: number, nHeads: number, d: number, eps: number,
): void {
  if (weight.length === d) return rmsnormBackward(dx, dweight, dy, x, weight, T * nHeads, d, eps);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * d;
      const slice = (a: Float32Array, at: number) => a.subarray(at, at + d);
      rmsnormBackward(slice(dx, o), dweight && slice(dweight, h * d), slice(dy, o), slice(x, o), slice(weight, h * d), 1, d, eps);
    }
  }
}

/** dGate, dUp (n) from dAct (n), the backward of act = silu(gate)·up. */
export function swigluBackward(dGate: Float32Array, dUp: Float32Array, dAct: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const sig = 1 / (1 + Math.exp(-g));
    dUp[i] = dAct[i] * g * sig;
    dGate[i] = dAct[i] * up[i] * sig * (1 + g * (1 - sig));
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
 * On the kernel where it runs, else on its plain twin.
 */
export function attentionBackward(
  dq: Float32Array, dk: Float32Array, dv: Float32Array,
  dOut: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
  T: number, c: Pick<ModelConfig, "numHeads" | "numKvHeads" | "headDim">,
): void {
  if (!attentionBackwardKernel(dq, dk, dv, dOut, q, k, v, T, c)) attentionBackwardPlain(dq, dk, dv, dOut, q, k, v, T, c);
}

/** The plain-TypeScript twin of attentionBackwardKernel (the algorithmic reference). */
export function attentionBackwardPlain(
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
 * One row of logits (V) → in place dlogits = k·(softmax − onehot(target)). Returns the row's
 * cross-entropy (nats) and whether its argmax was the target.
 */
export function crossentropySoftmaxBackward(dlogits: Float32Array, target: number, k: number, V: number): { loss: number; correct: boolean } {
  const row = dlogits;
  let max = -Infinity;
  let arg = 0;
  for (let i = 0; i < V; i++) if (row[i] > max) (max = row[i]), (arg = i);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
  const loss = Math.log(sum) + max - row[target];
  for (let i = 0; i < V; i++) row[i] = k * (Math.exp(row[i] - max) / sum - (i === target ? 1 : 0));
  return { loss, correct: arg === target };
}

/** Floats of logits the loss head holds at once (16 MiB): every position for small vocabularies, a chunk of them for large ones. */
export const HEAD_CHUNK_FLOATS = 1 << 22;

/**
 * The loss head, forward and backward, a chunk of positions at a time: final RMSNorm, lm head,
 * cross-entropy of the counted predictions. Writes dx (T, dim) = dLoss/dx for the last block's
 * output x (T, dim); adds the head's weight gradients into g when given.
 */
function lossHeadBackward(
  dx: Float32Array, g: Grads | null, x: Float32Array,
  tf: Transformer, tokens: number[], mask: ArrayLike<number>, scale: number, chunk: number | undefined, mem: AllocScope,
): SequenceLoss {
  const c = tf.config;
  const w = tf.weights;
  const T = tokens.length;
  const dim = c.hiddenSize;
  const V = c.vocabSize;
  const rows = Math.max(1, Math.min(T, chunk ?? Math.floor(HEAD_CHUNK_FLOATS / V)));
  const xn = mem.f32(rows * dim);
  const logits = mem.f32(rows * V);
  const dxn = mem.f32(rows * dim);
  const r: SequenceLoss = { lossSum: 0, count: 0, correct: 0 };
  for (let t0 = 0; t0 < T; t0 += rows) {
    const n = Math.min(rows, T - t0);
    const xs = x.subarray(t0 * dim, (t0 + n) * dim);
    rmsnorm(xn, xs, w.finalNorm, n, dim, c.rmsNormEps);
    matmulMatrix(logits, xn, w.lmHead, null, n);
    for (let t = t0; t < t0 + n; t++) {
      const row = logits.subarray((t - t0) * V, (t - t0 + 1) * V);
      if (!(t < T - 1 && mask[t] > 0)) {
        row.fill(0); // the last position predicts nothing; masked ones are not counted
        continue;
      }
      const ce = crossentropySoftmaxBackward(row, tokens[t + 1], mask[t] * scale, V);
      r.lossSum += mask[t] * ce.loss;
      r.count++;
      if (ce.correct) r.correct++;
    }
    matmulBackward(dxn, g ? (g.lmHead ?? g.embed) : null, null, logits, xn, w.lmHead, n);
    rmsnormBackward(dx.subarray(t0 * dim, (t0 + n) * dim), g?.finalNorm ?? null, dxn, xs, w.finalNorm, n, dim, c.rmsNormEps);
  }
  return r;
}

/** The backward's scratch, allocated once per sequence and reused by every block. */
class BlockScratch {
  readonly dAct: Float32Array; // (T, inter) dLoss/d(silu(gate)·up)
  readonly dGate: Float32Array; // (T, inter)
  readonly dUp: Float32Array; // (T, inter)
  readonly dhb: Float32Array; // (T, dim) dLoss/d(normed mid-block residual)
  readonly dxb: Float32Array; // (T, dim) dLoss/d(normed block input)
  readonly sum: Float32Array; // (T, dim) one term of dhb or dxb
  readonly dAtt: Float32Array; // (T, numHeads·d) dLoss/d(attention output)
  readonly dq: Float32Array; // (T, numHeads·d) after RoPE, then before it
  readonly dk: Float32Array; // (T, numKvHeads·d) likewise
  readonly dv: Float32Array; // (T, numKvHeads·d)
  readonly dqProj: Float32Array; // (T, numHeads·d) through q_norm to q_proj's output; empty without q/k norm
  readonly dkProj: Float32Array; // (T, numKvHeads·d) likewise for k_proj
  constructor(T: number, c: ModelConfig, mem: AllocScope) {
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    [this.dAct, this.dGate, this.dUp] = [0, 0, 0].map(() => mem.f32(T * c.intermediateSize));
    [this.dhb, this.dxb, this.sum] = [0, 0, 0].map(() => mem.f32(T * c.hiddenSize));
    [this.dAtt, this.dq, this.dk, this.dv] = [qDim, qDim, kvDim, kvDim].map((n) => mem.f32(T * n));
    this.dqProj = mem.f32(c.qkNorm ? T * qDim : 0);
    this.dkProj = mem.f32(c.qkNorm ? T * kvDim : 0);
  }
}

/**
 * Block l backward. On entry dx (T, dim) is dLoss/d(block output), on return dLoss/d(block
 * input x); acts and the mid-block residual h are blockForwardActs' from x. Adds the block's
 * weight gradients into lg when given.
 */
function blockBackward(
  dx: Float32Array, lg: LayerGrads | null,
  tf: Transformer, l: number, x: Float32Array, h: Float32Array, acts: BlockActs,
  cos: Float32Array, sin: Float32Array, T: number, s: BlockScratch, onKv: BackwardOptions["onKv"],
): void {
  const c = tf.config;
  const lw = tf.weights.layers[l];
  const a = acts;
  const dim = c.hiddenSize;
  const d = c.headDim;
  const eps = c.rmsNormEps;
  // MLP: y = h + down(silu(gate)·up); dx flows through the residual unchanged as well
  matmulBackward(s.dAct, lg && lg.wDown, null, dx, a.act, lw.wDown, T);
  swigluBackward(s.dGate, s.dUp, s.dAct, a.gate, a.up, T * c.intermediateSize);
  matmulBackward(s.dhb, lg && lg.wGate, null, s.dGate, a.hb, lw.wGate, T);
  matmulBackward(s.sum, lg && lg.wUp, null, s.dUp, a.hb, lw.wUp, T);
  addInPlace(s.dhb, s.sum, T * dim);
  rmsnormBackward(dx, lg && lg.ffnNorm, s.dhb, h, lw.ffnNorm, T, dim, eps); // dx is now dLoss/dh
  // attention: h = x + o_proj(attention(rope(q), rope(k), v))
  matmulBackward(s.dAtt, lg && lg.wo, lg && lg.bo, dx, a.att, lw.wo, T);
  s.dq.fill(0);
  s.dk.fill(0);
  s.dv.fill(0);
  attentionBackward(s.dq, s.dk, s.dv, s.dAtt, a.q, a.k, a.v, T, c);
  onKv?.({ layer: l, keys: Float32Array.from(a.k), values: Float32Array.from(a.v), dKeys: Float32Array.from(s.dk), dValues: Float32Array.from(s.dv) });
  ropeBackward(s.dq, cos, sin, T, c.numHeads, d);
  ropeBackward(s.dk, cos, sin, T, c.numKvHeads, d);
  // Qwen3: back through the per-head norms to the q_proj / k_proj outputs
  let dq = s.dq;
  let dk = s.dk;
  if (lw.qNorm) {
    s.dqProj.fill(0);
    headRmsnormBackward(s.dqProj, lg && lg.qNorm, s.dq, a.qProj, lw.qNorm, T, c.numHeads, d, eps);
    dq = s.dqProj;
  }
  if (lw.kNorm) {
    s.dkProj.fill(0);
    headRmsnormBackward(s.dkProj, lg && lg.kNorm, s.dk, a.kProj, lw.kNorm, T, c.numKvHeads, d, eps);
    dk = s.dkProj;
  }
  matmulBackward(s.dxb, lg && lg.wq, lg && lg.bq, dq, a.xb, lw.wq, T);
  matmulBackward(s.sum, lg && lg.wk, lg && lg.bk, dk, a.xb, lw.wk, T);
  addInPlace(s.dxb, s.sum, T * dim);
  matmulBackward(s.sum, lg && lg.wv, lg && lg.bv, s.dv, a.xb, lw.wv, T);
  addInPlace(s.dxb, s.sum, T * dim);
  rmsnormBackward(dx, lg && lg.attnNorm, s.dxb, x, lw.attnNorm, T, dim, eps); // dx is now dLoss/dx
}

/**
 * Forward and backward of one sequence: the next-token cross-entropy of `tokens` at
 * `positions`, back to every block's K/V (through onKv) and, when o.grads is given, to every
 * weight (added into it). Without o.grads no weight gradient is computed.
 */
export function sequenceBackward(tf: Transformer, tokens: number[], positions: ArrayLike<number>, o: BackwardOptions = {}): SequenceLoss {
  const c = tf.config;
  const w = tf.weights;
  const T = tokens.length;
  if (T < 2) throw new UsageError("a sequence needs at least 2 tokens to have a next-token loss");
  if (positions.length !== T) throw new UsageError(`${T} tokens but ${positions.length} positions`);
  const mask = o.mask ?? new Float32Array(T - 1).fill(1);
  let counted = 0;
  for (let t = 0; t < T - 1; t++) if (mask[t] > 0) counted++;
  const scale = o.scale ?? 1 / counted;
  const g = o.grads ?? null;
  const dim = c.hiddenSize;
  const mem = new AllocScope();
  try {
    const cos = mem.f32((T * c.headDim) / 2);
    const sin = mem.f32((T * c.headDim) / 2);
    ropeTables(tf.invFreq, positions, cos, sin);
    const acts = new BlockActs(T, c, mem);
    const scores = mem.f32(T);
    // forward, saving each block's input
    const inputs: Float32Array[] = [];
    const mid = mem.f32(T * dim);
    let x = mem.f32(T * dim);
    for (let t = 0; t < T; t++) matrixRow(w.embed, tokens[t], x.subarray(t * dim, (t + 1) * dim));
    for (let l = 0; l < c.numLayers; l++) {
      inputs.push(x);
      blockForwardActs(tf, l, x, T, cos, sin, acts, scores, mid);
      x = mem.f32(T * dim);
      blockOutput(tf, l, mid, acts, T, x);
    }
    const dx = mem.f32(T * dim);
    const loss = lossHeadBackward(dx, g, x, tf, tokens, mask, scale, o.headChunk, mem);
    // blocks, last to first, each recomputed from its input
    const scratch = new BlockScratch(T, c, mem);
    for (let l = c.numLayers - 1; l >= 0; l--) {
      blockForwardActs(tf, l, inputs[l], T, cos, sin, acts, scores, mid);
      blockBackward(dx, g && g.layers[l], tf, l, inputs[l], mid, acts, cos, sin, T, scratch, o.onKv);
    }
    // embedding rows
    if (g) {
      for (let t = 0; t < T; t++) {
        const row = g.embed.subarray(tokens[t] * dim, (tokens[t] + 1) * dim);
        for (let i = 0; i < dim; i++) row[i] += dx[t * dim + i];
      }
    }
    return loss;
  } finally {
    mem.release();
  }
}
