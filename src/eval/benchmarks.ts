// Benchmarks in the original's folder layout (../shared/datasets/README.md):
//   <root>/<bench>/<bench>_<version>[_I|_II]/{config.yaml, answers.csv, problems/<n>.tex}
// A problem's id is `<subset>.<n>` (e.g. aime_2024_I.8); the ordered list runs over the
// subsets (I before II) and, within one, by problem number.

import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { isCodeProblem, LIVECODEBENCH, livecodebenchPrompt, loadLiveCodeBench, type DateRange } from "./livecodebench.js";

export const BENCHMARKS = ["aime", "cmimc", "hmmt", "usamo", LIVECODEBENCH] as const;

/** The instruction of spec §8 appended to every problem. */
export const INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}.";

export interface Problem {
  id: string;
  subset: string;
  number: number;
  text: string;
  /** null when the benchmark has no final answers (USAMO proofs). */
  gold: string | null;
}

export interface Benchmark {
  name: string;
  version: string;
  subsets: string[];
  problems: Problem[];
  /** false for proof benchmarks: responses are saved, not auto-graded. */
  gradable: boolean;
  /** "code" for LiveCodeBench (eval/livecodebench.ts): judged by running tests. */
  kind?: "math" | "code";
}

/** The `key: value` lines of a config.yaml (double-quoted values are JSON-style strings). */
export function parseSimpleYaml(text: string): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_][\w-]*):\s*(.*)$/.exec(line.trimEnd());
    if (!m) continue;
    const raw = m[2].trim();
    if (raw.startsWith('"')) {
      try {
        out[m[1]] = JSON.parse(raw) as string;
      } catch {
        out[m[1]] = raw; // not a JSON-style string: keep it as written
      }
    }
    else if (raw === "true" || raw === "false") out[m[1]] = raw === "true";
    else if (raw !== "" && Number.isFinite(Number(raw))) out[m[1]] = Number(raw);
    else out[m[1]] = raw.replace(/^'(.*)'$/, "$1");
  }
  return out;
}

/** Rows of a CSV file with a header; fields may be double-quoted (with "" escapes). */
export function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  let field = "";
  let row: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      field = "";
      if (row.some((f) => f !== "")) rows.push(row);
      row = [];
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f !== "")) rows.push(row);
  const [header = [], ...body] = rows;
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h.trim(), r[i] ?? ""])));
}

/** Subset folders of a benchmark version, sorted (I before II). */
function findSubsets(root: string, name: string, version: string): string[] {
  const dir = path.join(root, name);
  if (!fs.existsSync(dir)) {
    const have = fs.existsSync(root) ? fs.readdirSync(root).filter((f) => fs.statSync(path.join(root, f)).isDirectory()) : [];
    throw new UsageError(`--dataset-path ${root}: no benchmark "${name}" (found: ${have.join(", ") || "nothing"})`);
  }
  const prefix = `${name}_${version}`;
  const folders = fs.readdirSync(dir).filter((f) => f === prefix || new RegExp(`^${prefix}_[IVX]+$`).test(f));
  if (folders.length === 0) {
    const versions = fs.readdirSync(dir).map((f) => f.slice(name.length + 1).replace(/_[IVX]+$/, ""));
    throw new UsageError(`benchmark ${name} has no version "${version}" in ${dir} (found: ${[...new Set(versions)].join(", ")})`);
  }
  const roman = (f: string) => ["", "I", "II", "III", "IV", "V"].indexOf(f.slice(prefix.length + 1));
  return folders.sort((a, b) => roman(a) - roman(b));
}

/** A benchmark by name; livecodebench reads its release files (eval/livecodebench.ts), with optional contest dates. */
export function loadBenchmark(root: string, name: string, version: string, dates: DateRange = {}): Benchmark {
  if (name === LIVECODEBENCH) return loadLiveCodeBench(root, version, dates);
  if (dates.startDate !== undefined || dates.endDate !== undefined) throw new UsageError(`--start-date and --end-date select LiveCodeBench problems; ${name} has no contest dates`);
  if (!fs.existsSync(root)) throw new UsageError(`--dataset-path ${root}: no such folder`);
  const subsets = findSubsets(root, name, version);
  const problems: Problem[] = [];
  let gradable = true;
  for (const subset of subsets) {
    const dir = path.join(root, name, subset);
    const config = fs.existsSync(path.join(dir, "config.yaml")) ? parseSimpleYaml(fs.readFileSync(path.join(dir, "config.yaml"), "utf8")) : {};
    const hasAnswers = config.final_answer !== false && fs.existsSync(path.join(dir, "answers.csv"));
    if (!hasAnswers) gradable = false;
    const answers = new Map<string, string>();
    if (hasAnswers) {
      const csv = path.join(dir, "answers.csv");
      const rows = parseCsv(fs.readFileSync(csv, "utf8"));
      if (rows.length > 0 && (!("id" in rows[0]) || !("answer" in rows[0]))) throw new UsageError(`${csv}: the header must name the columns "id" and "answer" (found: ${Object.keys(rows[0]).join(", ")})`);
      for (const r of rows) answers.set(r.id.trim(), r.answer.trim());
    }
    const problemDir = path.join(dir, "problems");
    if (!fs.existsSync(problemDir)) throw new UsageError(`${dir}: no problems/ folder`);
    const numbers = fs.readdirSync(problemDir).filter((f) => /^\d+\.tex$/.test(f)).map((f) => Number(f.slice(0, -4))).sort((a, b) => a - b);
    for (const n of numbers) {
      const gold = hasAnswers ? answers.get(String(n)) : undefined;
      if (hasAnswers && gold === undefined) throw new UsageError(`${dir}/answers.csv: no answer for problem ${n}`);
      problems.push({ id: `${subset}.${n}`, subset, number: n, text: fs.readFileSync(path.join(problemDir, `${n}.tex`), "utf8").trim(), gold: gold ?? null });
    }
  }
  return { name, version, subsets, problems, gradable };
}

/** The user turn of a problem (spec §8; LiveCodeBench: the original's code prompt). */
export function problemPrompt(p: Problem): string {
  if (isCodeProblem(p)) return livecodebenchPrompt(p);
  return p.text + INSTRUCTION;
}

/** Problems [start, end) of the ordered list, checked. */
export function selectRange(b: Benchmark, start: number, end: number | undefined): { start: number; end: number; problems: Problem[] } {
  const n = b.problems.length;
  const e = end ?? n;
  if (!Number.isInteger(start) || start < 0 || start > n) throw new UsageError(`--start ${start} is outside 0 … ${n}`);
  if (!Number.isInteger(e) || e < start || e > n) throw new UsageError(`--end ${e} must be in ${start} … ${n} (${b.name} ${b.version} has ${n} problems)`);
  return { start, end: e, problems: b.problems.slice(start, e) };
}

/** --shard i/n (i from 0): the i-th of n contiguous, nearly equal ranges of problems. */
export function shardRange(shard: string, total: number): { start: number; end: number } {
  const m = /^(\d+)\/(\d+)$/.exec(shard.trim());
  if (!m) throw new UsageError(`--shard ${shard}: expected i/n with 0 ≤ i < n, e.g. 0/4`);
  const [i, n] = [Number(m[1]), Number(m[2])];
  if (n < 1 || i >= n) throw new UsageError(`--shard ${shard}: need 0 ≤ i < n`);
  return { start: Math.floor((i * total) / n), end: Math.floor(((i + 1) * total) / n) };
}
