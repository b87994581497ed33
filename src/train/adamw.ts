// AdamW (Loshchilov & Hutter): Adam moments with bias correction, decoupled weight decay.

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW {
  /** First and second moments, aligned with params; t: steps taken (saved and restored by train-state.ts). */
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  t = 0;

  /** params[i] is decayed when decay[i] (matrices yes; norms, biases, embeddings no). */
  constructor(readonly params: Float32Array[], readonly decay: boolean[], readonly o: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }) {
    this.m = params.map((p) => new Float32Array(p.length));
    this.v = params.map((p) => new Float32Array(p.length));
  }

  step(grads: Float32Array[], lr: number): void {
    this.t++;
    const { beta1, beta2, eps, weightDecay } = this.o;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    this.params.forEach((p, k) => {
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      const wd = this.decay[k] ? weightDecay : 0;
      for (let i = 0; i < p.length; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        p[i] -= lr * ((m[i] / c1) / (Math.sqrt(v[i] / c2) + eps) + wd * p[i]);
      }
    });
  }
}

/** Scale gradients so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(grads: Float32Array[], maxNorm: number): number {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  const norm = Math.sqrt(ss);
  if (norm > maxNorm) {
    const s = maxNorm / norm;
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= s;
  }
  return norm;
}

/** Linear warm-up then cosine decay to minFraction·lr. */
export function learningRate(step: number, total: number, lr: number, warmup: number, minFraction = 0.1): number {
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return lr * (minFraction + (1 - minFraction) * 0.5 * (1 + Math.cos(Math.PI * p)));
}
