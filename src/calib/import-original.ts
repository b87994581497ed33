// Import the calibration artifacts of the Python original (thu-nics/PM-KVQ) — torch.save files —
// into the files our own commands write, so `pmkvq allocate`, `eval`, `generate`, … read them:
//
//   original script (torch.save of)                         → ours
//   get_sensitivity.py   {"k_sensitivity": {16: [L floats],    sensitivity.json
//                          8: …, 4, 2, 1}, "v_sensitivity": …}
//   allocate_memory.py   [L numpy float64] (MB per block)    → allocation.json ({"budgetsMB": …})
//   get_max_keys.py      [L bf16 tensors (1, H, 1, d/2)]     → max_keys.safetensors
//   search_rep_scales.py [L bf16 tensors (1, H, 1, d/2)]     → rep_scales.safetensors
//
// Values are imported as stored (bf16 widened to float32 exactly). Two stored values differ
// from what this project computes (spec §10), and the import says so in each file's metadata:
// the sensitivity carries the original's block-order bug (it cannot be undone from the stored
// means), and the original's evaluation folds √r of the rep scales, not r (--rep-scales-sqrt
// writes √r, to reproduce that evaluation). Every input is read and checked before anything is
// written; each output is written atomically.

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { FileError, RefusedGlobalError, UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import { writeSafetensors } from "../model/safetensors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { fileError } from "../util/fs-errors.js";
import type { PyValue } from "../util/pickle.js";
import { looksLikeTorchZip, MAX_TORCH_FILE_BYTES, parseTorchSave } from "../util/torch-pickle.js";
import { packageVersion } from "../util/version.js";
import { sensitivityBlocks } from "./allocate.js";
import { ARTIFACTS, CALIBRATION_STEPS, type CalibrationStep } from "./calibrate.js";
import { writeMaxKeys } from "./max-keys.js";
import {
  blockTensorsFromOriginal, budgetBits, budgetsFromOriginal, classify, describe, describeBlockTensors, evaluatedScales,
  ORIGINAL_HOLDS, ORIGINAL_SCRIPT, sensitivityFromOriginal,
} from "./original-artifacts.js";

/** What the import says about each artifact (printed by the command, kept in each output's metadata). */
export const IMPORT_NOTES: Record<CalibrationStep, string> = {
  sensitivity:
    "imported as stored; the original pairs block i's quantization error with block L−1−i's gradient (spec §10), " +
    "which cannot be undone from the stored means — run `pmkvq sensitivity` for each block with its own gradient",
  allocation:
    "the original's per-block budgets (MB) as stored; its own evaluation cannot read this file (--kv_budgets takes one float, spec §10), " +
    "pm-kvq's --kv-budgets FILE can; the original saves no objective or Pareto table",
  "max-keys": "imported as stored (bf16 widened to float32 exactly), (1, H, 1, d/2) per block as layers.{l}.max_keys (H, d/2)",
  "rep-scales":
    "imported as stored: r, the searched scales, which pm-kvq folds into q_proj/k_proj; the original's evaluation passes this file " +
    "where max keys are expected and folds r ** 0.5 instead (spec §10) — --rep-scales-sqrt writes those √r",
};

export const SQRT_NOTE = "written as √r clamped to [1e-4, 1e4], rounded to the stored dtype — the scales the original's evaluation folds (spec §10)";

export interface ImportOriginalOptions {
  /** A folder of the original's torch.save files, recognised by what they hold. */
  inDir?: string;
  /** Files named explicitly, per artifact (they win over what `inDir` holds). */
  files?: Partial<Record<CalibrationStep, string>>;
  outDir: string;
  /** Shapes to check against (from config.json); without it only the artifacts' agreement is checked. */
  model?: Pick<ModelConfig, "numLayers" | "numKvHeads" | "headDim">;
  /** num_key_value_heads × head_dim for reading budgets as bit-widths (from `model` when absent). */
  kvHidden?: number;
  /** Tokens the budgets were sized for (the original's --max_len, 32768 by default). */
  maxLen: number;
  /** Write √r as rep scales (what the original's evaluation folds) instead of r as stored. */
  repScalesSqrt?: boolean;
  /** Recorded in import.json. */
  modelDir?: string;
}

export interface ImportedArtifact {
  step: CalibrationStep;
  source: string;
  sourceSha256: string;
  /** The file written, inside outDir. */
  output: string;
  blocks: number;
  /** What the source held, in words ("5 × bfloat16 (1, 4, 1, 4)"). */
  held: string;
  notes: string[];
}

export interface ImportOriginalResult {
  imported: ImportedArtifact[];
  /** Files of inDir that are not artifacts of the original, and why. */
  skipped: { file: string; reason: string }[];
  /** What was checked, in words. */
  checks: string[];
  /** The provenance record written beside the artifacts. */
  provenanceFile: string;
}

interface Found {
  step: CalibrationStep;
  file: string;
  value: PyValue;
  /** Of the bytes that were parsed. */
  sha256: string;
}

/** Read, convert and check every artifact found, then write ours; throws before writing anything if one is wrong. */
export function importOriginal(o: ImportOriginalOptions): ImportOriginalResult {
  const { found, skipped } = collect(o);
  if (!found.length) {
    const looked = skipped.map((s) => `  ${path.basename(s.file)}: ${s.reason}`).join("\n");
    throw new UsageError(`no artifacts of the original found${o.inDir ? ` in ${o.inDir}` : ""}${looked ? `; looked at:\n${looked}` : ""}`);
  }
  const by = new Map(found.map((f) => [f.step, f]));
  const checks: string[] = [];
  const blockCounts: [CalibrationStep, number][] = [];
  const blocksOf = (step: CalibrationStep, n: number) => blockCounts.push([step, n]);

  const sens = by.get("sensitivity");
  const sensitivity = sens ? sensitivityFromOriginal(sens.value, sens.file) : null;
  if (sensitivity) blocksOf("sensitivity", sensitivityBlocks(sensitivity));
  const alloc = by.get("allocation");
  const budgets = alloc ? budgetsFromOriginal(alloc.value, alloc.file) : null;
  if (budgets) blocksOf("allocation", budgets.length);
  const mk = by.get("max-keys");
  const maxKeys = mk ? blockTensorsFromOriginal(mk.value, mk.file, "max-keys") : null;
  if (maxKeys) blocksOf("max-keys", maxKeys.perBlock.length);
  const rs = by.get("rep-scales");
  const repScales = rs ? blockTensorsFromOriginal(rs.value, rs.file, "rep-scales") : null;
  if (repScales) blocksOf("rep-scales", repScales.perBlock.length);

  // the artifacts agree with each other, and with the model when one is given
  const counts = new Set(blockCounts.map(([, n]) => n));
  if (counts.size > 1) {
    throw new UsageError(`the artifacts disagree on the number of blocks: ${blockCounts.map(([step, n]) => `${step} ${n}`).join(", ")} — were they made for one model?`);
  }
  const blocks = [...counts][0];
  checks.push(`${blocks} blocks in ${found.length === 1 ? "the artifact" : `all ${found.length} artifacts`}`);
  if (maxKeys && repScales && (maxKeys.heads !== repScales.heads || maxKeys.pairs !== repScales.pairs)) {
    throw new UsageError(`max keys are ${maxKeys.heads} heads × ${maxKeys.pairs} pairs per block, rep scales ${repScales.heads} × ${repScales.pairs}: not made for one model`);
  }
  const shaped = maxKeys ?? repScales;
  if (shaped) checks.push(`${maxKeys && repScales ? "max keys and rep scales" : maxKeys ? "max keys" : "rep scales"}: ${shaped.heads} KV heads × ${shaped.pairs} RoPE pairs per block`);
  if (o.model) {
    const m = o.model;
    if (blocks !== m.numLayers) throw new UsageError(`the artifacts have ${blocks} blocks, the model ${m.numLayers} (num_hidden_layers)`);
    if (shaped && (shaped.heads !== m.numKvHeads || 2 * shaped.pairs !== m.headDim)) {
      throw new UsageError(`the key tensors are ${shaped.heads} heads × ${shaped.pairs} pairs per block, the model needs ${m.numKvHeads} × ${m.headDim / 2} (num_key_value_heads × head_dim/2)`);
    }
    checks.push(`matches the model: ${m.numLayers} blocks, ${m.numKvHeads} KV heads, head_dim ${m.headDim}`);
  } else {
    checks.push("not checked against a model (give --model DIR to check blocks, KV heads and head_dim)");
  }

  // everything is read and checked: write ours
  fs.mkdirSync(o.outDir, { recursive: true });
  const imported: ImportedArtifact[] = [];
  const record = (f: Found, held: string, notes: string[]): { meta: Record<string, string> } => {
    imported.push({ step: f.step, source: path.resolve(f.file), sourceSha256: f.sha256, output: path.join(o.outDir, ARTIFACTS[f.step]), blocks, held, notes });
    return { meta: { imported_from: path.resolve(f.file), source_sha256: f.sha256, original_script: ORIGINAL_SCRIPT[f.step], note: notes.join("; ") } };
  };
  if (sens && sensitivity) {
    const { meta } = record(sens, `k/v sensitivity at ${Object.keys(sensitivity.kSensitivity).join(", ")} bits`, [IMPORT_NOTES.sensitivity]);
    writeFileAtomic(path.join(o.outDir, ARTIFACTS.sensitivity), JSON.stringify({ ...sensitivity, meta }, null, 1) + "\n");
  }
  if (alloc && budgets) {
    const kvHidden = o.kvHidden ?? (o.model ? o.model.numKvHeads * o.model.headDim : undefined);
    const bits = kvHidden === undefined ? null : budgetBits(budgets, kvHidden, o.maxLen);
    const notes = [IMPORT_NOTES.allocation];
    if (kvHidden === undefined) notes.push("bit-widths not derived (give --model DIR or --kv-hidden N)");
    else if (!bits) notes.push(`the budgets are not whole bit-widths at kv_hidden ${kvHidden} and max_len ${o.maxLen} (the original's --hidden_size defaults to 1024); bit-widths not derived`);
    const { meta } = record(alloc, `${budgets.length} budgets, ${fmt(sum(budgets))} MB in all`, notes);
    const out = { budgetsMB: budgets, totalMB: sum(budgets), ...(bits ? { bits } : {}), meta: { ...meta, kvHidden: kvHidden ?? null, maxLen: o.maxLen } };
    writeFileAtomic(path.join(o.outDir, ARTIFACTS.allocation), JSON.stringify(out, null, 1) + "\n");
  }
  if (mk && maxKeys) {
    const { meta } = record(mk, describeBlockTensors(maxKeys), [IMPORT_NOTES["max-keys"]]);
    writeMaxKeys(path.join(o.outDir, ARTIFACTS["max-keys"]), maxKeys.perBlock, { numKvHeads: maxKeys.heads, headDim: 2 * maxKeys.pairs }, { ...meta, source_dtype: maxKeys.dtype });
  }
  if (rs && repScales) {
    const notes = [IMPORT_NOTES["rep-scales"], ...(o.repScalesSqrt ? [SQRT_NOTE] : [])];
    const { meta } = record(rs, describeBlockTensors(repScales), notes);
    const scales = o.repScalesSqrt ? repScales.perBlock.map((r) => evaluatedScales(r, repScales.dtype)) : repScales.perBlock;
    writeSafetensors(
      path.join(o.outDir, ARTIFACTS["rep-scales"]),
      scales.map((s, l) => ({ name: `layers.${l}.scales`, dtype: "F32" as const, shape: [repScales.heads, repScales.pairs], data: s })),
      { format: "pm-kvq-rep-scales", ...meta, source_dtype: repScales.dtype, applied: o.repScalesSqrt ? "sqrt" : "as stored" },
    );
  }
  const provenanceFile = path.join(o.outDir, "import.json");
  const provenance = {
    tool: "pm-kvq", version: packageVersion(), command: "import-original", importedAt: new Date().toISOString(),
    model: o.modelDir ? path.resolve(o.modelDir) : null, maxLen: o.maxLen, repScalesSqrt: Boolean(o.repScalesSqrt),
    artifacts: Object.fromEntries(imported.map((a) => [a.step, { source: a.source, sha256: a.sourceSha256, output: path.basename(a.output), held: a.held, notes: a.notes }])),
    checks, skipped,
  };
  writeFileAtomic(provenanceFile, JSON.stringify(provenance, null, 1) + "\n");
  return { imported, skipped, checks, provenanceFile };
}

/** Explicit files first, then every file of inDir, each classified by what it holds. */
function collect(o: ImportOriginalOptions): { found: Found[]; skipped: { file: string; reason: string }[] } {
  const found: Found[] = [];
  const skipped: { file: string; reason: string }[] = [];
  const taken = new Set<string>();
  for (const step of CALIBRATION_STEPS) {
    const file = o.files?.[step];
    if (file === undefined) continue;
    const { value, sha256 } = readArtifact(file, false);
    const kind = classify(value);
    if (kind !== step && !(kind === "tensor-list" && (step === "max-keys" || step === "rep-scales"))) {
      throw new UsageError(`${file}: holds ${describe(value)}, not the original's ${step} (${ORIGINAL_SCRIPT[step]} saves ${ORIGINAL_HOLDS[step]})`);
    }
    found.push({ step, file, value, sha256 });
    taken.add(path.resolve(file));
  }
  if (o.inDir === undefined) return { found, skipped };
  let names: string[];
  try {
    names = fs.readdirSync(o.inDir).sort();
  } catch (e) {
    throw new FileError(`--in ${o.inDir}: cannot list the folder (${(e as Error).message})`);
  }
  for (const name of names) {
    const file = path.join(o.inDir, name);
    if (name.startsWith(".") || !isFile(file)) continue;
    if (taken.has(path.resolve(file))) continue;
    const head = readHead(file);
    if (!looksLikeTorchZip(head)) {
      skipped.push({ file, reason: head[0] === 0x80 ? "a torch.save file in the legacy (pre-1.6) format; load and save it again with torch ≥ 1.6" : "not a torch.save archive" });
      continue;
    }
    if (fs.statSync(file).size > MAX_TORCH_FILE_BYTES) {
      skipped.push({ file, reason: `larger than any calibration artifact (over ${MAX_TORCH_FILE_BYTES / 2 ** 20} MiB): not read` });
      continue;
    }
    let read: { value: PyValue; sha256: string };
    try {
      read = readArtifact(file, true);
    } catch (e) {
      // tensors of other dtypes (RotateKV's int64 reorder indices) are not artifacts; any other refused global stops the import
      if (!(e instanceof RefusedGlobalError && /^torch\.[A-Za-z0-9]+Storage$/.test(e.global))) throw e;
      skipped.push({ file, reason: `holds tensors of ${e.global} (not float32/float16/bfloat16), none of the original's artifacts` });
      continue;
    }
    let step = classify(read.value);
    if (step === null) {
      skipped.push({ file, reason: `holds ${describe(read.value)}, none of the original's artifacts` });
      continue;
    }
    if (step === "tensor-list") step = tensorListStep(file);
    if (o.files?.[step] !== undefined) {
      skipped.push({ file, reason: `looks like ${step}, but ${FLAG[step]} ${o.files[step]} was given` });
      continue;
    }
    const twin = found.find((f) => f.step === step);
    if (twin) throw new UsageError(`both ${twin.file} and ${file} hold ${step}; name the one to import with ${FLAG[step]} FILE`);
    found.push({ step, file, ...read });
  }
  return { found, skipped };
}

/** The flags of `pmkvq import-original` that name each artifact (the original's spellings work too). */
export const FLAG: Record<CalibrationStep, string> = {
  sensitivity: "--sensitivity-path",
  allocation: "--kv-budgets",
  "max-keys": "--max-keys-path",
  "rep-scales": "--rep-scales",
};

/** The object a torch.save file holds, and the sha256 of the bytes it was read from. */
function readArtifact(file: string, scanned: boolean): { value: PyValue; sha256: string } {
  let bytes: Buffer;
  try {
    if (fs.statSync(file).size > MAX_TORCH_FILE_BYTES) throw new FileError(`${file}: larger than any calibration artifact (over ${MAX_TORCH_FILE_BYTES / 2 ** 20} MiB); not read`);
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw e instanceof FileError ? e : fileError(file, "read", e);
  }
  try {
    return { value: parseTorchSave(bytes, file).value, sha256: crypto.createHash("sha256").update(bytes).digest("hex") };
  } catch (e) {
    if (!scanned || !(e instanceof FileError)) throw e;
    const hint = `${e.message} — move it out of the --in folder, or name the artifacts with ${Object.values(FLAG).join(", ")}`;
    throw e instanceof RefusedGlobalError ? new RefusedGlobalError(hint, e.global) : new FileError(hint);
  }
}

/** Max keys and rep scales are both lists of per-block tensors: the file name must tell which. */
function tensorListStep(file: string): CalibrationStep {
  const base = path.basename(file).toLowerCase();
  const rep = /rep|scale/.test(base);
  const max = /max|key/.test(base);
  if (rep !== max) return rep ? "rep-scales" : "max-keys";
  throw new UsageError(
    `${file}: a list of per-block key tensors — max keys or rep scales? Its name does not tell; give it as --max-keys-path FILE or --rep-scales FILE`,
  );
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function readHead(file: string): Uint8Array {
  const head = new Uint8Array(4);
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, "r");
    const n = fs.readSync(fd, head, 0, 4, 0);
    return head.subarray(0, n);
  } catch (e) {
    throw new FileError(`${file}: cannot read (${(e as Error).message})`);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const fmt = (x: number) => String(Number(x.toPrecision(6)));
