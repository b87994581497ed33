// The eval runner (spec §8): for each problem of [start, end) and response i, generate with
// seed + i, extract and judge the answer, and write the file after every response (atomic),
// so a killed run loses at most the response in progress and a rerun skips what is done.

import { createCache, type CacheSpec } from "../cache/factory.js";
import { generate, type Prompt } from "../generate/generate.js";
import type { LoadedModel } from "../model/checkpoint.js";
import { answersEquivalent, extractAnswer } from "./answer.js";
import { problemPrompt, type Benchmark, type Problem } from "./benchmarks.js";
import { readResponseFile, responseKey, writeResponseFile, type ResponseFile } from "./responses.js";

export interface EvalOptions {
  benchmark: Benchmark;
  problems: Problem[];
  nResponses: number;
  seed: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  cache: CacheSpec;
  output: string;
  /** Called after each response is written (or found done). */
  onResponse?: (e: { key: string; done: number; total: number; outputTokens: number; generated: boolean }) => void;
}

export interface EvalResult {
  records: ResponseFile;
  generated: number;
  skipped: number;
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

export function runEval(model: LoadedModel, o: EvalOptions): EvalResult {
  const records = readResponseFile(o.output);
  const order = o.benchmark.problems.map((p) => p.id);
  const total = o.problems.length * o.nResponses;
  let done = 0;
  let generated = 0;
  for (const p of o.problems) {
    const prompt = evalPrompt(model, p);
    for (let i = 0; i < o.nResponses; i++) {
      const key = responseKey(p.id, i);
      if (records[key]) {
        o.onResponse?.({ key, done: ++done, total, outputTokens: 0, generated: false });
        continue;
      }
      const seed = o.seed + i;
      const r = generate(model, prompt, {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topP: o.topP,
        seed,
        cache: createCache(model.config, o.cache),
      });
      const { answer, judgement } = judgeResponse(r.text, p.gold);
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
      };
      writeResponseFile(o.output, records, order);
      generated++;
      o.onResponse?.({ key, done: ++done, total, outputTokens: r.outputTokens, generated: true });
    }
  }
  return { records, generated, skipped: total - generated };
}
