// `pmkvq train`: train the default model on the lookup-sum task (issue 8) and save it.

import { Command, Option } from "commander";
import { INSTRUCTION } from "../eval/benchmarks.js";
import { loadModel } from "../model/checkpoint.js";
import { modelFingerprint } from "../model/fingerprint.js";
import { DEFAULT_TASK, generateProblem, MAX_COUNTDOWN_STEPS, MAX_FACTS, MAX_STEPS, type LookupSumOptions } from "../task/lookup-sum.js";
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { TRAIN_STATE_FILE } from "../train/train-state.js";
import { DEFAULT_FULL_FRACTION, DEFAULT_SHAPE, saveModel, train, type ModelShape } from "../train/train.js";
import { parseFloatArg, parseIntArg } from "./args.js";
import { checkOutputDir } from "../util/paths.js";
import { lockOutput } from "../util/lock.js";
import { readJsonFile } from "../util/atomic.js";

export interface TrainFlags {
  out: string;
  seed: number;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  layers: number;
  hidden: number;
  headDim: number;
  heads?: number;
  kvHeads?: number;
  facts: number;
  taskSteps: number;
  countdown: boolean;
  factsFrom?: number;
  fullFraction?: number;
  growFrom?: string;
  resume: boolean;
  checkpointMinutes: number;
}

export function trainCommand(run: (f: TrainFlags) => void | Promise<void>): Command {
  return new Command("train")
    .description("Train a small Llama on the synthetic lookup-sum reasoning task (the default model) and save it as a Hugging Face folder")
    .addOption(new Option("--out <dir>", "where to write the model (config.json, model.safetensors, tokenizer, train_log.json)").makeOptionMandatory())
    .option("--seed <n>", "seed of the initial weights and the data stream", parseIntArg(0), 0)
    .option("--steps <n>", "optimizer steps", parseIntArg(1), 1500)
    .option("--batch-size <n>", "sequences per step", parseIntArg(1), 8)
    .option("--lr <x>", "peak learning rate", parseFloatArg(0, 1, true), 3e-3)
    .option("--warmup <n>", "warm-up steps", parseIntArg(0), 50)
    .option("--layers <n>", "transformer blocks", parseIntArg(1), DEFAULT_SHAPE.layers)
    .option("--hidden <n>", "hidden size", parseIntArg(64), DEFAULT_SHAPE.hidden)
    .option("--head-dim <n>", "channels per attention head (the quantizer's groups are min(128, head_dim) channels)", parseIntArg(8, 256), DEFAULT_SHAPE.headDim)
    .option("--heads <n>", "query heads (default: hidden / head_dim)", parseIntArg(1))
    .option("--kv-heads <n>", "KV heads, dividing --heads (GQA; default: half the query heads)", parseIntArg(1))
    .option("--facts <n>", "facts per problem at full difficulty", parseIntArg(1, MAX_FACTS), DEFAULT_TASK.facts)
    .option("--task-steps <n>", `solution steps per problem at full difficulty (≤ ${MAX_STEPS}; ≤ ${MAX_COUNTDOWN_STEPS} with --countdown)`, parseIntArg(3, MAX_STEPS), DEFAULT_TASK.steps)
    .option("--countdown", "the prompt states the number of steps and each solution line counts down the steps left, so answers can have any length (evaluate with frontier --min-length)", false)
    .option("--facts-from <n>", "a facts curriculum: the largest number of facts grows from n to --facts with the length curriculum", parseIntArg(2, MAX_FACTS))
    .option("--full-fraction <x>", `share of each batch at the curriculum's current longest length, the rest drawn uniformly from 3 steps up (default ${DEFAULT_FULL_FRACTION}; 0: every length alike, so the model cannot read the counter off the position)`, parseFloatArg(0, 1))
    .option("--grow-from <dir>", "start from this pmkvq-trained model, grown into the new shape with the same function (more blocks, head_dim a whole multiple, same hidden size and heads)")
    .option("--checkpoint-minutes <m>", "write the full training state (and the model so far) at least this often (0: after every step)", parseFloatArg(0, 1e6), 5)
    .option("--resume", "continue the run whose state is in --out (train-state.safetensors; the same flags), to the same weights an uninterrupted run reaches", false)
    .action(async (f: TrainFlags) => run(f));
}

/** The model's shape from the flags: heads of --head-dim channels, GQA with half as many KV heads unless told. */
export function trainShape(f: Pick<TrainFlags, "layers" | "hidden" | "headDim" | "heads" | "kvHeads">): ModelShape {
  const heads = f.heads ?? Math.max(2, Math.round(f.hidden / f.headDim));
  const kvHeads = f.kvHeads ?? Math.max(1, Math.floor(heads / 2));
  if (heads % kvHeads !== 0) throw new UsageError(`--kv-heads ${kvHeads} does not divide the ${heads} query heads`);
  return { ...DEFAULT_SHAPE, layers: f.layers, hidden: f.hidden, headDim: f.headDim, heads, kvHeads, intermediate: Math.round((f.hidden * 11) / 4 / 16) * 16 };
}

function isFinishedModel(dir: string): boolean {
  const log = path.join(dir, "train_log.json");
  return fs.existsSync(log) && !(readJsonFile(log) as { partial?: boolean }).partial;
}

/** Positions the model needs: the longest problem's prompt and solution, in whole powers of two (2048 at least). */
function positionsFor(task: LookupSumOptions): number {
  const p = generateProblem(0, task);
  // words and newlines are a token each (the task tokenizer), but for \boxed{…}'s few characters
  const words = (p.prompt + " " + INSTRUCTION + " " + p.solution).replace(/\n/g, " \n ").trim().split(/ +/).length;
  return Math.max(DEFAULT_SHAPE.maxPositions, 2 ** Math.ceil(Math.log2(words + 64)));
}

export async function runTrain(f: TrainFlags): Promise<void> {
  checkOutputDir(f.out, "--out");
  using _lock = lockOutput(f.out, `--out ${f.out}`, { onTakeover: (m) => process.stderr.write(m + "\n") });
  if (f.countdown && f.taskSteps > MAX_COUNTDOWN_STEPS) throw new UsageError(`--task-steps ${f.taskSteps}: at most ${MAX_COUNTDOWN_STEPS} with --countdown (two-digit counters)`);
  if (f.factsFrom !== undefined && f.factsFrom > f.facts) throw new UsageError(`--facts-from ${f.factsFrom} is more than --facts ${f.facts}`);
  const task = { facts: f.facts, steps: f.taskSteps, ...(f.countdown ? { countdown: true } : {}) };
  const shape = { ...trainShape(f), maxPositions: positionsFor(task) };
  const stateFile = path.join(f.out, TRAIN_STATE_FILE);
  if (!f.resume && fs.existsSync(stateFile)) throw new UsageError(`--out ${f.out} holds a training run (${TRAIN_STATE_FILE}); continue it with --resume, or use another --out`);
  if (f.resume && !fs.existsSync(stateFile) && isFinishedModel(f.out)) {
    process.stdout.write(`${f.out}: the run has finished (train_log.json); nothing to resume\n`);
    return;
  }
  if (f.resume && fs.existsSync(stateFile)) process.stderr.write(`resuming the run in ${f.out}\n`);
  using source = f.growFrom ? loadModel(f.growFrom, { weightsDtype: "f32" }) : null;
  const growFrom = source ? { fingerprint: modelFingerprint(f.growFrom!), config: source.config, weights: source.transformer.weights, tokenizer: source.tokenizer } : undefined;
  // the run's settings as the log records them (how it was checkpointed or resumed is not one)
  const { resume: _r, checkpointMinutes: _c, ...settings } = f;
  const options = { ...settings, shape, task };
  let last = 0;
  const result = train({
    outDir: f.out, seed: f.seed, steps: f.steps, batchSize: f.batchSize, lr: f.lr, warmupSteps: f.warmup, shape, task, curriculumFraction: 0.3, curriculumGate: 0.9,
    factsFrom: f.factsFrom, growFrom, fullFraction: f.fullFraction,
    checkpointEvery: 100,
    checkpointSeconds: f.checkpointMinutes * 60,
    stateFile,
    resume: f.resume,
    onCheckpoint: (step, tf, log) => saveModel(f.out, shape, tf, { options, partial: true, step, log }),
    onStep: (s) => {
      if (s.step % 10 === 0 || s.step === f.steps - 1 || s.seconds - last > 30) {
        last = s.seconds;
        process.stderr.write(`step ${s.step + 1}/${f.steps} · loss ${s.loss.toFixed(4)} · token acc ${(100 * s.tokenAccuracy).toFixed(2)}% · lr ${s.lr.toExponential(2)} · |g| ${s.gradNorm.toFixed(2)} · ≤${s.maxFacts} facts, ≤${s.maxSteps} steps · ${s.tokensPerS.toFixed(0)} tok/s · ${(s.seconds / 60).toFixed(1)} min\n`);
      }
    },
  });
  saveModel(f.out, shape, result.transformer, { options, seconds: result.seconds, log: result.log });
  fs.rmSync(stateFile, { force: true }); // the finished model and its log are the record now
  process.stdout.write(`trained ${f.steps} steps in ${(result.seconds / 60).toFixed(1)} min → ${f.out}\n`);
}
