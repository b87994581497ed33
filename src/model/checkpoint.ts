// Loading a Hugging Face model folder: config.json, (sharded) safetensors, tokenizer,
// generation_config.json.

import fs from "node:fs";
import path from "node:path";
import { CheckpointError } from "../errors.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { readJsonFile } from "../util/atomic.js";
import { parseModelConfig, tokenIdList, type ModelConfig } from "./config.js";
import { Transformer } from "./forward.js";
import { SafetensorsFile } from "./safetensors.js";
import type { Matrix, WeightDtype } from "../tensor/matrix.js";
import { loadWeights, weightBytes, type TensorSource } from "./weights.js";

/** Sampling defaults a model ships in generation_config.json. */
export interface GenerationDefaults {
  doSample: boolean;
  temperature: number | null;
  topP: number | null;
  /** Union of generation_config.json and config.json eos ids. */
  eosTokenIds: number[];
  bosTokenId: number | null;
}

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  transformer: Transformer;
  tokenizer: TextTokenizer;
  generation: GenerationDefaults;
  /** Bytes held by the weights (matrices in their held precision, norms and biases float32). */
  weightBytes: number;
  /** dtypes found in the checkpoint files, e.g. { BF16: 290 }. */
  checkpointDtypes: Record<string, number>;
  loadMs: number;
}

export interface LoadOptions {
  /** Precision weight matrices are held in; "auto" (default) keeps the checkpoint's. */
  weightsDtype?: WeightDtype | "auto";
  /** Called after each tensor is read (progress). */
  onTensor?: (name: string, done: number, total: number) => void;
}

/** The safetensors files of a folder: one model.safetensors, or an index and its shards. */
export class CheckpointTensors implements TensorSource {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly owner = new Map<string, SafetensorsFile>();

  constructor(readonly dir: string) {
    const single = path.join(dir, "model.safetensors");
    const index = path.join(dir, "model.safetensors.index.json");
    if (fs.existsSync(index)) {
      const idx = readJsonFile(index, CheckpointError) as { weight_map?: Record<string, string> };
      if (!idx.weight_map || typeof idx.weight_map !== "object") throw new CheckpointError(`${index}: no "weight_map" object`);
      for (const [name, shard] of Object.entries(idx.weight_map)) {
        if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
          throw new CheckpointError(`${index}: tensor "${name}" maps to an invalid shard name ${JSON.stringify(shard)}`);
        }
        let f = this.files.get(shard);
        if (!f) {
          f = new SafetensorsFile(path.join(dir, shard));
          this.files.set(shard, f);
        }
        if (!f.header.tensors.has(name)) throw new CheckpointError(`${f.file}: index says it holds tensor "${name}", but it does not`);
        this.owner.set(name, f);
      }
    } else if (fs.existsSync(single)) {
      const f = new SafetensorsFile(single);
      this.files.set("model.safetensors", f);
      for (const name of f.names) this.owner.set(name, f);
    } else {
      throw new CheckpointError(`${dir}: no model.safetensors or model.safetensors.index.json`);
    }
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private file(name: string): SafetensorsFile {
    const f = this.owner.get(name);
    if (!f) throw new CheckpointError(`${this.dir}: no tensor "${name}"`);
    return f;
  }

  shape(name: string): number[] {
    return this.file(name).info(name).shape;
  }

  read(name: string): Float32Array {
    return this.file(name).readF32(name);
  }

  readMatrix(name: string, dtype: WeightDtype | "auto"): Matrix {
    return this.file(name).readMatrix(name, dtype);
  }

  where(name: string): string {
    return this.owner.get(name)?.file ?? this.dir;
  }

  get tensorCount(): number {
    return this.owner.size;
  }

  dtypes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, f] of this.owner) {
      const dt = f.info(name).dtype;
      out[dt] = (out[dt] ?? 0) + 1;
    }
    return out;
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

export function readGenerationDefaults(dir: string, config: ModelConfig): GenerationDefaults {
  const file = path.join(dir, "generation_config.json");
  const g = fs.existsSync(file) ? (readJsonFile(file, CheckpointError) as Record<string, unknown>) : {};
  const eos = [...new Set([...tokenIdList(g.eos_token_id), ...config.eosTokenIds])];
  return {
    doSample: g.do_sample === true,
    temperature: typeof g.temperature === "number" ? g.temperature : null,
    topP: typeof g.top_p === "number" ? g.top_p : null,
    eosTokenIds: eos,
    bosTokenId: typeof g.bos_token_id === "number" ? g.bos_token_id : config.bosTokenId,
  };
}

/** config.json and weights of a model folder, without the tokenizer. */
export function loadTransformer(dir: string, opts: LoadOptions = {}): { config: ModelConfig; transformer: Transformer; checkpointDtypes: Record<string, number> } {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: not a model folder (does not exist or is not a directory)`);
  const configPath = path.join(dir, "config.json");
  if (!fs.existsSync(configPath)) throw new CheckpointError(`${dir}: no config.json`);
  const config = parseModelConfig(readJsonFile(configPath, CheckpointError), configPath);
  const tensors = new CheckpointTensors(dir);
  try {
    let done = 0;
    const total = tensors.tensorCount;
    const weights = loadWeights(config, tensors, opts.weightsDtype ?? "auto", (name) => opts.onTensor?.(name, ++done, total));
    return { config, transformer: new Transformer(config, weights), checkpointDtypes: tensors.dtypes() };
  } finally {
    tensors.close();
  }
}

/** Load a Hugging Face model folder (LlamaForCausalLM or Qwen2ForCausalLM). */
export function loadModel(dir: string, opts: LoadOptions = {}): LoadedModel {
  const t0 = performance.now();
  const { config, transformer, checkpointDtypes } = loadTransformer(dir, opts);
  const tokenizer = TextTokenizer.fromDir(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new CheckpointError(`${dir}: tokenizer has ${tokenizer.vocabSize} ids but config.json vocab_size is ${config.vocabSize}`);
  }
  return {
    dir,
    config,
    transformer,
    tokenizer,
    generation: readGenerationDefaults(dir, config),
    weightBytes: weightBytes(transformer.weights),
    checkpointDtypes,
    loadMs: performance.now() - t0,
  };
}
