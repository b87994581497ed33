// `pmkvq eval`: generate responses to a benchmark's problems and judge them (spec §8).

import path from "node:path";
import { Command, Option } from "commander";
import { cacheSpecFromFlags, addCacheOptions, applyModelTransforms, checkCacheFlags, type CacheFlags } from "./cache-options.js";
import { resolveContextLimit } from "../generate/generate.js";
import { checkInputDir, checkOutputFile } from "../util/paths.js";
import { lockOutput } from "../util/lock.js";
import { loadBenchmark, selectRange, shardRange } from "../eval/benchmarks.js";
import { judgeCodeOutput } from "../eval/code-judge.js";
import { isCodeBenchmark, isCodeProblem } from "../eval/livecodebench.js";
import { readResponseFile } from "../eval/responses.js";
import { runEval } from "../eval/runner.js";
import { UsageError } from "../errors.js";
import type { WeightDtype } from "../tensor/matrix.js";
import { explicitOptions, parseFloatArg, parseIntArg } from "./args.js";
import { addCodeJudgeOptions, checkRunner, sandboxFromFlags, type CodeJudgeFlags } from "./code-judge-options.js";
import { contextLimitOption, loadModelWithProgress, modelOption, Progress, weightsDtypeOption } from "./common.js";

export interface EvalFlags extends CacheFlags, CodeJudgeFlags {
  model: string;
  weightsDtype: WeightDtype | "auto";
  datasetPath: string;
  benchmark: string;
  version: string;
  start?: number;
  end?: number;
  shard?: string;
  nResponses: number;
  seed: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK?: number;
  prefillChunk?: number;
  output?: string;
  forceResume?: boolean;
  contextLimit?: number;
}

export function evalCommand(run: (f: EvalFlags) => void | Promise<void>): Command {
  const cmd = new Command("eval")
    .description("Answer a benchmark's problems (n responses each, seeds seed + i), judge them, and save the responses (resumable)")
    .addOption(modelOption())
    .addOption(weightsDtypeOption())
    .addOption(new Option("--dataset-path <dir>", "root of the benchmark folders (<bench>/<bench>_<version>[_I|_II]/…); livecodebench: the folder of its release files test.jsonl, test2.jsonl, … (or DIR/livecodebench/)").makeOptionMandatory())
    .addOption(new Option("--benchmark <name>", "benchmark folder: aime, cmimc, hmmt, usamo (or any in the same layout), or livecodebench (code, judged by running tests)").makeOptionMandatory())
    .addOption(new Option("--version <v>", "version: 2024 or 2025 (aime), 2024 (cmimc), feb_2024 or feb_2025 (hmmt), 2025 (usamo); livecodebench: release_vN, release_latest, vN or vA_vB (the original judges v6: 175 problems)").makeOptionMandatory())
    .option("--start <n>", "first problem of the ordered list (0-based)", parseIntArg(0))
    .option("--end <n>", "one past the last problem (default: all)", parseIntArg(0))
    .option("--shard <i/n>", "shorthand for the i-th of n equal --start/--end ranges (i from 0), e.g. $JOB_COMPLETION_INDEX/8")
    .option("--n-responses <n>", "responses per problem", parseIntArg(1), 16)
    .option("--seed <n>", "response i uses seed + i (42: the original's default, so keys and seeds match its files; our random stream is not torch's, so the same seed does not give the same text)", parseIntArg(0, 2 ** 32 - 1), 42)
    .option("--max-new-tokens <n>", "token limit per response", parseIntArg(1), 32768)
    .option("--temperature <t>", "sampling temperature", parseFloatArg(0), 0.6)
    .option("--top-p <p>", "nucleus sampling mass", parseFloatArg(0, 1, true), 0.95)
    .option("--top-k <k>", "keep the k most likely tokens before top-p (ties kept); 0 = no cut (default: generation_config.json's top_k, else 50 — transformers' default, which the original samples with)", parseIntArg(0))
    .option("--prefill-chunk <n>", "prompt tokens per forward pass (default: the whole prompt in one pass, as the original; smaller saves activation memory on long prompts, and earlier chunks are then quantized before later ones attend)", parseIntArg(1))
    .option("--output <file>", "response file (JSON, the original's schema); rerunning resumes it, locked while a run writes it (default: responses/<benchmark>_<version>_<method>_<start>-<end>.json)")
    .option("--force-resume", "resume an output whose responses were made with other settings (model, method, flags, sampling, limits), keeping them")
    .addOption(contextLimitOption());
  addCodeJudgeOptions(cmd, "eval");
  return addCacheOptions(cmd).action(async (f: EvalFlags, c: Command) => run({ ...f, explicit: explicitOptions(c) }));
}

export async function runEvalCommand(flags: EvalFlags): Promise<void> {
  checkInputDir(flags.datasetPath, "--dataset-path");
  checkCacheFlags(flags);
  const bench = loadBenchmark(flags.datasetPath, flags.benchmark, flags.version, { startDate: flags.startDate, endDate: flags.endDate });
  const code = isCodeBenchmark(bench) ? sandboxFromFlags(flags, true) : null;
  if (flags.shard !== undefined && (flags.start !== undefined || flags.end !== undefined)) throw new UsageError("give --shard or --start/--end, not both");
  const range = flags.shard !== undefined ? shardRange(flags.shard, bench.problems.length) : { start: flags.start ?? 0, end: flags.end };
  const { start, end, problems } = selectRange(bench, range.start, range.end);
  const output = flags.output ?? path.join("responses", `${bench.name}_${bench.version}_${flags.method}_${start}-${end}.json`);
  checkOutputFile(output, "--output");
  const notice = (m: string) => process.stderr.write(m + "\n");
  // the lock first: a second run into the same file stops before loading anything
  using _lock = lockOutput(output, `--output ${output}`, { onTakeover: notice });
  if (code) await checkRunner(code.sandbox); // a runner that cannot work fails now, not after the generation
  // KV cache planned into memory: --context-limit when given, else the answer plus a 2048-token question (a longer one may run out, loudly)
  using model = loadModelWithProgress(flags.model, true, flags.weightsDtype, { kvTokens: flags.contextLimit ?? flags.maxNewTokens + 2048, chunkTokens: flags.prefillChunk });
  const context = resolveContextLimit(model.config, flags.contextLimit);
  if (context.warning) notice(context.warning);
  const spec = cacheSpecFromFlags(flags, model.config);
  applyModelTransforms(flags, model, spec);
  process.stderr.write(`${bench.name} ${bench.version}: problems ${start} … ${end - 1} (${problems.length}) × ${flags.nResponses} responses → ${output}\n`);
  const progress = new Progress("eval", problems.length * flags.nResponses, true, " responses · {tps} tok/s");
  let tokens = 0;
  const t0 = performance.now();
  const result = runEval(model, {
    benchmark: bench, problems, nResponses: flags.nResponses, seed: flags.seed, maxNewTokens: flags.maxNewTokens,
    temperature: flags.temperature, topP: flags.topP, topK: flags.topK, prefillChunk: flags.prefillChunk, cache: spec, output, contextLimit: context.limit, forceResume: flags.forceResume,
    onNotice: notice,
    onResponse: (e) => {
      tokens += e.outputTokens;
      progress.tick(1, { tps: (tokens / ((performance.now() - t0) / 1000)).toFixed(1) });
    },
  });
  progress.stop();
  let records = result.records;
  if (code && isCodeBenchmark(bench)) {
    // code is judged after the generation, by running its tests (resumable: only unjudged responses)
    process.stderr.write(`judging: ${code.label}\n`);
    const judging = new Progress("judge", Math.max(1, problems.length * flags.nResponses), true);
    records = (await judgeCodeOutput(output, bench, problems.filter(isCodeProblem), flags.nResponses, { ...code, onJudged: () => judging.tick() })).records;
    judging.stop();
  } else if (isCodeBenchmark(bench)) records = readResponseFile(output);
  const mine = problems.flatMap((p) => Array.from({ length: flags.nResponses }, (_, i) => records[`${p.id}.${i}`]));
  const graded = mine.filter((r) => r.judgement !== null);
  const pass = graded.length ? (100 * graded.filter((r) => r.judgement).length) / graded.length : null;
  const unjudged = isCodeBenchmark(bench) && !code ? "not judged (--judge-runner none): judge them with `pmkvq judge --benchmark livecodebench`, which runs their tests\n" : null;
  process.stdout.write(
    `${result.generated} responses generated, ${result.skipped} already done → ${output}\n` +
      (unjudged ?? (pass === null ? "not auto-gradable: responses saved for human grading\n" : `pass@1 over this range: ${pass.toFixed(1)}% (${graded.length} responses); judge the merged folder with \`pmkvq judge\`\n`)),
  );
}
