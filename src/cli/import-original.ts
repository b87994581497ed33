// `pmkvq import-original`: the Python original's torch.save calibration files (sensitivity, kv
// budgets, max keys, rep scales) into the files our commands write; prints what it did.

import fs from "node:fs";
import path from "node:path";
import { Command, Option } from "commander";
import { ARTIFACTS, type CalibrationStep } from "../calib/calibrate.js";
import { FLAG, importOriginal, IMPORT_NOTES, SQRT_NOTE, type ImportOriginalResult } from "../calib/import-original.js";
import { CheckpointError, UsageError } from "../errors.js";
import { parseModelConfig, type ModelConfig } from "../model/config.js";
import { readJsonFile } from "../util/atomic.js";
import { lockOutput } from "../util/lock.js";
import { checkInputDir, checkInputFile, checkOutputDir } from "../util/paths.js";
import { parseIntArg } from "./args.js";

export interface ImportOriginalFlags {
  in?: string;
  out: string;
  sensitivityPath?: string;
  kvBudgets?: string;
  maxKeysPath?: string;
  repScales?: string;
  model?: string;
  kvHidden?: number;
  maxLen: number;
  repScalesSqrt?: boolean;
  json?: boolean;
}

const FILE_FLAGS: Record<CalibrationStep, keyof ImportOriginalFlags> = {
  sensitivity: "sensitivityPath",
  allocation: "kvBudgets",
  "max-keys": "maxKeysPath",
  "rep-scales": "repScales",
};

const HELP_AFTER = `
What is imported (torch.save files of thu-nics/PM-KVQ, read without Python or torch; pickles run on
a restricted reader that refuses every global but tensors, OrderedDict and numpy float scalars):
  get_sensitivity.py   {"k_sensitivity": {16: [..], 8, 4, 2, 1}, "v_sensitivity"}  → ${ARTIFACTS.sensitivity}
  allocate_memory.py   [MB per block] (numpy float64)                            → ${ARTIFACTS.allocation}
  get_max_keys.py      [per block a bf16 tensor (1, kv_heads, 1, head_dim/2)]    → ${ARTIFACTS["max-keys"]}
  search_rep_scales.py [per block a bf16 tensor (1, kv_heads, 1, head_dim/2)]    → ${ARTIFACTS["rep-scales"]}
In --in DIR, files are recognised by what they hold; max keys and rep scales (both lists of
tensors) by name: "rep"/"scale" vs "max"/"key". Other files are skipped and listed. Also written:
import.json (sources, their sha256, what was checked).

Values are imported as stored (spec §10):
  sensitivity: ${IMPORT_NOTES.sensitivity}.
  rep scales: ${IMPORT_NOTES["rep-scales"]}.
  kv budgets: ${IMPORT_NOTES.allocation}.

Use them: pmkvq eval --model DIR --method pm-kvq --kv-budgets OUT/${ARTIFACTS.allocation} --rep-scales OUT/${ARTIFACTS["rep-scales"]} …
`;

export function importOriginalCommand(run: (flags: ImportOriginalFlags) => void | Promise<void>): Command {
  return new Command("import-original")
    .description("Import the Python original's calibration files (torch.save: sensitivity, kv budgets, max keys, rep scales) into pm-kvq's formats")
    .option("--in <dir>", "folder of the original's --save_path files, recognised by what they hold (or name files with the flags below)")
    .addOption(new Option("--out <dir>", `folder to write ${Object.values(ARTIFACTS).join(", ")} and import.json into`).makeOptionMandatory())
    .option(`${FLAG.sensitivity} <file>`, "the original's sensitivity file (get_sensitivity.py --save_path)")
    .option(`${FLAG.allocation} <file>`, "the original's kv budgets file (allocate_memory.py --save_path)")
    .option(`${FLAG["max-keys"]} <file>`, "the original's max keys file (get_max_keys.py --save_path)")
    .option(`${FLAG["rep-scales"]} <file>`, "the original's rep scales file (search_rep_scales.py --save_path)")
    .option("--model <dir>", "model folder: its config.json (weights are not loaded) checks blocks, KV heads and head_dim, and gives kv_hidden")
    .option("--kv-hidden <n>", "kv_hidden the budgets were made with (the original's --hidden_size), to record them as bit-widths; default: the model's", parseIntArg(1))
    .option("--max-len <n>", "tokens the budgets were made for (the original's --max_len)", parseIntArg(1), 32768)
    .option("--rep-scales-sqrt", "write √r, the scales the original's evaluation folds, instead of r as stored")
    .option("--json", "print the result as JSON instead of the summary")
    .addHelpText("after", HELP_AFTER)
    .action(async (flags: ImportOriginalFlags) => run(flags));
}

export function runImportOriginal(flags: ImportOriginalFlags): void {
  const files: Partial<Record<CalibrationStep, string>> = {};
  for (const [step, key] of Object.entries(FILE_FLAGS) as [CalibrationStep, keyof ImportOriginalFlags][]) {
    const file = flags[key];
    if (typeof file !== "string") continue;
    checkInputFile(file, FLAG[step]);
    files[step] = file;
  }
  if (flags.in === undefined && Object.keys(files).length === 0) {
    throw new UsageError(`give --in DIR (the original's output folder) or at least one of ${Object.values(FLAG).join(", ")}`);
  }
  if (flags.in !== undefined) checkInputDir(flags.in, "--in");
  if (flags.model !== undefined) checkInputDir(flags.model, "--model");
  checkOutputDir(flags.out, "--out");
  using _lock = lockOutput(flags.out, `--out ${flags.out}`, { onTakeover: (m) => process.stderr.write(m + "\n") });
  const model = flags.model === undefined ? undefined : readConfig(flags.model);
  const result = importOriginal({
    inDir: flags.in, files, outDir: flags.out, model, kvHidden: flags.kvHidden, maxLen: flags.maxLen,
    repScalesSqrt: flags.repScalesSqrt, modelDir: flags.model,
  });
  process.stdout.write(flags.json ? JSON.stringify(result, null, 1) + "\n" : summary(result, flags));
}

function readConfig(dir: string): ModelConfig {
  const configPath = path.join(dir, "config.json");
  if (!fs.existsSync(configPath)) throw new CheckpointError(`--model ${dir}: no config.json`);
  return parseModelConfig(readJsonFile(configPath, CheckpointError), configPath);
}

function summary(r: ImportOriginalResult, flags: ImportOriginalFlags): string {
  const lines = [`imported ${r.imported.length} artifact${r.imported.length === 1 ? "" : "s"} of the original into ${flags.out}:`];
  for (const a of r.imported) {
    lines.push(`  ${a.step.padEnd(11)} ${a.source} (${a.held}) → ${path.basename(a.output)}`);
    for (const n of a.notes) lines.push(`              ${n === SQRT_NOTE ? "--rep-scales-sqrt: " : "note: "}${n}`);
  }
  lines.push(`checked: ${r.checks.join("; ")}`);
  for (const s of r.skipped) lines.push(`skipped ${s.file}: ${s.reason}`);
  lines.push(`wrote ${r.provenanceFile}`);
  const steps = new Set(r.imported.map((a) => a.step));
  if (steps.has("allocation") || steps.has("rep-scales")) {
    const use = [
      `--kv-budgets ${steps.has("allocation") ? path.join(flags.out, ARTIFACTS.allocation) : "MB"}`,
      ...(steps.has("rep-scales") ? [`--rep-scales ${path.join(flags.out, ARTIFACTS["rep-scales"])}`] : []),
    ];
    lines.push(`use them: pmkvq eval --model ${flags.model ?? "DIR"} --method pm-kvq ${use.join(" ")} …`);
  }
  return lines.join("\n") + "\n";
}
