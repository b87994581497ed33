// The backward pass against central finite differences of an independent float64 forward:
// dLoss/dK (after RoPE) and dLoss/dV for every block, token and channel of small models.

import assert from "node:assert/strict";
import { test } from "node:test";
import { lossAndKvGrads, type BlockGrads } from "../../src/model/backward.js";
import type { Transformer } from "../../src/model/forward.js";
import { matrixToF32 } from "../../src/tensor/matrix.js";
import { randomTransformer, type RandomModelSpec } from "../model-fixtures.js";

interface Perturb {
  layer: number;
  kind: "k" | "v";
  index: number; // t · kvDim + channel
  delta: number;
}

/** Mean next-token cross-entropy in float64, with an optional nudge of one K/V entry after RoPE. */
function refLoss(tf: Transformer, tokens: number[], positions: number[], p: Perturb | null): number {
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
      const o = lin(att, wo, D, null);
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
  for (let t = 0; t < T - 1; t++) {
    const logits = lin(norm(x[t], w.finalNorm), head, c.vocabSize, null);
    const m = Math.max(...logits);
    const lse = Math.log(logits.reduce((a, b) => a + Math.exp(b - m), 0)) + m;
    loss += lse - logits[tokens[t + 1]];
  }
  return loss / (T - 1);
}

const SPECS: [string, RandomModelSpec][] = [
  ["Llama, GQA", { layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, vocab: 40, seed: 11 }],
  ["Qwen2 with q/k/v biases", { layers: 2, hidden: 24, heads: 2, kvHeads: 1, headDim: 12, intermediate: 40, vocab: 30, seed: 12, architecture: "Qwen2ForCausalLM" }],
];

for (const [name, spec] of SPECS) {
  test(`${name}: dLoss/dK and dLoss/dV match float64 finite differences at every entry`, (t) => {
    const tf = randomTransformer(spec);
    const tokens = [3, 17, 5, 9, 1, 22, 7];
    const positions = tokens.map((_, i) => i * 4); // positional interpolation, s = 4
    const grads = new Map<number, BlockGrads>();
    const { loss } = lossAndKvGrads(tf, tokens, positions, (g) => grads.set(g.layer, g));
    assert.equal(grads.size, spec.layers);
    const ref = refLoss(tf, tokens, positions, null);
    assert.ok(Math.abs(loss - ref) < 1e-5, `loss ${loss} vs float64 ${ref}`);
    const eps = 1e-5;
    let worst = 0;
    for (const [layer, g] of grads) {
      for (const kind of ["k", "v"] as const) {
        const ours = kind === "k" ? g.dKeys : g.dValues;
        let scale = 0;
        const fd = new Float64Array(ours.length);
        for (let i = 0; i < ours.length; i++) {
          fd[i] = (refLoss(tf, tokens, positions, { layer, kind, index: i, delta: eps }) - refLoss(tf, tokens, positions, { layer, kind, index: i, delta: -eps })) / (2 * eps);
          scale = Math.max(scale, Math.abs(fd[i]));
        }
        assert.ok(scale > 1e-4, "gradients are not trivially zero");
        for (let i = 0; i < ours.length; i++) {
          const err = Math.abs(ours[i] - fd[i]) / scale;
          worst = Math.max(worst, err);
          assert.ok(err < 1e-4, `block ${layer} d${kind.toUpperCase()}[${i}]: ${ours[i]} vs finite difference ${fd[i]}`);
        }
      }
    }
    t.diagnostic(`worst |analytic − finite difference| / max|grad| = ${worst.toExponential(2)}`);
  });
}
