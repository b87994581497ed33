// Per-block KV budgets: one number of MB for every block, or a JSON file — a list of MB per
// block, or the output of `pmkvq allocate` ({"budgetsMB": [...]}).

import fs from "node:fs";
import { UsageError } from "../errors.js";

/** Bytes in one MB as the original counts it (2^20). */
export const MB = 2 ** 20;

export function parseKvBudgetsMB(arg: string, numLayers: number): number[] {
  const trimmed = arg.trim();
  if (/^[0-9]*\.?[0-9]+(e[-+]?\d+)?$/i.test(trimmed)) {
    const mb = Number(trimmed);
    if (!(mb > 0)) throw new UsageError(`--kv-budgets ${arg}: a budget must be > 0 MB`);
    return new Array(numLayers).fill(mb);
  }
  if (!fs.existsSync(trimmed)) throw new UsageError(`--kv-budgets ${arg}: neither a number of MB nor an existing file`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(trimmed, "utf8"));
  } catch (e) {
    throw new UsageError(`--kv-budgets ${arg}: not valid JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(json) ? json : (json as { budgetsMB?: unknown })?.budgetsMB;
  if (!Array.isArray(list)) throw new UsageError(`--kv-budgets ${arg}: expected a JSON list of MB per block, or an object with "budgetsMB"`);
  if (list.length !== numLayers) throw new UsageError(`--kv-budgets ${arg}: ${list.length} budgets, but the model has ${numLayers} blocks`);
  list.forEach((v, i) => {
    if (typeof v !== "number" || !(v > 0)) throw new UsageError(`--kv-budgets ${arg}: block ${i} budget ${JSON.stringify(v)} is not a positive number of MB`);
  });
  return list as number[];
}
