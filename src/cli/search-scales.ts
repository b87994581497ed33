// `pmkvq search-scales`: per-block exponent α of the key reparameterization scales (spec §6).

import { Command, Option } from "commander";
import { readMaxKeys } from "../calib/max-keys.js";
import { writeRepScales } from "../calib/rep-scales.js";
import { searchRepScales } from "../calib/scale-search.js";
import { parseBitsArg, parseIntArg } from "./args.js";
import { addCalibOptions, calibMeta, calibSetup, checkCalibInputs, type CalibFlags } from "./calib-options.js";
import { ALL_BITS } from "./cache-options.js";
import { checkInputFile, checkOutputFile } from "../util/paths.js";
import { loadModelWithProgress, Progress } from "./common.js";

export interface SearchScalesFlags extends CalibFlags {
  out: string;
  maxKeysPath: string;
  kBits: number;
  vBits: number;
  grid: number;
}

const bits = parseBitsArg(ALL_BITS);

export function searchScalesCommand(run: (f: SearchScalesFlags) => void | Promise<void>): Command {
  const cmd = new Command("search-scales").description("Search per-block key reparameterization scales r = max_keys^α minimising the attention-output MSE under K/V quantization");
  return addCalibOptions(cmd)
    .addOption(new Option("--max-keys-path <file>", "max keys from `pmkvq max-keys`").makeOptionMandatory())
    .option("--k-bits <b>", "key bits of the quantization the scales are searched for", bits, 4)
    .option("--v-bits <b>", "value bits", bits, 4)
    .option("--grid <n>", "α grid size: α = 1 − n/grid for n = 0 … grid−1", parseIntArg(1, 1000), 20)
    .addOption(new Option("--out <file>", "where to write the scales (safetensors; the original's --save_path)").makeOptionMandatory())
    .action(async (f: SearchScalesFlags) => run(f));
}

export async function runSearchScales(flags: SearchScalesFlags): Promise<void> {
  checkCalibInputs(flags);
  checkInputFile(flags.maxKeysPath, "--max-keys-path");
  checkOutputFile(flags.out, "--out");
  using model = loadModelWithProgress(flags.model, true);
  const { maxKeys } = readMaxKeys(flags.maxKeysPath, model.config);
  const setup = calibSetup(flags, model);
  const progress = new Progress("scale search", setup.samples.length);
  const r = searchRepScales(model.transformer, setup.samples, setup.positions, maxKeys, {
    kBits: flags.kBits,
    vBits: flags.vBits,
    groupSize: setup.groupSize,
    grid: flags.grid,
    onSample: () => progress.tick(),
  });
  progress.stop();
  writeRepScales(flags.out, r.scales, r.alphas, r.mse, r.baselineMse, model.config, {
    ...calibMeta(flags, setup),
    k_bits: String(flags.kBits),
    v_bits: String(flags.vBits),
    grid: String(flags.grid),
    max_keys: flags.maxKeysPath,
  });
  const gain = r.mse.map((m, l) => (r.baselineMse[l] > 0 ? (1 - Math.min(...m) / r.baselineMse[l]) * 100 : 0).toFixed(0) + "%").join(" ");
  process.stdout.write(
    `rep scales for K${flags.kBits}/V${flags.vBits} in ${progress.seconds.toFixed(1)} s → ${flags.out}\n  α per block: ${r.alphas.map((a) => a.toFixed(2)).join(" ")}\n  attention-output MSE reduction vs no reparameterization: ${gain}\n`,
  );
}
