// An independent float64 forward of a Transformer's weights (scalar loops, HF semantics) that
// returns the mean next-token cross-entropy: the reference of the gradient tests.

import type { Transformer } from "../src/model/forward.js";
import { matrixToF32 } from "../src/tensor/matrix.js";

export interface Perturb {
  layer: number;
  kind: "k" | "v";
  index: number; // t · kvDim + channel
  delta: number;
}

/**
 * Mean next-token cross-entropy in float64 over the predictions with mask[t] > 0 (all when no
 * mask), with an optional nudge of one K/V entry after RoPE.
 */
export function refLoss(tf: Transformer, tokens: number[], positions: number[], p: Perturb | null, mask?: ArrayLike<number>): number {
  const c = tf.config;
  const w = tf.weights;
  const D = c.hiddenSize, d = c.headDim, H = c.numHeads, KV = c.numKvHeads, I = c.intermediateSize, T = tokens.length;
  const f64 = (m: Parameters<typeof matrixToF32>[0]) => Float64Array.from(matrixToF32(m));
  const lin = (x: Float64Array, W: Float64Array, out: number, b: Float32Array | null) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < x.length; i++) s += W[o * x.length + i] * x[i];
      y[o] = s;
    }
    return y;
  };
  const norm = (x: Float64Array, g: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * g[i]);
  };
  // Qwen3's q_norm/k_norm: every head over its own d channels; g is (d), or (heads·d) once per-head scales are folded in
  const headNorm = (v: Float64Array, heads: number, g: Float32Array) => {
    const out = new Float64Array(v.length);
    for (let h = 0; h < heads; h++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += v[h * d + i] ** 2;
      const r = 1 / Math.sqrt(ss / d + c.rmsNormEps);
      for (let i = 0; i < d; i++) out[h * d + i] = v[h * d + i] * r * g[g.length === d ? i : h * d + i];
    }
    return out;
  };
  const rot = (v: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < d / 2; i++) {
        const ang = pos / Math.pow(c.ropeTheta, (2 * i) / d);
        const a = v[h * d + i], b = v[h * d + i + d / 2];
        v[h * d + i] = a * Math.cos(ang) - b * Math.sin(ang);
        v[h * d + i + d / 2] = b * Math.cos(ang) + a * Math.sin(ang);
      }
    }
  };
  const embed = f64(w.embed);
  let x = tokens.map((id) => embed.slice(id * D, (id + 1) * D));
  for (let l = 0; l < c.numLayers; l++) {
    const lw = w.layers[l];
    const [wq, wk, wv, wo] = [f64(lw.wq), f64(lw.wk), f64(lw.wv), f64(lw.wo)];
    const q: Float64Array[] = [], k: Float64Array[] = [], v: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const xb = norm(x[t], lw.attnNorm);
      q.push(lin(xb, wq, H * d, lw.bq));
      k.push(lin(xb, wk, KV * d, lw.bk));
      v.push(lin(xb, wv, KV * d, lw.bv));
      if (lw.qNorm) q[t] = headNorm(q[t], H, lw.qNorm);
      if (lw.kNorm) k[t] = headNorm(k[t], KV, lw.kNorm);
      rot(q[t], H, positions[t]);
      rot(k[t], KV, positions[t]);
    }
    if (p && p.layer === l) (p.kind === "k" ? k : v)[Math.floor(p.index / (KV * d))][p.index % (KV * d)] += p.delta;
    x = x.map((xt, t) => {
      const att = new Float64Array(H * d);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        const s = [];
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[t][h * d + i] * k[j][g * d + i];
          s.push(dot / Math.sqrt(d));
        }
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) for (let i = 0; i < d; i++) att[h * d + i] += (e[j] / z) * v[j][g * d + i];
      }
      const o = lin(att, wo, D, lw.bo);
      return xt.map((val, i) => val + o[i]);
    });
    const [wg, wu, wdn] = [f64(lw.wGate), f64(lw.wUp), f64(lw.wDown)];
    x = x.map((xt) => {
      const hb = norm(xt, lw.ffnNorm);
      const g = lin(hb, wg, I, null);
      const u = lin(hb, wu, I, null);
      const m = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const dn = lin(m, wdn, D, null);
      return xt.map((val, i) => val + dn[i]);
    });
  }
  const head = f64(w.lmHead);
  let loss = 0;
  let count = 0;
  for (let t = 0; t < T - 1; t++) {
    if (mask && !(mask[t] > 0)) continue;
    count++;
    const logits = lin(norm(x[t], w.finalNorm), head, c.vocabSize, null);
    const m = Math.max(...logits);
    const lse = Math.log(logits.reduce((a, b) => a + Math.exp(b - m), 0)) + m;
    loss += lse - logits[tokens[t + 1]];
  }
  return loss / count;
}

