// The paper's ablations on the embedded default model, each as a table: mean KL divergence
// from the full cache (teacher-forced over the reference solutions of held-out problems) and
// task accuracy (greedy answers), with the mean peak bytes each cache held.
//   1. progressive vs direct quantization at equal memory (the same budgets; the body starts
//      at 16 bits and shrinks, or starts at the final bits);
//   2. block-wise allocation vs the same total bits spread otherwise (the blocks' bits swapped);
//   3. rep scales off / α fixed at 0.5 / α searched (spec §6);
//   4. positional interpolation (spec §1.3): calibrating max keys and scales on 128-token
//      samples at s = 1, 4, 16, against calibrating on 1024-token samples (8× the tokens);
//   5. real (bit-packed) vs fake (simulated) backend.
// Budgets are those of `pmkvq frontier` (spec §4 for max_len = 1024 tokens, window 32).
// Usage: node dist/bench/ablations.js [--problems N] [--kl-problems N] [--out DIR] [--write-readme]

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { readMaxKeys } from "../src/calib/max-keys.js";
import { foldRepScales, readRepScales, repScalesFor } from "../src/calib/rep-scales.js";
import type { CacheSpec } from "../src/cache/factory.js";
import { DEFAULT_MODEL_DIR, trainedTask } from "../src/demo/demo.js";
import { loadModel, type LoadedModel } from "../src/model/checkpoint.js";
import { writeReadmeSection } from "./readme.js";
import { rowsTable, TaskCalibration, TaskScorer, type Row } from "./task-eval.js";

const { values: args } = parseArgs({
  options: {
    problems: { type: "string", default: "40" },
    "kl-problems": { type: "string", default: "8" },
    out: { type: "string", default: ".bench-cache/ablations" },
    "write-readme": { type: "boolean" },
  },
});
const problems = Number(args.problems);
const klProblems = Number(args["kl-problems"]);
const out = args.out!;
const log = (m: string) => process.stderr.write(m + "\n");
const t0 = performance.now();
const task = trainedTask(DEFAULT_MODEL_DIR);
const MAX_LEN = 1024;
const WINDOW = 32;
fs.mkdirSync(out, { recursive: true });

// ------------------------------------------------------------------ calibration
using base = loadModel(DEFAULT_MODEL_DIR, { weightsDtype: "f32" });
const setup = new TaskCalibration(base, task, out, MAX_LEN, WINDOW, log);
const calib = (name: string, nSamples: number, seqLen: number, effectiveLen: number) => setup.calibrate(name, nSamples, seqLen, effectiveLen);
const mainCalib = setup.main;
const table = setup.table;
const budgetsFor = (bits: number[]) => setup.budgetsFor(bits);

/** A copy of the model with rep scales folded in (null: none). */
function modelWith(scales: Float32Array[] | null): LoadedModel {
  const m = loadModel(DEFAULT_MODEL_DIR, { weightsDtype: "f32" });
  if (scales) foldRepScales(m.transformer.weights, m.config, scales);
  return m;
}
const searched = readRepScales(path.join(mainCalib, "rep_scales.safetensors"), base.config).scales;

// ------------------------------------------------------------------ evaluation
const scorer = new TaskScorer(base, task, klProblems, problems, MAX_LEN, log);
const evaluate = (label: string, model: LoadedModel, spec: CacheSpec): Row => scorer.score(label, model, spec);

const pm = (bits: number[], extra: Partial<CacheSpec> = {}, progressive: Record<string, unknown> = {}): CacheSpec => ({
  method: "pm-kvq", budgetsMB: budgetsFor(bits), progressive: { nWindowTokens: WINDOW, nSinkTokens: 1, ...progressive }, ...extra,
});
const sections: { title: string; note: string; rows: Row[] }[] = [];

// 1. progressive vs direct at equal memory
{
  using m = modelWith(searched);
  const rows: Row[] = [];
  for (const b of [4, 2]) {
    rows.push(evaluate(`{${b},${b}} progressive (body from 16 bits)`, m, pm([b, b])));
    rows.push(evaluate(`{${b},${b}} direct (body at ${b} bits from the start)`, m, pm([b, b], {}, { initBodyBits: b })));
  }
  sections.push({ title: "Progressive vs direct quantization, equal budgets", note: "the same per-block budgets; direct starts the body at its final bit-width (n_init_kv_bits), as fixed-bit quantization of everything past the window", rows });
}

// 2. allocation vs the same total spread otherwise
{
  using m = modelWith(searched);
  const rows: Row[] = [];
  for (const a of table) {
    if (new Set(a.bits).size < 2) continue;
    const swapped = [...a.bits].reverse();
    rows.push(evaluate(`{${a.bits.join(",")}} (allocated, total ${a.bits.reduce((x, y) => x + y, 0)} bits)`, m, pm(a.bits)));
    rows.push(evaluate(`{${swapped.join(",")}} (swapped)`, m, pm(swapped)));
  }
  sections.push({ title: "Block-wise allocation vs the same total bits spread otherwise", note: "spec §4's allocation (by sensitivity) against the blocks' bits swapped; with 2 blocks a uniform spread of an odd total per block is not a bit-width", rows });
}

// 3. rep scales
{
  const { maxKeys } = readMaxKeys(path.join(mainCalib, "max_keys.safetensors"), base.config);
  const rows: Row[] = [];
  for (const bits of [[4, 2], [2, 2]]) {
    for (const [label, scales] of [["off", null], ["α fixed 0.5", maxKeys.map((k) => repScalesFor(k, 0.5))], ["α searched", searched]] as const) {
      using m = modelWith(scales as Float32Array[] | null);
      rows.push(evaluate(`{${bits.join(",")}} rep scales ${label}`, m, pm(bits)));
    }
  }
  sections.push({ title: "Reparameterization scales (spec §6)", note: "r = clamp(max|k|^α) folded into q_proj/k_proj; searched: the α of a 10-point grid with the least block-output MSE", rows });
}

// 4. positional interpolation at equal calibration cost vs the full length
{
  const rows: Row[] = [];
  const variants: [string, number, number, number][] = [
    ["128-token samples, s = 1", 16, 128, 128],
    ["128-token samples, s = 4 (positions to 512)", 16, 128, 512],
    ["128-token samples, s = 16 (positions to 2048)", 16, 128, 2048],
    ["1024-token samples, s = 1 (8× the tokens)", 16, 1024, 1024],
  ];
  for (const [label, n, seqLen, eff] of variants) {
    const dir = calib(`pi-${seqLen}-${eff}`, n, seqLen, eff);
    using m = modelWith(readRepScales(path.join(dir, "rep_scales.safetensors"), base.config).scales);
    for (const bits of [[4, 2], [2, 2]]) rows.push(evaluate(`{${bits.join(",")}} ${label}`, m, pm(bits)));
  }
  sections.push({ title: "Positional interpolation (spec §1.3, the paper's Table 4)", note: "max keys and rep scales calibrated on 16 samples; budgets from the main calibration", rows });
}

// 5. real vs fake
{
  using m = modelWith(searched);
  const rows: Row[] = [];
  for (const bits of [[4, 2], [2, 2]]) {
    rows.push(evaluate(`{${bits.join(",")}} real (bit-packed)`, m, pm(bits, {}, { backend: "real" })));
    rows.push(evaluate(`{${bits.join(",")}} fake (simulated floats)`, m, pm(bits, {}, { backend: "fake" })));
  }
  sections.push({ title: "Real vs fake backend", note: "the fake backend re-quantizes dequantized floats with fresh min/max at every shrink, as the original's simulation", rows });
}

const minutes = (performance.now() - t0) / 60000;
const flags = process.argv.slice(2).filter((a) => a !== "--write-readme").join(" ");
const body = [
  `Made by \`npm run bench:ablations -- ${flags}\` (${minutes.toFixed(1)} min on this machine; the embedded model, ${task.facts} facts × ${task.steps} steps; KL: mean over the ${klProblems} reference solutions' positions, nats; accuracy: ${problems} greedy answers; held: mean peak KiB per answer; pm-kvq budgets of spec §4 for ${MAX_LEN} tokens, W = ${WINDOW}, rep scales searched unless said):`,
  ...sections.flatMap((s) => rowsTable(s.title, s.note, s.rows)),
].join("\n");
console.log(body);
if (args["write-readme"]) writeReadmeSection("ablations-table", body);
