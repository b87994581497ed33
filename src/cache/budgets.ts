// Per-block KV budgets: one number of MB for every block, or a JSON file — a list of MB per
// block, or the output of `pmkvq allocate` ({"budgetsMB": [...]}).

import fs from "node:fs";
import { UsageError } from "../errors.js";
import { readJsonFile } from "../util/atomic.js";
import { preview } from "../util/json.js";

/** Bytes in one MB as the original counts it (2^20). */
export const MB = 2 ** 20;

/** A budget is a finite number of MB > 0 (JSON's 1e999 reads as Infinity: refused). */
const isBudget = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;

export function parseKvBudgetsMB(arg: string, numLayers: number): number[] {
  const trimmed = arg.trim();
  if (/^[0-9]*\.?[0-9]+(e[-+]?\d+)?$/i.test(trimmed)) {
    const mb = Number(trimmed);
    if (!isBudget(mb)) throw new UsageError(`--kv-budgets ${arg}: a budget must be > 0 MB (and finite)`);
    return new Array(numLayers).fill(mb);
  }
  if (!fs.existsSync(trimmed)) throw new UsageError(`--kv-budgets ${arg}: neither a number of MB nor an existing file`);
  let json: unknown;
  try {
    json = readJsonFile(trimmed, UsageError);
  } catch (e) {
    // "FILE: cannot read (is a folder, not a file (EISDIR))", "FILE: duplicate key …", "FILE: not valid JSON (…)"
    throw e instanceof UsageError ? new UsageError(`--kv-budgets ${e.message}`) : e;
  }
  const list = Array.isArray(json) ? json : json !== null && typeof json === "object" ? (json as { budgetsMB?: unknown }).budgetsMB : undefined;
  const where = `--kv-budgets ${trimmed}`;
  if (!Array.isArray(list)) throw new UsageError(`${where}: expected a JSON list of MB per block, or an object with "budgetsMB"`);
  if (list.length !== numLayers) throw new UsageError(`${where}: ${list.length} budgets, but the model has ${numLayers} blocks`);
  list.forEach((v, i) => {
    if (!isBudget(v)) throw new UsageError(`${where}: block ${i} budget ${preview(v)} is not a finite positive number of MB`);
  });
  return list as number[];
}
