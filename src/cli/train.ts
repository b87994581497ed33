// `pmkvq train`: train the default model on the lookup-sum task (issue 8) and save it.

import { Command, Option } from "commander";
import { DEFAULT_TASK, MAX_FACTS, MAX_STEPS } from "../task/lookup-sum.js";
import { DEFAULT_SHAPE, saveModel, train } from "../train/train.js";
import { parseFloatArg, parseIntArg } from "./args.js";
import { checkOutputDir } from "../util/paths.js";
import { lockOutput } from "../util/lock.js";

export interface TrainFlags {
  out: string;
  seed: number;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  layers: number;
  hidden: number;
  facts: number;
  taskSteps: number;
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
    .option("--hidden <n>", "hidden size (heads of 32 channels: hidden/32 query heads, half as many KV heads)", parseIntArg(64), DEFAULT_SHAPE.hidden)
    .option("--facts <n>", "facts per problem at full difficulty", parseIntArg(1, MAX_FACTS), DEFAULT_TASK.facts)
    .option("--task-steps <n>", "solution steps per problem at full difficulty", parseIntArg(3, MAX_STEPS), DEFAULT_TASK.steps)
    .action(async (f: TrainFlags) => run(f));
}

export async function runTrain(f: TrainFlags): Promise<void> {
  checkOutputDir(f.out, "--out");
  using _lock = lockOutput(f.out, `--out ${f.out}`, { onTakeover: (m) => process.stderr.write(m + "\n") });
  const heads = Math.max(2, Math.round(f.hidden / 32));
  const shape = { ...DEFAULT_SHAPE, layers: f.layers, hidden: f.hidden, heads, kvHeads: Math.max(1, heads / 2), intermediate: Math.round((f.hidden * 11) / 4 / 16) * 16 };
  const task = { facts: f.facts, steps: f.taskSteps };
  let last = 0;
  const result = train({
    outDir: f.out, seed: f.seed, steps: f.steps, batchSize: f.batchSize, lr: f.lr, warmupSteps: f.warmup, shape, task, curriculumFraction: 0.3, curriculumGate: 0.9,
    checkpointEvery: 100,
    onCheckpoint: (step, tf, log) => saveModel(f.out, shape, tf, { options: { ...f, shape, task }, partial: true, step, log }),
    onStep: (s) => {
      if (s.step % 10 === 0 || s.step === f.steps - 1 || s.seconds - last > 30) {
        last = s.seconds;
        process.stderr.write(`step ${s.step + 1}/${f.steps} · loss ${s.loss.toFixed(4)} · token acc ${(100 * s.tokenAccuracy).toFixed(2)}% · lr ${s.lr.toExponential(2)} · |g| ${s.gradNorm.toFixed(2)} · ≤${s.maxFacts} facts, ≤${s.maxSteps} steps · ${s.tokensPerS.toFixed(0)} tok/s · ${(s.seconds / 60).toFixed(1)} min\n`);
      }
    },
  });
  saveModel(f.out, shape, result.transformer, { options: { ...f, shape, task }, seconds: result.seconds, log: result.log });
  process.stdout.write(`trained ${f.steps} steps in ${(result.seconds / 60).toFixed(1)} min → ${f.out}\n`);
}
