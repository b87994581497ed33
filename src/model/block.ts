// One transformer block computed over a whole sequence with its internals kept — the
// building block of the backward pass and of the scale search (calibration), which need
// q, k, v, the attention output and the MLP activations of a block, not just its output.

import { attendFloat } from "../tensor/attention-float.js";
import { addInPlace, attendFloatKernel, headRmsnorm, rmsnorm, rope, swiglu } from "../tensor/kernels.js";
import { matmulMatrix } from "../tensor/matrix.js";
import { AllocScope } from "../tensor/memory.js";
import type { ModelConfig } from "./config.js";
import type { Transformer } from "./forward.js";

/** Per-block internals recomputed from the block input (one block at a time). */
export class BlockActs {
  readonly xb: Float32Array; // (T, dim) normed block input
  readonly qProj: Float32Array; // (T, numHeads·d) q_proj output before the per-head norm; empty without q/k norm
  readonly kProj: Float32Array; // (T, numKvHeads·d) likewise for k_proj
  readonly q: Float32Array; // (T, numHeads·d) after RoPE
  readonly k: Float32Array; // (T, numKvHeads·d) after RoPE
  readonly v: Float32Array;
  readonly att: Float32Array; // (T, numHeads·d) attention output before o_proj
  readonly hb: Float32Array; // (T, dim) normed mid-block residual
  readonly gate: Float32Array; // (T, inter) pre-activation
  readonly up: Float32Array; // (T, inter)
  readonly act: Float32Array; // (T, inter) silu(gate)·up
  constructor(T: number, c: ModelConfig, mem: AllocScope) {
    this.xb = mem.f32(T * c.hiddenSize);
    this.qProj = mem.f32(c.qkNorm ? T * c.numHeads * c.headDim : 0);
    this.kProj = mem.f32(c.qkNorm ? T * c.numKvHeads * c.headDim : 0);
    this.q = mem.f32(T * c.numHeads * c.headDim);
    this.k = mem.f32(T * c.numKvHeads * c.headDim);
    this.v = mem.f32(T * c.numKvHeads * c.headDim);
    this.att = mem.f32(T * c.numHeads * c.headDim);
    this.hb = mem.f32(T * c.hiddenSize);
    this.gate = mem.f32(T * c.intermediateSize);
    this.up = mem.f32(T * c.intermediateSize);
    this.act = mem.f32(T * c.intermediateSize);
  }
}

/**
 * Block l over T tokens from its input x (T, dim): fills `acts` and writes the mid-block
 * residual h = x + o_proj(attention) (T, dim). cos/sin: RoPE tables (T, d/2); scores: ≥ T floats.
 */
export function blockForwardActs(
  tf: Transformer, l: number, x: Float32Array, T: number,
  cos: Float32Array, sin: Float32Array, acts: BlockActs, scores: Float32Array, h: Float32Array,
): void {
  const c = tf.config;
  const lw = tf.weights.layers[l];
  const a = acts;
  const dim = c.hiddenSize;
  rmsnorm(a.xb, x, lw.attnNorm, T, dim, c.rmsNormEps);
  matmulMatrix(a.q, a.xb, lw.wq, lw.bq, T);
  matmulMatrix(a.k, a.xb, lw.wk, lw.bk, T);
  matmulMatrix(a.v, a.xb, lw.wv, lw.bv, T);
  // Qwen3: each head of q and k normalised on its own, before RoPE (the backward needs the projections)
  if (lw.qNorm) {
    a.qProj.set(a.q.subarray(0, a.qProj.length));
    headRmsnorm(a.q, lw.qNorm, T, c.numHeads, c.headDim, c.rmsNormEps);
  }
  if (lw.kNorm) {
    a.kProj.set(a.k.subarray(0, a.kProj.length));
    headRmsnorm(a.k, lw.kNorm, T, c.numKvHeads, c.headDim, c.rmsNormEps);
  }
  rope(a.q, cos, sin, T, c.numHeads, c.headDim);
  rope(a.k, cos, sin, T, c.numKvHeads, c.headDim);
  if (!attendFloatKernel(a.att, a.q, T, a.k, a.v, T, c)) attendFloat(a.att, a.q, T, a.k, a.v, T, c, scores);
  matmulMatrix(h, a.att, lw.wo, lw.bo, T);
  addInPlace(h, x, T * dim);
  rmsnorm(a.hb, h, lw.ffnNorm, T, dim, c.rmsNormEps);
  matmulMatrix(a.gate, a.hb, lw.wGate, null, T);
  matmulMatrix(a.up, a.hb, lw.wUp, null, T);
  a.act.set(a.gate.subarray(0, a.act.length));
  swiglu(a.act, a.up, T * c.intermediateSize);
}

/** The block output y = h + down(act) (T, dim), after blockForwardActs. */
export function blockOutput(tf: Transformer, l: number, h: Float32Array, acts: BlockActs, T: number, y: Float32Array): void {
  matmulMatrix(y, acts.act, tf.weights.layers[l].wDown, null, T);
  addInPlace(y, h, T * tf.config.hiddenSize);
}
