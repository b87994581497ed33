// Where this project's defaults differ from the original's released code (README "Differences
// from the original"), measured on the embedded model's task: each switch, both ways, as mean
// KL from the full cache and greedy accuracy (bench/task-eval.ts).
//   1. step order: the original's (a call's tokens attended in float, quantized after) against
//      quantize-first, for pm-kvq, RTN and KIVI;
//   2. MiKV full-precision tokens: the original's 0 against 32;
//   3. RotateKV: the original's pivots (tokens holding the 20 largest |hidden| elements) against
//      one token of largest norm; its key order (rotate, then sort by ascending mean) against
//      this project's first (reorder by mean |k| over Hadamard blocks, then rotate), and none.
// Usage: node dist/bench/differences.js [--problems N] [--kl-problems N] [--out DIR] [--write-readme]

import path from "node:path";
import { parseArgs } from "node:util";
import { foldRepScales, readRepScales } from "../src/calib/rep-scales.js";
import { keyChannelMeans, reorderAscending, reorderFromMeans, rotatedKeyChannelMeans } from "../src/calib/rotatekv.js";
import type { RotateKvOrder } from "../src/quant/rotation.js";
import { buildCalibrationSamples, interpolatedPositions, readCalibrationDocuments } from "../src/calib/data.js";
import { prepareModelForMethod, type CacheSpec } from "../src/cache/factory.js";
import { DEFAULT_MODEL_DIR, trainedTask } from "../src/demo/demo.js";
import { loadModel, type LoadedModel } from "../src/model/checkpoint.js";
import { writeReadmeSection } from "./readme.js";
import { rowsTable, TaskCalibration, TaskScorer, type Row } from "./task-eval.js";

const { values: args } = parseArgs({
  options: {
    problems: { type: "string", default: "40" },
    "kl-problems": { type: "string", default: "8" },
    out: { type: "string", default: ".bench-cache/differences" },
    "write-readme": { type: "boolean" },
  },
});
const log = (m: string) => process.stderr.write(m + "\n");
const t0 = performance.now();
const task = trainedTask(DEFAULT_MODEL_DIR);
const MAX_LEN = 1024;
const WINDOW = 32;
using base = loadModel(DEFAULT_MODEL_DIR, { weightsDtype: "f32" });
const setup = new TaskCalibration(base, task, args.out!, MAX_LEN, WINDOW, log);
const scorer = new TaskScorer(base, task, Number(args["kl-problems"]), Number(args.problems), MAX_LEN, log);
const sections: string[] = [];

/** A fresh copy of the model (with pm-kvq's searched rep scales when asked). */
function model(repScales = false): LoadedModel {
  const m = loadModel(DEFAULT_MODEL_DIR, { weightsDtype: "f32" });
  if (repScales) foldRepScales(m.transformer.weights, m.config, readRepScales(path.join(setup.main, "rep_scales.safetensors"), m.config).scales);
  return m;
}

function score(label: string, spec: CacheSpec, repScales = false): Row {
  using m = model(repScales);
  prepareModelForMethod(m.transformer, spec);
  return scorer.score(label, m, spec);
}

// 1. step order
{
  const rows: Row[] = [];
  const settings: [string, CacheSpec, boolean][] = [
    ...[[4, 2], [2, 2]].map((bits) => [`pm-kvq {${bits}}`, { method: "pm-kvq", budgetsMB: setup.budgetsFor(bits), progressive: { nWindowTokens: WINDOW } }, true] as [string, CacheSpec, boolean]),
    ...(["rtn", "kivi"] as const).flatMap((method) => [4, 2].map((b) => [`${method}-${b}`, { method, kBits: b, vBits: b }, false] as [string, CacheSpec, boolean])),
  ];
  for (const [label, spec, rep] of settings) {
    rows.push(score(`${label}, original order`, { ...spec, stepOrder: "original" }, rep));
    rows.push(score(`${label}, quantize-first`, { ...spec, stepOrder: "quantize-first" }, rep));
  }
  sections.push(...rowsTable("Step order", "original: a call's tokens are attended at full precision and quantized after its attention (the whole prompt in one pass, so prefill attention is never quantized); quantize-first: quantized before any attention sees them", rows));
}

// 2. MiKV's full-precision tokens
{
  const rows: Row[] = [];
  for (const b of [4, 2]) for (const n of [0, 32]) rows.push(score(`mikv-${b}, ${n} full-precision tokens${n === 0 ? " (the original's)" : ""}`, { method: "mikv", kBits: b, vBits: b, mikvSinkTokens: n }));
  sections.push(...rowsTable("MiKV", "channel balancing and per-token RTN; the most attended tokens kept at full precision", rows));
}

// 3. RotateKV
{
  const docs = readCalibrationDocuments(setup.corpus).documents;
  const samples = buildCalibrationSamples(base.tokenizer, docs, { nSamples: 16, seqLen: 256, seed: 0 });
  const positions = interpolatedPositions(256, 1024);
  const kvHidden = base.config.numKvHeads * base.config.headDim;
  const reorders: Record<RotateKvOrder, Int32Array[]> = {
    "rotate-first": rotatedKeyChannelMeans(base.transformer, samples, positions, kvHidden).map(reorderAscending),
    "reorder-first": keyChannelMeans(base.transformer, samples, positions).map((m) => reorderFromMeans(m, kvHidden)),
  };
  const rows: Row[] = [];
  for (const b of [4, 2]) {
    const rkv = (label: string, r: NonNullable<CacheSpec["rotatekv"]>) => rows.push(score(`rotatekv-${b}, ${label}`, { method: "rotatekv", kBits: b, vBits: b, rotatekv: r }));
    rkv("pivots: 20 largest elements, no reorder (the original's pivots)", { pivotRule: "elements", nPivotTokens: 20 });
    rkv("pivots: 1 token of largest norm, no reorder", { pivotRule: "tokens", nPivotTokens: 1 });
    rkv("20-element pivots, rotate then sort by mean (the original's)", { pivotRule: "elements", nPivotTokens: 20, reorder: reorders["rotate-first"], order: "rotate-first" });
    rkv("20-element pivots, reorder by mean |k| then rotate", { pivotRule: "elements", nPivotTokens: 20, reorder: reorders["reorder-first"], order: "reorder-first" });
  }
  sections.push(...rowsTable("RotateKV", `Hadamard over kv_hidden (${kvHidden}); reorders calibrated on the task corpus (16 × 256 tokens)`, rows));
}

const minutes = (performance.now() - t0) / 60000;
const flags = process.argv.slice(2).filter((a) => a !== "--write-readme").join(" ");
const body = [
  `Made by \`npm run bench:differences -- ${flags}\` (${minutes.toFixed(1)} min on this machine; the embedded model, ${task.facts} facts × ${task.steps} steps; KL: mean over ${args["kl-problems"]} reference solutions' positions, nats; accuracy: ${args.problems} greedy answers; held: mean peak KiB per answer; pm-kvq budgets of spec §4 for ${MAX_LEN} tokens, W = ${WINDOW}, rep scales searched):`,
  ...sections,
].join("\n");
console.log(body);
if (args["write-readme"]) writeReadmeSection("differences-table", body);
