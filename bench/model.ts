// A random-weight Llama with realistic shapes for the long-context benchmark (head_dim 128),
// written as a Hugging Face folder and as GGUF with the same weights (the vocabulary is
// stories260K's 512 tokens; benchmarks feed token ids, so their meaning does not matter).

import fs from "node:fs";
import path from "node:path";
import { GGML_TYPE, GGUF_TYPE, writeGgufStreamed, type GgufEntry, type GgufTensorStream } from "../src/model/gguf.js";
import { convertToGguf, encodeGgml, matrixTypeFor, type GgufMatrixType } from "../src/model/gguf-convert.js";
import { ggmlTraitsByName } from "../src/tensor/ggml-quant.js";
import { f32ToBf16, f32ToF16 } from "../src/tensor/dtype.js";
import { writeSafetensors, type TensorToWrite } from "../src/model/safetensors.js";
import { hfNames } from "../src/model/weights.js";
import { hfConfig, type ModelShape } from "../src/train/train.js";
import { REPO_ROOT, SHARED_DIR } from "./common.js";

export type BenchModelSpec = ModelShape & { dtype: "F32" | "F16" | "BF16" };

export const DEFAULT_BENCH_MODEL: BenchModelSpec = { layers: 4, hidden: 1024, heads: 8, kvHeads: 2, headDim: 128, intermediate: 2816, maxPositions: 32768, dtype: "F16" };

const STORIES = path.join(SHARED_DIR, "models", "stories260K");
const VOCAB = 512;

/** Seeded normal-ish numbers (sum of uniforms), scaled. */
function randomTensor(n: number, scale: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (u() + u() + u() - 1.5) * 2 * scale;
  return out;
}

/** The HF folder and GGUF file of a bench model, built once and cached in .bench-cache/. */
export function benchModel(s: BenchModelSpec = DEFAULT_BENCH_MODEL): { hfDir: string; gguf: string } {
  const name = `llama-${s.layers}x${s.hidden}-h${s.heads}kv${s.kvHeads}d${s.headDim}-ff${s.intermediate}-${s.dtype.toLowerCase()}`;
  const hfDir = path.join(REPO_ROOT, ".bench-cache", name);
  const gguf = path.join(hfDir, `${name}.gguf`);
  if (fs.existsSync(gguf)) return { hfDir, gguf };
  fs.mkdirSync(hfDir, { recursive: true });
  const torchDtype = s.dtype === "F32" ? "float32" : s.dtype === "F16" ? "float16" : "bfloat16";
  fs.writeFileSync(path.join(hfDir, "config.json"), JSON.stringify({ ...hfConfig(s, VOCAB), torch_dtype: torchDtype }, null, 1));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES, f), path.join(hfDir, f));
  fs.writeFileSync(path.join(hfDir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  const tensors: TensorToWrite[] = [];
  let seed = 1;
  const mat = (name: string, rows: number, cols: number) => tensors.push({ name, dtype: s.dtype, shape: [rows, cols], data: randomTensor(rows * cols, 1 / Math.sqrt(cols), seed++) });
  const ones = (name: string, n: number) => tensors.push({ name, dtype: s.dtype, shape: [n], data: new Float32Array(n).fill(1) });
  mat("model.embed_tokens.weight", VOCAB, s.hidden);
  for (let l = 0; l < s.layers; l++) {
    const n = hfNames(l);
    ones(n.attnNorm, s.hidden);
    mat(n.wq, s.heads * s.headDim, s.hidden);
    mat(n.wk, s.kvHeads * s.headDim, s.hidden);
    mat(n.wv, s.kvHeads * s.headDim, s.hidden);
    mat(n.wo, s.hidden, s.heads * s.headDim);
    ones(n.ffnNorm, s.hidden);
    mat(n.wGate, s.intermediate, s.hidden);
    mat(n.wUp, s.intermediate, s.hidden);
    mat(n.wDown, s.hidden, s.intermediate);
  }
  ones("model.norm.weight", s.hidden);
  mat("lm_head.weight", VOCAB, s.hidden);
  writeSafetensors(path.join(hfDir, "model.safetensors"), tensors, { format: "pt" });
  convertToGguf(hfDir, gguf, { vocabFrom: path.join(STORIES, "stories260K.gguf"), type: s.dtype, name });
  return { hfDir, gguf };
}

/** DeepSeek-R1-Distill-Qwen-1.5B's shape (as Llama: no q/k/v biases, which cost nothing here), bf16, 3.55 GB. */
export const R1_DISTILL_1_5B: BenchModelSpec & { vocab: number } = {
  layers: 28, hidden: 1536, heads: 12, kvHeads: 2, headDim: 128, intermediate: 8960, maxPositions: 131072, dtype: "BF16", vocab: 151936,
};

/** A big bench model's shape: a vocabulary, and the RoPE settings of config.json when not the default. */
export type BigBenchModelSpec = BenchModelSpec & { vocab: number; ropeTheta?: number; ropeScaling?: Record<string, unknown> };

/**
 * DeepSeek-R1-Distill-Llama-8B's shape (Llama 3.1 8B: untied lm_head, llama3 RoPE scaling),
 * bf16, 16.06 GB — past one 4 GiB WebAssembly memory.
 */
export const R1_DISTILL_LLAMA_8B: BigBenchModelSpec = {
  layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336, maxPositions: 131072, dtype: "BF16", vocab: 128256,
  ropeTheta: 500000, ropeScaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
};

/**
 * A random-weight model of a large shape as a Hugging Face folder (no GGUF), written tensor by
 * tensor (never the whole file in memory), cached in .bench-cache/.
 */
export function bigBenchModel(s: BigBenchModelSpec = R1_DISTILL_1_5B): string {
  const rope = s.ropeTheta === undefined ? "" : `-rope${s.ropeTheta}${s.ropeScaling ? "-scaled" : ""}`;
  const name = `llama-${s.layers}x${s.hidden}-h${s.heads}kv${s.kvHeads}d${s.headDim}-ff${s.intermediate}-v${s.vocab}${rope}-${s.dtype.toLowerCase()}`;
  const dir = path.join(REPO_ROOT, ".bench-cache", name);
  const file = path.join(dir, "model.safetensors");
  if (fs.existsSync(file)) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const torchDtype = s.dtype === "F32" ? "float32" : s.dtype === "F16" ? "float16" : "bfloat16";
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...hfConfig(s, s.vocab), torch_dtype: torchDtype, max_position_embeddings: s.maxPositions, rope_theta: s.ropeTheta ?? 10000, rope_scaling: s.ropeScaling ?? null }, null, 1));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  const list: { name: string; shape: number[]; scale: number }[] = [];
  const mat = (n: string, rows: number, cols: number) => list.push({ name: n, shape: [rows, cols], scale: 1 / Math.sqrt(cols) });
  const vec = (n: string, len: number) => list.push({ name: n, shape: [len], scale: 0 });
  mat("model.embed_tokens.weight", s.vocab, s.hidden);
  for (let l = 0; l < s.layers; l++) {
    const n = hfNames(l);
    vec(n.attnNorm, s.hidden);
    mat(n.wq, s.heads * s.headDim, s.hidden);
    mat(n.wk, s.kvHeads * s.headDim, s.hidden);
    mat(n.wv, s.kvHeads * s.headDim, s.hidden);
    mat(n.wo, s.hidden, s.heads * s.headDim);
    vec(n.ffnNorm, s.hidden);
    mat(n.wGate, s.intermediate, s.hidden);
    mat(n.wUp, s.intermediate, s.hidden);
    mat(n.wDown, s.hidden, s.intermediate);
  }
  vec("model.norm.weight", s.hidden);
  mat("lm_head.weight", s.vocab, s.hidden);
  const elem = s.dtype === "F32" ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of list) {
    const bytes = t.shape.reduce((a, d) => a * d, 1) * elem;
    header[t.name] = { dtype: s.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const tmp = file + ".tmp";
  const fd = fs.openSync(tmp, "w");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, Buffer.from(json));
  let seed = 1;
  for (const t of list) {
    const n = t.shape.reduce((a, d) => a * d, 1);
    // in slices of 4M values, so no tensor is held whole as float32
    for (let at = 0; at < n; at += 1 << 22) {
      const m = Math.min(1 << 22, n - at);
      const x = t.scale === 0 ? new Float32Array(m).fill(1) : randomTensor(m, t.scale, seed++);
      const out = new Uint16Array(m);
      if (s.dtype === "BF16") f32ToBf16(x, out);
      else f32ToF16(x, out);
      fs.writeSync(fd, new Uint8Array(out.buffer));
    }
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return dir;
}

/** A byte-level vocabulary of `n` tokens as GGUF tokenizer entries: 256 bytes, unused fillers, an end token (benchmarks feed ids). */
function fillerVocab(n: number): Map<string, GgufEntry> {
  // GPT-2's printable spelling of the 256 bytes (llama.cpp looks up the newline byte's token)
  const keep = new Set<number>();
  for (const [a, b] of [[33, 126], [161, 172], [174, 255]]) for (let i = a; i <= b; i++) keep.add(i);
  let extra = 0;
  const byteChars = Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep.has(b) ? b : 256 + extra++));
  const tokens = Array.from({ length: n }, (_, i) => (i < 256 ? byteChars[i] : i === n - 1 ? "<|endoftext|>" : `<|unused_${i}|>`));
  const types = tokens.map((_, i) => (i === n - 1 ? 3 : i < 256 ? 1 : 5));
  return new Map<string, GgufEntry>([
    ["tokenizer.ggml.model", { type: GGUF_TYPE.string, value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: GGUF_TYPE.string, value: "qwen2" }],
    ["tokenizer.ggml.tokens", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.string, values: tokens } }],
    ["tokenizer.ggml.token_type", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.i32, values: types } }],
    ["tokenizer.ggml.merges", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.string, values: [] } }],
    ["tokenizer.ggml.eos_token_id", { type: GGUF_TYPE.u32, value: n - 1 }],
    ["tokenizer.ggml.bos_token_id", { type: GGUF_TYPE.u32, value: n - 1 }],
  ]);
}

/**
 * A random-weight GGUF of a large shape (arch llama, 16-bit matrices, F32 norms), streamed to
 * disk in slices (never the whole file in memory), cached in .bench-cache/. Both engines load
 * this same file.
 */
export type BenchWeights = "BF16" | "F16" | "Q8_0" | "Q4_K_M";

/** The type of each matrix: one type, or llama.cpp's Q4_K_M recipe (Q6_K for attn_v, ffn_down and the output head, Q4_K elsewhere). */
function matrixType(w: BenchWeights, name: string): GgufMatrixType {
  if (w !== "Q4_K_M") return w;
  return /attn_v|ffn_down|^output\./.test(name) ? "Q6_K" : "Q4_K";
}

export function bigBenchGguf(s: BenchModelSpec & { vocab: number }, name: string, weights: BenchWeights = s.dtype === "F32" ? "F16" : s.dtype): string {
  const file = path.join(REPO_ROOT, ".bench-cache", `${name}-${weights.toLowerCase()}.gguf`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const u32 = (v: number): GgufEntry => ({ type: GGUF_TYPE.u32, value: v });
  const md = new Map<string, GgufEntry>([
    ["general.architecture", { type: GGUF_TYPE.string, value: "llama" }],
    ["general.name", { type: GGUF_TYPE.string, value: name }],
    ["general.alignment", u32(32)],
    ["llama.context_length", u32(s.maxPositions)],
    ["llama.embedding_length", u32(s.hidden)],
    ["llama.block_count", u32(s.layers)],
    ["llama.feed_forward_length", u32(s.intermediate)],
    ["llama.attention.head_count", u32(s.heads)],
    ["llama.attention.head_count_kv", u32(s.kvHeads)],
    ["llama.attention.key_length", u32(s.headDim)],
    ["llama.attention.value_length", u32(s.headDim)],
    ["llama.attention.layer_norm_rms_epsilon", { type: GGUF_TYPE.f32, value: 1e-5 }],
    ["llama.rope.dimension_count", u32(s.headDim)],
    ["llama.rope.freq_base", { type: GGUF_TYPE.f32, value: 10000 }],
    ["llama.vocab_size", u32(s.vocab)],
    ...fillerVocab(s.vocab),
  ]);
  let seed = 1;
  const tensors: GgufTensorStream[] = [];
  const mat = (n: string, rows: number, cols: number) => {
    const mySeed = seed++;
    const type = matrixTypeFor(matrixType(weights, n), cols);
    const traits = ggmlTraitsByName(type);
    tensors.push({
      name: n, dims: [cols, rows], type: GGML_TYPE[type], byteLength: rows * (cols / traits.blockSize) * traits.blockBytes,
      *chunks() {
        // whole rows at a time (blocks run along rows), about 4M values a slice
        const rowsPer = Math.max(1, Math.floor((1 << 22) / cols));
        let sub = mySeed * 1000;
        for (let r = 0; r < rows; r += rowsPer) {
          const x = randomTensor(Math.min(rowsPer, rows - r) * cols, 1 / Math.sqrt(cols), sub++);
          yield encodeGgml(x, type);
        }
      },
    });
  };
  const vec = (n: string, len: number) => tensors.push({ name: n, dims: [len], type: GGML_TYPE.F32, byteLength: len * 4, *chunks() { yield new Uint8Array(new Float32Array(len).fill(1).buffer); } });
  mat("token_embd.weight", s.vocab, s.hidden);
  for (let l = 0; l < s.layers; l++) {
    vec(`blk.${l}.attn_norm.weight`, s.hidden);
    mat(`blk.${l}.attn_q.weight`, s.heads * s.headDim, s.hidden);
    mat(`blk.${l}.attn_k.weight`, s.kvHeads * s.headDim, s.hidden);
    mat(`blk.${l}.attn_v.weight`, s.kvHeads * s.headDim, s.hidden);
    mat(`blk.${l}.attn_output.weight`, s.hidden, s.heads * s.headDim);
    vec(`blk.${l}.ffn_norm.weight`, s.hidden);
    mat(`blk.${l}.ffn_gate.weight`, s.intermediate, s.hidden);
    mat(`blk.${l}.ffn_up.weight`, s.intermediate, s.hidden);
    mat(`blk.${l}.ffn_down.weight`, s.hidden, s.intermediate);
  }
  vec("output_norm.weight", s.hidden);
  mat("output.weight", s.vocab, s.hidden);
  writeGgufStreamed(file, md, tensors);
  return file;
}
