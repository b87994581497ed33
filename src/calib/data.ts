// Calibration data (spec §5, §9): plain text, JSON lines ({"text": …} per line, as RedPajama
// samples are distributed) or a folder of such files; documents shuffled by a seed, tokenized,
// concatenated and cut into n_samples chunks of seq_len tokens. Positional interpolation
// spreads a chunk's position ids over effective_len.

import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { Rng } from "../util/rng.js";
import type { TextTokenizer } from "../tokenizer/tokenizer.js";

const TEXT_EXTENSIONS = [".txt", ".md", ".jsonl", ".json"];

/** Documents of a calibration source: a file, or every text/JSON-lines file in a folder (sorted). */
export function readCalibrationDocuments(source: string): { documents: string[]; files: string[] } {
  if (!fs.existsSync(source)) throw new UsageError(`calibration data ${source}: no such file or folder`);
  const files = fs.statSync(source).isDirectory() ? listTextFiles(source) : [source];
  if (files.length === 0) throw new UsageError(`calibration data ${source}: the folder holds no ${TEXT_EXTENSIONS.join("/")} files`);
  const documents: string[] = [];
  for (const f of files) documents.push(...readDocuments(f));
  if (documents.length === 0) throw new UsageError(`calibration data ${source}: no text found`);
  return { documents, files };
}

function listTextFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTextFiles(p));
    else if (TEXT_EXTENSIONS.includes(path.extname(entry.name).toLowerCase())) out.push(p);
  }
  return out;
}

/** A .jsonl file (or a .json file of JSON lines) gives one document per line's "text"; other files are one document. */
function readDocuments(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const ext = path.extname(file).toLowerCase();
  if (ext !== ".jsonl" && ext !== ".json") return text.trim() ? [text] : [];
  const docs: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new UsageError(`${file}:${i + 1}: not a JSON object per line (${(e as Error).message})`);
    }
    const t = typeof obj === "string" ? obj : (obj as { text?: unknown } | null)?.text;
    if (typeof t !== "string") throw new UsageError(`${file}:${i + 1}: no "text" string`);
    if (t.trim()) docs.push(t);
  });
  return docs;
}

export interface CalibrationOptions {
  nSamples: number;
  seqLen: number;
  seed: number;
  /**
   * Tokenize each document with the tokenizer's special tokens (e.g. BOS): default true, so every
   * document starts as text does at inference. The original passes add_special_tokens=False.
   */
  addSpecialTokens?: boolean;
  /**
   * Use only the first N documents (before shuffling), as the original's
   * `select(range(1510))` of RedPajama; default all.
   */
  firstDocuments?: number;
}

/** The original's calibration selection: RedPajama's first 1510 documents. */
export const ORIGINAL_FIRST_DOCUMENTS = 1510;

/**
 * Keep the first `firstDocuments` documents, shuffle them with `seed` (Fisher–Yates over our
 * Rng: the original's Hugging Face `shuffle(seed)` is a numpy permutation, so the order differs),
 * tokenize each (with or without special tokens), concatenate, and cut the first
 * nSamples × seqLen tokens into nSamples chunks.
 */
export function buildCalibrationSamples(tokenizer: TextTokenizer, allDocuments: string[], o: CalibrationOptions): number[][] {
  if (!Number.isInteger(o.nSamples) || o.nSamples < 1) throw new UsageError(`n-samples must be ≥ 1 (got ${o.nSamples})`);
  if (!Number.isInteger(o.seqLen) || o.seqLen < 2) throw new UsageError(`seq-len must be ≥ 2 (got ${o.seqLen})`);
  if (o.firstDocuments !== undefined && !(Number.isInteger(o.firstDocuments) && o.firstDocuments >= 1)) throw new UsageError(`first-documents must be an integer ≥ 1 (got ${o.firstDocuments})`);
  const documents = o.firstDocuments === undefined ? allDocuments : allDocuments.slice(0, o.firstDocuments);
  const order = documents.map((_, i) => i);
  const rng = new Rng(o.seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const need = o.nSamples * o.seqLen;
  const tokens: number[] = [];
  for (const i of order) {
    tokens.push(...tokenizer.encode(documents[i], o.addSpecialTokens ?? true));
    if (tokens.length >= need) break;
  }
  if (tokens.length < need) {
    throw new UsageError(
      `calibration data has ${tokens.length} tokens${documents.length < allDocuments.length ? ` in its first ${documents.length} documents` : ""}, fewer than n-samples × seq-len = ${o.nSamples} × ${o.seqLen} = ${need}; ` +
        `at this seq-len it holds ${Math.floor(tokens.length / o.seqLen)} samples`,
    );
  }
  return Array.from({ length: o.nSamples }, (_, s) => tokens.slice(s * o.seqLen, (s + 1) * o.seqLen));
}

/** Position ids 0, s, 2s, … with s = effectiveLen / seqLen (spec §1.3); s must be a whole number. */
export function interpolatedPositions(seqLen: number, effectiveLen: number): number[] {
  const s = effectiveLen / seqLen;
  if (!Number.isInteger(s) || s < 1) {
    throw new UsageError(`effective-len ${effectiveLen} must be a whole multiple (≥ 1×) of seq-len ${seqLen}`);
  }
  return Array.from({ length: seqLen }, (_, i) => i * s);
}
