// Small random-weight Qwen2 / Qwen3 / Llama checkpoints in Hugging Face format, run through the
// engine and through an independent float64 reference forward written here from the
// transformers semantics (nothing from src/model or src/tensor is used by the reference).

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { CheckpointError, ConfigError } from "../../src/errors.js";
import { weightBytes } from "../../src/model/weights.js";
import { loadTransformer } from "../../src/model/checkpoint.js";
import { writeSafetensors, type TensorToWrite } from "../../src/model/safetensors.js";
import { maxRelDiff, randomArray, seededRandom, tempDir } from "../helpers.js";

type Arch = "Qwen2ForCausalLM" | "Qwen3ForCausalLM" | "LlamaForCausalLM";
interface Spec {
  arch: Arch;
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  theta: number;
  eps: number;
  tied: boolean;
  ropeScaling: Record<string, unknown> | null;
  /** config.json attention_bias (Llama, Qwen3): biases on q, k, v and o. */
  attentionBias?: boolean;
}
type Tensors = Map<string, { shape: number[]; data: Float32Array }>;
type Dtype = "F32" | "F16" | "BF16";

// hidden 48 with 4 heads of head_dim 16: q is 64 wide, not 48 (explicit head_dim matters).
const QWEN: Spec = {
  arch: "Qwen2ForCausalLM", hidden: 48, inter: 80, layers: 3, heads: 4, kvHeads: 2, headDim: 16,
  vocab: 64, theta: 1e6, eps: 1e-6, tied: false, ropeScaling: null,
};
const LLAMA3_SCALING = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
// Llama-3.1 style: MQA (1 kv head), head_dim 32, theta 5e5, llama3 rope scaling.
const LLAMA31: Spec = {
  arch: "LlamaForCausalLM", hidden: 64, inter: 96, layers: 2, heads: 4, kvHeads: 1, headDim: 32,
  vocab: 72, theta: 500000, eps: 1e-5, tied: false, ropeScaling: LLAMA3_SCALING,
};
// Qwen3-0.6B's shape in small: GQA 4/2, head_dim 16 with hidden 32 (q is 64 wide), tied
// embeddings, per-head q_norm/k_norm, theta 1e6.
const QWEN3: Spec = {
  arch: "Qwen3ForCausalLM", hidden: 32, inter: 72, layers: 3, heads: 4, kvHeads: 2, headDim: 16,
  vocab: 64, theta: 1e6, eps: 1e-6, tied: true, ropeScaling: null,
};
const TOL = 1e-4;
const ROOT = tempDir("pmkvq-fwd-"); // one exit hook; each checkpoint gets a subfolder

// ---------------------------------------------------------------- checkpoint building

/** config.json as Hugging Face writes it for the three architectures. */
function hfConfig(s: Spec): Record<string, unknown> {
  const qwen = s.arch !== "LlamaForCausalLM";
  const qwen3 = s.arch === "Qwen3ForCausalLM";
  return {
    architectures: [s.arch],
    model_type: qwen3 ? "qwen3" : qwen ? "qwen2" : "llama",
    hidden_size: s.hidden,
    intermediate_size: s.inter,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    vocab_size: s.vocab,
    max_position_embeddings: qwen ? 32768 : 131072,
    rms_norm_eps: s.eps,
    rope_theta: s.theta,
    rope_scaling: s.ropeScaling,
    tie_word_embeddings: s.tied,
    hidden_act: "silu",
    initializer_range: 0.02,
    attention_dropout: 0.0,
    use_cache: true,
    bos_token_id: 1,
    eos_token_id: qwen ? 2 : [2, 3],
    torch_dtype: "float32",
    transformers_version: "4.46.0",
    ...(qwen3
      ? { attention_bias: s.attentionBias === true, use_sliding_window: false, sliding_window: null, max_window_layers: s.layers }
      : qwen
        ? { use_sliding_window: false, sliding_window: 4096, max_window_layers: s.layers }
        : { attention_bias: s.attentionBias === true, mlp_bias: false, pretraining_tp: 1 }),
  };
}

/** Random weights with HF tensor names: matrices ±0.15–0.3, biases ±0.3, norms 1 ± 0.2 (q/k norms 1 ± 0.6). */
function randomTensors(s: Spec, seed: number): Tensors {
  const rand = seededRandom(seed);
  const t: Tensors = new Map();
  const mat = (name: string, rows: number, cols: number, scale: number) =>
    t.set(name, { shape: [rows, cols], data: randomArray(rows * cols, rand, scale) });
  const vec = (name: string, n: number, scale: number) => t.set(name, { shape: [n], data: randomArray(n, rand, scale) });
  const norm = (name: string) => t.set(name, { shape: [s.hidden], data: randomArray(s.hidden, rand, 0.2).map((v) => v + 1) });
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  mat("model.embed_tokens.weight", s.vocab, s.hidden, 1);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    norm(p + "input_layernorm.weight");
    mat(p + "self_attn.q_proj.weight", q, s.hidden, 0.3);
    mat(p + "self_attn.k_proj.weight", kv, s.hidden, 0.3);
    mat(p + "self_attn.v_proj.weight", kv, s.hidden, 0.25);
    mat(p + "self_attn.o_proj.weight", s.hidden, q, 0.2);
    if (s.arch === "Qwen2ForCausalLM" || s.attentionBias) {
      vec(p + "self_attn.q_proj.bias", q, 0.3);
      vec(p + "self_attn.k_proj.bias", kv, 0.3);
      vec(p + "self_attn.v_proj.bias", kv, 0.3);
    }
    if (s.attentionBias) vec(p + "self_attn.o_proj.bias", s.hidden, 0.3);
    if (s.arch === "Qwen3ForCausalLM") {
      for (const n of ["q_norm", "k_norm"]) t.set(p + `self_attn.${n}.weight`, { shape: [s.headDim], data: randomArray(s.headDim, rand, 0.6).map((v) => v + 1) });
    }
    norm(p + "post_attention_layernorm.weight");
    mat(p + "mlp.gate_proj.weight", s.inter, s.hidden, 0.25);
    mat(p + "mlp.up_proj.weight", s.inter, s.hidden, 0.25);
    mat(p + "mlp.down_proj.weight", s.hidden, s.inter, 0.15);
  }
  norm("model.norm.weight");
  if (!s.tied) mat("lm_head.weight", s.vocab, s.hidden, 0.2);
  return t;
}

/** Write config.json and the tensors (one file, or two shards with an index) to a fresh folder. */
function writeCheckpoint(config: Record<string, unknown>, tensors: Tensors, opts: { dtype?: Dtype; shards?: boolean } = {}): string {
  const dir = fs.mkdtempSync(path.join(ROOT, "ckpt-"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  const list: TensorToWrite[] = [...tensors].map(([name, { shape, data }]) => ({ name, dtype: opts.dtype ?? "F32", shape, data }));
  if (!opts.shards) {
    writeSafetensors(path.join(dir, "model.safetensors"), list, { format: "pt" });
    return dir;
  }
  const files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
  const parts = [list.slice(0, Math.ceil(list.length / 2)), list.slice(Math.ceil(list.length / 2))];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  parts.forEach((part, i) => {
    writeSafetensors(path.join(dir, files[i]), part, { format: "pt" });
    for (const t of part) {
      weightMap[t.name] = files[i];
      totalSize += t.data.byteLength;
    }
  });
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify(index, null, 2));
  return dir;
}

/** The engine's all-position logits (a copy), with a fresh full-precision cache. */
function engineLogits(dir: string, tokens: number[], positions: number[]): Float32Array {
  const { config, transformer } = loadTransformer(dir);
  const cache = createFullPrecisionCache(config, config.numLayers);
  return Float32Array.from(transformer.forward(tokens, positions, cache, "all"));
}

// ---------------------------------------------------------------- float64 reference

/** inv_freq = 1/theta^(2i/d), with transformers' _compute_llama3_parameters when rope_type is llama3. */
function refInvFreq(s: Spec): number[] {
  const d = s.headDim;
  const inv = Array.from({ length: d / 2 }, (_, i) => 1 / Math.pow(s.theta, (2 * i) / d));
  const r = s.ropeScaling;
  if (r === null) return inv;
  if (r.rope_type !== "llama3") throw new Error(`reference: rope_type ${String(r.rope_type)} not implemented`);
  const factor = r.factor as number;
  const low = r.low_freq_factor as number;
  const high = r.high_freq_factor as number;
  const oldCtx = r.original_max_position_embeddings as number;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > oldCtx / low) return f / factor;
    if (wavelen < oldCtx / high) return f;
    const smooth = (oldCtx / wavelen - low) / (high - low);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
}

/** y = W x (+ b), W: (out, in) row-major. */
function linear(x: ArrayLike<number>, w: ArrayLike<number>, outDim: number, b: ArrayLike<number> | null = null): Float64Array {
  const n = x.length;
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let acc = b ? b[o] : 0;
    for (let i = 0; i < n; i++) acc += w[o * n + i] * x[i];
    y[o] = acc;
  }
  return y;
}

/** RMSNorm: x / sqrt(mean(x²) + eps) · w. */
function rmsNorm(x: Float64Array, w: ArrayLike<number>, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** rotate_half RoPE in place: pairs (c, c + d/2) of each head rotated by pos · inv_freq[c]. */
function applyRope(v: Float64Array, nHeads: number, d: number, pos: number, invFreq: number[]): void {
  const half = d / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let c = 0; c < half; c++) {
      const angle = pos * invFreq[c];
      const a = v[h * d + c];
      const b = v[h * d + c + half];
      v[h * d + c] = a * Math.cos(angle) - b * Math.sin(angle);
      v[h * d + c + half] = b * Math.cos(angle) + a * Math.sin(angle);
    }
  }
}

/** Qwen3Attention's q_norm / k_norm: each head of v (nHeads·d) RMS-normalised over its own d channels. */
function headNorm(v: Float64Array, nHeads: number, d: number, w: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(v.length);
  for (let h = 0; h < nHeads; h++) out.set(rmsNorm(v.subarray(h * d, (h + 1) * d), w, eps), h * d);
  return out;
}

/** All-position logits (T·vocab) of a Llama/Qwen2/Qwen3 model, float64, scalar loops. */
function refForward(s: Spec, w: Tensors, tokens: number[], positions: number[]): Float64Array {
  const get = (name: string): Float32Array => {
    const t = w.get(name);
    if (!t) throw new Error(`reference: no tensor ${name}`);
    return t.data;
  };
  const { hidden: D, headDim: d, heads: H, kvHeads: KV, vocab: V, inter: I } = s;
  const group = H / KV;
  const invFreq = refInvFreq(s);
  const embed = get("model.embed_tokens.weight");
  const x = tokens.map((id) => Float64Array.from(embed.subarray(id * D, (id + 1) * D)));
  const T = tokens.length;
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    const bias = (n: string) => (s.arch === "Qwen2ForCausalLM" || s.attentionBias ? get(p + n + ".bias") : null);
    const q: Float64Array[] = [], k: Float64Array[] = [], v: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(x[t], get(p + "input_layernorm.weight"), s.eps);
      q.push(linear(h, get(p + "self_attn.q_proj.weight"), H * d, bias("self_attn.q_proj")));
      k.push(linear(h, get(p + "self_attn.k_proj.weight"), KV * d, bias("self_attn.k_proj")));
      v.push(linear(h, get(p + "self_attn.v_proj.weight"), KV * d, bias("self_attn.v_proj")));
      if (s.arch === "Qwen3ForCausalLM") {
        // transformers: q_norm(q_proj(x).view(…, head_dim)), then apply_rotary_pos_emb
        q[t] = headNorm(q[t], H, d, get(p + "self_attn.q_norm.weight"), s.eps);
        k[t] = headNorm(k[t], KV, d, get(p + "self_attn.k_norm.weight"), s.eps);
      }
      applyRope(q[t], H, d, positions[t], invFreq);
      applyRope(k[t], KV, d, positions[t], invFreq);
    }
    for (let t = 0; t < T; t++) {
      const att = new Float64Array(H * d);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group); // GQA: query head h reads kv head h / (H/KV)
        const scores: number[] = [];
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[t][h * d + c] * k[j][kvh * d + c];
          scores.push(dot / Math.sqrt(d));
        }
        const max = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) {
          for (let c = 0; c < d; c++) att[h * d + c] += (e[j] / sum) * v[j][kvh * d + c];
        }
      }
      const o = linear(att, get(p + "self_attn.o_proj.weight"), D, s.attentionBias ? get(p + "self_attn.o_proj.bias") : null);
      x[t] = x[t].map((val, i) => val + o[i]);
    }
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(x[t], get(p + "post_attention_layernorm.weight"), s.eps);
      const g = linear(h, get(p + "mlp.gate_proj.weight"), I);
      const u = linear(h, get(p + "mlp.up_proj.weight"), I);
      const m = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const down = linear(m, get(p + "mlp.down_proj.weight"), D);
      x[t] = x[t].map((val, i) => val + down[i]);
    }
  }
  const head = s.tied ? embed : get("lm_head.weight");
  const out = new Float64Array(T * V);
  for (let t = 0; t < T; t++) out.set(linear(rmsNorm(x[t], get("model.norm.weight"), s.eps), head, V), t * V);
  return out;
}

// ---------------------------------------------------------------- 16-bit rounding (test-side)

/** Round to nearest (ties to even) with `mantBits` fraction bits; minExp: the smallest normal exponent. */
function roundFloat(x: number, mantBits: number, minExp: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  if (2 ** e > ax) e--;
  else if (2 ** (e + 1) <= ax) e++;
  const quantum = 2 ** (Math.max(e, minExp) - mantBits);
  const r = x / quantum;
  const f = Math.floor(r);
  const frac = r - f;
  return quantum * (frac > 0.5 || (frac === 0.5 && f % 2 !== 0) ? f + 1 : f);
}

function roundedTensors(t: Tensors, dtype: "F16" | "BF16"): Tensors {
  const [bits, minExp] = dtype === "F16" ? [10, -14] : [7, -126];
  return new Map([...t].map(([name, { shape, data }]) => [name, { shape, data: data.map((v) => roundFloat(v, bits, minExp)) }]));
}

// ---------------------------------------------------------------- shared fixtures

const range = (n: number, stride = 1) => Array.from({ length: n }, (_, i) => i * stride);
const randomTokens = (n: number, vocab: number, seed: number) => {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(rand() * vocab));
};
const TOKENS = randomTokens(12, QWEN.vocab, 7);
const qwenWeights = randomTensors(QWEN, 1);
const qwenDir = writeCheckpoint(hfConfig(QWEN), qwenWeights);

/** Engine vs reference on one checkpoint folder; returns the measured relative difference. */
function checkAgainstReference(dir: string, s: Spec, w: Tensors, tokens: number[], positions: number[]): number {
  const ours = engineLogits(dir, tokens, positions);
  const ref = refForward(s, w, tokens, positions);
  assert.equal(ours.length, ref.length);
  const rel = maxRelDiff(ours, ref);
  assert.ok(rel <= TOL, `max |Δlogit| / max |logit| = ${rel.toExponential(2)} > ${TOL}`);
  return rel;
}

function assertThrows(fn: () => unknown, cls: typeof ConfigError | typeof CheckpointError, ...patterns: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    for (const p of patterns) {
      if (typeof p === "string") assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
      else assert.match(e.message, p);
    }
    return true;
  });
}

// ---------------------------------------------------------------- tests

// Qwen2: GQA 4/2, q/k/v biases, head_dim 16 ≠ 48/4, theta 1e6, untied lm_head, 3 layers.
test("Qwen2 random checkpoint matches the float64 reference", (t) => {
  const rel = checkAgainstReference(qwenDir, QWEN, qwenWeights, TOKENS, range(TOKENS.length));
  t.diagnostic(`Qwen2 untied: max rel diff ${rel.toExponential(2)}`);
});

// Qwen2 with tie_word_embeddings: no lm_head tensor, the embedding is the head.
test("Qwen2 with tied embeddings matches the reference", (t) => {
  const s = { ...QWEN, tied: true, layers: 2 };
  const w = randomTensors(s, 2);
  assert.ok(!w.has("lm_head.weight"));
  const rel = checkAgainstReference(writeCheckpoint(hfConfig(s), w), s, w, TOKENS, range(TOKENS.length));
  t.diagnostic(`Qwen2 tied: max rel diff ${rel.toExponential(2)}`);
});

// Qwen3: GQA 4/2, head_dim 16 ≠ 32/4, tied embeddings, per-head q_norm/k_norm before RoPE.
test("Qwen3 random checkpoint matches the float64 reference, and its q/k norms matter", (t) => {
  const w = randomTensors(QWEN3, 4);
  assert.ok(!w.has("lm_head.weight") && w.has("model.layers.0.self_attn.k_norm.weight"));
  const dir = writeCheckpoint(hfConfig(QWEN3), w);
  const positions = range(TOKENS.length, 3);
  const rel = checkAgainstReference(dir, QWEN3, w, TOKENS, positions);
  // the same weights without the norms (the reference's Llama path) give visibly other logits
  const withoutNorms = maxRelDiff(engineLogits(dir, TOKENS, positions), refForward({ ...QWEN3, arch: "LlamaForCausalLM" }, w, TOKENS, positions));
  assert.ok(withoutNorms > 100 * TOL, `q/k norms changed the logits by only ${withoutNorms}`);
  t.diagnostic(`Qwen3 tied: max rel diff ${rel.toExponential(2)}; vs no q/k norms ${withoutNorms.toExponential(2)}`);
});

// Qwen3 with attention_bias: q, k, v and o_proj all carry biases (transformers' Qwen3Attention).
test("Qwen3 with attention_bias (q/k/v/o biases), untied head, matches the reference", (t) => {
  const s: Spec = { ...QWEN3, attentionBias: true, tied: false, layers: 2 };
  const w = randomTensors(s, 5);
  assert.ok(w.has("model.layers.1.self_attn.o_proj.bias"));
  const rel = checkAgainstReference(writeCheckpoint(hfConfig(s), w), s, w, TOKENS, range(TOKENS.length));
  t.diagnostic(`Qwen3 attention_bias: max rel diff ${rel.toExponential(2)}`);
});

// Decode (one token per forward) runs the norms on single rows: compare every step with the reference.
test("Qwen3 prefill then one-token decode steps match the reference at every position", (t) => {
  const w = randomTensors(QWEN3, 6);
  const { config, transformer } = loadTransformer(writeCheckpoint(hfConfig(QWEN3), w));
  const V = config.vocabSize;
  const positions = range(TOKENS.length);
  const cache = createFullPrecisionCache(config, config.numLayers);
  const ours = new Float32Array(TOKENS.length * V);
  ours.set(transformer.forward(TOKENS.slice(0, 4), positions.slice(0, 4), cache, "all"));
  for (let p = 4; p < TOKENS.length; p++) ours.set(transformer.forward([TOKENS[p]], [p], cache, "last"), p * V);
  const rel = maxRelDiff(ours, refForward(QWEN3, w, TOKENS, positions));
  assert.ok(rel <= TOL, `decode vs reference: ${rel}`);
  t.diagnostic(`Qwen3 decode: max rel diff ${rel.toExponential(2)}`);
});

// q/k norm tensors are read exactly when the architecture has them.
test("a Qwen3 checkpoint without k_norm, or a Qwen2 one with q_norm, is a CheckpointError naming the tensor", () => {
  const w3 = randomTensors(QWEN3, 4);
  const missing: Tensors = new Map(w3);
  missing.delete("model.layers.2.self_attn.k_norm.weight");
  assertThrows(() => loadTransformer(writeCheckpoint(hfConfig(QWEN3), missing)), CheckpointError, "model.layers.2.self_attn.k_norm.weight");
  const extra: Tensors = new Map(qwenWeights);
  extra.set("model.layers.0.self_attn.q_norm.weight", { shape: [QWEN.headDim], data: new Float32Array(QWEN.headDim).fill(1) });
  assertThrows(() => loadTransformer(writeCheckpoint(hfConfig(QWEN), extra)), CheckpointError, "unexpected tensor", "model.layers.0.self_attn.q_norm.weight");
  const wrong: Tensors = new Map(w3);
  wrong.set("model.layers.1.self_attn.q_norm.weight", { shape: [QWEN3.hidden], data: new Float32Array(QWEN3.hidden).fill(1) });
  assertThrows(() => loadTransformer(writeCheckpoint(hfConfig(QWEN3), wrong)), CheckpointError, "model.layers.1.self_attn.q_norm.weight", "[32]", "[16]");
  assertThrows(() => loadTransformer(writeCheckpoint({ ...hfConfig(QWEN3), use_sliding_window: true }, w3)), ConfigError, "use_sliding_window");
});

// Llama-3.1 rope_scaling at large positions: all three frequency regimes, and scaling is not ignored.
test("Llama-3.1 llama3 rope scaling matches the reference and changes the logits", (t) => {
  const wavelens = refInvFreq({ ...LLAMA31, ropeScaling: null }).map((f) => (2 * Math.PI) / f);
  assert.ok(wavelens.some((wl) => wl < 64 / 4), "a high-frequency (unchanged) component");
  assert.ok(wavelens.some((wl) => wl >= 64 / 4 && wl <= 64 / 1), "a smoothly blended component");
  assert.ok(wavelens.some((wl) => wl > 64 / 1), "a low-frequency (divided by factor) component");
  const w = randomTensors(LLAMA31, 3);
  const tokens = randomTokens(12, LLAMA31.vocab, 11);
  const positions = range(tokens.length, 250); // 0 … 2750
  const rel = checkAgainstReference(writeCheckpoint(hfConfig(LLAMA31), w), LLAMA31, w, tokens, positions);
  const plain = { ...LLAMA31, ropeScaling: null };
  const unscaled = engineLogits(writeCheckpoint(hfConfig(plain), w), tokens, positions);
  const scaled = refForward(LLAMA31, w, tokens, positions);
  const effect = maxRelDiff(unscaled, scaled);
  assert.ok(effect > 100 * TOL, `rope_scaling changed the logits by only ${effect}`);
  t.diagnostic(`Llama-3.1: max rel diff ${rel.toExponential(2)}; scaled vs unscaled ${effect.toExponential(2)}`);
});

// Explicit non-contiguous positions (0, 4, 8, … as in positional interpolation) are honoured.
test("non-contiguous positions match the reference", (t) => {
  const positions = range(TOKENS.length, 4);
  const rel = checkAgainstReference(qwenDir, QWEN, qwenWeights, TOKENS, positions);
  const contiguous = engineLogits(qwenDir, TOKENS, range(TOKENS.length));
  const strided = engineLogits(qwenDir, TOKENS, positions);
  assert.ok(maxRelDiff(contiguous, strided) > 100 * TOL, "positions must change the logits");
  t.diagnostic(`positions 0,4,8,…: max rel diff ${rel.toExponential(2)}`);
});

// Prefill of k tokens then one-token decode steps, and chunked prefill, equal one forward of all.
test("prefill-then-decode and chunked prefill equal the one-shot forward", (t) => {
  const { config, transformer } = loadTransformer(qwenDir);
  const V = config.vocabSize;
  const positions = range(TOKENS.length);
  const oneShot = Float32Array.from(transformer.forward(TOKENS, positions, createFullPrecisionCache(config, config.numLayers), "all"));
  const run = (chunks: number[][]): Float32Array => {
    const cache = createFullPrecisionCache(config, config.numLayers);
    const out = new Float32Array(TOKENS.length * V);
    let start = 0;
    for (const chunk of chunks) {
      const logits = transformer.forward(chunk, positions.slice(start, start + chunk.length), cache, "all");
      out.set(logits, start * V);
      start += chunk.length;
    }
    assert.equal(cache.length, TOKENS.length);
    return out;
  };
  const k = 5;
  const decode = run([TOKENS.slice(0, k), ...TOKENS.slice(k).map((id) => [id])]);
  const chunked = run(range(Math.ceil(TOKENS.length / 3), 3).map((i) => TOKENS.slice(i, i + 3)));
  let worst = 0;
  for (const [name, got] of [["decode", decode], ["chunks of 3", chunked]] as const) {
    for (let p = 0; p < TOKENS.length; p++) {
      const rel = maxRelDiff(got.subarray(p * V, (p + 1) * V), oneShot.subarray(p * V, (p + 1) * V));
      assert.ok(rel <= 1e-5, `${name}, position ${p}: relative difference ${rel}`);
      worst = Math.max(worst, rel);
    }
  }
  t.diagnostic(`incremental vs one-shot: max rel diff ${worst.toExponential(2)}`);
});

// BF16 and F16 checkpoints load and match the reference computed on the same rounded weights.
for (const dtype of ["BF16", "F16"] as const) {
  test(`${dtype} checkpoint matches the reference on ${dtype}-rounded weights`, (t) => {
    const dir = writeCheckpoint({ ...hfConfig(QWEN), torch_dtype: dtype === "F16" ? "float16" : "bfloat16" }, qwenWeights, { dtype });
    assert.deepEqual(Object.keys(loadTransformer(dir).checkpointDtypes), [dtype]);
    const rounded = roundedTensors(qwenWeights, dtype);
    const rel = checkAgainstReference(dir, QWEN, rounded, TOKENS, range(TOKENS.length));
    const vsF32 = maxRelDiff(engineLogits(dir, TOKENS, range(TOKENS.length)), engineLogits(qwenDir, TOKENS, range(TOKENS.length)));
    assert.ok(vsF32 > TOL, `${dtype} weights should visibly differ from F32 (got ${vsF32})`);
    t.diagnostic(`${dtype}: max rel diff vs rounded reference ${rel.toExponential(2)}; vs F32 file ${vsF32.toExponential(2)}`);
  });
}

// 16-bit checkpoints stay 16-bit in memory (2 bytes per matrix weight, not 4); widening
// them to f32 on load gives bit-identical logits, since bf16/f16 → f32 is exact.
test("BF16 weights are held as bf16: half the matrix bytes, same logits as widened f32", () => {
  const dir = writeCheckpoint(hfConfig(QWEN), qwenWeights, { dtype: "BF16" });
  const held = loadTransformer(dir);
  const widened = loadTransformer(dir, { weightsDtype: "f32" });
  let matrixParams = 0;
  let vectorParams = 0;
  for (const { shape } of qwenWeights.values()) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (shape.length === 2) matrixParams += n;
    else vectorParams += n;
  }
  assert.equal(weightBytes(held.transformer.weights), 2 * matrixParams + 4 * vectorParams);
  assert.equal(weightBytes(widened.transformer.weights), 4 * matrixParams + 4 * vectorParams);
  assert.equal(held.transformer.weights.layers[0].wq.dtype, "bf16");
  const logits = (m: typeof held) => Float32Array.from(m.transformer.forward(TOKENS, range(TOKENS.length), createFullPrecisionCache(m.config, m.config.numLayers), "all"));
  assert.deepEqual(logits(held), logits(widened));
});

// Two shards plus model.safetensors.index.json give exactly the single-file logits.
test("sharded checkpoint equals the single-file checkpoint exactly", () => {
  const dir = writeCheckpoint(hfConfig(QWEN), qwenWeights, { shards: true });
  assert.ok(!fs.existsSync(path.join(dir, "model.safetensors")));
  assert.equal(fs.readdirSync(dir).filter((f) => /^model-0000[12]-of-00002\.safetensors$/.test(f)).length, 2);
  assert.deepEqual(engineLogits(dir, TOKENS, range(TOKENS.length)), engineLogits(qwenDir, TOKENS, range(TOKENS.length)));
});

// An unsupported architecture names the supported ones.
test("MistralForCausalLM is refused with a ConfigError listing the supported architectures", () => {
  const dir = writeCheckpoint({ ...hfConfig(QWEN), architectures: ["MistralForCausalLM"], model_type: "mistral" }, qwenWeights);
  assertThrows(() => loadTransformer(dir), ConfigError, "MistralForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM");
});

// An unsupported rope_scaling type names the supported ones.
test("rope_scaling yarn is refused with a ConfigError listing the supported rope types", () => {
  const yarn = { rope_type: "yarn", factor: 4, original_max_position_embeddings: 32768 };
  const dir = writeCheckpoint({ ...hfConfig(QWEN), rope_scaling: yarn }, qwenWeights);
  assertThrows(() => loadTransformer(dir), ConfigError, "yarn", "default", "linear", "llama3");
});

// A transposed q_proj: the error names the tensor, its shape and the expected shape.
test("a tensor with the wrong shape is a CheckpointError naming it and both shapes", () => {
  const w: Tensors = new Map(qwenWeights);
  const name = "model.layers.1.self_attn.q_proj.weight";
  w.set(name, { shape: [QWEN.hidden, QWEN.heads * QWEN.headDim], data: qwenWeights.get(name)!.data });
  const dir = writeCheckpoint(hfConfig(QWEN), w);
  assertThrows(() => loadTransformer(dir), CheckpointError, name, "[48,64]", "[64,48]");
});

// A missing tensor: the error names it.
test("a missing tensor is a CheckpointError naming it", () => {
  const w: Tensors = new Map(qwenWeights);
  w.delete("model.layers.2.mlp.up_proj.weight");
  const dir = writeCheckpoint(hfConfig(QWEN), w);
  assertThrows(() => loadTransformer(dir), CheckpointError, "model.layers.2.mlp.up_proj.weight");
});

// A folder with config.json but no weights says which files it looked for.
test("a folder without model.safetensors is a CheckpointError", () => {
  const dir = fs.mkdtempSync(path.join(ROOT, "empty-"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(hfConfig(QWEN)));
  assertThrows(() => loadTransformer(dir), CheckpointError, dir, "model.safetensors");
});

// GQA needs num_attention_heads to be a multiple of num_key_value_heads.
test("num_attention_heads not a multiple of num_key_value_heads is a ConfigError", () => {
  const dir = writeCheckpoint({ ...hfConfig(QWEN), num_key_value_heads: 3 }, qwenWeights);
  assertThrows(() => loadTransformer(dir), ConfigError, "num_attention_heads (4)", "num_key_value_heads (3)", "multiple");
});
