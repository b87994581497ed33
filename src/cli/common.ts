// Pieces shared by the commands: the --model option and loading with a progress bar.

import { Option } from "commander";
import cliProgress from "cli-progress";
import { loadModel, type LoadedModel } from "../model/checkpoint.js";
import type { WeightDtype } from "../tensor/matrix.js";
import { formatBytes, parseIntArg } from "./args.js";

export function weightsDtypeOption(): Option {
  return new Option("--weights-dtype <dtype>", "precision of weight matrices in memory: auto keeps the checkpoint's (bf16 stays bf16); f32 widens on load")
    .choices(["auto", "f32", "bf16", "f16"])
    .default("auto");
}

export function modelOption(): Option {
  return new Option("--model <path>", "Hugging Face model folder (config.json, *.safetensors, tokenizer.json), or a GGUF file (llama, qwen2, qwen3; F32/F16/BF16 weights) or a folder holding one").makeOptionMandatory();
}

export function contextLimitOption(): Option {
  return new Option(
    "--context-limit <n>",
    "positions a sequence may use (default: the model's max_position_embeddings); past it only for models with RoPE scaling, with a warning",
  ).argParser(parseIntArg(1));
}

/** A progress bar on stderr when it is a terminal and `show` is set. */
export function progressBar(show: boolean, format: string): cliProgress.SingleBar | null {
  if (!show || !process.stderr.isTTY) return null;
  return new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic);
}

/** plan: the context the run will hold and its longest forward chunk (its KV cache and scratch are planned into memory before the weights are read). */
export function loadModelWithProgress(dir: string, verbose: boolean, weightsDtype: WeightDtype | "auto" = "auto", plan: { kvTokens?: number; chunkTokens?: number } = {}): LoadedModel {
  const bar = progressBar(verbose, "loading {bar} {value}/{total} tensors");
  let started = false;
  const model = loadModel(dir, {
    weightsDtype,
    ...plan,
    onTensor: (_name, done, total) => {
      if (!bar) return;
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
  });
  bar?.stop();
  for (const w of model.warnings) process.stderr.write(`warning: ${w}\n`);
  if (verbose) {
    const dtypes = Object.entries(model.checkpointDtypes).map(([k, v]) => `${v}×${k}`).join(", ");
    process.stderr.write(`loaded ${model.config.architecture} from ${dir} in ${model.loadMs.toFixed(0)} ms: ${model.config.numLayers} blocks, weights ${formatBytes(model.weightBytes)} held as ${model.transformer.weights.layers[0]?.wq.dtype ?? "?"} (checkpoint: ${dtypes})\n`);
  }
  return model;
}

/**
 * Progress of long work on stderr: a bar with ETA on a terminal, otherwise a line at every
 * tenth of the work (so logs of batch jobs show it too). `show` false keeps it silent.
 */
export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private done = 0;
  private lastDecile = -1;
  private readonly t0 = performance.now();

  constructor(private readonly label: string, private readonly total: number, private readonly show = true, extra = "") {
    this.bar = progressBar(show, `${label} {bar} {value}/{total} · eta {eta_formatted}${extra}`);
    this.bar?.start(total, 0);
  }

  tick(by = 1, payload: Record<string, unknown> = {}): void {
    this.done += by;
    if (this.bar) {
      this.bar.update(this.done, payload);
      return;
    }
    if (!this.show) return;
    const decile = Math.floor((10 * this.done) / this.total);
    if (decile !== this.lastDecile) {
      this.lastDecile = decile;
      const s = (performance.now() - this.t0) / 1000;
      const eta = this.done > 0 ? (s / this.done) * (this.total - this.done) : 0;
      process.stderr.write(`${this.label}: ${this.done}/${this.total} (${Math.round((100 * this.done) / this.total)}%), ${s.toFixed(1)} s, eta ${eta.toFixed(0)} s\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }

  get seconds(): number {
    return (performance.now() - this.t0) / 1000;
  }
}
