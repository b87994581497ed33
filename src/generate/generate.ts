// The generation loop: prefill the prompt in chunks, then decode one token at a time
// until an EOS id, the token limit, or the KV budget stops it.

import { createFullPrecisionCache } from "../cache/full.js";
import type { KvCache, KvStats } from "../model/kv-cache.js";
import { KvBudgetError, UsageError } from "../errors.js";
import type { LoadedModel } from "../model/checkpoint.js";
import type { ModelConfig } from "../model/config.js";
import { IncrementalDecoder, type ChatMessage } from "../tokenizer/tokenizer.js";
import { Rng } from "../util/rng.js";
import { sampleToken, type SamplingParams } from "./sampler.js";

export type FinishReason = "stop" | "length" | "kv_budget" | "context";

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Default: generation_config.json (do_sample true → its temperature), else greedy. */
  temperature?: number;
  topP?: number;
  /** Default: generation_config.json's top_k, else transformers' default 50; 0 disables. */
  topK?: number;
  seed?: number;
  /**
   * The cache to fill (the caller owns it and disposes it); when absent a full-precision cache
   * is made for this call and disposed when it returns. Reused caches continue at their length.
   */
  cache?: KvCache;
  /**
   * Positions the sequence may use (default: max_position_embeddings). A prompt past it is
   * refused; generation stops there with finish reason "context". See `resolveContextLimit`.
   */
  contextLimit?: number;
  /** Ids that end generation; default: the model's EOS ids. */
  eosTokenIds?: number[];
  /** Tokens per prefill forward (bounds scratch memory). */
  prefillChunk?: number;
  /** Streaming: called with each piece of new text as it decodes. */
  onText?: (delta: string) => void;
  /** Called with each new token id (after it is sampled). */
  onToken?: (id: number, step: number) => void;
  /** Called with the cache after the prefill (step 0) and after each decode step (1, 2, …). */
  onStep?: (step: number, cache: KvCache) => void;
}

export interface GenerateResult {
  /** Generated ids, without the stop token. */
  ids: number[];
  text: string;
  finishReason: FinishReason;
  /** The EOS id that stopped generation, when finishReason is "stop". */
  stopTokenId: number | null;
  promptTokens: number;
  outputTokens: number;
  sampling: SamplingParams & { seed: number };
  timings: {
    prefillMs: number;
    decodeMs: number;
    prefillTokPerS: number;
    /** Decode forward passes per second. */
    decodeTokPerS: number;
  };
  kv: KvStats;
  /** Set when finishReason is "kv_budget". */
  kvBudgetMessage?: string;
  /** The context limit generation ran under (positions). */
  contextLimit: number;
}

/**
 * The context limit a run may use: max_position_embeddings, or `requested`. Going past the
 * model's limit is allowed only for models with RoPE scaling (with a warning to show the
 * user); without scaling, positions past it extrapolate into garbage and are refused.
 */
export function resolveContextLimit(config: ModelConfig, requested?: number): { limit: number; warning: string | null } {
  const max = config.maxPositionEmbeddings;
  if (requested === undefined) return { limit: max, warning: null };
  if (!Number.isInteger(requested) || requested < 1) throw new UsageError(`--context-limit must be a positive integer (got ${requested})`);
  if (requested <= max) return { limit: requested, warning: null };
  if (config.ropeScaling.type === "default") {
    throw new UsageError(
      `--context-limit ${requested} is past this model's max_position_embeddings (${max}) and the model has no RoPE scaling: positions past ${max} were never trained and give garbage`,
    );
  }
  return {
    limit: requested,
    warning: `warning: --context-limit ${requested} goes past max_position_embeddings ${max} (RoPE scaling "${config.ropeScaling.type}", factor ${config.ropeScaling.factor}); quality past ${max} positions is not guaranteed`,
  };
}

/**
 * Refuse a prompt that does not fit the context (positions already held + its tokens).
 * `source` says where the limit comes from (e.g. "max_position_embeddings in DIR/config.json").
 */
export function checkPromptFits(promptTokens: number, held: number, limit: number, what = "the prompt", source = ""): void {
  if (held + promptTokens > limit) {
    throw new UsageError(
      `${what} has ${promptTokens} tokens${held ? ` (after ${held} already in the cache)` : ""}, past the model's context of ${limit} tokens` +
        (source ? ` (${source})` : ""),
    );
  }
}

/** Where a context limit comes from, for messages. */
export function contextSource(model: LoadedModel, limit: number): string {
  return limit === model.config.maxPositionEmbeddings ? `max_position_embeddings in ${model.dir.toLowerCase().endsWith(".gguf") ? `${model.dir} (context_length)` : `${model.dir}/config.json`}; --context-limit sets another` : "--context-limit";
}

export type Prompt = string | number[] | { messages: ChatMessage[] };

/**
 * transformers' GenerationConfig default `top_k`: it applies whenever sampling and the model's
 * generation_config.json does not set top_k (R1-Distill's does not), so the original samples
 * from the 50 most likely tokens.
 */
export const TRANSFORMERS_DEFAULT_TOP_K = 50;

/**
 * Resolve sampling parameters: explicit values, else generation_config.json, else greedy; top-k
 * as transformers resolves it (explicit, else the file's top_k, else 50).
 */
export function resolveSampling(model: LoadedModel, temperature?: number, topP?: number, topK?: number): Required<SamplingParams> {
  const g = model.generation;
  const t = temperature ?? (g.doSample ? (g.temperature ?? 1) : 0);
  const p = topP ?? (g.doSample ? (g.topP ?? 1) : 1);
  const k = topK ?? g.topK ?? TRANSFORMERS_DEFAULT_TOP_K;
  if (!(t >= 0) || !Number.isFinite(t)) throw new UsageError(`temperature must be a finite number ≥ 0 (got ${t})`);
  if (!(p > 0 && p <= 1)) throw new UsageError(`top-p must be in (0, 1] (got ${p})`);
  if (!(Number.isInteger(k) && k >= 0)) throw new UsageError(`top-k must be an integer ≥ 0 (got ${k})`);
  return { temperature: t, topP: p, topK: k };
}

export function encodePrompt(model: LoadedModel, prompt: Prompt): number[] {
  if (Array.isArray(prompt)) return prompt;
  if (typeof prompt === "string") return model.tokenizer.encode(prompt);
  return model.tokenizer.encodeChat(prompt.messages, true);
}

export function generate(model: LoadedModel, prompt: Prompt, opts: GenerateOptions = {}): GenerateResult {
  const c = model.config;
  const promptIds = encodePrompt(model, prompt);
  if (promptIds.length === 0) throw new UsageError("the prompt encodes to no tokens");
  const maxNew = opts.maxNewTokens ?? 256;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new UsageError(`max new tokens must be a non-negative integer (got ${maxNew})`);
  const sampling = resolveSampling(model, opts.temperature, opts.topP, opts.topK);
  const seed = opts.seed ?? 0;
  const eos = new Set(opts.eosTokenIds ?? model.generation.eosTokenIds);
  const contextLimit = opts.contextLimit ?? c.maxPositionEmbeddings;
  const held = opts.cache?.length ?? 0;
  checkPromptFits(promptIds.length, held, contextLimit, "the prompt", contextSource(model, contextLimit));
  const chunk = opts.prefillChunk ?? 128;
  if (!Number.isInteger(chunk) || chunk < 1) throw new UsageError(`prefill chunk must be a positive integer (got ${chunk})`);
  if (opts.cache) return run(model, promptIds, opts.cache, { maxNew, sampling, seed, eos, chunk, contextLimit }, opts);
  using cache = createFullPrecisionCache(c, c.numLayers);
  return run(model, promptIds, cache, { maxNew, sampling, seed, eos, chunk, contextLimit }, opts);
}

interface RunParams {
  maxNew: number;
  sampling: SamplingParams;
  seed: number;
  eos: Set<number>;
  chunk: number;
  contextLimit: number;
}

function run(model: LoadedModel, promptIds: number[], cache: KvCache, p: RunParams, opts: GenerateOptions): GenerateResult {
  const { maxNew, sampling, seed, eos, chunk, contextLimit } = p;
  const rng = new Rng(seed);
  const tf = model.transformer;
  const decoder = new IncrementalDecoder(model.tokenizer, promptIds);

  const ids: number[] = [];
  let finishReason: FinishReason = "length";
  let stopTokenId: number | null = null;
  let kvBudgetMessage: string | undefined;
  let pos = cache.length;
  let prefillMs = 0;
  let decodeMs = 0;
  let decodeSteps = 0;
  let decodeStart = 0;

  try {
    // prefill
    const t0 = performance.now();
    let logits: Float32Array = new Float32Array(0);
    for (let i = 0; i < promptIds.length; i += chunk) {
      const part = promptIds.slice(i, i + chunk);
      logits = tf.forward(part, part.map((_, j) => pos + j), cache, "last");
      pos += part.length;
    }
    prefillMs = performance.now() - t0;
    opts.onStep?.(0, cache);
    // decode
    decodeStart = performance.now();
    for (let step = 0; step < maxNew; step++) {
      const id = sampleToken(logits, sampling, rng);
      if (eos.has(id)) {
        finishReason = "stop";
        stopTokenId = id;
        break;
      }
      ids.push(id);
      opts.onToken?.(id, step);
      const delta = decoder.push(id);
      if (delta) opts.onText?.(delta);
      if (step === maxNew - 1) break;
      if (pos >= contextLimit) {
        // the token was predicted within the context, but there is no position left to feed it
        finishReason = "context";
        break;
      }
      logits = tf.forward([id], [pos], cache, "last");
      pos++;
      decodeSteps++;
      opts.onStep?.(decodeSteps, cache);
    }
  } catch (e) {
    if (!(e instanceof KvBudgetError)) throw e;
    finishReason = "kv_budget";
    kvBudgetMessage = e.message;
  }
  if (decodeStart > 0) decodeMs = performance.now() - decodeStart;

  return {
    ids,
    text: model.tokenizer.decode(ids),
    finishReason,
    stopTokenId,
    promptTokens: promptIds.length,
    outputTokens: ids.length,
    sampling: { ...sampling, seed },
    timings: {
      prefillMs,
      decodeMs,
      prefillTokPerS: prefillMs > 0 ? (promptIds.length / prefillMs) * 1000 : 0,
      decodeTokPerS: decodeMs > 0 ? (decodeSteps / decodeMs) * 1000 : 0,
    },
    kv: cache.stats(),
    ...(kvBudgetMessage ? { kvBudgetMessage } : {}),
    contextLimit,
  };
}
