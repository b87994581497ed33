// LiveCodeBench (code generation), the fourth benchmark of the paper's tables, read from its
// release files (huggingface.co/datasets/livecodebench/code_generation_lite): JSON lines
// `test.jsonl`, `test2.jsonl`, … one problem a line. A problem's id is its question_id; its
// gold is its tests (public, then private), read again from the file only when judged.
//
// `--dataset-path DIR --benchmark livecodebench --version V`: DIR holds the release files, or
// DIR/livecodebench/ does. V as LiveCodeBench's loader names them: release_vN (test.jsonl …
// testN.jsonl), release_latest (every test*.jsonl present), vN (testN.jsonl only; v1 is
// test.jsonl), vA_vB (testA … testB). Optional contest-date bounds, inclusive, as LiveCodeBench's
// --start_date / --end_date (start ≤ contest_date ≤ end, dates at midnight).

import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { fileError } from "../util/fs-errors.js";
import type { Benchmark, Problem } from "./benchmarks.js";
import { decodeCompressedString, PickleFormatError } from "./pickle-str.js";

export const LIVECODEBENCH = "livecodebench";

/** One test: stdin text and expected stdout, or JSON lines of arguments and the JSON result. */
export interface CodeTest {
  input: string;
  output: string;
}

export interface CodeProblem extends Problem {
  kind: "code";
  questionId: string;
  title: string;
  platform: string;
  contestId: string;
  /** As written in the file, e.g. 2024-08-03T00:00:00. */
  contestDate: string;
  difficulty: string;
  starterCode: string;
  /** metadata.func_name: the method of `class Solution` a functional test calls; null for stdin tests. */
  fnName: string | null;
  /** Where the problem's line is, to read its tests when judged. */
  source: { file: string; line: number; offset: number; length: number };
}

export interface CodeBenchmark extends Benchmark {
  kind: "code";
  problems: CodeProblem[];
  /** The release files read, in order. */
  files: string[];
}

export interface DateRange {
  /** YYYY-MM-DD, inclusive. */
  startDate?: string;
  endDate?: string;
}

export function isCodeProblem(p: Problem): p is CodeProblem {
  return (p as CodeProblem).kind === "code";
}

export function isCodeBenchmark(b: Benchmark): b is CodeBenchmark {
  return (b as CodeBenchmark).kind === "code";
}

// ---- the prompt ----------------------------------------------------------------------------

// The original's prompt, reproduced exactly: thu-nics/PM-KVQ
// pm_kvq/evaluation/eval_livecodebench/eval_livecodebench.py (the user turn) and
// livecodebench.py `transform` (format_prompt), with the messages of prompts.py
// CodeGenerationPromptConstants. No system message (pm_kvq/utils/chatbot.py `chat` sends one
// user turn). Starter code present → the functional format, else the stdin one.
export const FORMATTING_MESSAGE_WITH_STARTER_CODE = "You will use the following starter code to write the solution to the problem and enclose your code within delimiters.";
export const FORMATTING_WITHOUT_STARTER_CODE = "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample inputs). Enclose your code within delimiters as follows.";

/** The template, recorded in every response's settings as its prompt. */
export const LIVECODEBENCH_PROMPT_TEMPLATE =
  "### Question:\n{question_content}\n\n### Format: {formatting message}\n```python\n{starter_code | # YOUR CODE HERE}\n```\n\n### Answer: (use the provided format with backticks)\n\n";

export function livecodebenchPrompt(p: Pick<CodeProblem, "text" | "starterCode">): string {
  const format = p.starterCode
    ? `### Format: ${FORMATTING_MESSAGE_WITH_STARTER_CODE}\n\`\`\`python\n${p.starterCode}\n\`\`\`\n\n`
    : `### Format: ${FORMATTING_WITHOUT_STARTER_CODE}\n\`\`\`python\n# YOUR CODE HERE\n\`\`\`\n\n`;
  return `### Question:\n${p.text}\n\n${format}### Answer: (use the provided format with backticks)\n\n`;
}

// ---- the answer ----------------------------------------------------------------------------

/**
 * The code of a response: the lines between the last two lines that contain ``` (as
 * LiveCodeBench's extract_code and the original's extract_code_generation_v2); null when fewer
 * than two such lines, or when what is between them is blank.
 */
export function extractCode(response: string): string | null {
  const lines = response.split("\n");
  const fences = lines.flatMap((l, i) => (l.includes("```") ? [i] : []));
  if (fences.length < 2) return null;
  const code = lines.slice(fences[fences.length - 2] + 1, fences[fences.length - 1]).join("\n");
  return code.trim() === "" ? null : code;
}

// ---- the release files ---------------------------------------------------------------------

/** Release file n: test.jsonl for 1, testN.jsonl after. */
const releaseFile = (n: number) => (n === 1 ? "test.jsonl" : `test${n}.jsonl`);

/** test.jsonl, test2.jsonl, … present in dir, by number. */
function presentFiles(dir: string): number[] {
  return fs.readdirSync(dir).flatMap((f) => {
    const m = /^test(\d*)\.jsonl$/.exec(f);
    return m && m[1] !== "1" ? [m[1] === "" ? 1 : Number(m[1])] : [];
  }).sort((a, b) => a - b);
}

/** The folder holding the release files: DIR, or DIR/livecodebench (or DIR/livecodebench/code_generation_lite). */
export function findReleaseDir(root: string): string {
  const candidates = [root, path.join(root, LIVECODEBENCH), path.join(root, LIVECODEBENCH, "code_generation_lite")];
  for (const dir of candidates) if (fs.existsSync(dir) && fs.statSync(dir).isDirectory() && presentFiles(dir).length > 0) return dir;
  throw new UsageError(
    `--dataset-path ${root}: no LiveCodeBench release files (test.jsonl, test2.jsonl, …) in it or in ${path.join(root, LIVECODEBENCH)}; ` +
      "download them from huggingface.co/datasets/livecodebench/code_generation_lite",
  );
}

/** The release files of a version, in LiveCodeBench's order. */
export function versionFiles(version: string, present: number[]): string[] {
  const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => releaseFile(a + i));
  let m: RegExpExecArray | null;
  if (version === "release_latest") return present.map(releaseFile);
  if ((m = /^release_v(\d+)$/.exec(version)) && Number(m[1]) >= 1) return range(1, Number(m[1]));
  if ((m = /^v(\d+)$/.exec(version)) && Number(m[1]) >= 1) return [releaseFile(Number(m[1]))];
  if ((m = /^v(\d+)_v(\d+)$/.exec(version)) && Number(m[1]) >= 1 && Number(m[2]) > Number(m[1])) return range(Number(m[1]), Number(m[2]));
  throw new UsageError(`livecodebench has no version "${version}": give release_vN (test.jsonl … testN.jsonl), release_latest, vN (testN.jsonl only) or vA_vB (A < B), e.g. release_v5 or v6`);
}

/** Every line of a file, read in chunks (release files are too large for one string), with its byte offset. */
function forEachLine(file: string, onLine: (text: string, line: number, offset: number, length: number) => void): void {
  const fd = fs.openSync(file, "r");
  try {
    const chunk = Buffer.alloc(1 << 20);
    let parts: Buffer[] = [];
    let lineStart = 0;
    let fileOffset = 0;
    let line = 0;
    const flush = (end: number) => {
      line++;
      const buf = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      parts = [];
      if (buf.length > 0) onLine(buf.toString("utf8"), line, lineStart, end - lineStart);
    };
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; fileOffset += n) {
      let from = 0;
      for (let i = chunk.indexOf(10, 0); i >= 0 && i < n; i = chunk.indexOf(10, i + 1)) {
        parts.push(Buffer.from(chunk.subarray(from, i)));
        flush(fileOffset + i);
        from = i + 1;
        lineStart = fileOffset + from;
      }
      if (from < n) parts.push(Buffer.from(chunk.subarray(from, n)));
    }
    if (parts.length) flush(fileOffset);
  } finally {
    fs.closeSync(fd);
  }
}

/** A problem's JSON fields, checked: `where` is FILE:LINE. */
function readRow(text: string, where: string): Record<string, unknown> {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (row === null || typeof row !== "object" || Array.isArray(row)) throw new UsageError(`${where}: a line must be a JSON object (one problem)`);
  const r = row as Record<string, unknown>;
  for (const f of ["question_id", "question_content", "public_test_cases", "private_test_cases", "metadata", "contest_date"]) {
    if (typeof r[f] !== "string") throw new UsageError(`${where}: field "${f}" must be a string (LiveCodeBench's release format)`);
  }
  return r;
}

/** "2024-08-03T00:00:00" (or a date alone) → a sortable "YYYY-MM-DDTHH:MM:SS"; null when not a date. */
export function normalizeDate(s: string): string | null {
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?$/.exec(s.trim());
  if (!m || Number.isNaN(Date.parse(m[1]))) return null;
  return `${m[1]}T${m[2] ?? "00"}:${m[3] ?? "00"}:${m[4] ?? "00"}`;
}

function checkDateFlag(flag: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value) || normalizeDate(value) === null) throw new UsageError(`${flag} ${value}: expected a date YYYY-MM-DD`);
  return normalizeDate(value);
}

export function loadLiveCodeBench(root: string, version: string, dates: DateRange = {}): CodeBenchmark {
  if (!fs.existsSync(root)) throw new UsageError(`--dataset-path ${root}: no such folder`);
  const start = checkDateFlag("--start-date", dates.startDate);
  const end = checkDateFlag("--end-date", dates.endDate);
  const dir = findReleaseDir(root);
  const files = versionFiles(version, presentFiles(dir)).map((f) => path.join(dir, f));
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length) throw new UsageError(`livecodebench ${version} needs ${missing.map((f) => path.basename(f)).join(", ")} in ${dir} (found: ${presentFiles(dir).map(releaseFile).join(", ")})`);
  const problems: CodeProblem[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    try {
      forEachLine(file, (text, line, offset, length) => {
        if (text.trim() === "") return;
        const where = `${file}:${line}`;
        const r = readRow(text, where);
        const id = r.question_id as string;
        if (!/^[^\s]+$/.test(id)) throw new UsageError(`${where}: question_id ${JSON.stringify(id)} must be one word (it names the problem's responses)`);
        if (seen.has(id)) throw new UsageError(`${where}: question_id ${id} again (first at ${seen.get(id)})`);
        seen.set(id, where);
        const contestDate = normalizeDate(r.contest_date as string);
        if (contestDate === null) throw new UsageError(`${where}: contest_date ${JSON.stringify(r.contest_date)} is not a date`);
        if ((start && contestDate < start) || (end && contestDate > end)) return;
        const metadata = parseJsonField(r.metadata as string, "metadata", where);
        const fnName = metadata !== null && typeof metadata === "object" && typeof (metadata as { func_name?: unknown }).func_name === "string" ? (metadata as { func_name: string }).func_name : null;
        problems.push({
          kind: "code",
          id,
          subset: `${LIVECODEBENCH}_${version}`,
          number: problems.length + 1,
          text: r.question_content as string,
          gold: id,
          questionId: id,
          title: typeof r.question_title === "string" ? r.question_title : "",
          platform: typeof r.platform === "string" ? r.platform : "",
          contestId: typeof r.contest_id === "string" ? r.contest_id : "",
          contestDate: r.contest_date as string,
          difficulty: typeof r.difficulty === "string" ? r.difficulty : "",
          starterCode: typeof r.starter_code === "string" ? r.starter_code : "",
          fnName,
          source: { file, line, offset, length },
        });
      });
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw fileError(file, "read", e, "--dataset-path");
    }
  }
  return { kind: "code", name: LIVECODEBENCH, version, subsets: [`${LIVECODEBENCH}_${version}`], problems, gradable: true, files };
}

function parseJsonField(text: string, field: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: field "${field}" is not a JSON string (${(e as Error).message})`);
  }
}

/** A JSON list of {input, output, testtype}, checked. */
function parseTests(value: unknown, field: string, where: string): CodeTest[] {
  if (!Array.isArray(value)) throw new UsageError(`${where}: ${field} must be a list of tests`);
  return value.map((t, i) => {
    const test = t as { input?: unknown; output?: unknown; testtype?: unknown };
    if (t === null || typeof t !== "object" || typeof test.input !== "string" || typeof test.output !== "string") {
      throw new UsageError(`${where}: ${field}[${i}] must be an object with string "input" and "output"`);
    }
    if (test.testtype !== undefined && test.testtype !== "stdin" && test.testtype !== "functional") {
      throw new UsageError(`${where}: ${field}[${i}].testtype ${JSON.stringify(test.testtype)} is neither "stdin" nor "functional"`);
    }
    return { input: test.input, output: test.output };
  });
}

/**
 * The tests of a problem, public then private (as LiveCodeBench grades them), read again from
 * its line. private_test_cases is a JSON string, or else the compressed encoding.
 */
export function loadCodeTests(p: CodeProblem): CodeTest[] {
  const where = `${p.source.file}:${p.source.line}`;
  const buf = Buffer.alloc(p.source.length);
  let fd: number;
  try {
    fd = fs.openSync(p.source.file, "r");
  } catch (e) {
    throw fileError(p.source.file, "read", e, "--dataset-path");
  }
  try {
    fs.readSync(fd, buf, 0, buf.length, p.source.offset);
  } finally {
    fs.closeSync(fd);
  }
  const r = readRow(buf.toString("utf8"), where);
  if (r.question_id !== p.id) throw new UsageError(`${where}: no longer holds problem ${p.id} (the file changed since it was read)`);
  const pub = parseTests(parseJsonField(r.public_test_cases as string, "public_test_cases", where), "public_test_cases", where);
  const raw = r.private_test_cases as string;
  let priv: unknown;
  try {
    priv = JSON.parse(raw);
  } catch {
    try {
      priv = parseJsonField(decodeCompressedString(raw), "private_test_cases (decoded)", where);
    } catch (e) {
      if (e instanceof PickleFormatError) throw new UsageError(`${where}: private_test_cases is neither JSON nor base64(zlib(pickle of a JSON string)): ${e.message}`);
      throw e;
    }
  }
  return [...pub, ...parseTests(priv, "private_test_cases", where)];
}
