// Loading a Hugging Face model folder: config.json, (sharded) safetensors, tokenizer,
// generation_config.json.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CheckpointError, OutOfMemoryError } from "../errors.js";
import { arenaBytesInUse, arenaList } from "../tensor/memory.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { readJsonFile } from "../util/atomic.js";
import { preview } from "../util/json.js";
import { parseModelConfig, tokenIdList, type ModelConfig } from "./config.js";
import { Transformer } from "./forward.js";
import { kvReserveBytes, planPlacement, processMemoryBudget, runStateBytes, singlePlacement, type Placement } from "./placement.js";
import { SafetensorsFile } from "./safetensors.js";
import { ggufModelFile, ggufTensorName, GgufTensors, openGgufModel, tokenizerFromGguf } from "./gguf-model.js";
import type { Matrix, WeightDtype } from "../tensor/matrix.js";
import { hfNames, loadWeights, releaseWeights, weightBytes, type TensorSource } from "./weights.js";

/** Sampling defaults a model ships in generation_config.json. */
export interface GenerationDefaults {
  doSample: boolean;
  temperature: number | null;
  topP: number | null;
  /** `top_k` when the file sets it (0 disables the cut); null: transformers' default applies. */
  topK: number | null;
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
  /** One-line notes about the checkpoint a user should see (e.g. tensors it holds that are not used). */
  warnings: string[];
  /** Give the weights and scratch back to the kernel arena; the model cannot run after. */
  dispose(): void;
  [Symbol.dispose](): void;
}

export interface LoadOptions {
  /** Precision weight matrices are held in; "auto" (default) keeps the checkpoint's. */
  weightsDtype?: WeightDtype | "auto";
  /** Called after each tensor is read (progress). */
  onTensor?: (name: string, done: number, total: number) => void;
  /** Tokens of context the run will hold: the KV cache reserved per block (a float32 cache, growth included, unless kvBytesPerBlock says). */
  kvTokens?: number;
  /** KV cache bytes per block the run will hold (overrides the float32 estimate from kvTokens). */
  kvBytesPerBlock?: number;
  /** Most tokens per forward pass (the scratch each memory holds; default 128, generate's --prefill-chunk default). */
  chunkTokens?: number;
}

/** The safetensors files of a folder: one model.safetensors, or an index and its shards. */
export class CheckpointTensors implements TensorSource {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly owner = new Map<string, SafetensorsFile>();

  constructor(readonly dir: string) {
    try {
      this.open(dir);
    } catch (e) {
      this.close(); // the shards opened before the failure
      throw e;
    }
  }

  private open(dir: string): void {
    const single = path.join(dir, "model.safetensors");
    const index = path.join(dir, "model.safetensors.index.json");
    if (fs.existsSync(index)) {
      const idx = readJsonFile(index, CheckpointError) as { weight_map?: unknown } | null;
      if (idx === null || typeof idx !== "object" || Array.isArray(idx)) throw new CheckpointError(`${index}: not a JSON object`);
      if (!idx.weight_map || typeof idx.weight_map !== "object" || Array.isArray(idx.weight_map)) throw new CheckpointError(`${index}: no "weight_map" object`);
      for (const [name, shard] of Object.entries(idx.weight_map as Record<string, unknown>)) {
        if (typeof shard !== "string" || shard === "" || shard.includes("/") || shard.includes("\\") || shard === "." || shard === "..") {
          throw new CheckpointError(`${index}: tensor ${preview(name)} maps to an invalid shard name ${preview(shard)}`);
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

  /** The stored dtype of a tensor ("F32", "BF16", …). */
  dtype(name: string): string {
    return this.file(name).info(name).dtype;
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

  /** Every tensor name the files hold. */
  names(): string[] {
    return [...this.owner.keys()];
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

export function readGenerationDefaults(dir: string, config: ModelConfig): GenerationDefaults {
  const file = path.join(dir, "generation_config.json");
  const raw = fs.existsSync(file) ? readJsonFile(file, CheckpointError) : {};
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new CheckpointError(`${file}: not a JSON object`);
  const g = raw as Record<string, unknown>;
  const eos = [...new Set([...tokenIdList(g.eos_token_id), ...config.eosTokenIds])];
  const temperature = typeof g.temperature === "number" ? g.temperature : null;
  const topP = typeof g.top_p === "number" ? g.top_p : null;
  if (temperature !== null && !(Number.isFinite(temperature) && temperature >= 0)) throw new CheckpointError(`${file}: "temperature" must be a finite number ≥ 0 (got ${temperature})`);
  if (topP !== null && !(topP > 0 && topP <= 1)) throw new CheckpointError(`${file}: "top_p" must be in (0, 1] (got ${topP})`);
  const topK = g.top_k === undefined || g.top_k === null ? null : (g.top_k as number);
  if (topK !== null && !(Number.isInteger(topK) && topK >= 0)) throw new CheckpointError(`${file}: "top_k" must be an integer ≥ 0 (got ${JSON.stringify(g.top_k)})`);
  return {
    doSample: g.do_sample === true,
    temperature,
    topP,
    topK,
    eosTokenIds: eos,
    bosTokenId: typeof g.bos_token_id === "number" ? g.bos_token_id : config.bosTokenId,
  };
}

interface LoadedTransformer {
  config: ModelConfig;
  transformer: Transformer;
  checkpointDtypes: Record<string, number>;
  warnings: string[];
  /** The tokenizer the checkpoint ships (read on demand). */
  tokenizer: () => TextTokenizer;
  generation: () => GenerationDefaults;
}

/** config.json and weights of a model folder (or a GGUF file), without the tokenizer. */
export function loadTransformer(dir: string, opts: LoadOptions = {}): LoadedTransformer {
  const gguf = ggufModelFile(dir);
  if (gguf) return loadGgufTransformer(gguf, opts);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: not a model folder (does not exist or is not a directory)`);
  const configPath = path.join(dir, "config.json");
  if (!fs.existsSync(configPath)) throw new CheckpointError(`${dir}: no config.json`);
  const config = parseModelConfig(readJsonFile(configPath, CheckpointError), configPath);
  const tensors = new CheckpointTensors(dir);
  try {
    // the last block must exist before anything loops over num_hidden_layers (a config may claim 2e9)
    const last = hfNames(config.numLayers - 1).wq;
    if (!tensors.has(last)) {
      throw new CheckpointError(`${dir}: config.json num_hidden_layers is ${config.numLayers}, but the checkpoint has no tensor "${last}" (block ${config.numLayers - 1}); config and weights disagree`);
    }
    const warnings = checkTensorNames(dir, config, tensors);
    const placement = planMemory(dir, config, safetensorsSizes(tensors, opts.weightsDtype ?? "auto"), opts);
    const transformer = buildTransformer(config, tensors, opts.weightsDtype ?? "auto", placement, tensors.tensorCount, opts);
    return {
      config, transformer, checkpointDtypes: tensors.dtypes(), warnings,
      tokenizer: () => TextTokenizer.fromDir(dir, { maxVocab: config.vocabSize }),
      generation: () => readGenerationDefaults(dir, config),
    };
  } finally {
    tensors.close();
  }
}

/** Read the weights where the plan puts them and build the transformer; a failure gives back what was read. */
function buildTransformer(config: ModelConfig, tensors: TensorSource, dtype: WeightDtype | "auto", placement: Placement, total: number, opts: LoadOptions): Transformer {
  let done = 0;
  const weights = loadWeights(config, tensors, dtype, (name) => opts.onTensor?.(name, ++done, total), placement);
  try {
    return new Transformer(config, weights, placement);
  } catch (e) {
    releaseWeights(weights);
    throw e;
  }
}

/** A GGUF file's config (from its metadata) and weights. */
function loadGgufTransformer(file: string, opts: LoadOptions): LoadedTransformer {
  const { g, config, arch } = openGgufModel(file);
  const tensors = new GgufTensors(file, g, config, arch);
  try {
    const last = hfNames(config.numLayers - 1).wq;
    if (!tensors.has(last)) throw new CheckpointError(`${file}: block_count is ${config.numLayers}, but the file has no tensor "${ggufTensorName(last)}"; metadata and tensors disagree`);
    const warnings = unusedWarning(file, config, tensors.unused(expectedTensors(config)));
    const dtype = opts.weightsDtype ?? "auto";
    const sizes: TensorSizes = {
      heldAs: "",
      size(name) {
        if (!tensors.has(name)) return null;
        const elements = tensors.shape(name).reduce((a, d) => a * d, 1);
        if (tensors.shape(name).length === 2) sizes.heldAs ||= dtype === "auto" ? tensors.typeName(name).toLowerCase() : dtype;
        return { elements, bytes: tensors.heldBytes(name, dtype) };
      },
    };
    const placement = planMemory(file, config, sizes, opts);
    const transformer = buildTransformer(config, tensors, dtype, placement, tensors.tensorCount, opts);
    const generation: GenerationDefaults = { doSample: false, temperature: null, topP: null, topK: null, eosTokenIds: config.eosTokenIds, bosTokenId: config.bosTokenId };
    return { config, transformer, checkpointDtypes: tensors.dtypes(), warnings, tokenizer: () => tokenizerFromGguf(g, file, config.vocabSize), generation: () => generation };
  } finally {
    tensors.close();
  }
}

/** Tensors the model reads, by name. */
function expectedTensors(c: ModelConfig): Set<string> {
  const names = new Set(["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]);
  for (let l = 0; l < c.numLayers; l++) for (const n of Object.values(hfNames(l))) names.add(n);
  return names;
}

/**
 * Blocks past num_hidden_layers are an error (config.json and weights disagree); other tensors
 * the model does not read are a warning (rotary inv_freq buffers of old exports are expected).
 */
function checkTensorNames(dir: string, c: ModelConfig, tensors: CheckpointTensors): string[] {
  const expected = expectedTensors(c);
  const unused: string[] = [];
  for (const name of tensors.names()) {
    if (expected.has(name)) continue;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m && Number(m[1]) >= c.numLayers) {
      throw new CheckpointError(
        `${tensors.where(name)}: holds tensor "${name}" of block ${m[1]}, but config.json num_hidden_layers is ${c.numLayers} (blocks 0 … ${c.numLayers - 1}); config and weights disagree`,
      );
    }
    if (!name.endsWith("rotary_emb.inv_freq")) unused.push(name);
  }
  return unusedWarning(dir, c, unused);
}

/** The one-line warning about tensors a checkpoint holds that the model does not read (none: no warning). */
function unusedWarning(where: string, c: ModelConfig, unused: string[]): string[] {
  if (unused.length === 0) return [];
  return [`${where}: ${unused.length} tensor${unused.length > 1 ? "s" : ""} not used by ${c.architecture}: ${unused.slice(0, 5).join(", ")}${unused.length > 5 ? ", …" : ""}`];
}

const HELD_BYTES: Record<string, number> = { f32: 4, f16: 2, bf16: 2, F32: 4, F16: 2, BF16: 2 };

/**
 * Where each part of the model will live, planned from the tensor sizes before anything is read:
 * refuses (OutOfMemoryError, with the numbers) weights + KV cache + scratch that the memory
 * cannot hold. With WebAssembly the parts go to arenas of at most 4 GiB each (placement.ts).
 */
/** Elements and held bytes of a tensor, or null when the checkpoint lacks it; and what matrices are held as. */
interface TensorSizes {
  size(name: string): { elements: number; bytes: number } | null;
  heldAs: string;
}

function safetensorsSizes(tensors: CheckpointTensors, dtype: WeightDtype | "auto"): TensorSizes {
  const sizes: TensorSizes = {
    heldAs: "",
    size(name) {
      if (!tensors.has(name)) return null;
      const shape = tensors.shape(name);
      const n = shape.reduce((a, d) => a * d, 1);
      if (shape.length !== 2) return { elements: n, bytes: n * 4 };
      const held = dtype === "auto" ? tensors.dtype(name) : dtype;
      sizes.heldAs ||= held.toLowerCase();
      return { elements: n, bytes: n * (HELD_BYTES[held] ?? 4) };
    },
  };
  return sizes;
}

function planMemory(dir: string, c: ModelConfig, sizes: TensorSizes, opts: LoadOptions): Placement {
  let params = 0;
  const bytesOf = (name: string): number => {
    const s = sizes.size(name);
    if (!s) return 0;
    params += s.elements;
    return s.bytes;
  };
  const tied = c.tieWordEmbeddings;
  const embedBytes = bytesOf("model.embed_tokens.weight");
  const headBytes = bytesOf("model.norm.weight") + (tied ? 0 : bytesOf("lm_head.weight"));
  const blockBytes = Array.from({ length: c.numLayers }, (_, l) => Object.values(hfNames(l)).reduce((a, name) => a + bytesOf(name), 0));
  const kvTokens = opts.kvTokens ?? 0;
  const kvPerBlock = opts.kvBytesPerBlock ?? kvReserveBytes(c, kvTokens).peak;
  const kvHeldPerBlock = opts.kvBytesPerBlock ?? kvReserveBytes(c, kvTokens).held;
  const needs = {
    embedBytes,
    headBytes,
    tied,
    blockBytes,
    kvBytes: blockBytes.map(() => kvPerBlock),
    kvHeldBytes: blockBytes.map(() => kvHeldPerBlock),
    scratchBytes: runStateBytes(c, opts.chunkTokens ?? 128),
    kvTokens,
  };
  const arenas = arenaList();
  if (arenas.length === 0) {
    const total = embedBytes + headBytes + blockBytes.reduce((a, b) => a + b, 0) + kvHeldPerBlock * c.numLayers;
    if (total > os.totalmem()) throw new OutOfMemoryError(`${dir}: the weights and KV cache need ${(total / 2 ** 30).toFixed(2)} GiB, more than this machine's ${(os.totalmem() / 2 ** 30).toFixed(2)} GiB of memory`);
    return singlePlacement(c.numLayers);
  }
  const count = params >= 1e8 ? `${(params / 1e9).toFixed(2)}B` : `${(params / 1e6).toFixed(2)}M`;
  const what = `${dir} (${count} parameters held as ${sizes.heldAs || "f32"})`;
  return planPlacement(what, needs, {
    existingFree: arenas.map((a) => a.freeBytes),
    capacity: arenas[0].capacityBytes,
    budget: processMemoryBudget() - arenaBytesInUse(),
  });
}

/** Load a Hugging Face model folder (LlamaForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM). */
export function loadModel(dir: string, opts: LoadOptions = {}): LoadedModel {
  const t0 = performance.now();
  const loaded = loadTransformer(dir, opts);
  const { config, transformer, checkpointDtypes, warnings } = loaded;
  try {
    const tokenizer = loaded.tokenizer();
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new CheckpointError(`${dir}: tokenizer has ${tokenizer.vocabSize} ids but config.json vocab_size is ${config.vocabSize}`);
    }
    return {
      dir,
      config,
      transformer,
      tokenizer,
      generation: loaded.generation(),
      weightBytes: weightBytes(transformer.weights),
      checkpointDtypes,
      loadMs: performance.now() - t0,
      warnings,
      dispose: () => transformer.dispose(),
      [Symbol.dispose]: () => transformer.dispose(),
    };
  } catch (e) {
    transformer.dispose(); // a failed load gives back what it took
    throw e;
  }
}
