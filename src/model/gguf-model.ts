// A GGUF file (llama.cpp's format, what most local users hold) as a model: the config from
// the {arch}.* metadata, tensors under their Hugging Face names (llama's q/k rows put back
// from llama.cpp's interleaved-pair order), the tokenizer and chat template from tokenizer.*.
// `--model file.gguf`, or a folder holding one .gguf and no config.json.

import fs from "node:fs";
import path from "node:path";
import { CheckpointError } from "../errors.js";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { GGML_TRAITS, ggmlTraitsById, isQuantDtype, type GgmlTypeTraits } from "../tensor/ggml-quant.js";
import { matrixToF32, type Matrix, type WeightDtype } from "../tensor/matrix.js";
import { allocF32, allocU16, release } from "../tensor/memory.js";
import { tokenizerFromGguf } from "../tokenizer/gguf-tokenizer.js";
import { parseModelConfig, SUPPORTED_ARCHITECTURES, type ModelConfig } from "./config.js";
import { openForReading } from "./files.js";
import { GGML_TYPE, ggufTensorBytes, readGguf, readGgufTensorData, type GgufFile, type GgufTensorInfo } from "./gguf.js";
import { readGgufMatrix } from "./gguf-matrix.js";
import type { TensorSource } from "./weights.js";

/** GGUF general.architecture → the Hugging Face class it is run as. */
export const GGUF_ARCHITECTURES: Record<string, string> = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM" };

/** The .gguf a --model path names: the file itself, or the only .gguf of a folder without config.json; null for a Hugging Face folder. */
export function ggufModelFile(p: string): string | null {
  if (p.toLowerCase().endsWith(".gguf")) return p;
  if (!fs.existsSync(p) || !fs.statSync(p).isDirectory() || fs.existsSync(path.join(p, "config.json"))) return null;
  const found = fs.readdirSync(p).filter((f) => f.toLowerCase().endsWith(".gguf"));
  if (found.length === 0) return null;
  if (found.length > 1) throw new CheckpointError(`${p}: holds ${found.length} .gguf files (${found.slice(0, 4).join(", ")}); name one with --model ${path.join(p, found[0])}`);
  return path.join(p, found[0]);
}

function meta(g: GgufFile, key: string): unknown {
  const e = g.metadata.get(key);
  if (!e) return undefined;
  return typeof e.value === "bigint" ? Number(e.value) : e.value;
}

/** The config.json a GGUF's metadata stands for, validated by the same parser. */
export function configFromGguf(g: GgufFile, file: string): ModelConfig {
  const arch = meta(g, "general.architecture");
  const hfArch = typeof arch === "string" ? GGUF_ARCHITECTURES[arch] : undefined;
  if (!hfArch || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(hfArch)) {
    const ok = Object.keys(GGUF_ARCHITECTURES).filter((a) => (SUPPORTED_ARCHITECTURES as readonly string[]).includes(GGUF_ARCHITECTURES[a]));
    throw new CheckpointError(`${file}: GGUF architecture ${JSON.stringify(arch)} is not supported; supported: ${ok.join(", ")}`);
  }
  const a = (k: string) => meta(g, `${arch}.${k}`);
  const embd = g.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd || embd.dims.length !== 2) throw new CheckpointError(`${file}: no 2-D tensor "token_embd.weight"`);
  const hidden = a("embedding_length");
  const heads = a("attention.head_count");
  const headDim = a("attention.key_length") ?? (typeof hidden === "number" && typeof heads === "number" ? hidden / heads : undefined);
  if (a("attention.value_length") !== undefined && a("attention.value_length") !== headDim) {
    throw new CheckpointError(`${file}: attention.value_length ${String(a("attention.value_length"))} differs from key_length ${String(headDim)} (not supported)`);
  }
  const ropeDims = a("rope.dimension_count");
  if (ropeDims !== undefined && ropeDims !== headDim) throw new CheckpointError(`${file}: rope.dimension_count ${String(ropeDims)} < head dim ${String(headDim)} (partial rotary) is not supported`);
  const scaling = a("rope.scaling.type");
  let ropeScaling: unknown = null;
  if (scaling === "linear") ropeScaling = { type: "linear", factor: a("rope.scaling.factor") };
  else if (scaling !== undefined && scaling !== "none") throw new CheckpointError(`${file}: rope scaling ${JSON.stringify(scaling)} is not supported; supported: none, linear, rope_freqs factors (llama3)`);
  const has = (name: string) => g.tensors.some((t) => t.name === name);
  const eos = [meta(g, "tokenizer.ggml.eos_token_id"), meta(g, "tokenizer.ggml.eot_token_id"), meta(g, "tokenizer.ggml.eom_token_id")].filter((v) => typeof v === "number");
  const raw: Record<string, unknown> = {
    architectures: [hfArch],
    hidden_size: hidden,
    intermediate_size: a("feed_forward_length"),
    num_hidden_layers: a("block_count"),
    num_attention_heads: heads,
    num_key_value_heads: a("attention.head_count_kv") ?? heads,
    head_dim: headDim,
    vocab_size: embd.dims[1],
    max_position_embeddings: a("context_length"),
    rms_norm_eps: a("attention.layer_norm_rms_epsilon"),
    rope_theta: a("rope.freq_base") ?? 10000,
    rope_scaling: ropeScaling,
    tie_word_embeddings: !has("output.weight"),
    attention_bias: hfArch !== "Qwen2ForCausalLM" && has("blk.0.attn_q.bias"),
    bos_token_id: meta(g, "tokenizer.ggml.bos_token_id"),
    eos_token_id: [...new Set(eos)],
    torch_dtype: "gguf",
  };
  if (hfArch === "Qwen2ForCausalLM" && !has("blk.0.attn_q.bias")) throw new CheckpointError(`${file}: a qwen2 GGUF without attn_q.bias tensors (qwen2 has q/k/v biases)`);
  const config = parseModelConfig(raw, `${file} (GGUF metadata)`);
  const freqs = g.tensors.find((t) => t.name === "rope_freqs.weight");
  if (freqs) {
    if (freqs.type !== GGML_TYPE.F32 || freqs.dims.length !== 1 || freqs.dims[0] !== config.headDim / 2) {
      throw new CheckpointError(`${file}: rope_freqs.weight must be ${config.headDim / 2} F32 values`);
    }
    const factors = readTensorF32(file, g, freqs);
    if (factors.some((f) => !(f > 0 && Number.isFinite(f)))) throw new CheckpointError(`${file}: rope_freqs.weight holds a factor that is not a positive number`);
    config.ropeScaling = { ...config.ropeScaling, type: "factors", factors: Array.from(factors) };
  }
  return config;
}

function readTensorF32(file: string, g: GgufFile, t: GgufTensorInfo): Float32Array {
  const { fd } = openForReading(file);
  try {
    const out = new Float32Array(t.dims.reduce((x, d) => x * d, 1));
    readGgufTensorData(fd, g, t, file, new Uint8Array(out.buffer));
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** Hugging Face tensor name → GGUF tensor name (llama.cpp's LLM_TENSOR_NAMES). */
export function ggufTensorName(hf: string): string | null {
  if (hf === "model.embed_tokens.weight") return "token_embd.weight";
  if (hf === "model.norm.weight") return "output_norm.weight";
  if (hf === "lm_head.weight") return "output.weight";
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (!m) return null;
  const parts: Record<string, string> = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.bias": "attn_output.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
  };
  const p = parts[m[2]];
  return p ? `blk.${m[1]}.${p}` : null;
}

/** Rows of a llama GGUF's q/k matrices, per head, back from interleaved pairs to rotate-half: HF row r of a head ← GGUF row 2r (first half) or 2(r − d/2) + 1. */
export function ggufRowForHf(r: number, headDim: number): number {
  const h = Math.floor(r / headDim);
  const i = r % headDim;
  const half = headDim / 2;
  return h * headDim + (i < half ? 2 * i : 2 * (i - half) + 1);
}

/** The tensors of a GGUF file under their Hugging Face names. */
export class GgufTensors implements TensorSource {
  private readonly byName = new Map<string, GgufTensorInfo>();
  private fd: number;

  constructor(readonly file: string, readonly g: GgufFile, private readonly config: ModelConfig, private readonly arch: string) {
    for (const t of g.tensors) this.byName.set(t.name, t);
    this.fd = openForReading(file).fd;
  }

  private info(hf: string): GgufTensorInfo {
    const n = ggufTensorName(hf);
    const t = n ? this.byName.get(n) : undefined;
    if (!t) throw new CheckpointError(`${this.file}: no tensor "${n ?? hf}" (${hf})`);
    return t;
  }

  has(hf: string): boolean {
    const n = ggufTensorName(hf);
    return n !== null && this.byName.has(n);
  }

  shape(hf: string): number[] {
    return [...this.info(hf).dims].reverse();
  }

  where(hf: string): string {
    return `${this.file} (${ggufTensorName(hf) ?? hf})`;
  }

  /** Stored type name ("F32", "Q4_K", …). */
  typeName(hf: string): string {
    const t = this.info(hf);
    return ggmlTraitsById(t.type)?.name ?? `type ${t.type}`;
  }

  private traits(hf: string, t: GgufTensorInfo): GgmlTypeTraits {
    const tr = ggmlTraitsById(t.type);
    if (!tr) throw new CheckpointError(`${this.where(hf)}: ggml type ${t.type} is not supported; supported: ${GGML_TRAITS.map((x) => x.name).join(", ")}`);
    return tr;
  }

  private checkOpen(t: GgufTensorInfo): void {
    if (this.fd < 0) throw new CheckpointError(`${this.file}: tensor "${t.name}" read after the file was closed`);
  }

  /** A vector (norm, bias) as float32, whatever its stored type. */
  read(hf: string): Float32Array {
    const t = this.info(hf);
    const tr = this.traits(hf, t);
    this.checkOpen(t);
    const n = t.dims.reduce((a, d) => a * d, 1);
    const out = allocF32(n);
    if (t.type === GGML_TYPE.F32) readGgufTensorData(this.fd, this.g, t, this.file, new Uint8Array(out.buffer, out.byteOffset, n * 4));
    else tr.dequantizeRow(readGgufTensorData(this.fd, this.g, t, this.file), out, n);
    return out;
  }

  /** q/k of a llama GGUF have their rows in llama.cpp's interleaved-pair order. */
  private permutedRows(hf: string): boolean {
    return this.arch === "llama" && /self_attn\.[qk]_proj\.weight$/.test(hf);
  }

  /**
   * A matrix as stored (F32/F16/BF16, or ggml blocks kept quantized: rows are whole blocks, so
   * llama's q/k rows move as bytes), or widened/narrowed to a float `dtype` on request.
   */
  readMatrix(hf: string, dtype: WeightDtype | "auto"): Matrix {
    const t = this.info(hf);
    const tr = this.traits(hf, t);
    this.checkOpen(t);
    const m = readGgufMatrix(this.fd, this.g, t, this.file);
    if (this.permutedRows(hf)) {
      const rowBytes = m.data.byteLength / m.rows;
      const bytes = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      const copy = bytes.slice();
      for (let r = 0; r < m.rows; r++) {
        const src = ggufRowForHf(r, this.config.headDim) * rowBytes;
        bytes.set(copy.subarray(src, src + rowBytes), r * rowBytes);
      }
    }
    if (dtype === "auto" || dtype === m.dtype) return m;
    if (isQuantDtype(dtype)) throw new CheckpointError(`${this.where(hf)}: stored as ${tr.name}; weights are not re-quantized on load (--weights-dtype auto keeps them as stored)`);
    // widen to f32 (a plain copy for 16-bit and block types), then narrow if asked
    const wide = matrixToF32(m);
    const f32 = allocF32(m.rows * m.cols);
    f32.set(wide);
    if (wide !== m.data) release(m.data);
    if (dtype === "f32") return { dtype: "f32", rows: m.rows, cols: m.cols, data: f32 };
    const half = allocU16(m.rows * m.cols);
    (dtype === "bf16" ? f32ToBf16 : f32ToF16)(f32, half);
    release(f32);
    return { dtype, rows: m.rows, cols: m.cols, data: half };
  }

  /** Bytes a tensor will hold in memory (matrices in `dtype`, "auto": as stored; vectors as float32). */
  heldBytes(hf: string, dtype: WeightDtype | "auto"): number {
    const t = this.info(hf);
    const n = t.dims.reduce((a, d) => a * d, 1);
    if (t.dims.length !== 2) return n * 4;
    if (dtype === "auto") return ggufTensorBytes(t) ?? n * 4;
    return n * (dtype === "f32" ? 4 : 2);
  }

  get tensorCount(): number {
    return this.g.tensors.length;
  }

  /** GGUF names the model does not read (besides rope_freqs, read into the config). */
  unused(expected: Set<string>): string[] {
    const wanted = new Set([...expected].map(ggufTensorName).filter((n): n is string => n !== null));
    return this.g.tensors.map((t) => t.name).filter((n) => !wanted.has(n) && n !== "rope_freqs.weight");
  }

  dtypes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.g.tensors) {
      const name = ggmlTraitsById(t.type)?.name ?? `type ${t.type}`;
      out[name] = (out[name] ?? 0) + 1;
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Read a GGUF's header and config; the tensor source is opened by the caller. */
export function openGgufModel(file: string): { g: GgufFile; config: ModelConfig; arch: string } {
  const g = readGguf(file);
  const config = configFromGguf(g, file);
  return { g, config, arch: String(meta(g, "general.architecture")) };
}

export { tokenizerFromGguf };
