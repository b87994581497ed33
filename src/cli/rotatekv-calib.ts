// `pmkvq rotatekv-calib`: RotateKV's key channel reordering from calibration means.

import { Command, Option } from "commander";
import { keyChannelMeans, reorderFromMeans, validateRotateKv, writeReorder } from "../calib/rotatekv.js";
import { parseIntArg } from "./args.js";
import { addCalibOptions, calibMeta, calibSetup, checkCalibInputs, type CalibFlags } from "./calib-options.js";
import { checkOutputFile } from "../util/paths.js";
import { loadModelWithProgress, Progress } from "./common.js";

export interface RotateKvCalibFlags extends CalibFlags {
  out: string;
  kHadDim?: number;
}

export function rotateKvCalibCommand(run: (f: RotateKvCalibFlags) => void | Promise<void>): Command {
  const cmd = new Command("rotatekv-calib").description(
    "RotateKV calibration: per-block key channel order (by mean |k| before RoPE) that spreads outlier channels over the Hadamard blocks",
  );
  return addCalibOptions(cmd)
    .option("--k-had-dim <n>", "Hadamard block size over kv_hidden (a power of two dividing it; default: kv_hidden)", parseIntArg(1))
    .addOption(new Option("--out <file>", "where to write the reorder indices (safetensors)").makeOptionMandatory())
    .action(async (f: RotateKvCalibFlags) => run(f));
}

export async function runRotateKvCalib(flags: RotateKvCalibFlags): Promise<void> {
  checkCalibInputs(flags);
  checkOutputFile(flags.out, "--out");
  using model = loadModelWithProgress(flags.model, true);
  const c = model.config;
  const kHadDim = flags.kHadDim ?? c.numKvHeads * c.headDim;
  validateRotateKv(c, { kHadDim, reorder: null });
  const setup = calibSetup(flags, model);
  const progress = new Progress("key channel means", setup.samples.length);
  const means = keyChannelMeans(model.transformer, setup.samples, setup.positions, () => progress.tick());
  progress.stop();
  const reorder = means.map((m) => reorderFromMeans(m, kHadDim));
  writeReorder(flags.out, reorder, kHadDim, calibMeta(flags, setup));
  const ratio = means.map((m) => (Math.max(...m) / (m.reduce((a, b) => a + b, 0) / m.length)).toFixed(1)).join(" ");
  process.stdout.write(`reorder indices for ${c.numLayers} blocks (k-had-dim ${kHadDim}) in ${progress.seconds.toFixed(1)} s → ${flags.out}\n  largest / mean channel |k| per block: ${ratio}\n`);
}
