// `pmkvq allocate`: per-block bit-widths and KV budgets from a sensitivity file (spec §4);
// writes the JSON that `generate --kv-budgets FILE` reads, prints a summary (or the JSON).

import fs from "node:fs";
import path from "node:path";
import { Command, Option } from "commander";
import { ALLOCATION_BITS, allocateBits, blockMemoryMB, readSensitivity, sensitivityBlocks, stagingWarning, type Allocation } from "../calib/allocate.js";
import { CheckpointError, UsageError } from "../errors.js";
import { kvHidden, parseModelConfig } from "../model/config.js";
import { readJsonFile, writeFileAtomic } from "../util/atomic.js";
import { parseFloatArg, parseIntArg, parseIntListArg } from "./args.js";
import { checkInputDir, checkInputFile, checkOutputFile } from "../util/paths.js";

export interface AllocateFlags {
  sensitivityPath: string;
  memoryBudget: number;
  bits: number[];
  model?: string;
  kvHidden?: number;
  maxLen: number;
  out: string;
  json?: boolean;
}

/** What --out holds: the allocation plus the inputs that produced it. */
export interface AllocateOutput extends Allocation {
  meta: { sensitivityPath: string; model: string | null; memoryBudgetMB: number; bitChoices: number[]; kvHidden: number; maxLen: number };
}

/** Rows of the Pareto table printed in the summary (the file holds all of them). */
const PARETO_ROWS = 12;

export function allocateCommand(run: (flags: AllocateFlags) => void | Promise<void>): Command {
  return new Command("allocate")
    .description("Choose each block's KV-cache bit-width within a total memory budget, least summed sensitivity (exact)")
    .addOption(new Option("--sensitivity-path <file>", "JSON written by `pmkvq sensitivity` (kSensitivity / vSensitivity per bit-width and block)").makeOptionMandatory())
    .addOption(new Option("--memory-budget <MB>", "total KV-cache budget over all blocks, MB (2^20 bytes), for --max-len tokens").argParser(parseFloatArg(0, Infinity, true)).makeOptionMandatory())
    .option("--bits <list>", `bit-widths a block may end at, comma-separated, from ${ALLOCATION_BITS.join(", ")}`, parseIntListArg([...ALLOCATION_BITS]), [4, 2])
    .option("--model <dir>", "model folder: kv_hidden = num_key_value_heads × head_dim from its config.json (weights are not loaded)")
    .option("--kv-hidden <n>", "kv_hidden given directly instead of --model (original: --hidden_size)", parseIntArg(1))
    .option("--max-len <n>", "tokens the cache must hold; a block at b bits needs b × kv_hidden × 2 × max_len / 8 bytes", parseIntArg(1), 32768)
    .addOption(new Option("--out <file>", "where to write the result JSON (bits, budgetsMB, totalMB, objective, pareto, meta)").makeOptionMandatory())
    .option("--json", "print the result JSON to stdout instead of the summary")
    .action(async (flags: AllocateFlags) => run(flags));
}

export function runAllocate(flags: AllocateFlags): void {
  if ((flags.model === undefined) === (flags.kvHidden === undefined)) throw new UsageError("give exactly one of --model DIR or --kv-hidden N");
  checkInputFile(flags.sensitivityPath, "--sensitivity-path");
  if (flags.model !== undefined) checkInputDir(flags.model, "--model");
  checkOutputFile(flags.out, "--out");
  const sens = readSensitivity(flags.sensitivityPath, flags.bits);
  let hidden = flags.kvHidden ?? 0;
  if (flags.model !== undefined) {
    const configPath = path.join(flags.model, "config.json");
    if (!fs.existsSync(configPath)) throw new CheckpointError(`${flags.model}: no config.json`);
    const config = parseModelConfig(readJsonFile(configPath, CheckpointError), configPath);
    const blocks = sensitivityBlocks(sens);
    if (blocks !== config.numLayers) {
      throw new UsageError(`${flags.sensitivityPath} has ${blocks} blocks but ${configPath} has ${config.numLayers} (num_hidden_layers)`);
    }
    hidden = kvHidden(config);
  }
  const result = allocateBits(sens, { bits: flags.bits, memoryBudgetMB: flags.memoryBudget, kvHidden: hidden, maxLen: flags.maxLen });
  const output: AllocateOutput = {
    ...result,
    meta: {
      sensitivityPath: flags.sensitivityPath,
      model: flags.model ?? null,
      memoryBudgetMB: flags.memoryBudget,
      bitChoices: flags.bits,
      kvHidden: hidden,
      maxLen: flags.maxLen,
    },
  };
  const text = JSON.stringify(output) + "\n";
  writeFileAtomic(flags.out, text);
  process.stdout.write(flags.json ? text : summary(output, flags.out));
  const warning = stagingWarning(result.budgetsMB, hidden);
  if (warning) process.stderr.write(warning + "\n");
}

function summary(o: AllocateOutput, out: string): string {
  const m = o.meta;
  const chosen = o.pareto.findIndex((p) => p.budgetMB === o.totalMB && p.objective === o.objective);
  const lines = [
    `${o.bits.length} blocks · kv_hidden ${m.kvHidden} · max_len ${m.maxLen} · ${fmt(blockMemoryMB(1, m.kvHidden, m.maxLen))} MB per bit per block · choices ${m.bitChoices.join(",")}`,
    `bits       ${o.bits.join(" ")}`,
    `memory     ${fmt(o.totalMB)} MB of ${fmt(m.memoryBudgetMB)} MB budget`,
    `objective  ${fmt(o.objective)} (Σ over blocks of sK + sV at the chosen bits)`,
    `Pareto frontier, best objective per total memory (${shownRows(o.pareto.length, chosen).length} of ${o.pareto.length} points; * = chosen):`,
    `     total MB    objective  blocks per bit-width`,
  ];
  for (const i of shownRows(o.pareto.length, chosen)) {
    const p = o.pareto[i];
    const counts = m.bitChoices.map((b) => [b, p.bits.filter((x) => x === b).length]).filter(([, k]) => k > 0);
    lines.push(`  ${i === chosen ? "*" : " "} ${fmt(p.budgetMB).padStart(10)} ${fmt(p.objective).padStart(12)}  ${counts.map(([b, k]) => `${b}b×${k}`).join(" ")}`);
  }
  lines.push(`wrote ${out}`);
  return lines.join("\n") + "\n";
}

/** Up to PARETO_ROWS indices, evenly spread, always with the first, the last and the chosen one. */
function shownRows(count: number, chosen: number): number[] {
  if (count <= PARETO_ROWS) return Array.from({ length: count }, (_, i) => i);
  const rows = new Set<number>([chosen]);
  for (let k = 0; k < PARETO_ROWS - 1; k++) rows.add(Math.round((k * (count - 1)) / (PARETO_ROWS - 2)));
  return [...rows].filter((i) => i >= 0).sort((a, b) => a - b);
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(6)));
}
