// `pmkvq chat`: an interactive multi-turn session; the KV cache is kept across turns.

import readline from "node:readline";
import { Command } from "commander";
import { createCache } from "../cache/factory.js";
import { KvTraceWriter } from "../cache/trace.js";
import { ChatSession } from "../generate/chat.js";
import { addCacheOptions, applyModelTransforms, cacheSpecFromFlags, checkCacheFlags, type CacheFlags } from "./cache-options.js";
import { explicitOptions, formatBytes, parseFloatArg, parseIntArg } from "./args.js";
import { contextLimitOption, loadModelWithProgress, modelOption, weightsDtypeOption } from "./common.js";
import { resolveContextLimit } from "../generate/generate.js";
import { UsageError } from "../errors.js";
import type { WeightDtype } from "../tensor/matrix.js";

export interface ChatFlags extends CacheFlags {
  model: string;
  weightsDtype: WeightDtype | "auto";
  system?: string;
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed: number;
  contextLimit?: number;
}

export function chatCommand(run: (flags: ChatFlags) => void | Promise<void>): Command {
  const cmd = new Command("chat")
    .description("Interactive multi-turn chat (type /reset to start over, /exit or Ctrl-D to quit)")
    .addOption(modelOption())
    .addOption(weightsDtypeOption())
    .option("--system <text>", "a system message at the start of the conversation")
    .option("--max-new-tokens <n>", "limit per reply", parseIntArg(1), 1024)
    .option("--temperature <t>", "sampling temperature; 0 = greedy (default: generation_config.json, else greedy)", parseFloatArg(0))
    .option("--top-p <p>", "nucleus sampling mass in (0, 1]", parseFloatArg(0, 1, true))
    .option("--top-k <k>", "keep the k most likely tokens before top-p (ties kept); 0 = no cut (default: generation_config.json's top_k, else 50 — transformers' default, which the original samples with)", parseIntArg(0))
    .option("--seed <n>", "random seed; turn i uses seed + i", parseIntArg(0, 2 ** 32 - 1), 0)
    .addOption(contextLimitOption());
  return addCacheOptions(cmd).action(async (flags: ChatFlags, c: Command) => run({ ...flags, explicit: explicitOptions(c) }));
}

export async function runChat(flags: ChatFlags): Promise<void> {
  checkCacheFlags(flags);
  // KV cache planned into memory: --context-limit when given, else one reply's worth (a longer chat may run out, loudly)
  using model = loadModelWithProgress(flags.model, true, flags.weightsDtype, { kvTokens: flags.contextLimit ?? flags.maxNewTokens });
  const context = resolveContextLimit(model.config, flags.contextLimit);
  if (context.warning) process.stderr.write(context.warning + "\n");
  if (!model.tokenizer.hasChatTemplate) {
    process.stderr.write("note: this model has no chat template; each turn is fed as plain text continuing the conversation\n");
  }
  const spec = cacheSpecFromFlags(flags, model.config);
  applyModelTransforms(flags, model, spec);
  using cache = createCache(model.config, spec, model.transformer.placement);
  const session = new ChatSession(model, cache, flags.system, context.limit);
  const trace = flags.kvTrace ? new KvTraceWriter(flags.kvTrace) : null;
  let traceStep = 0;
  const interactive = process.stdin.isTTY === true;
  const rl = readline.createInterface({ input: process.stdin, terminal: interactive });
  const prompt = () => {
    if (interactive) process.stderr.write("> ");
  };
  process.stderr.write("chat ready — /reset clears the conversation, /exit quits\n");
  prompt();
  let turn = 0;
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === "/exit" || line === "/quit") break;
    if (line === "/reset") {
      session.reset();
      process.stderr.write("(conversation cleared)\n");
      prompt();
      continue;
    }
    if (line === "") {
      prompt();
      continue;
    }
    let r;
    try {
      r = session.send(line, {
        maxNewTokens: flags.maxNewTokens,
        temperature: flags.temperature,
        topP: flags.topP,
        topK: flags.topK,
        seed: flags.seed + turn++,
        onText: (d) => process.stdout.write(d),
        onStep: trace ? (_step, c) => trace.record(traceStep++, c) : undefined,
      });
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      process.stderr.write(`${e.message}; type /reset to start a new conversation\n`);
      prompt();
      continue;
    }
    process.stdout.write("\n");
    process.stderr.write(
      `[${r.finishReason}] +${r.newPromptTokens} prompt tok (${r.reusedTokens} reused${r.rebuilt ? ", conversation re-read" : ""}), ${r.outputTokens} tok at ` +
        `${r.timings.decodeTokPerS.toFixed(1)} tok/s · cache ${cache.length} tok, ${formatBytes(r.kv.totalHeldBytes)}\n`,
    );
    if (r.finishReason === "context") process.stderr.write(`the conversation reached the model's context of ${context.limit} positions; type /reset to start a new one\n`);
    prompt();
  }
  rl.close();
  trace?.finish();
}
