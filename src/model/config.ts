// config.json → ModelConfig: the few numbers the transformer needs, validated.

import { ConfigError } from "../errors.js";
import { preview } from "../util/json.js";

export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];
export const SUPPORTED_ROPE_TYPES = ["default", "linear", "llama3"] as const;

export interface RopeScaling {
  /** "factors": per-frequency divisors given outright (a GGUF's rope_freqs tensor, how llama.cpp stores llama3 scaling). */
  type: "default" | "linear" | "llama3" | "factors";
  factor: number;
  /** llama3 only. */
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
  /** "factors" only: inv_freq[i] is divided by factors[i] (headDim / 2 entries). */
  factors?: number[];
}

export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number; // dim of the residual stream
  intermediateSize: number; // hidden dim of the SwiGLU MLP
  numLayers: number; // transformer blocks
  numHeads: number; // query heads
  numKvHeads: number; // key/value heads (GQA: numHeads % numKvHeads === 0)
  headDim: number; // per-head dim (explicit head_dim or hiddenSize / numHeads)
  vocabSize: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2 always, Llama and Qwen3 with attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama and Qwen3 with attention_bias). */
  oBias: boolean;
  /** Per-head RMSNorm on q and k after their projections, before RoPE (Qwen3: q_norm, k_norm). */
  qkNorm: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The checkpoint's own dtype (informational). */
  torchDtype: string;
}

function need(raw: Record<string, unknown>, key: string, file: string): number {
  const v = raw[key];
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`${file}: "${key}" must be a number (got ${preview(v)})`);
  return v;
}

function positiveInt(raw: Record<string, unknown>, key: string, file: string): number {
  const v = need(raw, key, file);
  if (!Number.isSafeInteger(v) || v <= 0) throw new ConfigError(`${file}: "${key}" must be a positive integer (got ${v})`);
  return v;
}

/** A finite number > `min` (> 0 by default); `why` says what a bad value would break. */
function above(raw: Record<string, unknown>, key: string, file: string, min = 0, why = ""): number {
  const v = need(raw, key, file);
  if (!(v > min)) throw new ConfigError(`${file}: "${key}" must be a number > ${min} (got ${v})${why ? `: ${why}` : ""}`);
  return v;
}

export function tokenIdList(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/** Parse a Hugging Face config.json object. `file` names it in errors. */
export function parseModelConfig(raw: unknown, file = "config.json"): ModelConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${file}: not a JSON object`);
  const c = raw as Record<string, unknown>;
  if (!Array.isArray(c.architectures)) {
    throw new ConfigError(
      `${file}: "architectures" must be a list of model class names, e.g. ["LlamaForCausalLM"] (got ${preview(c.architectures)}); supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  const archs = c.architectures as unknown[];
  const architecture = archs.find((a): a is Architecture => (SUPPORTED_ARCHITECTURES as readonly unknown[]).includes(a));
  if (!architecture) {
    throw new ConfigError(
      `${file}: architecture ${preview(archs)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  const hiddenSize = positiveInt(c, "hidden_size", file);
  const numHeads = positiveInt(c, "num_attention_heads", file);
  const numKvHeads = c.num_key_value_heads == null ? numHeads : positiveInt(c, "num_key_value_heads", file);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(`${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  let headDim: number;
  if (c.head_dim != null) headDim = positiveInt(c, "head_dim", file);
  else {
    if (hiddenSize % numHeads !== 0) throw new ConfigError(`${file}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw new ConfigError(`${file}: head_dim ${headDim} must be even for RoPE`);
  if (c.hidden_act != null && c.hidden_act !== "silu") {
    throw new ConfigError(`${file}: hidden_act ${preview(c.hidden_act)} is not supported; supported: silu`);
  }
  if (c.mlp_bias === true) throw new ConfigError(`${file}: mlp_bias true is not supported`);
  if ((architecture === "Qwen2ForCausalLM" || architecture === "Qwen3ForCausalLM") && c.use_sliding_window === true) {
    throw new ConfigError(`${file}: use_sliding_window true is not supported (full attention only)`);
  }
  const attentionBias = c.attention_bias === true;
  // transformers ≥ 5 writes rope_theta and the scaling into one "rope_parameters" object
  if (c.rope_parameters != null && (typeof c.rope_parameters !== "object" || Array.isArray(c.rope_parameters))) {
    throw new ConfigError(`${file}: "rope_parameters" must be an object or null (got ${preview(c.rope_parameters)})`);
  }
  const ropeParams = (c.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeTheta = ropeParams?.rope_theta ?? c.rope_theta;
  const maxPos = c.max_position_embeddings == null ? 4096 : positiveInt(c, "max_position_embeddings", file);
  return {
    architecture,
    hiddenSize,
    intermediateSize: positiveInt(c, "intermediate_size", file),
    numLayers: positiveInt(c, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: positiveInt(c, "vocab_size", file),
    maxPositionEmbeddings: maxPos,
    rmsNormEps: c.rms_norm_eps == null ? 1e-6 : above(c, "rms_norm_eps", file),
    ropeTheta: ropeTheta == null ? 10000 : above({ rope_theta: ropeTheta }, "rope_theta", file),
    ropeScaling: parseRopeScaling(ropeParams ?? c.rope_scaling, maxPos, file),
    tieWordEmbeddings: c.tie_word_embeddings === true,
    qkvBias: architecture === "Qwen2ForCausalLM" || attentionBias,
    oBias: architecture !== "Qwen2ForCausalLM" && attentionBias, // Qwen2's o_proj never has one
    qkNorm: architecture === "Qwen3ForCausalLM",
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: tokenIdList(c.eos_token_id),
    torchDtype: typeof c.torch_dtype === "string" ? c.torch_dtype : typeof c.dtype === "string" ? (c.dtype as string) : "unknown",
  };
}

function parseRopeScaling(raw: unknown, maxPos: number, file: string): RopeScaling {
  const plain: RopeScaling = { type: "default", factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: maxPos };
  if (raw == null) return plain;
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(`${file}: rope_scaling must be an object or null (got ${preview(raw)})`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type ?? "default";
  const where = `${file}: rope_scaling`;
  if (type === "default") return plain;
  if (type === "linear") return { ...plain, type, factor: above(r, "factor", where) };
  if (type === "llama3") {
    const lowFreqFactor = above(r, "low_freq_factor", where, 0, "the long-wavelength bound divides by it");
    return {
      type,
      factor: above(r, "factor", where),
      lowFreqFactor,
      // the smoothing between the two wavelength bounds divides by high − low
      highFreqFactor: above(r, "high_freq_factor", where, lowFreqFactor, "it must exceed low_freq_factor (the smoothing divides by their difference)"),
      originalMaxPositionEmbeddings: positiveInt(r, "original_max_position_embeddings", where),
    };
  }
  throw new ConfigError(`${where} type ${preview(type)} is not supported; supported: ${SUPPORTED_ROPE_TYPES.join(", ")}`);
}

/** kv_hidden = num_key_value_heads × head_dim (spec §4). */
export function kvHidden(c: ModelConfig): number {
  return c.numKvHeads * c.headDim;
}
