// A Hugging Face Llama folder → GGUF for llama.cpp (arch "llama"), the way llama.cpp's
// convert script does it: tensors renamed, q/k rows permuted from the rotate-half layout
// to Meta's interleaved pairs, the vocabulary taken from an existing GGUF with the same
// tokenizer. Matrices can be written block-quantized (Q8_0, Q4_0, Q4_K, Q6_K) by this engine's
// reference quantizers (src/tensor/ggml-quant.ts).

import path from "node:path";
import { CheckpointError } from "../errors.js";
import { ggmlTraitsByName, type GgmlTypeName } from "../tensor/ggml-quant.js";
import { readJsonFile } from "../util/atomic.js";
import { CheckpointTensors } from "./checkpoint.js";
import { parseModelConfig, type ModelConfig } from "./config.js";
import { GGML_TYPE, GGUF_TYPE, readGguf, writeGguf, type GgufEntry, type GgufTensorToWrite } from "./gguf.js";
import { hfNames } from "./weights.js";

/** Rotate-half rows → interleaved pairs, per head: new row 2i ← i, 2i+1 ← i + d/2. */
export function permuteForGguf(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const d = rows / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let r = 0; r < d; r++) {
      const src = h * d + (r % 2 === 0 ? r / 2 : d / 2 + (r - 1) / 2);
      out.set(w.subarray(src * cols, (src + 1) * cols), (h * d + r) * cols);
    }
  }
  return out;
}

/** data (rows of `cols` values) in a ggml type: float values, or blocks along each row. */
export function encodeGgml(data: Float32Array, type: GgmlTypeName): Uint8Array {
  const t = ggmlTraitsByName(type);
  const out = new Uint8Array((data.length / t.blockSize) * t.blockBytes);
  t.quantizeRow(data, out, data.length);
  return out;
}

export type GgufMatrixType = "F32" | "F16" | "BF16" | "Q8_0" | "Q4_0" | "Q4_K" | "Q6_K";

/**
 * The type a matrix with rows of `cols` values is written in: the one asked for when its
 * blocks fit the rows, else Q8_0 (blocks of 32), else F16 — as llama.cpp's quantizer falls back
 * for rows a 256-value K-block does not divide.
 */
export function matrixTypeFor(asked: GgufMatrixType, cols: number): GgufMatrixType {
  for (const t of [asked, "Q8_0", "F16"] as const) if (cols % ggmlTraitsByName(t).blockSize === 0) return t;
  return "F16";
}

/** general.file_type (llama.cpp's LLAMA_FTYPE_*) of a file whose matrices are mostly of this type. */
const FILE_TYPE: Record<GgufMatrixType, number> = { F32: 0, F16: 1, BF16: 32, Q4_0: 2, Q8_0: 7, Q4_K: 14, Q6_K: 18 };

export interface ToGgufOptions {
  /** A GGUF whose tokenizer.* entries describe the same vocabulary. */
  vocabFrom: string;
  /**
   * Matrix precision (norms stay F32, as llama.cpp's converter keeps them); a block type falls
   * back per matrix (matrixTypeFor) where its blocks do not fit the rows.
   */
  type: GgufMatrixType;
  name?: string;
}

export function convertToGguf(hfDir: string, outFile: string, o: ToGgufOptions): void {
  const c: ModelConfig = parseModelConfig(readJsonFile(path.join(hfDir, "config.json"), CheckpointError));
  if (c.architecture !== "LlamaForCausalLM" || c.qkvBias || c.ropeScaling.type !== "default") {
    throw new CheckpointError(`${hfDir}: only plain LlamaForCausalLM checkpoints convert (no biases, no rope scaling)`);
  }
  const vocab = readGguf(o.vocabFrom);
  const md = new Map<string, GgufEntry>();
  const u32 = (v: number): GgufEntry => ({ type: GGUF_TYPE.u32, value: v });
  const f32 = (v: number): GgufEntry => ({ type: GGUF_TYPE.f32, value: v });
  md.set("general.architecture", { type: GGUF_TYPE.string, value: "llama" });
  md.set("general.name", { type: GGUF_TYPE.string, value: o.name ?? path.basename(hfDir) });
  md.set("general.file_type", u32(FILE_TYPE[o.type]));
  md.set("general.alignment", u32(32));
  md.set("llama.context_length", u32(c.maxPositionEmbeddings));
  md.set("llama.embedding_length", u32(c.hiddenSize));
  md.set("llama.block_count", u32(c.numLayers));
  md.set("llama.feed_forward_length", u32(c.intermediateSize));
  md.set("llama.attention.head_count", u32(c.numHeads));
  md.set("llama.attention.head_count_kv", u32(c.numKvHeads));
  md.set("llama.attention.key_length", u32(c.headDim));
  md.set("llama.attention.value_length", u32(c.headDim));
  md.set("llama.attention.layer_norm_rms_epsilon", f32(c.rmsNormEps));
  md.set("llama.rope.dimension_count", u32(c.headDim));
  md.set("llama.rope.freq_base", f32(c.ropeTheta));
  md.set("llama.vocab_size", u32(c.vocabSize));
  for (const [k, v] of vocab.metadata) if (k.startsWith("tokenizer.")) md.set(k, v);
  const src = new CheckpointTensors(hfDir);
  const tensors: GgufTensorToWrite[] = [];
  const mat = (name: string, hf: string, heads = 0) => {
    const [rows, cols] = src.shape(hf);
    let w: Float32Array = Float32Array.from(src.read(hf));
    if (heads) w = permuteForGguf(w, rows, cols, heads);
    const type = matrixTypeFor(o.type, cols);
    tensors.push({ name, dims: [cols, rows], type: GGML_TYPE[type], data: encodeGgml(w, type) });
  };
  const vec = (name: string, hf: string) => {
    const v = Float32Array.from(src.read(hf));
    tensors.push({ name, dims: [v.length], type: GGML_TYPE.F32, data: encodeGgml(v, "F32") });
  };
  try {
    mat("token_embd.weight", "model.embed_tokens.weight");
    for (let l = 0; l < c.numLayers; l++) {
      const n = hfNames(l);
      vec(`blk.${l}.attn_norm.weight`, n.attnNorm);
      mat(`blk.${l}.attn_q.weight`, n.wq, c.numHeads);
      mat(`blk.${l}.attn_k.weight`, n.wk, c.numKvHeads);
      mat(`blk.${l}.attn_v.weight`, n.wv);
      mat(`blk.${l}.attn_output.weight`, n.wo);
      vec(`blk.${l}.ffn_norm.weight`, n.ffnNorm);
      mat(`blk.${l}.ffn_gate.weight`, n.wGate);
      mat(`blk.${l}.ffn_up.weight`, n.wUp);
      mat(`blk.${l}.ffn_down.weight`, n.wDown);
    }
    vec("output_norm.weight", "model.norm.weight");
    mat("output.weight", src.has("lm_head.weight") && !c.tieWordEmbeddings ? "lm_head.weight" : "model.embed_tokens.weight");
  } finally {
    src.close();
  }
  writeGguf(outFile, md, tensors);
}
