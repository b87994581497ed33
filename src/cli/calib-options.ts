// Flags shared by the calibration commands (sensitivity, max-keys, search-scales, calibrate),
// with defaults scaled from the original's (512 samples × 2048 tokens at 8192) to a CPU.

import { Command, InvalidArgumentError, Option } from "commander";
import { buildCalibrationSamples, interpolatedPositions, ORIGINAL_FIRST_DOCUMENTS, readCalibrationDocuments } from "../calib/data.js";
import { UsageError } from "../errors.js";
import type { LoadedModel } from "../model/checkpoint.js";
import type { ModelConfig } from "../model/config.js";
import { checkInputPath } from "../util/paths.js";
import { parseIntArg } from "./args.js";
import { modelOption } from "./common.js";

export interface CalibFlags {
  model: string;
  dataset?: string;
  datasetPath?: string;
  nSamples: number;
  seqLen?: number;
  effectiveLen?: number;
  seed: number;
  addBos: boolean;
  firstDocuments?: number;
  groupSize?: number;
}

function parseBool(flag: string) {
  return (v: string): boolean => {
    if (v === "true") return true;
    if (v === "false") return false;
    throw new InvalidArgumentError(`${flag} takes true or false (got "${v}")`);
  };
}

export function addCalibOptions(cmd: Command): Command {
  return cmd
    .addOption(modelOption())
    .option("--dataset <path>", "calibration text: a .txt file, a JSON-lines file ({\"text\": …} per line, as RedPajama samples), or a folder of them")
    .addOption(new Option("--dataset-path <path>", "same as --dataset (the original's spelling)").hideHelp())
    .option("--n-samples <n>", "calibration samples (the original uses 512)", parseIntArg(1), 16)
    .option("--seq-len <n>", "tokens per sample (default: min(512, max_position_embeddings / 4); the original uses 2048)", parseIntArg(2))
    .option("--effective-len <n>", "positions are spread over this length: ids 0, s, 2s, … with s = effective-len / seq-len (default: 4 × seq-len, as the original's 8192 / 2048)", parseIntArg(2))
    .option("--seed <n>", "shuffles the calibration documents (our Fisher–Yates: the original's Hugging Face shuffle orders them otherwise)", parseIntArg(0, 2 ** 32 - 1), 0)
    .option("--add-bos <bool>", "true: tokenize each document with the tokenizer's special tokens (BOS), as text starts at inference; false: none, as the original (add_special_tokens=False)", parseBool("--add-bos"), true)
    .option("--first-documents <n>", `use only the first N documents before shuffling (the original: RedPajama's first ${ORIGINAL_FIRST_DOCUMENTS}; default: all)`, parseIntArg(1))
    .option("--group-size <n>", "quantization group size (default: 128, or head_dim when smaller)", parseIntArg(1));
}

export interface CalibSetup {
  samples: number[][];
  positions: number[];
  seqLen: number;
  effectiveLen: number;
  groupSize: number;
  dataset: string;
  files: string[];
}

/** The calibration text must exist before the model is loaded. */
export function checkCalibInputs(flags: CalibFlags): string {
  const dataset = flags.dataset ?? flags.datasetPath;
  if (!dataset) throw new UsageError("give the calibration text with --dataset PATH");
  checkInputPath(dataset, "--dataset");
  return dataset;
}

export function calibDefaults(flags: CalibFlags, c: ModelConfig): { seqLen: number; effectiveLen: number; groupSize: number } {
  const seqLen = flags.seqLen ?? Math.max(2, Math.min(512, Math.floor(c.maxPositionEmbeddings / 4)));
  const groupSize = flags.groupSize ?? Math.min(128, c.headDim);
  if (c.headDim % groupSize !== 0) throw new UsageError(`--group-size ${groupSize} must divide head_dim ${c.headDim}`);
  const effectiveLen = flags.effectiveLen ?? 4 * seqLen;
  // interpolated positions run up to effectiveLen − s: past max_position_embeddings they extrapolate
  if (effectiveLen > c.maxPositionEmbeddings) {
    throw new UsageError(`--effective-len ${effectiveLen} is past the model's max_position_embeddings ${c.maxPositionEmbeddings}: calibration positions must be ones the model was trained on`);
  }
  return { seqLen, effectiveLen, groupSize };
}

export function calibSetup(flags: CalibFlags, model: LoadedModel): CalibSetup {
  const dataset = flags.dataset ?? flags.datasetPath;
  if (!dataset) throw new UsageError("give the calibration text with --dataset PATH");
  const { seqLen, effectiveLen, groupSize } = calibDefaults(flags, model.config);
  const positions = interpolatedPositions(seqLen, effectiveLen);
  const { documents, files } = readCalibrationDocuments(dataset);
  const samples = buildCalibrationSamples(model.tokenizer, documents, { nSamples: flags.nSamples, seqLen, seed: flags.seed, addSpecialTokens: flags.addBos, firstDocuments: flags.firstDocuments });
  return { samples, positions, seqLen, effectiveLen, groupSize, dataset, files };
}

export function calibMeta(flags: CalibFlags, s: CalibSetup): Record<string, string> {
  return {
    model: flags.model,
    dataset: s.dataset,
    n_samples: String(flags.nSamples),
    seq_len: String(s.seqLen),
    effective_len: String(s.effectiveLen),
    seed: String(flags.seed),
    add_bos: String(flags.addBos),
    ...(flags.firstDocuments !== undefined ? { first_documents: String(flags.firstDocuments) } : {}),
    group_size: String(s.groupSize),
  };
}
