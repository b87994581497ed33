// Response files in the original's schema: a JSON object from `<problem id>.<i>` to
// {seed, response, response_answer, gold, judgement, input_len, output_len}; ours add
// finish_reason and kv. Written atomically, keys in benchmark order.

import fs from "node:fs";
import { UsageError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { RunSettings } from "./settings.js";

export interface ResponseRecord {
  seed: number;
  response: string;
  response_answer: string | null;
  gold: string | null;
  /** true/false when graded; null for benchmarks without final answers. */
  judgement: boolean | null;
  input_len: number;
  output_len: number;
  finish_reason?: string;
  kv?: { method: string; totalCodeBytes: number; totalHeldBytes: number; bodyBits: number[] };
  /** The run's settings (eval/settings.ts) and their id; absent in the original's files. */
  settings?: RunSettings;
  settings_id?: string;
}

export type ResponseFile = Record<string, ResponseRecord>;

/** `<problem id>.<i>` → [problem id, i]. */
export function splitKey(key: string): [string, number] | null {
  const m = /^(.*)\.(\d+)$/.exec(key);
  return m ? [m[1], Number(m[2])] : null;
}

export function responseKey(problemId: string, i: number): string {
  return `${problemId}.${i}`;
}

/** Read a response file; a missing file is empty, a malformed one an error. */
export function readResponseFile(file: string): ResponseFile {
  if (!fs.existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message}); move it away to start over`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new UsageError(`${file}: expected an object of responses keyed "<problem id>.<i>"`);
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    if (!splitKey(k) || v === null || typeof v !== "object" || typeof (v as { response?: unknown }).response !== "string") {
      throw new UsageError(`${file}: entry "${k}" is not a response record`);
    }
  }
  return json as ResponseFile;
}

/** Write responses atomically, problems in `order` first (by response index), any others after. */
export function writeResponseFile(file: string, records: ResponseFile, order: string[]): void {
  const rank = new Map(order.map((id, i) => [id, i]));
  const keys = Object.keys(records).sort((a, b) => {
    const [pa, ia] = splitKey(a)!;
    const [pb, ib] = splitKey(b)!;
    const ra = rank.get(pa) ?? Infinity;
    const rb = rank.get(pb) ?? Infinity;
    if (ra !== rb) return ra - rb;
    if (pa !== pb) return pa < pb ? -1 : 1;
    return ia - ib;
  });
  const sorted: ResponseFile = {};
  for (const k of keys) sorted[k] = records[k];
  writeFileAtomic(file, JSON.stringify(sorted, null, 1) + "\n");
}
