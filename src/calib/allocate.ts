// Block-wise memory allocation (spec §4): choose one bit-width per block so that the summed
// sensitivity is least while the blocks' KV caches fit the total budget — a multiple-choice
// knapsack, solved exactly by dynamic programming over the total number of bits.
//
// Every block has the same kv_hidden, so mem_i(b) = b·u with one unit u (MB per bit) for all
// blocks: the constraint Σ mem_i(b_i) ≤ M is Σ b_i ≤ ⌊M/u⌋, an integer capacity of at most
// 16 × blocks. The table is blocks × (16·blocks + 1) cells (128 blocks: 262 144 cells).
//
// Objective and ties, precisely:
// - the objective of an assignment is the float64 sum cost_0 + (cost_1 + (… + cost_{n−1})),
//   cost_i = sK[b_i][i] + sV[b_i][i]; the DP minimises exactly this number (float addition is
//   monotone, so min(a + x, a + y) = a + min(x, y) holds in float64 too);
// - among assignments with the least objective, the one using the least memory wins;
// - among those, the lexicographically greatest bit list in block order (the earliest block
//   that differs gets the higher bit-width).

import fs from "node:fs";
import { UsageError } from "../errors.js";
import { readJsonFile } from "../util/atomic.js";

/** Bit-widths a block's cache can end at (spec §2). */
export const ALLOCATION_BITS = [16, 8, 4, 2, 1] as const;

/** Bytes in one MB as the original counts it (2^20). */
const MB = 2 ** 20;

/**
 * A budget short of a total by less than this many bit-units (×u MB) still holds it: it
 * absorbs the round-off of M/u (relative 1e-16 × at most a few thousand units) and is far
 * below the 1-bit step between achievable totals.
 */
export const CAPACITY_EPSILON_BITS = 1e-9;

/** Per-block sensitivities keyed by bit-width ("16", "8", …), as `pmkvq sensitivity` writes them. */
export interface Sensitivity {
  kSensitivity: Record<string, number[]>;
  vSensitivity: Record<string, number[]>;
  meta?: Record<string, unknown>;
}

export interface AllocateOptions {
  /** Bit-width choices, e.g. [4, 2]; each must be a key of both sensitivity tables. */
  bits: number[];
  /** Total budget M over all blocks, MB (2^20 bytes). */
  memoryBudgetMB: number;
  /** num_key_value_heads × head_dim. */
  kvHidden: number;
  /** Tokens the cache is sized for. */
  maxLen: number;
}

export interface ParetoPoint {
  /** Total memory of `bits`, MB. */
  budgetMB: number;
  /** Least objective at exactly this total. */
  objective: number;
  bits: number[];
}

export interface Allocation {
  /** Chosen bit-width per block. */
  bits: number[];
  /** mem_i(b_i) per block, MB — what `generate --kv-budgets FILE` reads. */
  budgetsMB: number[];
  totalMB: number;
  objective: number;
  /** Ascending total memory; each point strictly improves the objective of the one before. */
  pareto: ParetoPoint[];
}

/** mem_i(b) = b × kv_hidden × 2 × max_len / 8 / 2^20 — MB of one block's K and V (spec §4). */
export function blockMemoryMB(bits: number, kvHidden: number, maxLen: number): number {
  return (bits * kvHidden * 2 * maxLen) / 8 / MB;
}

/** Number of blocks in a sensitivity table (the length its bit lists share). */
export function sensitivityBlocks(sens: Sensitivity): number {
  const first = Object.values(sens.kSensitivity)[0] ?? Object.values(sens.vSensitivity)[0];
  return first?.length ?? 0;
}

/** Solve spec §4 exactly; throws UsageError for an infeasible budget or unusable inputs. */
export function allocateBits(sens: Sensitivity, opts: AllocateOptions): Allocation {
  const { kvHidden, maxLen, memoryBudgetMB } = opts;
  if (!Number.isSafeInteger(kvHidden) || kvHidden <= 0) throw new UsageError(`kv_hidden must be a positive integer (got ${kvHidden})`);
  if (!Number.isSafeInteger(maxLen) || maxLen <= 0) throw new UsageError(`max_len must be a positive integer (got ${maxLen})`);
  if (!(memoryBudgetMB >= 0)) throw new UsageError(`memory budget must be a number of MB ≥ 0 (got ${memoryBudgetMB})`);
  const choices = checkChoices(opts.bits);
  const costs = blockCosts(sens, choices);
  const n = costs.length;
  const unitMB = blockMemoryMB(1, kvHidden, maxLen);
  const { best, pick } = solveTable(costs, choices);

  const capacity = Math.floor(memoryBudgetMB / unitMB + CAPACITY_EPSILON_BITS);
  const minBits = choices[choices.length - 1];
  if (capacity < n * minBits) {
    const minMB = n * blockMemoryMB(minBits, kvHidden, maxLen);
    throw new UsageError(
      `memory budget ${memoryBudgetMB} MB is below the smallest feasible budget ${minMB} MB ` +
        `(all ${n} blocks at ${minBits} bits, kv_hidden ${kvHidden}, max_len ${maxLen})`,
    );
  }
  const point = (total: number): ParetoPoint => {
    const bits = reconstruct(pick, choices, n, total);
    return { budgetMB: totalMB(bits, kvHidden, maxLen), objective: best[total], bits };
  };
  const pareto: ParetoPoint[] = [];
  let chosen = -1;
  let bestSoFar = Infinity;
  for (let total = 0; total < best.length; total++) {
    if (!(best[total] < bestSoFar)) continue;
    bestSoFar = best[total];
    pareto.push(point(total));
    if (total <= capacity) chosen = pareto.length - 1;
  }
  const { bits, objective, budgetMB } = pareto[chosen];
  return { bits, budgetsMB: bits.map((b) => blockMemoryMB(b, kvHidden, maxLen)), totalMB: budgetMB, objective, pareto };
}

/** Distinct positive integers, sorted high to low (the tie-break order). */
function checkChoices(bits: number[]): number[] {
  if (!bits.length) throw new UsageError("no bit-width choices given");
  for (const b of bits) {
    if (!Number.isInteger(b) || b <= 0 || b > 64) throw new UsageError(`bit-width choice ${b} is not an integer in 1 … 64`);
  }
  if (new Set(bits).size !== bits.length) throw new UsageError(`bit-width choices ${bits.join(",")} repeat a value`);
  return [...bits].sort((a, b) => b - a);
}

/** costs[i][c] = sK[choices[c]][i] + sV[choices[c]][i]. */
function blockCosts(sens: Sensitivity, choices: number[]): Float64Array[] {
  const missing = choices.filter((b) => !Array.isArray(sens.kSensitivity[b]) || !Array.isArray(sens.vSensitivity[b]));
  if (missing.length) {
    const have = Object.keys(sens.kSensitivity).filter((k) => Array.isArray(sens.vSensitivity[k]));
    throw new UsageError(`sensitivity has no ${missing.join(", ")}-bit entries (it has: ${have.join(", ") || "none"})`);
  }
  const n = sens.kSensitivity[choices[0]].length;
  if (n === 0) throw new UsageError("sensitivity lists no blocks");
  for (const b of choices) {
    for (const [name, table] of [["kSensitivity", sens.kSensitivity], ["vSensitivity", sens.vSensitivity]] as const) {
      const list = table[b];
      if (list.length !== n) throw new UsageError(`sensitivity ${name}["${b}"] has ${list.length} blocks, expected ${n}`);
      list.forEach((v, i) => {
        if (typeof v !== "number" || !Number.isFinite(v)) throw new UsageError(`sensitivity ${name}["${b}"][${i}] is ${JSON.stringify(v)}, not a finite number`);
      });
    }
  }
  return Array.from({ length: n }, (_, i) => Float64Array.from(choices, (b) => sens.kSensitivity[b][i] + sens.vSensitivity[b][i]));
}

/**
 * Suffix DP. best[w] = least objective of all blocks using exactly w bits (Infinity if no
 * assignment totals w); pick[i·(W+1) + w] = index of block i's choice in an optimal
 * assignment of blocks i … n−1 totalling w, the first (highest) choice among exact ties.
 */
function solveTable(costs: Float64Array[], choices: number[]): { best: Float64Array; pick: Int8Array } {
  const n = costs.length;
  const W = n * choices[0];
  const width = W + 1;
  const pick = new Int8Array(n * width).fill(-1);
  let next = new Float64Array(width).fill(Infinity); // blocks i+1 … n−1
  next[0] = 0;
  let cur = new Float64Array(width);
  for (let i = n - 1; i >= 0; i--) {
    cur.fill(Infinity);
    const cost = costs[i];
    for (let w = 0; w <= W; w++) {
      let m = Infinity;
      let arg = -1;
      for (let c = 0; c < choices.length; c++) {
        const rest = w - choices[c];
        if (rest < 0 || next[rest] === Infinity) continue;
        const v = cost[c] + next[rest];
        if (v < m) {
          m = v;
          arg = c;
        }
      }
      cur[w] = m;
      pick[i * width + w] = arg;
    }
    [cur, next] = [next, cur];
  }
  return { best: next, pick };
}

/** Follow the picks from block 0 with `total` bits; `total` must be achievable. */
function reconstruct(pick: Int8Array, choices: number[], n: number, total: number): number[] {
  const width = pick.length / n;
  const bits: number[] = [];
  let w = total;
  for (let i = 0; i < n; i++) {
    const b = choices[pick[i * width + w]];
    bits.push(b);
    w -= b;
  }
  return bits;
}

function totalMB(bits: number[], kvHidden: number, maxLen: number): number {
  return bits.reduce((s, b) => s + blockMemoryMB(b, kvHidden, maxLen), 0);
}

/**
 * Read and validate a `pmkvq sensitivity` file: two objects of bit-width → per-block numbers,
 * every list of one length. `requiredBits` must be present in both. Errors name the file and field.
 */
export function readSensitivity(file: string, requiredBits: number[] = []): Sensitivity {
  if (!fs.existsSync(file)) throw new UsageError(`${file}: no such sensitivity file`);
  return parseSensitivity(readJsonFile(file, UsageError), file, requiredBits);
}

/** Validate a sensitivity object (as `pmkvq sensitivity` writes it); errors start with `file`. */
export function parseSensitivity(raw: unknown, file: string, requiredBits: number[] = []): Sensitivity {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new UsageError(`${file}: not a JSON object`);
  const obj = raw as Record<string, unknown>;
  let blocks = -1;
  const tables: Record<string, Record<string, number[]>> = {};
  for (const name of ["kSensitivity", "vSensitivity"]) {
    const t = obj[name];
    if (t === null || typeof t !== "object" || Array.isArray(t)) throw new UsageError(`${file}: "${name}" is missing or not an object of bit-width → per-block list`);
    for (const [key, list] of Object.entries(t as Record<string, unknown>)) {
      const field = `${name}["${key}"]`;
      if (!/^[1-9]\d*$/.test(key)) throw new UsageError(`${file}: ${field}: key is not a bit-width`);
      if (!Array.isArray(list)) throw new UsageError(`${file}: ${field} is not a list`);
      list.forEach((v, i) => {
        if (typeof v !== "number" || !Number.isFinite(v)) throw new UsageError(`${file}: ${field}[${i}] is ${JSON.stringify(v)}, not a finite number`);
      });
      if (blocks < 0) blocks = list.length;
      if (list.length !== blocks) throw new UsageError(`${file}: ${field} has ${list.length} blocks, other lists have ${blocks}`);
    }
    tables[name] = t as Record<string, number[]>;
  }
  if (blocks === 0) throw new UsageError(`${file}: the sensitivity lists are empty (no blocks)`);
  for (const b of requiredBits) {
    for (const name of ["kSensitivity", "vSensitivity"]) {
      if (!(String(b) in tables[name])) {
        throw new UsageError(`${file}: ${name} has no "${b}" entry (bit-widths present: ${Object.keys(tables[name]).join(", ") || "none"})`);
      }
    }
  }
  const meta = obj.meta !== null && typeof obj.meta === "object" && !Array.isArray(obj.meta) ? (obj.meta as Record<string, unknown>) : undefined;
  return { kSensitivity: tables.kSensitivity, vSensitivity: tables.vSensitivity, ...(meta ? { meta } : {}) };
}

/**
 * MB the progressive cache needs before its body forms: the sink and a full window at 16 bits
 * (original defaults 1 + 128 tokens). Budgets below this stop generation with "kv_budget" early.
 */
export function stagingNeedMB(kvHidden: number, tokens = 1 + 128, bits = 16): number {
  return (tokens * kvHidden * 2 * bits) / 8 / 2 ** 20;
}

/** A warning when some block budget cannot hold the 16-bit sink + window, else null. */
export function stagingWarning(budgetsMB: number[], kvHidden: number): string | null {
  const need = stagingNeedMB(kvHidden);
  const low = budgetsMB.filter((b) => b < need).length;
  if (low === 0) return null;
  return (
    `warning: ${low} of ${budgetsMB.length} block budgets are below ${need.toPrecision(3)} MB, what the 16-bit sink and ` +
    `128-token window need before a body forms; generation with them stops early (kv_budget). Raise --max-len or the budget.`
  );
}
