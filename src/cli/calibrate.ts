// `pmkvq calibrate`: sensitivity → allocation → max keys → rep scales into one folder.

import path from "node:path";
import { Command, Option } from "commander";
import { ALLOCATION_BITS, stagingWarning } from "../calib/allocate.js";
import { ARTIFACTS, calibrate, type CalibrationStep } from "../calib/calibrate.js";
import { kvHidden } from "../model/config.js";
import { parseBitsArg, parseFloatArg, parseIntArg, parseIntListArg } from "./args.js";
import { addCalibOptions, calibDefaults, checkCalibInputs, type CalibFlags } from "./calib-options.js";
import { ALL_BITS } from "./cache-options.js";
import { checkOutputDir } from "../util/paths.js";
import { lockOutput } from "../util/lock.js";
import { loadModelWithProgress, Progress } from "./common.js";

export interface CalibrateFlags extends CalibFlags {
  memoryBudget: number;
  out: string;
  bits: number[];
  maxLen: number;
  kBits: number;
  vBits: number;
  grid: number;
  force?: boolean;
}

const bitsArg = parseBitsArg(ALL_BITS);

export function calibrateCommand(run: (f: CalibrateFlags) => void | Promise<void>): Command {
  const cmd = new Command("calibrate").description(
    "Run the whole calibration — sensitivity, block-wise allocation, max keys, scale search — into one folder (resumable)",
  );
  return addCalibOptions(cmd)
    .addOption(new Option("--memory-budget <MB>", "total KV-cache budget over all blocks for --max-len tokens, MB").argParser(parseFloatArg(0, Infinity, true)).makeOptionMandatory())
    .addOption(new Option("--out <dir>", "folder for the artifacts and manifest.json").makeOptionMandatory())
    .option("--bits <list>", `bit-widths a block may end at (from ${ALLOCATION_BITS.join(", ")})`, parseIntListArg([...ALLOCATION_BITS]), [4, 2])
    .option("--max-len <n>", "tokens the allocated budgets must hold", parseIntArg(1), 32768)
    .option("--k-bits <b>", "key bits the rep scales are searched for", bitsArg, 4)
    .option("--v-bits <b>", "value bits the rep scales are searched for", bitsArg, 4)
    .option("--grid <n>", "α grid size of the scale search", parseIntArg(1, 1000), 20)
    .option("--force", "recompute every step, even those whose artifacts are up to date")
    .action(async (f: CalibrateFlags) => run(f));
}

export async function runCalibrate(flags: CalibrateFlags): Promise<void> {
  const dataset = checkCalibInputs(flags);
  checkOutputDir(flags.out, "--out");
  // the lock first: a second calibration into the same folder stops before loading anything
  using _lock = lockOutput(flags.out, `--out ${flags.out}`, { onTakeover: (m) => process.stderr.write(m + "\n") });
  using model = loadModelWithProgress(flags.model, true);
  const { seqLen, effectiveLen, groupSize } = calibDefaults(flags, model.config);
  let bar: Progress | null = null;
  const result = calibrate(model, {
    dataset, outDir: flags.out, memoryBudgetMB: flags.memoryBudget, bits: flags.bits, maxLen: flags.maxLen,
    nSamples: flags.nSamples, seqLen, effectiveLen, seed: flags.seed, addBos: flags.addBos, firstDocuments: flags.firstDocuments, groupSize,
    kBits: flags.kBits, vBits: flags.vBits, grid: flags.grid, force: flags.force,
    onStep: (step: CalibrationStep, event, seconds) => {
      if (event === "skip") process.stderr.write(`${step}: up to date (${ARTIFACTS[step]}), skipped\n`);
      if (event === "start") bar = step === "allocation" ? null : new Progress(step, flags.nSamples);
      if (event === "done") {
        (bar as Progress | null)?.stop();
        process.stderr.write(`${step}: done in ${seconds!.toFixed(1)} s → ${path.join(flags.out, ARTIFACTS[step])}\n`);
      }
    },
    onProgress: () => (bar as Progress | null)?.tick(),
  });
  const a = result.allocation;
  const warning = stagingWarning(a.budgetsMB, kvHidden(model.config));
  if (warning) process.stderr.write(warning + "\n");
  process.stdout.write(
    `calibrated ${model.config.numLayers} blocks on ${flags.nSamples} × ${seqLen} tokens (positions to ${effectiveLen}) → ${flags.out}\n` +
      `  ran: ${result.ran.join(", ") || "nothing"}${result.skipped.length ? `; up to date: ${result.skipped.join(", ")}` : ""}\n` +
      `  bits per block: ${a.bits.join(" ")} (${a.totalMB.toFixed(4)} of ${flags.memoryBudget} MB for ${flags.maxLen} tokens)\n` +
      `use it: pmkvq generate --model ${flags.model} --method pm-kvq --kv-budgets ${path.join(flags.out, ARTIFACTS.allocation)} --rep-scales ${path.join(flags.out, ARTIFACTS["rep-scales"])} --prompt …\n`,
  );
}
