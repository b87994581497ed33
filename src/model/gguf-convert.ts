// Models → GGUF for llama.cpp (arch "llama", "qwen2", "qwen3"), the way llama.cpp's convert
// script does it: tensors renamed, llama's q/k rows permuted from the rotate-half layout to
// Meta's interleaved pairs, the tokenizer.* entries given (or taken from a GGUF with the same
// vocabulary). Benchmarks hand llama.cpp the same weights this engine runs; tests check both
// engines agree on the file.

import path from "node:path";
import { CheckpointError } from "../errors.js";
import { ggmlTraitsByName, type GgmlTypeName } from "../tensor/ggml-quant.js";
import { matrixToF32, type Matrix } from "../tensor/matrix.js";
import { loadTransformer } from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { GGML_TYPE, GGUF_TYPE, readGguf, writeGguf, type GgufEntry, type GgufTensorToWrite } from "./gguf.js";
import type { Weights } from "./weights.js";

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

export interface GgufWriteOptions {
  /** Matrix precision (norms and biases stay F32); block types fall back per matrix (matrixTypeFor). */
  type: GgufMatrixType;
  /** The tokenizer.* entries (e.g. copied from a GGUF with the same vocabulary). */
  tokenizer: Map<string, GgufEntry>;
  name: string;
}

/** Our architecture → GGUF general.architecture. */
const GGUF_ARCH: Record<string, string> = { LlamaForCausalLM: "llama", Qwen2ForCausalLM: "qwen2", Qwen3ForCausalLM: "qwen3" };

/** The tokenizer.* entries of a GGUF file. */
export function ggufTokenizerEntries(file: string): Map<string, GgufEntry> {
  const out = new Map<string, GgufEntry>();
  for (const [k, v] of readGguf(file).metadata) if (k.startsWith("tokenizer.")) out.set(k, v);
  return out;
}

/**
 * A model held in memory → GGUF, as llama.cpp's convert script writes it: tensors renamed,
 * llama's q/k rows permuted from the rotate-half layout to Meta's interleaved pairs (qwen2/3 use
 * NEOX RoPE and keep them), untied output only when the head is its own matrix.
 */
export function writeModelGguf(outFile: string, c: ModelConfig, w: Weights, o: GgufWriteOptions): void {
  const arch = GGUF_ARCH[c.architecture];
  if (!arch || c.oBias || !(c.ropeScaling.type === "default" || c.ropeScaling.type === "linear")) {
    throw new CheckpointError(`${o.name}: only Llama, Qwen2 and Qwen3 models without an o_proj bias and with default or linear RoPE convert to GGUF`);
  }
  if (arch === "llama" && c.qkvBias) throw new CheckpointError(`${o.name}: llama GGUFs with q/k/v biases are not written`);
  const md = new Map<string, GgufEntry>();
  const u32 = (v: number): GgufEntry => ({ type: GGUF_TYPE.u32, value: v });
  const f32 = (v: number): GgufEntry => ({ type: GGUF_TYPE.f32, value: v });
  md.set("general.architecture", { type: GGUF_TYPE.string, value: arch });
  md.set("general.name", { type: GGUF_TYPE.string, value: o.name });
  md.set("general.file_type", u32(FILE_TYPE[o.type]));
  md.set("general.alignment", u32(32));
  md.set(`${arch}.context_length`, u32(c.maxPositionEmbeddings));
  md.set(`${arch}.embedding_length`, u32(c.hiddenSize));
  md.set(`${arch}.block_count`, u32(c.numLayers));
  md.set(`${arch}.feed_forward_length`, u32(c.intermediateSize));
  md.set(`${arch}.attention.head_count`, u32(c.numHeads));
  md.set(`${arch}.attention.head_count_kv`, u32(c.numKvHeads));
  md.set(`${arch}.attention.key_length`, u32(c.headDim));
  md.set(`${arch}.attention.value_length`, u32(c.headDim));
  md.set(`${arch}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps));
  md.set(`${arch}.rope.dimension_count`, u32(c.headDim));
  md.set(`${arch}.rope.freq_base`, f32(c.ropeTheta));
  if (c.ropeScaling.type === "linear") {
    md.set(`${arch}.rope.scaling.type`, { type: GGUF_TYPE.string, value: "linear" });
    md.set(`${arch}.rope.scaling.factor`, f32(c.ropeScaling.factor));
  }
  md.set(`${arch}.vocab_size`, u32(c.vocabSize));
  for (const [k, v] of o.tokenizer) md.set(k, v);
  const tensors: GgufTensorToWrite[] = [];
  const mat = (name: string, m: Matrix, heads = 0) => {
    let data: Float32Array = Float32Array.from(matrixToF32(m));
    if (heads && arch === "llama") data = permuteForGguf(data, m.rows, m.cols, heads);
    const type = matrixTypeFor(o.type, m.cols);
    tensors.push({ name, dims: [m.cols, m.rows], type: GGML_TYPE[type], data: encodeGgml(data, type) });
  };
  const vec = (name: string, v: Float32Array | null) => {
    if (v) tensors.push({ name, dims: [v.length], type: GGML_TYPE.F32, data: encodeGgml(Float32Array.from(v), "F32") });
  };
  mat("token_embd.weight", w.embed);
  w.layers.forEach((l, i) => {
    const p = `blk.${i}.`;
    vec(p + "attn_norm.weight", l.attnNorm);
    mat(p + "attn_q.weight", l.wq, c.numHeads);
    mat(p + "attn_k.weight", l.wk, c.numKvHeads);
    mat(p + "attn_v.weight", l.wv);
    mat(p + "attn_output.weight", l.wo);
    vec(p + "attn_q.bias", l.bq);
    vec(p + "attn_k.bias", l.bk);
    vec(p + "attn_v.bias", l.bv);
    vec(p + "attn_q_norm.weight", l.qNorm);
    vec(p + "attn_k_norm.weight", l.kNorm);
    vec(p + "ffn_norm.weight", l.ffnNorm);
    mat(p + "ffn_gate.weight", l.wGate);
    mat(p + "ffn_up.weight", l.wUp);
    mat(p + "ffn_down.weight", l.wDown);
  });
  vec("output_norm.weight", w.finalNorm);
  if (w.lmHead !== w.embed) mat("output.weight", w.lmHead);
  writeGguf(outFile, md, tensors);
}

/** A Hugging Face folder → GGUF, the vocabulary's tokenizer.* entries taken from an existing GGUF. */
export function convertToGguf(hfDir: string, outFile: string, o: ToGgufOptions): void {
  const { config, transformer } = loadTransformer(hfDir); // held as stored; each matrix is widened on its own while writing
  try {
    writeModelGguf(outFile, config, transformer.weights, { type: o.type, tokenizer: ggufTokenizerEntries(o.vocabFrom), name: o.name ?? path.basename(hfDir) });
  } finally {
    transformer.dispose();
  }
}
