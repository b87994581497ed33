// `pmkvq generate`: one prompt in, text out (streamed), or one JSON object with --json.

import fs from "node:fs";
import { Command } from "commander";
import { UsageError } from "../errors.js";
import { generate, resolveContextLimit } from "../generate/generate.js";
import { explicitOptions, formatBytes, parseFloatArg, parseIntArg } from "./args.js";
import { createCache } from "../cache/factory.js";
import { KvTraceWriter } from "../cache/trace.js";
import { addCacheOptions, applyModelTransforms, cacheSpecFromFlags, checkCacheFlags, type CacheFlags } from "./cache-options.js";
import { contextLimitOption, loadModelWithProgress, modelOption, weightsDtypeOption } from "./common.js";
import { checkInputFile } from "../util/paths.js";
import type { WeightDtype } from "../tensor/matrix.js";

export interface GenerateFlags extends CacheFlags {
  model: string;
  weightsDtype: WeightDtype | "auto";
  prompt?: string;
  promptFile?: string;
  chat?: boolean;
  system?: string;
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed: number;
  json?: boolean;
  prefillChunk: number;
  contextLimit?: number;
}

export function generateCommand(run: (flags: GenerateFlags) => void | Promise<void>): Command {
  const cmd = new Command("generate")
    .description("Generate a continuation of a prompt (streams text to stdout)")
    .addOption(modelOption())
    .addOption(weightsDtypeOption())
    .option("--prompt <text>", "the prompt text")
    .option("--prompt-file <file>", "read the prompt from a file instead")
    .option("--chat", "wrap the prompt as one user turn in the model's chat template (with the generation prompt)")
    .option("--system <text>", "with --chat: a system message before the user turn")
    .option("--max-new-tokens <n>", "stop after this many generated tokens", parseIntArg(0), 256)
    .option("--temperature <t>", "sampling temperature; 0 = greedy (default: generation_config.json, else greedy)", parseFloatArg(0))
    .option("--top-p <p>", "nucleus sampling mass in (0, 1] (default: generation_config.json, else 1)", parseFloatArg(0, 1, true))
    .option("--top-k <k>", "keep the k most likely tokens before top-p (ties kept); 0 = no cut (default: generation_config.json's top_k, else 50 — transformers' default, which the original samples with)", parseIntArg(0))
    .option("--seed <n>", "random seed for sampling (same seed → same output)", parseIntArg(0, 2 ** 32 - 1), 0)
    .option("--json", "print one JSON object (ids, text, finishReason, token counts, timings, kv memory) instead of streaming")
    .option("--prefill-chunk <n>", "prompt tokens per forward pass during prefill", parseIntArg(1), 128)
    .addOption(contextLimitOption());
  return addCacheOptions(cmd).action(async (flags: GenerateFlags, c: Command) => run({ ...flags, explicit: explicitOptions(c) }));
}

export async function runGenerate(flags: GenerateFlags): Promise<void> {
  if ((flags.prompt === undefined) === (flags.promptFile === undefined)) throw new UsageError("give exactly one of --prompt TEXT or --prompt-file FILE");
  let text = flags.prompt ?? "";
  if (flags.promptFile !== undefined) {
    checkInputFile(flags.promptFile, "--prompt-file");
    text = fs.readFileSync(flags.promptFile, "utf8");
  }
  if (flags.system !== undefined && !flags.chat) throw new UsageError("--system needs --chat");
  checkCacheFlags(flags);
  // the prompt's bytes bound its tokens: the KV cache planned into memory is at most this context
  using model = loadModelWithProgress(flags.model, !flags.json, flags.weightsDtype, { kvTokens: flags.maxNewTokens + Buffer.byteLength(text) + 1, chunkTokens: flags.prefillChunk });
  const context = resolveContextLimit(model.config, flags.contextLimit);
  if (context.warning) process.stderr.write(context.warning + "\n");
  const spec = cacheSpecFromFlags(flags, model.config);
  applyModelTransforms(flags, model, spec);
  using cache = createCache(model.config, spec, model.transformer.placement);
  const trace = flags.kvTrace ? new KvTraceWriter(flags.kvTrace) : null;
  const messages = [...(flags.system ? [{ role: "system" as const, content: flags.system }] : []), { role: "user" as const, content: text }];
  const prompt = flags.chat ? { messages } : text;
  let result;
  try {
    result = generate(model, prompt, {
      cache,
      maxNewTokens: flags.maxNewTokens,
      temperature: flags.temperature,
      topP: flags.topP,
      topK: flags.topK,
      seed: flags.seed,
      prefillChunk: flags.prefillChunk,
      contextLimit: context.limit,
      onText: flags.json ? undefined : (delta) => process.stdout.write(delta),
      onStep: trace ? (step, c) => trace.record(step, c) : undefined,
    });
  } catch (e) {
    trace?.abort();
    throw e;
  }
  trace?.finish();
  if (flags.json) {
    process.stdout.write(JSON.stringify({ ...result, loadMs: model.loadMs, weightBytes: model.weightBytes }) + "\n");
    return;
  }
  process.stdout.write("\n");
  const t = result.timings;
  process.stderr.write(
    `[${result.finishReason}] prompt ${result.promptTokens} tok, output ${result.outputTokens} tok · ` +
      `load ${model.loadMs.toFixed(0)} ms (weights ${formatBytes(model.weightBytes)}) · ` +
      `prefill ${t.prefillTokPerS.toFixed(1)} tok/s · decode ${t.decodeTokPerS.toFixed(1)} tok/s · ` +
      `KV cache (${result.kv.method}) ${formatBytes(result.kv.totalHeldBytes)} held, ${formatBytes(result.kv.totalCodeBytes)} codes` +
      (flags.method === "pm-kvq" ? `, body bits [${result.kv.blocks.map((b) => b.bodyBits).join(",")}]` : "") + "\n",
  );
  if (result.kvBudgetMessage) process.stderr.write(`KV budget: ${result.kvBudgetMessage}\n`);
  if (result.finishReason === "context") process.stderr.write(`stopped at the model's context of ${result.contextLimit} positions\n`);
}
