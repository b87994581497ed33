// A Hugging Face Llama folder → GGUF for llama.cpp (arch "llama"), the way llama.cpp's
// convert script does it: tensors renamed, q/k rows permuted from the rotate-half layout
// to Meta's interleaved pairs, the vocabulary taken from an existing GGUF with the same
// tokenizer.

import path from "node:path";
import { CheckpointError } from "../errors.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
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

function encode(data: Float32Array, type: number): Uint8Array {
  if (type === GGML_TYPE.F32) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const half = new Uint16Array(data.length);
  if (type === GGML_TYPE.F16) f32ToF16(data, half);
  else f32ToBf16(data, half);
  return new Uint8Array(half.buffer);
}

export interface ToGgufOptions {
  /** A GGUF whose tokenizer.* entries describe the same vocabulary. */
  vocabFrom: string;
  /** Matrix precision (norms stay F32, as llama.cpp's converter keeps them). */
  type: "F32" | "F16" | "BF16";
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
  md.set("general.file_type", u32(o.type === "F32" ? 0 : o.type === "F16" ? 1 : 32));
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
  const type = GGML_TYPE[o.type];
  const tensors: GgufTensorToWrite[] = [];
  const mat = (name: string, hf: string, heads = 0) => {
    const [rows, cols] = src.shape(hf);
    let w: Float32Array = Float32Array.from(src.read(hf));
    if (heads) w = permuteForGguf(w, rows, cols, heads);
    tensors.push({ name, dims: [cols, rows], type, data: encode(w, type) });
  };
  const vec = (name: string, hf: string) => {
    const v = Float32Array.from(src.read(hf));
    tensors.push({ name, dims: [v.length], type: GGML_TYPE.F32, data: encode(v, GGML_TYPE.F32) });
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
