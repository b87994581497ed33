// `pmkvq demo`: the paper's claim on a laptop CPU. On the default model (trained on the
// lookup-sum task) it calibrates PM-KVQ (sensitivity, allocation, max keys, scale search),
// then answers held-out problems with the full-precision cache, 2-bit RTN, 2-bit KIVI and
// pm-kvq given the same honest KV memory as 2-bit KIVI, and reports accuracy, memory, speed.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { allocateBits } from "../calib/allocate.js";
import { calibrate } from "../calib/calibrate.js";
import { foldRepScales, readRepScales } from "../calib/rep-scales.js";
import type { SensitivityResult } from "../calib/sensitivity.js";
import { createCache, type CacheSpec } from "../cache/factory.js";
import { INSTRUCTION } from "../eval/benchmarks.js";
import { judgeResponse } from "../eval/runner.js";
import { KvBudgetError, UsageError } from "../errors.js";
import { encodePrompt, generate } from "../generate/generate.js";
import { loadModel, type LoadedModel } from "../model/checkpoint.js";
import { kvHidden } from "../model/config.js";
import { DEFAULT_TASK, generateProblem, type LookupSumOptions } from "../task/lookup-sum.js";
import { readJsonFile, writeFileAtomic } from "../util/atomic.js";
import { demoChart } from "./chart.js";

/** pm-kvq's staging window in the demo (tokens). */
export const WINDOW = 32;

/** The embedded default model, shipped in the package. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL("../../../models/default", import.meta.url));

export interface DemoOptions {
  modelDir: string;
  outDir: string;
  problems: number;
  calibrationSamples: number;
  /** Extra baselines at 4 bits (RTN, KIVI) for the chart. */
  fourBit: boolean;
  /** The task to evaluate (default: the one the model was trained on, from its train_log.json). */
  task?: LookupSumOptions;
  onProgress?: (message: string) => void;
}

export interface MethodResult {
  method: string;
  accuracy: number;
  correct: number;
  problems: number;
  /** Mean honest bytes held at the end of each answer. */
  heldBytes: number;
  codeBytes: number;
  /** Honest bytes held after the reference solution of the probe problem (same sequence for every method). */
  referenceHeldBytes: number | null;
  tokensPerS: number;
  meanOutputTokens: number;
  kvBudgetStops: number;
}

export interface DemoResult {
  task: LookupSumOptions;
  methods: MethodResult[];
  budgetsMB: number[];
  bits: number[];
  targetHeldBytes: number;
  /** pm-kvq's staging window (tokens). */
  window: number;
  /** With fourBit: the allocation of the second pm-kvq point, at the memory of 4-bit RTN. */
  atRtn4?: { bits: number[]; budgetsMB: number[]; targetHeldBytes: number };
  seconds: Record<string, number>;
}

/** The task a model was trained on (its train_log.json), else the default task. */
export function trainedTask(modelDir: string): LookupSumOptions {
  const file = path.join(modelDir, "train_log.json");
  if (!fs.existsSync(file)) return DEFAULT_TASK;
  const t = (readJsonFile(file) as { options?: { task?: LookupSumOptions } }).options?.task;
  return t && t.facts > 0 && t.steps > 0 ? t : DEFAULT_TASK;
}

interface Probe {
  correct: boolean;
  heldBytes: number;
  codeBytes: number;
  outputTokens: number;
  decodeMs: number;
  kvBudget: boolean;
  bits?: number[][];
}

/** Answer one held-out problem greedily with a cache built from spec. */
function answer(model: LoadedModel, seed: number, task: LookupSumOptions, spec: CacheSpec, trace = false): Probe {
  const p = referenceIds(model, seed, task);
  const bits: number[][] = [];
  using cache = createCache(model.config, spec);
  const r = generate(model, p.ids, {
    maxNewTokens: task.steps * 14 + 32,
    temperature: 0,
    cache,
    onStep: trace ? (_s, c) => bits.push(c.stats().blocks.map((b) => b.bodyBits)) : undefined,
  });
  const { judgement } = judgeResponse(r.text, p.answer);
  return {
    correct: judgement === true, heldBytes: r.kv.totalHeldBytes, codeBytes: r.kv.totalCodeBytes,
    outputTokens: r.outputTokens, decodeMs: r.timings.decodeMs, kvBudget: r.finishReason === "kv_budget", ...(trace ? { bits } : {}),
  };
}

/** A problem's prompt (as generate encodes it) and its reference solution as token ids, and its answer. */
export function referenceIds(model: LoadedModel, seed: number, task: LookupSumOptions): { ids: number[]; solution: number[]; answer: string } {
  const p = generateProblem(seed, task);
  const prompt = model.tokenizer.hasChatTemplate ? { messages: [{ role: "user" as const, content: p.prompt + INSTRUCTION }] } : p.prompt + INSTRUCTION;
  return { ids: encodePrompt(model, prompt), solution: model.tokenizer.encode(p.solution, false), answer: p.answer };
}

/**
 * The honest bytes a cache holds after reading the reference solution of a problem (the
 * prompt prefilled as generate does, then the solution fed token by token); null when the
 * cache's budget cannot hold it. Independent of what the model would write, so every method
 * is measured on the same sequence.
 */
export function heldOnReference(model: LoadedModel, seed: number, task: LookupSumOptions, spec: CacheSpec): number | null {
  const { ids, solution } = referenceIds(model, seed, task);
  using cache = createCache(model.config, spec);
  const tf = model.transformer;
  try {
    for (let i = 0; i < ids.length; i += 128) {
      const part = ids.slice(i, i + 128);
      tf.forward(part, part.map((_, j) => i + j), cache, "last");
    }
    solution.forEach((id, j) => tf.forward([id], [ids.length + j], cache, "last"));
  } catch (e) {
    if (e instanceof KvBudgetError) return null;
    throw e;
  }
  return cache.stats().totalHeldBytes;
}

function evaluate(model: LoadedModel, name: string, spec: CacheSpec, seeds: number[], task: LookupSumOptions, probeSeed: number, log: (m: string) => void): MethodResult {
  let correct = 0, held = 0, code = 0, tokens = 0, ms = 0, stops = 0;
  seeds.forEach((seed, i) => {
    const r = answer(model, seed, task, spec);
    correct += r.correct ? 1 : 0;
    held += r.heldBytes;
    code += r.codeBytes;
    tokens += r.outputTokens;
    ms += r.decodeMs;
    stops += r.kvBudget ? 1 : 0;
    if ((i + 1) % 10 === 0 || i + 1 === seeds.length) log(`${name}: ${i + 1}/${seeds.length} problems, ${correct} correct`);
  });
  const n = seeds.length;
  const referenceHeldBytes = heldOnReference(model, probeSeed, task, spec);
  return { method: name, accuracy: (100 * correct) / n, correct, problems: n, heldBytes: held / n, codeBytes: code / n, referenceHeldBytes, tokensPerS: (tokens / ms) * 1000, meanOutputTokens: tokens / n, kvBudgetStops: stops };
}

export function runDemo(o: DemoOptions): DemoResult {
  const log = o.onProgress ?? (() => {});
  const seconds: Record<string, number> = {};
  const tick = (name: string, t0: number) => (seconds[name] = (performance.now() - t0) / 1000);
  fs.mkdirSync(o.outDir, { recursive: true });
  using model = loadModel(o.modelDir, { weightsDtype: "f32" });
  const task = o.task ?? trainedTask(o.modelDir);
  const seeds = Array.from({ length: o.problems }, (_, i) => i); // held out: training uses seeds ≥ 1e6

  // 1. calibration on solved problems of the same kind (a corpus the demo writes)
  let t0 = performance.now();
  const corpus = path.join(o.outDir, "calibration.jsonl");
  const lines = Array.from({ length: Math.max(8, o.calibrationSamples * 2) }, (_, i) => {
    const p = generateProblem(500_000 + i, task);
    return JSON.stringify({ text: `${p.prompt}${INSTRUCTION}\nsolution :\n${p.solution}` });
  });
  writeFileAtomic(corpus, lines.join("\n") + "\n");
  const probeSeed = 400_000; // neither a training nor an evaluation problem
  const ref = referenceIds(model, probeSeed, task);
  // budgets are sized (spec §4) for maxLen tokens at a block's final bits; the 16-bit sink and
  // window (negligible next to the original's 32k-token answers, not next to ours) are added
  // as the 2-bit tokens they cost, so that an all-2-bit allocation holds a whole answer
  const sink = 1;
  const maxLen = Math.ceil((ref.ids.length + ref.solution.length + 8 * (WINDOW + sink)) / 64) * 64;
  const calibDir = path.join(o.outDir, "calibration");
  calibrate(model, {
    dataset: corpus, outDir: calibDir, memoryBudgetMB: 1e6, bits: [4, 2], maxLen, nSamples: o.calibrationSamples,
    seqLen: 256, effectiveLen: 1024, seed: 0, groupSize: Math.min(128, model.config.headDim), kBits: 2, vBits: 2, grid: 10,
    onStep: (step, event, s) => event === "done" && log(`calibration: ${step} in ${s!.toFixed(1)} s`),
  });
  tick("calibration", t0);

  // 2. the memory to match: what 2-bit KIVI holds after the reference solution of a probe problem
  t0 = performance.now();
  const kivi2: CacheSpec = { method: "kivi", kBits: 2, vBits: 2 };
  const target = heldOnReference(model, probeSeed, task, kivi2)!;
  const sens = readJsonFile(path.join(calibDir, "sensitivity.json")) as SensitivityResult;
  using pmModel = loadModel(o.modelDir, { weightsDtype: "f32" });
  foldRepScales(pmModel.transformer.weights, pmModel.config, readRepScales(path.join(calibDir, "rep_scales.safetensors"), pmModel.config).scales);
  const unitMB = (kvHidden(model.config) * 2 * maxLen) / 8 / 2 ** 20; // MB per bit per block
  const L = model.config.numLayers;
  // the largest exact allocation whose measured held bytes fit in the target: the distinct
  // allocations in order of decreasing budget, then a bisection on the measured bytes
  const candidates: { bits: number[]; budgetsMB: number[] }[] = [];
  for (let totalBits = 16 * L; totalBits >= 2 * L; totalBits--) {
    const a = allocateBits(sens, { bits: [16, 8, 4, 2], memoryBudgetMB: totalBits * unitMB + 1e-9, kvHidden: kvHidden(model.config), maxLen });
    if (candidates.length === 0 || a.bits.join() !== candidates[candidates.length - 1].bits.join()) candidates.push({ bits: a.bits, budgetsMB: a.budgetsMB });
  }
  // a 32-token window: the original's 128 is sized for 32k-token answers, ours are ~600
  const specOf = (i: number): CacheSpec => ({ method: "pm-kvq", budgetsMB: candidates[i].budgetsMB, progressive: { nWindowTokens: WINDOW, nSinkTokens: sink } });
  const allocationFor = (targetBytes: number) => {
    const fitsMemo = new Map<number, boolean>();
    const fits = (i: number) => {
      if (!fitsMemo.has(i)) {
        const held = heldOnReference(pmModel, probeSeed, task, specOf(i));
        fitsMemo.set(i, held !== null && held <= targetBytes);
      }
      return fitsMemo.get(i)!;
    };
    let lo = 0, hi = candidates.length - 1;
    if (!fits(hi)) return null;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fits(mid)) hi = mid;
      else lo = mid + 1;
    }
    return { spec: specOf(hi), ...candidates[hi] };
  };
  const best = allocationFor(target);
  if (!best) throw new UsageError(`no pm-kvq allocation fits the memory of 2-bit KIVI on this model (${target} bytes on the reference solution of problem ${probeSeed})`);
  log(`pm-kvq budgets for the memory of 2-bit KIVI (${(target / 1024).toFixed(1)} KiB): final bits per block ${best.bits.join(",")}`);
  // with --four-bit, a second point: pm-kvq at the memory of 4-bit RTN
  const rtn4: CacheSpec = { method: "rtn", kBits: 4, vBits: 4 };
  const target4 = o.fourBit ? heldOnReference(model, probeSeed, task, rtn4)! : 0;
  const best4 = o.fourBit ? allocationFor(target4) : null;
  if (best4) log(`pm-kvq budgets for the memory of 4-bit RTN (${(target4 / 1024).toFixed(1)} KiB): final bits per block ${best4.bits.join(",")}`);
  tick("budget search", t0);

  // 3. evaluation
  t0 = performance.now();
  const methods: MethodResult[] = [];
  methods.push(evaluate(model, "original", { method: "original" }, seeds, task, probeSeed, log));
  methods.push(evaluate(model, "rtn-2bit", { method: "rtn", kBits: 2, vBits: 2 }, seeds, task, probeSeed, log));
  methods.push(evaluate(model, "kivi-2bit", kivi2, seeds, task, probeSeed, log));
  if (o.fourBit) {
    methods.push(evaluate(model, "rtn-4bit", rtn4, seeds, task, probeSeed, log));
    methods.push(evaluate(model, "kivi-4bit", { method: "kivi", kBits: 4, vBits: 4 }, seeds, task, probeSeed, log));
  }
  methods.push(evaluate(pmModel, "pm-kvq", best.spec, seeds, task, probeSeed, log));
  if (best4) methods.push(evaluate(pmModel, "pm-kvq@rtn-4bit", best4.spec, seeds, task, probeSeed, log));
  tick("evaluation", t0);

  // 4. the chart: accuracy vs memory, and the progressive schedule of one answer
  const trace = answer(pmModel, seeds[0], task, best.spec, true).bits ?? [];
  const svg = demoChart(methods.map((m) => ({ label: m.method, accuracy: m.accuracy, kvKiB: (m.referenceHeldBytes ?? m.heldBytes) / 1024 })), { bits: trace }, `lookup-sum, ${seeds.length} held-out problems (${task.facts} facts, ${task.steps} steps)`);
  writeFileAtomic(path.join(o.outDir, "demo.svg"), svg);
  const result: DemoResult = {
    task, methods, budgetsMB: best.budgetsMB, bits: best.bits, targetHeldBytes: target, window: WINDOW, seconds,
    ...(best4 ? { atRtn4: { bits: best4.bits, budgetsMB: best4.budgetsMB, targetHeldBytes: target4 } } : {}),
  };
  writeFileAtomic(path.join(o.outDir, "results.json"), JSON.stringify(result, null, 1) + "\n");
  return result;
}
