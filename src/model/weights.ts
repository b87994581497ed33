// Model weights, with their shapes in comments (llama2.c style). Matrices keep the
// checkpoint's precision (see tensor/matrix.ts); norms and biases are float32.

import { CheckpointError } from "../errors.js";
import { matrixBytes, type Matrix, type WeightDtype } from "../tensor/matrix.js";
import { release, withArena } from "../tensor/memory.js";
import type { Placement } from "./placement.js";
import type { ModelConfig } from "./config.js";

export interface LayerWeights {
  attnNorm: Float32Array; // (dim)
  wq: Matrix; // (numHeads·headDim, dim)
  wk: Matrix; // (numKvHeads·headDim, dim)
  wv: Matrix; // (numKvHeads·headDim, dim)
  wo: Matrix; // (dim, numHeads·headDim)
  bq: Float32Array | null; // (numHeads·headDim)
  bk: Float32Array | null; // (numKvHeads·headDim)
  bv: Float32Array | null; // (numKvHeads·headDim)
  bo: Float32Array | null; // (dim)
  // Qwen3's per-head RMSNorm weights, (headDim) shared by every head as loaded; per-head key
  // scales folded in (calib/rep-scales.ts) make them (numHeads·headDim) and (numKvHeads·headDim)
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  ffnNorm: Float32Array; // (dim)
  wGate: Matrix; // (intermediate, dim)
  wUp: Matrix; // (intermediate, dim)
  wDown: Matrix; // (dim, intermediate)
}

export interface Weights {
  embed: Matrix; // (vocab, dim)
  layers: LayerWeights[];
  finalNorm: Float32Array; // (dim)
  lmHead: Matrix; // (vocab, dim); the same object as embed when tied
}

/** Where weights come from: a checkpoint folder, or tensors a test builds. */
export interface TensorSource {
  has(name: string): boolean;
  /** Shape of a tensor; throws CheckpointError if absent. */
  shape(name: string): number[];
  /** Float32 data of a tensor. */
  read(name: string): Float32Array;
  /** A 2-D tensor as a matrix in the given precision ("auto": as stored). */
  readMatrix(name: string, dtype: WeightDtype | "auto"): Matrix;
  /** Where the tensor lives, for error messages. */
  where(name: string): string;
}

/** Hugging Face tensor names for Llama, Qwen2 and Qwen3. */
export function hfNames(layer: number) {
  const p = `model.layers.${layer}.`;
  return {
    attnNorm: p + "input_layernorm.weight",
    wq: p + "self_attn.q_proj.weight",
    wk: p + "self_attn.k_proj.weight",
    wv: p + "self_attn.v_proj.weight",
    wo: p + "self_attn.o_proj.weight",
    bq: p + "self_attn.q_proj.bias",
    bk: p + "self_attn.k_proj.bias",
    bv: p + "self_attn.v_proj.bias",
    bo: p + "self_attn.o_proj.bias",
    qNorm: p + "self_attn.q_norm.weight",
    kNorm: p + "self_attn.k_norm.weight",
    ffnNorm: p + "post_attention_layernorm.weight",
    wGate: p + "mlp.gate_proj.weight",
    wUp: p + "mlp.up_proj.weight",
    wDown: p + "mlp.down_proj.weight",
  };
}

/** Read the weights, each part into the arena `placement` names (default: the current one). */
export function loadWeights(c: ModelConfig, src: TensorSource, dtype: WeightDtype | "auto" = "auto", onTensor?: (name: string) => void, placement?: Placement): Weights {
  // what has been read so far, given back if a later tensor fails
  const taken: ArrayBufferView[] = [];
  try {
    return readWeights(c, src, dtype, taken, onTensor, placement);
  } catch (e) {
    for (const v of taken) release(v);
    throw e;
  }
}

function readWeights(c: ModelConfig, src: TensorSource, dtype: WeightDtype | "auto", taken: ArrayBufferView[], onTensor?: (name: string) => void, placement?: Placement): Weights {
  const into = <T>(arena: number | undefined, fn: () => T): T => (arena === undefined ? fn() : withArena(arena, fn));
  const check = (name: string, shape: number[]): void => {
    if (!src.has(name)) throw new CheckpointError(`${src.where(name)}: the checkpoint has no tensor "${name}" (expected shape ${JSON.stringify(shape)})`);
    const got = src.shape(name);
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(`${src.where(name)}: tensor "${name}" has shape ${JSON.stringify(got)}, config.json implies ${JSON.stringify(shape)}`);
    }
    onTensor?.(name);
  };
  const get = (name: string, shape: number[]): Float32Array => {
    check(name, shape);
    const v = src.read(name);
    taken.push(v);
    return v;
  };
  const mat = (name: string, rows: number, cols: number): Matrix => {
    check(name, [rows, cols]);
    const m = src.readMatrix(name, dtype);
    taken.push(m.data);
    return m;
  };
  const optional = (name: string, shape: number[], wanted: boolean, absentBecause = "config.json says no bias"): Float32Array | null => {
    if (!wanted) {
      if (src.has(name)) throw new CheckpointError(`${src.where(name)}: unexpected tensor "${name}" (${absentBecause})`);
      return null;
    }
    return get(name, shape);
  };
  const { hiddenSize: dim, headDim, numHeads, numKvHeads, intermediateSize: inter, vocabSize } = c;
  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  const embed = into(placement?.embedArena, () => mat("model.embed_tokens.weight", vocabSize, dim));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const n = hfNames(l);
    layers.push(into(placement?.blockArena[l], () => ({
      attnNorm: get(n.attnNorm, [dim]),
      wq: mat(n.wq, qDim, dim),
      wk: mat(n.wk, kvDim, dim),
      wv: mat(n.wv, kvDim, dim),
      wo: mat(n.wo, dim, qDim),
      bq: optional(n.bq, [qDim], c.qkvBias),
      bk: optional(n.bk, [kvDim], c.qkvBias),
      bv: optional(n.bv, [kvDim], c.qkvBias),
      bo: optional(n.bo, [dim], c.oBias),
      qNorm: optional(n.qNorm, [headDim], c.qkNorm, `${c.architecture} has no q/k norm; Qwen3ForCausalLM has`),
      kNorm: optional(n.kNorm, [headDim], c.qkNorm, `${c.architecture} has no q/k norm; Qwen3ForCausalLM has`),
      ffnNorm: get(n.ffnNorm, [dim]),
      wGate: mat(n.wGate, inter, dim),
      wUp: mat(n.wUp, inter, dim),
      wDown: mat(n.wDown, dim, inter),
    })));
  }
  return into(placement?.headArena, () => {
    const finalNorm = get("model.norm.weight", [dim]);
    let lmHead: Matrix;
    if (src.has("lm_head.weight") && !c.tieWordEmbeddings) lmHead = mat("lm_head.weight", vocabSize, dim);
    else if (c.tieWordEmbeddings) lmHead = embed;
    else throw new CheckpointError(`checkpoint has no tensor "lm_head.weight" and config.json does not set tie_word_embeddings`);
    return { embed, layers, finalNorm, lmHead };
  });
}

/** Bytes held by the weights (a tied head is counted once). */
export function weightBytes(w: Weights): number {
  let n = matrixBytes(w.embed) + w.finalNorm.byteLength + (w.lmHead === w.embed ? 0 : matrixBytes(w.lmHead));
  for (const l of w.layers) {
    for (const v of Object.values(l)) {
      if (v instanceof Float32Array) n += v.byteLength;
      else if (v) n += matrixBytes(v as Matrix);
    }
  }
  return n;
}

/** Give every weight buffer back to the kernel arena (a no-op for ordinary typed arrays). */
export function releaseWeights(w: Weights): void {
  const seen = new Set<ArrayBufferView>();
  const give = (v: ArrayBufferView | null) => {
    if (v && !seen.has(v)) {
      seen.add(v);
      release(v);
    }
  };
  give(w.embed.data);
  give(w.lmHead.data);
  give(w.finalNorm);
  for (const l of w.layers) {
    for (const v of Object.values(l)) {
      if (v instanceof Float32Array) give(v);
      else if (v) give((v as Matrix).data);
    }
  }
}
