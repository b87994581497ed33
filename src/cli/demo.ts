// `pmkvq demo`: calibrate, then compare full precision, RTN, KIVI and pm-kvq at equal memory
// on held-out problems of the default model's task; prints a table, writes a chart.

import fs from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { DEFAULT_MODEL_DIR, runDemo, trainedTask } from "../demo/demo.js";
import { MAX_FACTS, MAX_STEPS } from "../task/lookup-sum.js";
import { demoSummary, demoTable } from "../demo/report.js";
import { UsageError } from "../errors.js";
import { parseIntArg } from "./args.js";
import { checkInputDir, checkOutputDir } from "../util/paths.js";
import { lockOutput } from "../util/lock.js";

export interface DemoFlags {
  model?: string;
  out: string;
  problems?: number;
  calibrationSamples?: number;
  quick?: boolean;
  fourBit?: boolean;
  facts?: number;
  taskSteps?: number;
}

export function demoCommand(run: (f: DemoFlags) => void | Promise<void>): Command {
  return new Command("demo")
    .description("Show PM-KVQ's claim in minutes: calibrate the default model, then compare KV caches at equal memory on held-out reasoning problems")
    .option("--model <dir>", "model folder (default: the embedded default model, trained on the lookup-sum task)")
    .option("--out <dir>", "folder for calibration artifacts, results.json and demo.svg", "pmkvq-demo")
    .option("--problems <n>", "held-out problems per method (default 40; --quick: 10)", parseIntArg(1))
    .option("--calibration-samples <n>", "calibration samples (default 16; --quick: 4)", parseIntArg(1))
    .option("--four-bit", "also evaluate RTN and KIVI at 4 bits, and pm-kvq at the memory of 4-bit RTN (on by default without --quick)")
    .option("--quick", "a smaller run (under 2 minutes)")
    .option("--facts <n>", "facts per problem (default: as the model was trained)", parseIntArg(1, MAX_FACTS))
    .option("--task-steps <n>", "solution steps per problem (default: as the model was trained)", parseIntArg(3, MAX_STEPS))
    .action(async (f: DemoFlags) => run(f));
}

export async function runDemoCommand(f: DemoFlags): Promise<void> {
  const modelDir = f.model ?? DEFAULT_MODEL_DIR;
  if (f.model !== undefined) checkInputDir(f.model, "--model");
  if (!fs.existsSync(path.join(modelDir, "config.json"))) throw new UsageError(`${modelDir}: no model (config.json) — give --model DIR`);
  checkOutputDir(f.out, "--out");
  using _lock = lockOutput(f.out, `--out ${f.out}`, { onTakeover: (m) => process.stderr.write(m + "\n") });
  const t0 = performance.now();
  const r = runDemo({
    modelDir,
    outDir: f.out,
    problems: f.problems ?? (f.quick ? 10 : 40),
    calibrationSamples: f.calibrationSamples ?? (f.quick ? 4 : 16),
    fourBit: f.fourBit ?? !f.quick,
    task: f.facts !== undefined || f.taskSteps !== undefined ? { ...trainedTask(modelDir), ...(f.facts !== undefined ? { facts: f.facts } : {}), ...(f.taskSteps !== undefined ? { steps: f.taskSteps } : {}) } : undefined,
    onProgress: (m) => process.stderr.write(m + "\n"),
  });
  const lines = [
    "",
    demoSummary(r),
    "",
    demoTable(r, false),
    "",
    `chart: ${path.join(f.out, "demo.svg")} · results: ${path.join(f.out, "results.json")} · ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}
