// `pmkvq sensitivity`: per-block K/V sensitivity at 16, 8, 4, 2, 1 bits (spec §5).

import { Command, Option } from "commander";
import { computeSensitivity } from "../calib/sensitivity.js";
import { UsageError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { addCalibOptions, calibMeta, calibSetup, checkCalibInputs, type CalibFlags } from "./calib-options.js";
import { checkOutputFile } from "../util/paths.js";
import { loadModelWithProgress, Progress } from "./common.js";

export interface SensitivityFlags extends CalibFlags {
  out: string;
}

export function sensitivityCommand(run: (f: SensitivityFlags) => void | Promise<void>): Command {
  const cmd = new Command("sensitivity").description("Profile each block's KV sensitivity to quantization at 16, 8, 4, 2, 1 bits (gradient × quantization error)");
  return addCalibOptions(cmd)
    .addOption(new Option("--out <file>", "where to write the sensitivity JSON (the original's --save_path)").makeOptionMandatory())
    .action(async (f: SensitivityFlags) => run(f));
}

export async function runSensitivity(flags: SensitivityFlags): Promise<void> {
  if (!flags.out) throw new UsageError("--out FILE is required");
  checkCalibInputs(flags);
  checkOutputFile(flags.out, "--out");
  using model = loadModelWithProgress(flags.model, true);
  const setup = calibSetup(flags, model);
  const progress = new Progress("sensitivity", setup.samples.length, true, " · loss {loss}");
  const result = computeSensitivity(model.transformer, setup.samples, setup.positions, {
    groupSize: setup.groupSize,
    onSample: (_done, _total, loss) => progress.tick(1, { loss: loss.toFixed(3) }),
  });
  progress.stop();
  result.meta = { ...calibMeta(flags, setup), ...result.meta, seconds: progress.seconds };
  writeFileAtomic(flags.out, JSON.stringify(result, null, 1) + "\n");
  const fmt = (xs: number[]) => xs.map((x) => x.toExponential(2)).join(" ");
  process.stdout.write(`sensitivity of ${model.config.numLayers} blocks over ${setup.samples.length} × ${setup.seqLen} tokens (positions to ${setup.effectiveLen}) in ${progress.seconds.toFixed(1)} s → ${flags.out}\n`);
  for (const b of ["4", "2"]) process.stdout.write(`  K@${b}: ${fmt(result.kSensitivity[b])}\n  V@${b}: ${fmt(result.vSensitivity[b])}\n`);
}
