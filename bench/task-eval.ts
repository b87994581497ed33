// Scoring a cache setting on the embedded model's lookup-sum task, for the ablation and
// difference benches: mean KL divergence from the full cache, teacher-forced over the reference
// solutions of held-out problems (the whole prompt in one forward pass, then token by token),
// and task accuracy of greedy answers, with the mean peak bytes each cache held.

import fs from "node:fs";
import path from "node:path";
import { calibrate } from "../src/calib/calibrate.js";
import type { SensitivityResult } from "../src/calib/sensitivity.js";
import { createCache, type CacheSpec } from "../src/cache/factory.js";
import { INSTRUCTION } from "../src/eval/benchmarks.js";
import { allocationTable, type AllocationRow } from "../src/frontier/frontier.js";
import { readJsonFile, writeFileAtomic } from "../src/util/atomic.js";
import { judgeResponse } from "../src/eval/runner.js";
import { promptIds } from "../src/frontier/frontier.js";
import { generate } from "../src/generate/generate.js";
import type { LoadedModel } from "../src/model/checkpoint.js";
import { generateProblem, type LookupSumOptions as TaskOptions } from "../src/task/lookup-sum.js";

export interface Row {
  label: string;
  kl: number;
  accuracy: number;
  heldKiB: number;
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = Math.log(sum) + max;
  return Float64Array.from(row, (v) => v - lse);
}

/** Log-probs at every solution position of problem `seed`, teacher-forced through a cache. */
export function teacherForced(model: LoadedModel, task: TaskOptions, seed: number, spec: CacheSpec): Float64Array[] {
  const p = generateProblem(seed, task);
  const prompt = promptIds(model, p.prompt);
  const sol = model.tokenizer.encode(p.solution, false);
  using cache = createCache(model.config, spec);
  const tf = model.transformer;
  const rows = [logSoftmax(tf.forward(prompt, prompt.map((_, j) => j), cache, "last"))];
  sol.slice(0, -1).forEach((id, j) => rows.push(logSoftmax(tf.forward([id], [prompt.length + j], cache, "last"))));
  return rows;
}

export class TaskScorer {
  private readonly reference: Float64Array[][];

  /** The full cache's log-probs on `klProblems` problems (seeds 0 …) are the KL reference. */
  constructor(base: LoadedModel, readonly task: TaskOptions, readonly klProblems: number, readonly problems: number, readonly maxLen: number, private readonly log: (m: string) => void) {
    this.reference = Array.from({ length: klProblems }, (_, s) => teacherForced(base, task, s, { method: "original" }));
  }

  score(label: string, model: LoadedModel, spec: CacheSpec): Row {
    let kl = 0;
    let n = 0;
    for (let s = 0; s < this.klProblems; s++) {
      const q = teacherForced(model, this.task, s, spec);
      this.reference[s].forEach((p, t) => {
        for (let i = 0; i < p.length; i++) kl += Math.exp(p[i]) * (p[i] - q[t][i]);
        n++;
      });
    }
    let correct = 0;
    let held = 0;
    for (let seed = 0; seed < this.problems; seed++) {
      const p = generateProblem(seed, this.task);
      const ids = promptIds(model, p.prompt);
      using cache = createCache(model.config, spec);
      let peak = 0;
      const r = generate(model, ids, {
        maxNewTokens: this.maxLen - ids.length, temperature: 0, cache, prefillChunk: ids.length,
        onStep: (_s, c) => (peak = Math.max(peak, c.stats().totalHeldBytes)),
      });
      if (judgeResponse(r.text, p.answer).judgement) correct++;
      held += peak;
    }
    const row = { label, kl: kl / n, accuracy: (100 * correct) / this.problems, heldKiB: held / this.problems / 1024 };
    this.log(`${label}: KL ${formatKl(row.kl)}, accuracy ${row.accuracy.toFixed(1)}%, held ${row.heldKiB.toFixed(1)} KiB`);
    return row;
  }
}

/** KL in nats with three significant digits (0 when the distributions match to float precision). */
export function formatKl(kl: number): string {
  return kl < 5e-7 ? "< 1e-6" : kl.toPrecision(3);
}

/** A markdown table of rows, under a bold title and a note. */
export function rowsTable(title: string, note: string, rows: Row[]): string[] {
  return ["", `**${title}** — ${note}.`, "", "| setting | mean KL ↓ | accuracy ↑ | held KiB |", "|---|---:|---:|---:|", ...rows.map((r) => `| ${r.label} | ${formatKl(r.kl)} | ${r.accuracy.toFixed(1)}% | ${r.heldKiB.toFixed(1)} |`)];
}

/**
 * PM-KVQ calibrated on solved problems of the task (a corpus of 64 written into `out`): the
 * main calibration (16 × 256 tokens at positions to 1024), more on request, and the exact
 * allocation table of spec §4 for max_len tokens with window W.
 */
export class TaskCalibration {
  readonly corpus: string;
  readonly main: string;
  readonly table: AllocationRow[];

  constructor(private readonly base: LoadedModel, task: TaskOptions, private readonly out: string, private readonly maxLen: number, window: number, private readonly log: (m: string) => void) {
    fs.mkdirSync(out, { recursive: true });
    this.corpus = path.join(out, "calibration.jsonl");
    writeFileAtomic(this.corpus, Array.from({ length: 64 }, (_, i) => {
      const p = generateProblem(500_000 + i, task);
      return JSON.stringify({ text: `${p.prompt}${INSTRUCTION}\nsolution :\n${p.solution}` });
    }).join("\n") + "\n");
    this.main = this.calibrate("calibration", 16, 256, 1024);
    const sens = readJsonFile(path.join(this.main, "sensitivity.json")) as SensitivityResult;
    this.table = allocationTable(sens, base.config, maxLen + 8 * (window + 1));
  }

  /** Calibrate into out/name (sensitivity, allocation, max keys, rep scales); returns the folder. */
  calibrate(name: string, nSamples: number, seqLen: number, effectiveLen: number): string {
    const dir = path.join(this.out, name);
    const t = performance.now();
    calibrate(this.base, {
      dataset: this.corpus, outDir: dir, memoryBudgetMB: 1e6, bits: [4, 2], maxLen: this.maxLen, nSamples, seqLen, effectiveLen, seed: 0,
      groupSize: Math.min(128, this.base.config.headDim), kBits: 2, vBits: 2, grid: 10,
    });
    this.log(`calibration ${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return dir;
  }

  /** Per-block budgets (MB) of the exact allocation with these final body bits. */
  budgetsFor(bits: number[]): number[] {
    const unit = this.table[0].budgetsMB[0] / this.table[0].bits[0]; // MB per bit per block
    return bits.map((b) => b * unit);
  }
}
