// `pmkvq rotatekv-calib`: RotateKV's key channel reordering from calibration means.

import { Command, Option } from "commander";
import { keyChannelMeans, reorderAscending, reorderFromMeans, rotatedKeyChannelMeans, writeReorder } from "../calib/rotatekv.js";
import { validateRotateKv } from "../model/fold-rotatekv.js";
import { ROTATEKV_ORDERS, type RotateKvOrder } from "../quant/rotation.js";
import { parseIntArg } from "./args.js";
import { addCalibOptions, calibMeta, calibSetup, checkCalibInputs, type CalibFlags } from "./calib-options.js";
import { checkOutputFile } from "../util/paths.js";
import { loadModelWithProgress, Progress } from "./common.js";

export interface RotateKvCalibFlags extends CalibFlags {
  out: string;
  kHadDim?: number;
  order: RotateKvOrder;
}

export function rotateKvCalibCommand(run: (f: RotateKvCalibFlags) => void | Promise<void>): Command {
  const cmd = new Command("rotatekv-calib").description(
    "RotateKV calibration: per-block key channel order — the original's (rotate-first: the Hadamard-rotated keys sorted by ascending mean) or this project's first (reorder-first: raw channels by mean |k| dealt over the Hadamard blocks)",
  );
  return addCalibOptions(cmd)
    .option("--k-had-dim <n>", "Hadamard block size over kv_hidden (a power of two dividing it; default: kv_hidden)", parseIntArg(1))
    .addOption(new Option("--order <order>", "rotate-first: k' = P·H·k, P by ascending signed mean of H·k (the original's); reorder-first: k' = H·P·k, P by descending mean |k| round-robin over Hadamard blocks").choices([...ROTATEKV_ORDERS]).default("rotate-first"))
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
  const rotateFirst = flags.order === "rotate-first";
  const means = rotateFirst
    ? rotatedKeyChannelMeans(model.transformer, setup.samples, setup.positions, kHadDim, () => progress.tick())
    : keyChannelMeans(model.transformer, setup.samples, setup.positions, () => progress.tick());
  progress.stop();
  const reorder = means.map((m) => (rotateFirst ? reorderAscending(m) : reorderFromMeans(m, kHadDim)));
  writeReorder(flags.out, reorder, kHadDim, calibMeta(flags, setup), flags.order);
  const spread = means.map((m) => {
    const abs = Array.from(m, Math.abs);
    return (Math.max(...abs) / (abs.reduce((a, b) => a + b, 0) / abs.length)).toFixed(1);
  }).join(" ");
  process.stdout.write(`reorder indices (${flags.order}) for ${c.numLayers} blocks (k-had-dim ${kHadDim}) in ${progress.seconds.toFixed(1)} s → ${flags.out}\n  largest / mean |channel mean| per block: ${spread}\n`);
}
