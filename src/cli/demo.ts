// `pmkvq demo`: the frontier on the default model with a selection of methods — table,
// level-by-level comparison and verdicts under both protocols, chart and results.json.

import fs from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { DEFAULT_MODEL_DIR, demoOptions, trainedTask } from "../demo/demo.js";
import { runFrontier } from "../frontier/frontier.js";
import { MAX_FACTS, MAX_STEPS } from "../task/lookup-sum.js";
import { UsageError } from "../errors.js";
import { parseIntArg } from "./args.js";
import { checkInputDir, checkOutputDir } from "../util/paths.js";
import { Progress } from "./common.js";
import { frontierReport } from "./frontier.js";

export interface DemoFlags {
  model?: string;
  out: string;
  problems?: number;
  calibrationSamples?: number;
  quick?: boolean;
  facts?: number;
  taskSteps?: number;
  fresh?: boolean;
}

export function demoCommand(run: (f: DemoFlags) => void | Promise<void>): Command {
  return new Command("demo")
    .description("Show PM-KVQ's claim in minutes: accuracy against honest KV memory for pm-kvq and the baselines on held-out reasoning problems of the default model, under the reserved (paper's) and the held (strict) protocol")
    .option("--model <dir>", "model folder (default: the embedded default model, trained on the lookup-sum task)")
    .option("--out <dir>", "folder for the calibration, records.jsonl (resumable), results.json and frontier.svg", "pmkvq-demo")
    .option("--problems <n>", "held-out problems per setting (default 40; --quick: 10)", parseIntArg(1))
    .option("--calibration-samples <n>", "calibration samples (default 16; --quick: 4)", parseIntArg(1))
    .option("--quick", "fewer methods, bit-widths and problems (under 2 minutes)")
    .option("--facts <n>", "facts per problem (default: as the model was trained)", parseIntArg(1, MAX_FACTS))
    .option("--task-steps <n>", "solution steps per problem (default: as the model was trained)", parseIntArg(3, MAX_STEPS))
    .option("--fresh", "discard the records of an earlier run in --out")
    .action(async (f: DemoFlags) => run(f));
}

export async function runDemoCommand(f: DemoFlags): Promise<void> {
  const modelDir = f.model ?? DEFAULT_MODEL_DIR;
  if (f.model !== undefined) checkInputDir(f.model, "--model");
  if (!fs.existsSync(path.join(modelDir, "config.json"))) throw new UsageError(`${modelDir}: no model (config.json) — give --model DIR`);
  checkOutputDir(f.out, "--out");
  const trained = trainedTask(modelDir);
  const t0 = performance.now();
  const progress: { bar: Progress | null } = { bar: null };
  const r = runFrontier({
    ...demoOptions({
      modelDir, outDir: f.out, quick: !!f.quick, problems: f.problems, calibrationSamples: f.calibrationSamples,
      task: { ...trained, facts: f.facts ?? trained.facts, steps: f.taskSteps ?? trained.steps },
    }),
    fresh: f.fresh,
    onNotice: (m) => process.stderr.write(m + "\n"),
    onAnswer: (done, total) => {
      progress.bar ??= new Progress("answers", total);
      progress.bar.tick(1);
      if (done === total) progress.bar.stop();
    },
  });
  progress.bar?.stop();
  process.stdout.write(`\n${frontierReport(r, f.out)} · ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
}
