// Response files in the original's schema: a JSON object from `<problem id>.<i>` to
// {seed, response, response_answer, gold, judgement, input_len, output_len}; ours add
// finish_reason, kv, settings and settings_id. Written atomically, keys in benchmark order.
// Read: one JSON object (ours; the original's `.jsonl`, which is `json.dump(…, indent=4)`),
// or JSON lines (each line an object of keyed records, or one record carrying its `key`).
// A folder of them is merged, and every entry that is not read is reported.

import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { fileError } from "../util/fs-errors.js";
import { findDuplicateKey } from "../util/json.js";
import { describeSettings, isRunSettings, settingsId, type RunSettings } from "./settings.js";

export interface ResponseRecord {
  seed: number;
  response: string;
  response_answer: string | null;
  gold: string | null;
  /** true/false when graded; null for benchmarks without final answers (and code not judged yet). */
  judgement: boolean | null;
  /** Code benchmarks: why (passed, wrong answer on test k of n, timeout, …) and what went wrong. */
  judge_reason?: string;
  judge_detail?: string | null;
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

export interface ParsedResponses {
  records: ResponseFile;
  format: "object" | "json-lines";
  /** Keys on more than one line of a JSON-lines file (the first line's record is kept). */
  duplicates: string[];
}

const KEY_FORM = `"<problem id>.<i>"`;

/** Check one record; `where` is "FILE" or "FILE:LINE", for the message. */
function checkRecord(where: string, key: string, v: unknown, hint: string): ResponseRecord {
  if (!splitKey(key)) throw new UsageError(`${where}: key "${key}" is not of the form ${KEY_FORM}${hint}`);
  if (v === null || typeof v !== "object" || Array.isArray(v) || typeof (v as { response?: unknown }).response !== "string") {
    throw new UsageError(`${where}: entry "${key}" is not a response record (an object with a string "response")${hint}`);
  }
  const settings = (v as { settings?: unknown }).settings;
  if (settings !== undefined && !isRunSettings(settings)) {
    throw new UsageError(`${where}: entry "${key}" has "settings" that are not a flat object of JSON values${hint}`);
  }
  return v as ResponseRecord;
}

/** A JSON.parse message with "position N" turned into a line number of the text. */
function jsonErrorLine(text: string, e: unknown): number | null {
  const m = /at position (\d+)/.exec((e as Error).message);
  return m ? text.slice(0, Number(m[1])).split("\n").length : null;
}

/** JSON.parse keeps the last of two equal keys silently: a text that says two things about one key is refused. */
function refuseDuplicateKey(where: string, text: string, hint: string): void {
  const dup = findDuplicateKey(text);
  if (dup) throw new UsageError(`${where}: duplicate key ${JSON.stringify(dup.key)} at ${dup.path}${hint}`);
}

/** A JSON-lines line: `{"<key>": record, …}` or a record with its key in "key" (or "id"). */
function addLine(where: string, value: unknown, out: ParsedResponses, hint: string): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(`${where}: a line must be a JSON object (records keyed ${KEY_FORM}, or one record with a "key")${hint}`);
  }
  const obj = value as Record<string, unknown>;
  const add = (k: string, v: unknown) => {
    const r = checkRecord(where, k, v, hint);
    if (k in out.records) out.duplicates.push(k);
    else out.records[k] = r;
  };
  if (typeof obj.response !== "string") {
    for (const [k, v] of Object.entries(obj)) add(k, v);
    return;
  }
  const field = typeof obj.key === "string" ? "key" : typeof obj.id === "string" ? "id" : null;
  if (!field) throw new UsageError(`${where}: a record on its own line needs a string "key" (or "id") ${KEY_FORM}${hint}`);
  const { [field]: key, ...record } = obj;
  add(key as string, record);
}

/** Parse the text of a response file; errors name `file` (and the line for JSON lines), then `hint`. */
export function parseResponses(text: string, file: string, hint = ""): ParsedResponses {
  const tail = hint ? `; ${hint}` : "";
  const out: ParsedResponses = { records: {}, format: "object", duplicates: [] };
  if (text.trim() === "") throw new UsageError(`${file}: empty file (expected a JSON object of responses keyed ${KEY_FORM}, or JSON lines)${tail}`);
  let whole: unknown;
  let wholeError: unknown = null;
  try {
    whole = JSON.parse(text);
  } catch (e) {
    wholeError = e;
  }
  if (wholeError === null) {
    refuseDuplicateKey(file, text, tail);
    if (whole === null || typeof whole !== "object" || Array.isArray(whole)) {
      throw new UsageError(`${file}: expected a JSON object of responses keyed ${KEY_FORM} (or JSON lines)${tail}`);
    }
    const obj = whole as Record<string, unknown>;
    if (typeof obj.response === "string") {
      // a JSON-lines file of one line holding one keyed record
      out.format = "json-lines";
      addLine(`${file}:${text.split("\n").findIndex((l) => l.trim() !== "") + 1}`, obj, out, tail);
      return out;
    }
    for (const [k, v] of Object.entries(obj)) out.records[k] = checkRecord(file, k, v, tail);
    return out;
  }
  const lines = text.split(/\r?\n/);
  const parseLine = (l: string): unknown => {
    try {
      return JSON.parse(l);
    } catch {
      return undefined;
    }
  };
  const filled = lines.filter((l) => l.trim() !== "");
  const isLines = filled.length > 1 && filled.some((l) => {
    const v = parseLine(l);
    return v !== null && typeof v === "object" && !Array.isArray(v);
  });
  if (!isLines) {
    const line = jsonErrorLine(text, wholeError);
    throw new UsageError(`${file}${line ? `:${line}` : ""}: not valid JSON (${(wholeError as Error).message})${tail}`);
  }
  out.format = "json-lines";
  lines.forEach((l, i) => {
    if (l.trim() === "") return;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(l);
    } catch (e) {
      throw new UsageError(`${where}: not valid JSON (${(e as Error).message})${tail}`);
    }
    refuseDuplicateKey(where, l, tail);
    addLine(where, value, out, tail);
  });
  return out;
}

/** Read a response file (either format); a missing file is empty, a malformed one an error. */
export function readResponseFile(file: string): ResponseFile {
  if (!fs.existsSync(file)) return {};
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw fileError(file, "read", e);
  }
  return parseResponses(text, file, "move it away to start over").records;
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

// ---- a folder of response files ------------------------------------------------------------

/** The responses made under one settings (null: records without settings, e.g. the original's). */
export interface SettingsGroup {
  /** 1-based, in the order first seen (files sorted by name). */
  group: number;
  settings_id: string | null;
  settings: RunSettings | null;
  description: string;
  /** Records read under these settings (duplicates included). */
  n_responses: number;
  files: string[];
}

export interface ResponseFileSummary {
  file: string;
  format: "object" | "json-lines";
  n_responses: number;
  /** Records per settings group of this file, in the order first seen. */
  settings: { group: number; settings_id: string | null; n_responses: number }[];
}

/** A folder entry that was not read: `hidden` ones (temp and lock files) are ignored, others skipped. */
export interface SkippedEntry {
  file: string;
  reason: string;
  hidden: boolean;
}

export interface MergedResponses {
  dir: string;
  records: Map<string, ResponseRecord>;
  files: ResponseFileSummary[];
  settings_groups: SettingsGroup[];
  /** Keys found in more than one file or line (the first one's record is kept). */
  duplicates: string[];
  skipped: SkippedEntry[];
}

export const RESPONSE_EXTENSIONS = [".json", ".jsonl"];
export const UNKNOWN_SETTINGS = "unknown settings (no settings recorded, e.g. the original's files)";

/** Why a folder entry is not read, or null when it is a response file. */
function skipReason(dir: string, name: string): SkippedEntry | null {
  const file = path.join(dir, name);
  if (name.startsWith(".")) {
    // writeFileAtomic's `.<name>.<pid>.<time>.tmp` and the runner's `.<name>.lock`
    const reason = name.endsWith(".tmp") ? "temp file of a write in progress or killed"
      : name.endsWith(".lock") ? "lock file of a run in progress or killed"
      : "hidden";
    return { file, reason, hidden: true };
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    return { file, reason: `cannot be read (${(e as NodeJS.ErrnoException).code ?? e}; a broken link?)`, hidden: false };
  }
  if (stat.isDirectory()) return { file, reason: "sub-folder: not read", hidden: false };
  if (!stat.isFile()) return { file, reason: "not a regular file", hidden: false };
  if (!RESPONSE_EXTENSIONS.some((ext) => name.endsWith(ext))) return { file, reason: "not a response file: only .json and .jsonl are read", hidden: false };
  return null;
}

/** Every .json / .jsonl response file in dir (sorted by name), merged; `what` names dir in errors (a flag). */
export function readResponsesDir(dir: string, what = "--responses-dir"): MergedResponses {
  if (!fs.existsSync(dir)) throw new UsageError(`${what} ${dir}: no such folder`);
  if (!fs.statSync(dir).isDirectory()) throw new UsageError(`${what} ${dir}: is a file, not a folder; give the folder that holds the response files`);
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (e) {
    throw fileError(dir, "list", e, what);
  }
  const merged: MergedResponses = { dir, records: new Map(), files: [], settings_groups: [], duplicates: [], skipped: [] };
  const groupOf = new Map<string | null, SettingsGroup>();
  for (const name of names) {
    const skipped = skipReason(dir, name);
    if (skipped) {
      merged.skipped.push(skipped);
      continue;
    }
    const file = path.join(dir, name);
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw fileError(file, "read", e, what);
    }
    const parsed = parseResponses(text, file, `fix it or move it out of ${dir}`);
    merged.duplicates.push(...parsed.duplicates);
    const summary: ResponseFileSummary = { file, format: parsed.format, n_responses: 0, settings: [] };
    for (const [k, r] of Object.entries(parsed.records)) {
      if (merged.records.has(k)) merged.duplicates.push(k);
      else merged.records.set(k, r);
      const id = r.settings ? settingsId(r.settings) : null;
      let group = groupOf.get(id);
      if (!group) {
        group = {
          group: groupOf.size + 1,
          settings_id: id,
          settings: r.settings ?? null,
          description: r.settings ? describeSettings(r.settings) : UNKNOWN_SETTINGS,
          n_responses: 0,
          files: [],
        };
        groupOf.set(id, group);
        merged.settings_groups.push(group);
      }
      group.n_responses++;
      if (!group.files.includes(file)) group.files.push(file);
      const inFile = summary.settings.find((s) => s.group === group.group);
      if (inFile) inFile.n_responses++;
      else summary.settings.push({ group: group.group, settings_id: id, n_responses: 1 });
      summary.n_responses++;
    }
    merged.files.push(summary);
  }
  if (merged.files.length === 0) {
    const seen = merged.skipped.length ? ` (found only: ${merged.skipped.slice(0, 5).map((s) => path.basename(s.file)).join(", ")}${merged.skipped.length > 5 ? ", …" : ""})` : " (the folder is empty)";
    throw new UsageError(`${what} ${dir}: no response files (.json or .jsonl)${seen}`);
  }
  return merged;
}
