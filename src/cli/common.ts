// Pieces shared by the commands: the --model option and loading with a progress bar.

import { Option } from "commander";
import cliProgress from "cli-progress";
import { loadModel, type LoadedModel } from "../model/checkpoint.js";
import type { WeightDtype } from "../tensor/matrix.js";
import { formatBytes } from "./args.js";

export function weightsDtypeOption(): Option {
  return new Option("--weights-dtype <dtype>", "precision of weight matrices in memory: auto keeps the checkpoint's (bf16 stays bf16); f32 widens on load")
    .choices(["auto", "f32", "bf16", "f16"])
    .default("auto");
}

export function modelOption(): Option {
  return new Option("--model <dir>", "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)").makeOptionMandatory();
}

/** A progress bar on stderr when it is a terminal and `show` is set. */
export function progressBar(show: boolean, format: string): cliProgress.SingleBar | null {
  if (!show || !process.stderr.isTTY) return null;
  return new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic);
}

export function loadModelWithProgress(dir: string, verbose: boolean, weightsDtype: WeightDtype | "auto" = "auto"): LoadedModel {
  const bar = progressBar(verbose, "loading {bar} {value}/{total} tensors");
  let started = false;
  const model = loadModel(dir, {
    weightsDtype,
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
  if (verbose) {
    const dtypes = Object.entries(model.checkpointDtypes).map(([k, v]) => `${v}×${k}`).join(", ");
    process.stderr.write(`loaded ${model.config.architecture} from ${dir} in ${model.loadMs.toFixed(0)} ms: ${model.config.numLayers} blocks, weights ${formatBytes(model.weightBytes)} held as ${model.transformer.weights.layers[0]?.wq.dtype ?? "?"} (checkpoint: ${dtypes})\n`);
  }
  return model;
}
