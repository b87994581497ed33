// Rotary position embedding frequencies (Hugging Face semantics), including llama3 scaling.

import type { ModelConfig } from "./config.js";

/** inv_freq[i] = 1 / theta^(2i/d), adjusted by rope_scaling; computed in float64. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const d = c.headDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(c.ropeTheta, (2 * i) / d);
  const s = c.ropeScaling;
  if (s.type === "linear") {
    for (let i = 0; i < inv.length; i++) inv[i] /= s.factor;
  } else if (s.type === "factors") {
    for (let i = 0; i < inv.length; i++) inv[i] /= s.factors![i];
  } else if (s.type === "llama3") {
    // transformers' _compute_llama3_parameters: low frequencies divided by factor,
    // high frequencies kept, a smooth blend in between.
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowFreqWavelen) inv[i] = inv[i] / s.factor;
      else if (wavelen >= highFreqWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}

/** cos/sin tables (T, d/2) for the given positions. */
export function ropeTables(invFreq: Float64Array, positions: ArrayLike<number>, cos: Float32Array, sin: Float32Array): void {
  const half = invFreq.length;
  for (let t = 0; t < positions.length; t++) {
    const p = positions[t];
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
}

/**
 * cos/sin rows by integer position, computed once and kept (grows in chunks) — for caches that
 * apply RoPE themselves at attention time. A property of positions, shared by all blocks.
 */
export class RopeTable {
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  private size = 0;
  readonly half: number;

  constructor(readonly invFreq: Float64Array) {
    this.half = invFreq.length;
  }

  /** Offset of position p's row in cos/sin (p must be a non-negative integer). */
  row(p: number): number {
    if (p >= this.size) this.grow(p + 1);
    return p * this.half;
  }

  private grow(minSize: number): void {
    const size = Math.ceil(minSize / 1024) * 1024;
    const cos = new Float32Array(size * this.half);
    const sin = new Float32Array(size * this.half);
    cos.set(this.cos);
    sin.set(this.sin);
    const positions = Array.from({ length: size - this.size }, (_, i) => this.size + i);
    ropeTables(this.invFreq, positions, cos.subarray(this.size * this.half), sin.subarray(this.size * this.half));
    this.cos = cos;
    this.sin = sin;
    this.size = size;
  }
}
