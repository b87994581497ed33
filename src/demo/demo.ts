// `pmkvq demo`: PM-KVQ's claim on a laptop CPU, in minutes — the frontier (frontier/) on the
// embedded default model with a selection of methods and memory levels: accuracy against
// honest KV memory under the reserved (the paper's) and the held (strict) protocol, and the
// verdict of each built from the numbers.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FrontierOptions } from "../frontier/frontier.js";
import { DEFAULT_TASK, type LookupSumOptions } from "../task/lookup-sum.js";
import { readJsonFile } from "../util/atomic.js";

/** The embedded default model, shipped in the package. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL("../../../models/default", import.meta.url));

/** The task a model was trained on (its train_log.json), else the default task. */
export function trainedTask(modelDir: string): LookupSumOptions {
  const file = path.join(modelDir, "train_log.json");
  if (!fs.existsSync(file)) return DEFAULT_TASK;
  const t = (readJsonFile(file) as { options?: { task?: LookupSumOptions } }).options?.task;
  return t && t.facts > 0 && t.steps > 0 ? t : DEFAULT_TASK;
}

export interface DemoChoice {
  modelDir: string;
  outDir: string;
  quick: boolean;
  problems?: number;
  calibrationSamples?: number;
  task?: LookupSumOptions;
}

/**
 * The demo's frontier run. quick (under 2 minutes here): the full cache, RTN and KIVI at 4 and
 * 2 bits, TurboQuant at 4, 3 and 2, pm-kvq over its allocation table with W = 32, 10 problems.
 * Otherwise every method, 8/4/3/2 bits, W = 32 and 128 and the Hadamard variant, 40 problems.
 */
export function demoOptions(c: DemoChoice): FrontierOptions {
  return {
    modelDir: c.modelDir,
    outDir: c.outDir,
    problems: c.problems ?? (c.quick ? 10 : 40),
    task: c.task ?? trainedTask(c.modelDir),
    minLengthFraction: 1,
    methods: c.quick ? ["original", "rtn", "kivi", "turboquant", "pm-kvq"] : ["original", "rtn", "kivi", "mikv", "rotatekv", "turboquant", "pm-kvq"],
    bits: c.quick ? [4, 3, 2] : [8, 4, 3, 2],
    windows: c.quick ? [32] : [32, 128],
    hadamard: !c.quick,
    calibrationSamples: c.calibrationSamples ?? (c.quick ? 4 : 16),
  };
}
