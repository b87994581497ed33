// Random-weight models built in memory for tests (and written as model folders): realistic shapes, seeded.

import fs from "node:fs";
import path from "node:path";
import { parseModelConfig, type ModelConfig } from "../src/model/config.js";
import { writeSafetensors, type TensorToWrite } from "../src/model/safetensors.js";
import { Transformer } from "../src/model/forward.js";
import { f32Matrix } from "../src/tensor/matrix.js";
import { hfNames, type LayerWeights, type Weights } from "../src/model/weights.js";
import { randomArray, seededRandom, STORIES_DIR } from "./helpers.js";

export interface RandomModelSpec {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  seed?: number;
  architecture?: "LlamaForCausalLM" | "Qwen2ForCausalLM" | "Qwen3ForCausalLM";
}

export function randomConfig(s: RandomModelSpec): ModelConfig {
  return parseModelConfig({
    architectures: [s.architecture ?? "LlamaForCausalLM"],
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    vocab_size: s.vocab,
    rope_theta: 10000,
    rms_norm_eps: 1e-5,
  });
}

/** A random-weight transformer; weights scaled like a trained model's (≈ 1/sqrt(fan-in)). */
export function randomTransformer(s: RandomModelSpec): Transformer {
  const c = randomConfig(s);
  const rand = seededRandom(s.seed ?? 1);
  const mat = (rows: number, cols: number) => f32Matrix(randomArray(rows * cols, rand, 1.7 / Math.sqrt(cols)), rows, cols);
  const ones = (n: number) => Float32Array.from(randomArray(n, rand, 0.1), (v) => 1 + v);
  const headNorm = () => (c.qkNorm ? Float32Array.from(randomArray(c.headDim, rand, 0.5), (v) => 1 + v) : null);
  const bias = (n: number) => (c.qkvBias ? randomArray(n, rand, 0.5) : null);
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const layers: LayerWeights[] = Array.from({ length: c.numLayers }, () => ({
    attnNorm: ones(c.hiddenSize),
    wq: mat(q, c.hiddenSize),
    wk: mat(kv, c.hiddenSize),
    wv: mat(kv, c.hiddenSize),
    wo: mat(c.hiddenSize, q),
    bq: bias(q),
    bk: bias(kv),
    bv: bias(kv),
    bo: null,
    qNorm: headNorm(),
    kNorm: headNorm(),
    ffnNorm: ones(c.hiddenSize),
    wGate: mat(c.intermediateSize, c.hiddenSize),
    wUp: mat(c.intermediateSize, c.hiddenSize),
    wDown: mat(c.hiddenSize, c.intermediateSize),
  }));
  const embed = f32Matrix(randomArray(c.vocabSize * c.hiddenSize, rand, 1), c.vocabSize, c.hiddenSize);
  const weights: Weights = { embed, layers, finalNorm: ones(c.hiddenSize), lmHead: mat(c.vocabSize, c.hiddenSize) };
  return new Transformer(c, weights);
}

/**
 * A random-weight model as a Hugging Face folder in `dir`: config.json, model.safetensors and
 * stories260K's tokenizer (so vocab ≥ 512), for tests that load, calibrate and generate.
 */
export function writeRandomModelFolder(s: RandomModelSpec, dir: string): string {
  const tf = randomTransformer(s);
  const c = tf.config;
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    architectures: [c.architecture], hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize, num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, head_dim: c.headDim, vocab_size: c.vocabSize,
    rope_theta: c.ropeTheta, rms_norm_eps: c.rmsNormEps, max_position_embeddings: 4096, tie_word_embeddings: false,
    bos_token_id: 1, eos_token_id: 2, torch_dtype: "float32",
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], data: Float32Array) => tensors.push({ name, dtype: "F32", shape, data });
  const w = tf.weights;
  add("model.embed_tokens.weight", [w.embed.rows, w.embed.cols], w.embed.data as Float32Array);
  w.layers.forEach((lw, l) => {
    const names = hfNames(l);
    for (const [key, v] of Object.entries(lw) as [keyof typeof names, Float32Array | { rows: number; cols: number; data: Float32Array } | null][]) {
      if (!v) continue;
      if (v instanceof Float32Array) add(names[key], [v.length], v);
      else add(names[key], [v.rows, v.cols], v.data);
    }
  });
  add("model.norm.weight", [w.finalNorm.length], w.finalNorm);
  add("lm_head.weight", [w.lmHead.rows, w.lmHead.cols], w.lmHead.data as Float32Array);
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES_DIR, f), path.join(dir, f));
  return dir;
}

/**
 * A random-weight Hugging Face folder (config.json, model.safetensors, stories260K's tokenizer)
 * in `dtype`; untied lm_head unless `tied`. For tests that load through checkpoint.ts.
 */
export function writeRandomModelDir(dir: string, s: RandomModelSpec & { dtype?: "F32" | "BF16" | "F16"; tied?: boolean }): string {
  const rand = seededRandom(s.seed ?? 1);
  const dtype = s.dtype ?? "BF16";
  const tensors: TensorToWrite[] = [];
  const mat = (name: string, rows: number, cols: number) => tensors.push({ name, dtype, shape: [rows, cols], data: randomArray(rows * cols, rand, 1.7 / Math.sqrt(cols)) });
  const norm = (name: string, n: number) => tensors.push({ name, dtype: "F32", shape: [n], data: Float32Array.from(randomArray(n, rand, 0.1), (v) => 1 + v) });
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  tensors.push({ name: "model.embed_tokens.weight", dtype, shape: [s.vocab, s.hidden], data: randomArray(s.vocab * s.hidden, rand, 1) });
  for (let l = 0; l < s.layers; l++) {
    const n = hfNames(l);
    norm(n.attnNorm, s.hidden);
    mat(n.wq, q, s.hidden);
    mat(n.wk, kv, s.hidden);
    mat(n.wv, kv, s.hidden);
    mat(n.wo, s.hidden, q);
    norm(n.ffnNorm, s.hidden);
    mat(n.wGate, s.intermediate, s.hidden);
    mat(n.wUp, s.intermediate, s.hidden);
    mat(n.wDown, s.hidden, s.intermediate);
  }
  norm("model.norm.weight", s.hidden);
  if (!s.tied) mat("lm_head.weight", s.vocab, s.hidden);
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    architectures: [s.architecture ?? "LlamaForCausalLM"], hidden_size: s.hidden, intermediate_size: s.intermediate, num_hidden_layers: s.layers,
    num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, head_dim: s.headDim, vocab_size: s.vocab, max_position_embeddings: 4096,
    rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: s.tied ?? false, bos_token_id: 1, eos_token_id: 2,
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES_DIR, f), path.join(dir, f));
  return dir;
}
