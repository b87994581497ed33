// A random-weight Llama with realistic shapes for the long-context benchmark (head_dim 128),
// written as a Hugging Face folder and as GGUF with the same weights (the vocabulary is
// stories260K's 512 tokens; benchmarks feed token ids, so their meaning does not matter).

import fs from "node:fs";
import path from "node:path";
import { convertToGguf } from "../src/model/gguf-convert.js";
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
