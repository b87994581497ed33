// `pmkvq calibrate`: the whole calibration (spec §4–§6) into one folder — sensitivity,
// allocation, max keys, rep scales — with a manifest.json recording inputs, versions and
// hashes. A step whose artifact exists, hashes as recorded, and was made from the same
// inputs is skipped, so an interrupted run resumes where it stopped.

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import type { LoadedModel } from "../model/checkpoint.js";
import { kvHidden } from "../model/config.js";
import { readJsonFile, writeFileAtomic } from "../util/atomic.js";
import { packageVersion } from "../util/version.js";
import { allocateBits, type Allocation } from "./allocate.js";
import { buildCalibrationSamples, interpolatedPositions, readCalibrationDocuments } from "./data.js";
import { computeMaxKeys, readMaxKeys, writeMaxKeys } from "./max-keys.js";
import { writeRepScales } from "./rep-scales.js";
import { searchRepScales } from "./scale-search.js";
import { computeSensitivity, type SensitivityResult } from "./sensitivity.js";

export const CALIBRATION_STEPS = ["sensitivity", "allocation", "max-keys", "rep-scales"] as const;
export type CalibrationStep = (typeof CALIBRATION_STEPS)[number];

export const ARTIFACTS: Record<CalibrationStep, string> = {
  sensitivity: "sensitivity.json",
  allocation: "allocation.json",
  "max-keys": "max_keys.safetensors",
  "rep-scales": "rep_scales.safetensors",
};

export interface CalibrateOptions {
  dataset: string;
  outDir: string;
  memoryBudgetMB: number;
  bits: number[];
  maxLen: number;
  nSamples: number;
  seqLen: number;
  effectiveLen: number;
  seed: number;
  /** Special tokens (BOS) added to each document (default true; the original: false). */
  addBos?: boolean;
  /** Only the first N documents are used (default all; the original: 1510). */
  firstDocuments?: number;
  groupSize: number;
  kBits: number;
  vBits: number;
  grid: number;
  /** Recompute every step even if its artifact is up to date. */
  force?: boolean;
  /** Progress within a step (samples done). */
  onProgress?: (step: CalibrationStep, done: number, total: number) => void;
  /** A step started, was skipped, or finished. */
  onStep?: (step: CalibrationStep, event: "start" | "skip" | "done", seconds?: number) => void;
}

interface StepRecord {
  file: string;
  sha256: string;
  inputsKey: string;
  seconds: number;
  finishedAt: string;
}

export interface Manifest {
  tool: string;
  version: string;
  model: { dir: string; sha256: string };
  dataset: { path: string; files: string[]; sha256: string };
  options: Record<string, unknown>;
  steps: Partial<Record<CalibrationStep, StepRecord>>;
}

export function sha256File(file: string): string {
  const h = crypto.createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

function sha256Of(parts: string[]): string {
  const h = crypto.createHash("sha256");
  for (const p of parts) h.update(p + "\n");
  return h.digest("hex");
}

/** Hash of the files that define a model: config, tokenizer, weights. */
export function modelHash(dir: string): string {
  if (fs.statSync(dir).isFile()) return sha256Of([`${path.basename(dir)}:${sha256File(dir)}`]); // a GGUF file
  const files = fs.readdirSync(dir).filter((f) => /\.(json|safetensors)$/.test(f) && !f.startsWith(".")).sort();
  return sha256Of(files.map((f) => `${f}:${sha256File(path.join(dir, f))}`));
}

/**
 * The manifest of an earlier run, checked: an object whose steps each name a file, its sha256
 * and the key of their inputs. Anything else is refused (a hand-edited or foreign file would
 * otherwise decide which steps are skipped).
 */
export function readManifest(file: string): Manifest {
  const raw = readJsonFile(file, UsageError);
  const bad = (why: string): never => {
    throw new UsageError(`${file}: not a calibration manifest written by pmkvq (${why}); move it away, or run with --force to recompute every step`);
  };
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) bad("not a JSON object");
  const m = raw as Record<string, unknown>;
  if (m.steps === null || typeof m.steps !== "object" || Array.isArray(m.steps)) bad('no "steps" object');
  for (const [name, rec] of Object.entries(m.steps as Record<string, unknown>)) {
    if (!(CALIBRATION_STEPS as readonly string[]).includes(name)) bad(`unknown step "${name}"`);
    const r = rec as Record<string, unknown> | null;
    if (r === null || typeof r !== "object" || Array.isArray(r)) bad(`step "${name}" is not an object`);
    for (const k of ["file", "sha256", "inputsKey"]) if (typeof r![k] !== "string") bad(`step "${name}" has no string "${k}"`);
    if (r!.file !== ARTIFACTS[name as CalibrationStep]) bad(`step "${name}" names file ${JSON.stringify(r!.file)}, not ${ARTIFACTS[name as CalibrationStep]}`);
  }
  return m as unknown as Manifest;
}

export interface CalibrateResult {
  manifest: Manifest;
  allocation: Allocation;
  ran: CalibrationStep[];
  skipped: CalibrationStep[];
}

export function calibrate(model: LoadedModel, o: CalibrateOptions): CalibrateResult {
  fs.mkdirSync(o.outDir, { recursive: true });
  const manifestPath = path.join(o.outDir, "manifest.json");
  const previous = !o.force && fs.existsSync(manifestPath) ? readManifest(manifestPath) : null;
  const { documents, files } = readCalibrationDocuments(o.dataset);
  const datasetSha = sha256Of(files.map((f) => `${path.relative(o.dataset, f)}:${sha256File(f)}`));
  const manifest: Manifest = {
    tool: "pm-kvq",
    version: packageVersion(),
    model: { dir: path.resolve(model.dir), sha256: modelHash(model.dir) },
    dataset: { path: path.resolve(o.dataset), files: files.map((f) => path.resolve(f)), sha256: datasetSha },
    options: {
      memoryBudgetMB: o.memoryBudgetMB, bits: o.bits, maxLen: o.maxLen, nSamples: o.nSamples, seqLen: o.seqLen,
      effectiveLen: o.effectiveLen, seed: o.seed, ...(o.addBos === false ? { addBos: false } : {}),
      ...(o.firstDocuments !== undefined ? { firstDocuments: o.firstDocuments } : {}), groupSize: o.groupSize, kBits: o.kBits, vBits: o.vBits, grid: o.grid,
    },
    steps: {},
  };
  // the keys of runs with the defaults are unchanged, so their manifests stay up to date
  const dataKey = [manifest.model.sha256, datasetSha, o.nSamples, o.seqLen, o.effectiveLen, o.seed, ...(o.addBos === false ? ["no-bos"] : []), ...(o.firstDocuments !== undefined ? [`first-${o.firstDocuments}`] : [])].join("|");
  const ran: CalibrationStep[] = [];
  const skipped: CalibrationStep[] = [];
  let samples: number[][] | null = null;
  const positions = interpolatedPositions(o.seqLen, o.effectiveLen);
  const getSamples = () => (samples ??= buildCalibrationSamples(model.tokenizer, documents, { nSamples: o.nSamples, seqLen: o.seqLen, seed: o.seed, addSpecialTokens: o.addBos, firstDocuments: o.firstDocuments }));

  const step = (name: CalibrationStep, inputs: (string | number)[], produce: (file: string) => void): string => {
    const file = path.join(o.outDir, ARTIFACTS[name]);
    const inputsKey = sha256Of(inputs.map(String));
    const old = previous?.steps[name];
    if (!o.force && old && old.inputsKey === inputsKey && fs.existsSync(file) && sha256File(file) === old.sha256) {
      manifest.steps[name] = old;
      skipped.push(name);
      o.onStep?.(name, "skip");
      return old.sha256;
    }
    o.onStep?.(name, "start");
    const t0 = performance.now();
    produce(file);
    const seconds = (performance.now() - t0) / 1000;
    manifest.steps[name] = { file: ARTIFACTS[name], sha256: sha256File(file), inputsKey, seconds, finishedAt: new Date().toISOString() };
    writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
    ran.push(name);
    o.onStep?.(name, "done", seconds);
    return manifest.steps[name]!.sha256;
  };

  const tf = model.transformer;
  const meta = { model: model.dir, dataset: o.dataset, n_samples: String(o.nSamples), seq_len: String(o.seqLen), effective_len: String(o.effectiveLen), seed: String(o.seed), add_bos: String(o.addBos ?? true), ...(o.firstDocuments !== undefined ? { first_documents: String(o.firstDocuments) } : {}) };
  const sensSha = step("sensitivity", [dataKey, o.groupSize], (file) => {
    const r = computeSensitivity(tf, getSamples(), positions, { groupSize: o.groupSize, onSample: (d, t) => o.onProgress?.("sensitivity", d, t) });
    r.meta = { ...meta, ...r.meta };
    writeFileAtomic(file, JSON.stringify(r, null, 1) + "\n");
  });
  let allocation: Allocation | null = null;
  step("allocation", [sensSha, o.memoryBudgetMB, o.bits.join(","), o.maxLen, kvHidden(model.config)], (file) => {
    const sens = readJsonFile(path.join(o.outDir, ARTIFACTS.sensitivity)) as SensitivityResult;
    allocation = allocateBits(sens, { bits: o.bits, memoryBudgetMB: o.memoryBudgetMB, kvHidden: kvHidden(model.config), maxLen: o.maxLen });
    const out = { ...allocation, meta: { sensitivityPath: ARTIFACTS.sensitivity, model: model.dir, memoryBudgetMB: o.memoryBudgetMB, bitChoices: o.bits, kvHidden: kvHidden(model.config), maxLen: o.maxLen } };
    writeFileAtomic(file, JSON.stringify(out, null, 1) + "\n");
  });
  allocation ??= readJsonFile(path.join(o.outDir, ARTIFACTS.allocation)) as Allocation;
  const maxKeysSha = step("max-keys", [dataKey], (file) => {
    const maxKeys = computeMaxKeys(tf, getSamples(), positions, (d, t) => o.onProgress?.("max-keys", d, t));
    writeMaxKeys(file, maxKeys, model.config, meta);
  });
  step("rep-scales", [dataKey, maxKeysSha, o.groupSize, o.kBits, o.vBits, o.grid], (file) => {
    const { maxKeys } = readMaxKeys(path.join(o.outDir, ARTIFACTS["max-keys"]), model.config);
    const r = searchRepScales(tf, getSamples(), positions, maxKeys, {
      kBits: o.kBits, vBits: o.vBits, groupSize: o.groupSize, grid: o.grid, onSample: (d, t) => o.onProgress?.("rep-scales", d, t),
    });
    writeRepScales(file, r.scales, r.alphas, r.mse, r.baselineMse, model.config, { ...meta, k_bits: String(o.kBits), v_bits: String(o.vBits), grid: String(o.grid) });
  });
  writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  if (!allocation) throw new UsageError("allocation missing");
  return { manifest, allocation, ran, skipped };
}
