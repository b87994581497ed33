// The eval runner (spec §8): for each problem of [start, end) and response i, generate with
// seed + i, extract and judge the answer, and write the file after every response (atomic),
// so a killed run loses at most the response in progress and a rerun skips what is done.
// The output is locked while a run writes it, every record carries the run's settings, and
// a rerun refuses an output made under other settings (unless forceResume).

import { cacheSettings, createCache, type CacheSpec } from "../cache/factory.js";
import { SettingsMismatchError } from "../errors.js";
import { checkPromptFits, contextSource, encodePrompt, generate, resolveSampling, type Prompt } from "../generate/generate.js";
import type { LoadedModel } from "../model/checkpoint.js";
import { modelFingerprint } from "../model/fingerprint.js";
import { lockOutput } from "../util/lock.js";
import { packageVersion } from "../util/version.js";
import { answersEquivalent, extractAnswer } from "./answer.js";
import { INSTRUCTION, problemPrompt, type Benchmark, type Problem } from "./benchmarks.js";
import { extractCode, isCodeProblem, LIVECODEBENCH_PROMPT_TEMPLATE } from "./livecodebench.js";
import { readResponseFile, responseKey, writeResponseFile, type ResponseFile } from "./responses.js";
import { diffSettings, formatDifferences, settingsId, type RunSettings } from "./settings.js";

export interface EvalOptions {
  benchmark: Benchmark;
  problems: Problem[];
  nResponses: number;
  seed: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  /** Default: generation_config.json's top_k, else transformers' 50 (generate.ts). */
  topK?: number;
  /**
   * Prompt tokens per forward pass; default the whole prompt in one pass, as the original's
   * prefill (so with the original's step order prefill attention is never quantized).
   */
  prefillChunk?: number;
  cache: CacheSpec;
  output: string;
  /** Positions a response may use (default: max_position_embeddings); see resolveContextLimit. */
  contextLimit?: number;
  /** Keep responses the output holds from other settings and add this run's (the file then mixes them). */
  forceResume?: boolean;
  /** Called after each response is written (or found done). */
  onResponse?: (e: { key: string; done: number; total: number; outputTokens: number; generated: boolean }) => void;
  /** One-line notes for the user (a stale lock taken over, responses kept with --force-resume). */
  onNotice?: (message: string) => void;
}

export interface EvalResult {
  records: ResponseFile;
  generated: number;
  skipped: number;
  settings: RunSettings;
}

/** The prompt of a problem: one user turn in the chat template, or plain text without one. */
export function evalPrompt(model: LoadedModel, p: Problem): Prompt {
  const text = problemPrompt(p);
  return model.tokenizer.hasChatTemplate ? { messages: [{ role: "user", content: text }] } : text;
}

export function judgeResponse(response: string, gold: string | null): { answer: string | null; judgement: boolean | null } {
  const answer = extractAnswer(response);
  if (gold === null) return { answer, judgement: null };
  return { answer, judgement: answer !== null && answersEquivalent(answer, gold) };
}

/** Everything that changes a response of this run (eval/settings.ts). */
export function evalSettings(model: LoadedModel, o: Pick<EvalOptions, "cache" | "seed" | "maxNewTokens" | "temperature" | "topP" | "topK" | "contextLimit" | "prefillChunk"> & { benchmark?: Benchmark }): RunSettings {
  const c = model.config;
  const tf = model.transformer;
  return {
    "pmkvq.version": packageVersion(),
    "model.fingerprint": modelFingerprint(model.dir),
    "model.architecture": c.architecture,
    "model.shape": `${c.numLayers} blocks × ${c.hiddenSize}, ${c.numHeads}/${c.numKvHeads} heads × ${c.headDim}`,
    "model.weights_dtype": tf.weights.layers[0]?.wq.dtype ?? tf.weights.embed.dtype,
    "model.transforms": [...tf.transforms],
    method: o.cache.method,
    ...cacheSettings(c, o.cache),
    "sampling.temperature": o.temperature,
    "sampling.top_p": o.topP,
    "sampling.top_k": resolveSampling(model, o.temperature, o.topP, o.topK).topK,
    "sampling.seed": o.seed,
    max_new_tokens: o.maxNewTokens,
    prefill_chunk: o.prefillChunk ?? "whole prompt",
    context_limit: o.contextLimit ?? c.maxPositionEmbeddings,
    "prompt.format": model.tokenizer.hasChatTemplate ? "chat-template" : "plain",
    "prompt.instruction": o.benchmark?.kind === "code" ? LIVECODEBENCH_PROMPT_TEMPLATE : INSTRUCTION,
  };
}

/** Refuse an output whose records were made under other settings (or none recorded). */
function checkResumable(output: string, records: ResponseFile, settings: RunSettings, id: string, force: boolean, notice?: (m: string) => void): void {
  const keys = Object.keys(records);
  const unknown = keys.filter((k) => !records[k].settings);
  const other = keys.filter((k) => records[k].settings && records[k].settings_id !== id);
  if (unknown.length === 0 && other.length === 0) return;
  const parts: string[] = [];
  if (other.length) {
    const theirs = records[other[0]].settings!;
    parts.push(`${other.length} of its ${keys.length} responses were made with other settings (${formatDifferences(diffSettings(theirs, settings))})`);
  }
  if (unknown.length) parts.push(`${unknown.length} of its ${keys.length} responses carry no settings (written by an older pm-kvq or the original tool)`);
  const what = `--output ${output}: ${parts.join("; ")}`;
  if (!force) throw new SettingsMismatchError(`${what}; use another --output, or --force-resume to keep them and add this run's`);
  notice?.(`${what}; kept (--force-resume): the file now mixes settings`);
}

export function runEval(model: LoadedModel, o: EvalOptions): EvalResult {
  using _lock = lockOutput(o.output, `--output ${o.output}`, { onTakeover: o.onNotice });
  const settings = evalSettings(model, o);
  const id = settingsId(settings);
  const records = readResponseFile(o.output);
  checkResumable(o.output, records, settings, id, o.forceResume === true, o.onNotice);
  // every prompt must fit the context before any response is generated
  const limit = o.contextLimit ?? model.config.maxPositionEmbeddings;
  const prompts = o.problems.map((p) => {
    const ids = encodePrompt(model, evalPrompt(model, p));
    checkPromptFits(ids.length, 0, limit, `the prompt of problem ${p.id}`, contextSource(model, limit));
    return ids;
  });
  const order = o.benchmark.problems.map((p) => p.id);
  const total = o.problems.length * o.nResponses;
  let done = 0;
  let generated = 0;
  o.problems.forEach((p, pi) => {
    for (let i = 0; i < o.nResponses; i++) {
      const key = responseKey(p.id, i);
      if (records[key]) {
        o.onResponse?.({ key, done: ++done, total, outputTokens: 0, generated: false });
        continue;
      }
      const seed = o.seed + i;
      using cache = createCache(model.config, o.cache, model.transformer.placement);
      const r = generate(model, prompts[pi], {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topP: o.topP,
        topK: o.topK,
        seed,
        cache,
        prefillChunk: o.prefillChunk ?? prompts[pi].length,
        contextLimit: limit,
      });
      // code is judged by running its tests after generation (eval/code-judge.ts judgeCodeOutput)
      const { answer, judgement } = isCodeProblem(p) ? { answer: extractCode(r.text), judgement: null } : judgeResponse(r.text, p.gold);
      records[key] = {
        seed,
        response: r.text,
        response_answer: answer,
        gold: p.gold,
        judgement,
        input_len: r.promptTokens,
        output_len: r.outputTokens,
        finish_reason: r.finishReason,
        kv: { method: r.kv.method, totalCodeBytes: r.kv.totalCodeBytes, totalHeldBytes: r.kv.totalHeldBytes, bodyBits: r.kv.blocks.map((b) => b.bodyBits) },
        settings,
        settings_id: id,
      };
      writeResponseFile(o.output, records, order);
      generated++;
      o.onResponse?.({ key, done: ++done, total, outputTokens: r.outputTokens, generated: true });
    }
  });
  return { records, generated, skipped: total - generated, settings };
}
