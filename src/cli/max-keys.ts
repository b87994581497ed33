// `pmkvq max-keys`: per-block maxima of |K| after RoPE per RoPE pair (spec §6).

import { Command, Option } from "commander";
import { computeMaxKeys, writeMaxKeys } from "../calib/max-keys.js";
import { addCalibOptions, calibMeta, calibSetup, checkCalibInputs, type CalibFlags } from "./calib-options.js";
import { checkOutputFile } from "../util/paths.js";
import { loadModelWithProgress, Progress } from "./common.js";

export interface MaxKeysFlags extends CalibFlags {
  out: string;
}

export function maxKeysCommand(run: (f: MaxKeysFlags) => void | Promise<void>): Command {
  const cmd = new Command("max-keys").description("Record per-block maxima of |keys| (after RoPE, pairs shared) over calibration data with positional interpolation");
  return addCalibOptions(cmd)
    .addOption(new Option("--out <file>", "where to write the max keys (safetensors; the original's --save_path)").makeOptionMandatory())
    .action(async (f: MaxKeysFlags) => run(f));
}

export async function runMaxKeys(flags: MaxKeysFlags): Promise<void> {
  checkCalibInputs(flags);
  checkOutputFile(flags.out, "--out");
  using model = loadModelWithProgress(flags.model, true);
  const setup = calibSetup(flags, model);
  const progress = new Progress("max keys", setup.samples.length);
  const maxKeys = computeMaxKeys(model.transformer, setup.samples, setup.positions, () => progress.tick());
  progress.stop();
  writeMaxKeys(flags.out, maxKeys, model.config, calibMeta(flags, setup));
  const peak = maxKeys.map((m) => Math.max(...m).toFixed(2)).join(" ");
  process.stdout.write(`max keys of ${model.config.numLayers} blocks in ${progress.seconds.toFixed(1)} s → ${flags.out}\n  largest per block: ${peak}\n`);
}
