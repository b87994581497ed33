// `pmkvq frontier`: every KV method at every setting that fits, accuracy against honest memory
// under the reserved and the held protocol; prints the table and the verdicts, writes
// results.json and frontier.svg (library: frontier/frontier.ts).

import fs from "node:fs";
import path from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_MODEL_DIR, trainedTask } from "../demo/demo.js";
import { UsageError } from "../errors.js";
import { FRONTIER_METHODS, runFrontier, type FrontierMethod, type FrontierResult } from "../frontier/frontier.js";
import { frontierSummary, levelsTable, settingsTable } from "../frontier/report.js";
import { MAX_FACTS, MAX_STEPS } from "../task/lookup-sum.js";
import { checkInputDir, checkOutputDir } from "../util/paths.js";
import { parseFloatArg, parseIntArg, parseIntListArg } from "./args.js";
import { Progress } from "./common.js";

export interface FrontierFlags {
  model?: string;
  out: string;
  problems: number;
  methods: FrontierMethod[];
  bits: number[];
  windows: number[];
  hadamard: boolean;
  maxLen?: number;
  minLength: number;
  facts?: number;
  taskSteps?: number;
  calibrationSamples: number;
  fresh?: boolean;
  progress: boolean;
}

function parseMethods(value: string): FrontierMethod[] {
  const parts = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (!parts.length) throw new InvalidArgumentError("empty list.");
  for (const p of parts) if (!(FRONTIER_METHODS as readonly string[]).includes(p)) throw new InvalidArgumentError(`${p} is not one of ${FRONTIER_METHODS.join(", ")}.`);
  return [...new Set(parts)] as FrontierMethod[];
}

export function frontierCommand(run: (f: FrontierFlags) => void | Promise<void>): Command {
  return new Command("frontier")
    .description("Accuracy against honest KV memory for every method at every setting, under the reserved (paper's) and the held (strict) protocol, on held-out lookup-sum problems")
    .option("--model <dir>", "model folder (default: the embedded default model, trained on the lookup-sum task)")
    .option("--out <dir>", "folder for records.jsonl (resumable), results.json, frontier.svg and the calibration", "pmkvq-frontier")
    .option("--problems <n>", "held-out problems per setting", parseIntArg(1), 60)
    .addOption(new Option("--methods <list>", `methods to run, comma-separated (${FRONTIER_METHODS.join(", ")})`).argParser(parseMethods).default([...FRONTIER_METHODS], "all"))
    .addOption(new Option("--bits <list>", "bit-widths of the fixed-bit methods (RTN, KIVI, MiKV, RotateKV hold 1/2/4/8; TurboQuant also 3)").argParser(parseIntListArg([1, 2, 3, 4, 8])).default([8, 4, 3, 2], "8,4,3,2"))
    .addOption(new Option("--windows <list>", "pm-kvq staging windows W (tokens), one frontier line each").argParser(parseIntListArg()).default([32, 128], "32,128"))
    .option("--no-hadamard", "skip pm-kvq with a Hadamard-rotated cache (run at the first window by default)")
    .option("--max-len <n>", "tokens every cache is reserved for (default: 1.5× the longest answer, in steps of 256)", parseIntArg(1))
    .option("--min-length <fraction>", "answers' step counts drawn from [fraction·S, S]; 1 = all S steps (the embedded model's prompts do not carry the step count)", parseFloatArg(0, 1, true), 1)
    .option("--facts <n>", "facts per problem (default: as the model was trained)", parseIntArg(1, MAX_FACTS))
    .option("--task-steps <n>", "solution steps S of the longest answer (default: as the model was trained)", parseIntArg(3, MAX_STEPS))
    .option("--calibration-samples <n>", "pm-kvq calibration samples (solved problems of the task)", parseIntArg(1), 16)
    .option("--fresh", "discard the records of an earlier run in --out and start over")
    .option("--no-progress", "no progress bar / progress lines on stderr")
    .action(async (f: FrontierFlags) => run(f));
}

/** The run's text output: summary, table, levels, verdicts, skipped settings. */
export function frontierReport(r: FrontierResult, out: string): string {
  return [
    frontierSummary(r),
    "",
    settingsTable(r, false),
    "",
    "reserved protocol, level by level (pm-kvq's best within each fixed-bit setting's reservation):",
    levelsTable(r, false),
    "",
    r.verdicts.reserved,
    r.verdicts.held,
    ...(r.skipped.length ? ["", "not run:", ...r.skipped.map((s) => `  ${s}`)] : []),
    "",
    `chart: ${path.join(out, "frontier.svg")} · results: ${path.join(out, "results.json")} · ${r.generated} answers generated, ${r.settings.length * r.problems - r.generated} read from records.jsonl`,
  ].join("\n");
}

export async function runFrontierCommand(f: FrontierFlags): Promise<void> {
  const modelDir = f.model ?? DEFAULT_MODEL_DIR;
  if (f.model !== undefined) checkInputDir(f.model, "--model");
  if (!fs.existsSync(path.join(modelDir, "config.json"))) throw new UsageError(`${modelDir}: no model (config.json) — give --model DIR`);
  checkOutputDir(f.out, "--out");
  const trained = trainedTask(modelDir);
  const progress: { bar: Progress | null } = { bar: null };
  const r = runFrontier({
    modelDir,
    outDir: f.out,
    problems: f.problems,
    task: { ...trained, facts: f.facts ?? trained.facts, steps: f.taskSteps ?? trained.steps },
    minLengthFraction: f.minLength,
    maxLen: f.maxLen,
    methods: f.methods,
    bits: f.bits,
    windows: f.windows,
    hadamard: f.hadamard,
    calibrationSamples: f.calibrationSamples,
    fresh: f.fresh,
    onNotice: (m) => f.progress && process.stderr.write(m + "\n"),
    onAnswer: (done, total) => {
      progress.bar ??= new Progress("answers", total, f.progress);
      progress.bar.tick(1);
      if (done === total) progress.bar.stop();
    },
  });
  progress.bar?.stop();
  process.stdout.write(frontierReport(r, f.out) + "\n");
}
