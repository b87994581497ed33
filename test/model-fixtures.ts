// Random-weight models built in memory for tests (no files): realistic shapes, seeded.

import { parseModelConfig, type ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/forward.js";
import { f32Matrix } from "../src/tensor/matrix.js";
import type { LayerWeights, Weights } from "../src/model/weights.js";
import { randomArray, seededRandom } from "./helpers.js";

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
