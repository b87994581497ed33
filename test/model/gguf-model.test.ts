// GGUF files as models (`--model file.gguf`): checked against llama.cpp (node-llama-cpp) on the
// same file — tokenization and greedy continuations — and against the Hugging Face folder or the
// in-memory model the file was written from (logits equal: same weights, same arithmetic).

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama } from "node-llama-cpp";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { CheckpointError } from "../../src/errors.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel, type LoadedModel } from "../../src/model/checkpoint.js";
import { parseModelConfig } from "../../src/model/config.js";
import { GGML_TYPE, GGUF_TYPE, readGguf, writeGguf, type GgufEntry } from "../../src/model/gguf.js";
import { ggufTokenizerEntries, writeModelGguf } from "../../src/model/gguf-convert.js";
import { ggufModelFile, ggufRowForHf } from "../../src/model/gguf-model.js";
import type { Transformer } from "../../src/model/forward.js";
import { maxRelDiff, readStoriesReference, STORIES_DIR, tempDir } from "../helpers.js";
import { randomTransformer, type RandomModelSpec } from "../model-fixtures.js";

const dir = tempDir();
const STORIES_GGUF = path.join(STORIES_DIR, "stories260K.gguf");
let llama: Llama;

before(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
});
after(async () => {
  await llama?.dispose();
});

/** llama.cpp on a GGUF file: its tokenization of `texts` and its greedy continuation of `ids` (F32 KV cache). */
async function llamaCpp(file: string, texts: string[], ids: number[], n: number): Promise<{ tokens: number[][]; greedy: number[] }> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const tokens = texts.map((t) => Array.from(model.tokenize(t, true)) as number[]);
    const ctx = await model.createContext({ contextSize: 256, threads: 1, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
    const greedy: number[] = [];
    try {
      for await (const t of ctx.getSequence().evaluate(ids as never, { temperature: 0 })) {
        greedy.push(t as number);
        if (greedy.length >= n) break;
      }
    } finally {
      await ctx.dispose();
    }
    return { tokens, greedy };
  } finally {
    await model.dispose();
  }
}

const TEXTS = [
  "Once upon a time, Lily went to the park.",
  "  two  spaces\n\nand a newline",
  "é ü 日本 🤖 ~[x]",
  " leading and trailing ",
  "It's the dog's ball, isn't it? 12345 678",
];

function lastLogits(m: { transformer: Transformer; config: LoadedModel["config"] }, ids: number[]): Float32Array {
  using cache = createFullPrecisionCache(m.config, m.config.numLayers);
  return m.transformer.forward(ids, ids.map((_, i) => i), cache, "last").slice();
}

test("stories260K.gguf: config from the metadata equals config.json, tokens equal tokenizer.json's and llama.cpp's, greedy equals llama.cpp's", async () => {
  using hf = loadModel(STORIES_DIR);
  using g = loadModel(STORIES_GGUF);
  const want = parseModelConfig(JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "config.json"), "utf8")));
  for (const k of ["hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "vocabSize", "maxPositionEmbeddings", "ropeTheta"] as const) {
    assert.equal(g.config[k], want[k], k);
  }
  assert.ok(Math.abs(g.config.rmsNormEps - want.rmsNormEps) < 1e-9);
  const ref = readStoriesReference();
  const cpp = await llamaCpp(STORIES_GGUF, TEXTS, ref.prompt_ids, 40);
  TEXTS.forEach((t, i) => {
    const ours = g.tokenizer.encode(t);
    assert.deepEqual(ours, hf.tokenizer.encode(t), `tokenizer.json on ${JSON.stringify(t)}`);
    assert.deepEqual(g.tokenizer.encode(t, false), cpp.tokens[i], `llama.cpp on ${JSON.stringify(t)} (it adds no BOS here)`);
    assert.equal(g.tokenizer.decode(ours), hf.tokenizer.decode(ours));
  });
  for (const c of ref.tokenizer_cases) assert.deepEqual(g.tokenizer.encode(c.text), c.ids, c.text);
  // llama.cpp converted these weights from llama2.c itself: the same numbers as the safetensors
  const a = lastLogits(g, ref.prompt_ids);
  const b = lastLogits(hf, ref.prompt_ids);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  assert.ok(d < 1e-4, `logits differ from the safetensors model's by ${d}`);
  const r = generate(g, ref.prompt_ids, { maxNewTokens: 40, eosTokenIds: [] });
  assert.deepEqual(r.ids, cpp.greedy);
});

for (const type of ["F16", "BF16"] as const) {
  test(`a ${type} GGUF keeps its matrices in ${type} and continues like llama.cpp on the same file`, async () => {
    using hf = loadModel(STORIES_DIR);
    const file = path.join(dir, `stories-${type}.gguf`);
    writeModelGguf(file, hf.config, hf.transformer.weights, { type, tokenizer: ggufTokenizerEntries(STORIES_GGUF), name: "stories" });
    using g = loadModel(file);
    assert.equal(g.transformer.weights.layers[0].wq.dtype, type.toLowerCase());
    const ref = readStoriesReference();
    const cpp = await llamaCpp(file, [], ref.prompt_ids, 32);
    assert.deepEqual(generate(g, ref.prompt_ids, { maxNewTokens: 32, eosTokenIds: [] }).ids, cpp.greedy);
  });
}

/** GPT-2's byte → printable character map (byte-level BPE vocabularies spell bytes with it). */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + extra++);
  return out;
}

/**
 * A byte-level BPE vocabulary as llama.cpp's gpt2 tokenizer entries: 256 bytes, `nMerges` merges
 * learned from a corpus by the textbook algorithm (most frequent adjacent pair, within words), and
 * Qwen's special tokens.
 */
function byteLevelTokenizer(nMerges: number, pre: string): { entries: Map<string, GgufEntry>; size: number } {
  const b2u = bytesToUnicode();
  const corpus = "the cat sat on the mat. the dog ate the cat's hat! then they sat there, thinking. 12 12 12 123 123 2023 2023 the end";
  // training words: letters with their leading space, digit runs, punctuation runs
  let words = (corpus.match(/ ?\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+|\s+/gu) ?? []).map((w) => Array.from(Buffer.from(w, "utf8"), (b) => b2u[b]));
  const tokens = [...b2u];
  const merges: string[] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) counts.set(w[i] + "\u0000" + w[i + 1], (counts.get(w[i] + "\u0000" + w[i + 1]) ?? 0) + 1);
    let best = "";
    let bestN = 0;
    for (const [k, n] of counts) if (n > bestN) [best, bestN] = [k, n];
    if (bestN < 2) break;
    const [l, r] = best.split("\u0000");
    merges.push(`${l} ${r}`);
    tokens.push(l + r);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === l && w[i + 1] === r) {
          out.push(l + r);
          i++;
        } else out.push(w[i]);
      }
      return out;
    });
  }
  const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
  const types = [...tokens.map(() => 1), ...specials.map(() => 3)];
  tokens.push(...specials);
  const strs = (values: string[]): GgufEntry => ({ type: GGUF_TYPE.array, value: { type: GGUF_TYPE.string, values } });
  const entries = new Map<string, GgufEntry>([
    ["tokenizer.ggml.model", { type: GGUF_TYPE.string, value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: GGUF_TYPE.string, value: pre }],
    ["tokenizer.ggml.tokens", strs(tokens)],
    ["tokenizer.ggml.token_type", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.i32, values: types } }],
    ["tokenizer.ggml.merges", strs(merges)],
    ["tokenizer.ggml.eos_token_id", { type: GGUF_TYPE.u32, value: tokens.length - 1 }],
    ["tokenizer.ggml.padding_token_id", { type: GGUF_TYPE.u32, value: tokens.length - 3 }],
    ["tokenizer.ggml.bos_token_id", { type: GGUF_TYPE.u32, value: tokens.length - 3 }],
    ["tokenizer.ggml.add_bos_token", { type: GGUF_TYPE.bool, value: false }],
    ["tokenizer.chat_template", { type: GGUF_TYPE.string, value: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}" }],
  ]);
  return { entries, size: tokens.length };
}

const RANDOM_CASES: { name: string; spec: Omit<RandomModelSpec, "vocab">; pre: string }[] = [
  { name: "qwen2 (q/k/v biases, GQA 4:1, byte-level BPE)", spec: { layers: 2, hidden: 64, heads: 4, kvHeads: 1, headDim: 16, intermediate: 96, architecture: "Qwen2ForCausalLM", seed: 3 }, pre: "qwen2" },
  { name: "qwen3 (per-head q/k norms, head_dim 32 ≠ hidden/heads, GQA 2:1)", spec: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 32, intermediate: 96, architecture: "Qwen3ForCausalLM", seed: 4 }, pre: "qwen2" },
  { name: "llama (q/k rows in llama.cpp's order, GQA 2:1, head_dim 32 ≠ hidden/heads)", spec: { layers: 2, hidden: 48, heads: 4, kvHeads: 2, headDim: 32, intermediate: 80, seed: 5 }, pre: "llama-bpe" },
];

for (const c of RANDOM_CASES) {
  test(`random ${c.name} → GGUF: loads to the same logits as the model it was written from, and llama.cpp agrees on tokens and greedy output`, async () => {
    const tok = byteLevelTokenizer(90, c.pre);
    const tf = randomTransformer({ ...c.spec, vocab: tok.size });
    const file = path.join(dir, `${c.spec.architecture ?? "llama"}-${c.pre}.gguf`);
    try {
      writeModelGguf(file, tf.config, tf.weights, { type: "F32", tokenizer: tok.entries, name: c.pre });
      const prompt = [5, 77, 100, 258, 3, 9, 260];
      const want = lastLogits({ transformer: tf, config: tf.config }, prompt);
      using g = loadModel(file);
      // the loaded weights live in the kernel arena (WebAssembly kernels), the written ones in plain
      // arrays (TypeScript kernels): the same numbers up to float32 summation order
      const got = lastLogits(g, prompt);
      assert.ok(maxRelDiff(got, want, 1) < 1e-5, `logits of the loaded GGUF differ by ${maxRelDiff(got, want, 1)}`);
      const texts = [...TEXTS, "the cat's hat<|im_end|>"];
      const cpp = await llamaCpp(file, texts, prompt, 16);
      texts.forEach((t, i) => assert.deepEqual(g.tokenizer.encode(t, false), cpp.tokens[i], `tokens of ${JSON.stringify(t)}`));
      assert.deepEqual(g.tokenizer.encode("the cat"), g.tokenizer.encode("the cat", false), "add_bos_token false: no BOS");
      assert.deepEqual(generate(g, prompt, { maxNewTokens: 16, eosTokenIds: [] }).ids, cpp.greedy);
      assert.equal(g.tokenizer.applyChatTemplate([{ role: "user", content: "hi" }]), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    } finally {
      tf.dispose();
    }
  });
}

test("llama.cpp's q/k row order is undone per head: HF row r ← interleaved row", () => {
  // one head of d = 4: HF rows r0 r1 | r2 r3 were written as r0 r2 r1 r3
  assert.deepEqual([0, 1, 2, 3].map((r) => ggufRowForHf(r, 4)), [0, 2, 1, 3]);
  assert.deepEqual([4, 5, 6, 7].map((r) => ggufRowForHf(r, 4)), [4, 6, 5, 7]);
});

test("GGUF model paths and files it cannot run are refused with the reason", () => {
  // a folder with one .gguf (and no config.json) is that file; two are ambiguous
  const one = path.join(dir, "one");
  fs.mkdirSync(one);
  fs.copyFileSync(STORIES_GGUF, path.join(one, "m.gguf"));
  assert.equal(ggufModelFile(one), path.join(one, "m.gguf"));
  assert.equal(ggufModelFile(STORIES_DIR), null, "a Hugging Face folder stays one");
  fs.copyFileSync(STORIES_GGUF, path.join(one, "n.gguf"));
  assert.throws(() => ggufModelFile(one), /2 \.gguf files/);
  const g = readGguf(STORIES_GGUF);
  const rewrite = (name: string, edit: (md: Map<string, GgufEntry>) => void, tensorType = GGML_TYPE.F32) => {
    const md = new Map(g.metadata);
    edit(md);
    const buf = fs.readFileSync(STORIES_GGUF);
    const tensors = g.tensors.map((t) => {
      const n = t.dims.reduce((a, d) => a * d, 1);
      const data = buf.subarray(g.dataStart + t.offset, g.dataStart + t.offset + n * 4);
      return t.name === "blk.0.attn_q.weight" && tensorType !== GGML_TYPE.F32
        ? { name: t.name, dims: t.dims, type: tensorType, data: new Uint8Array(n * 2) }
        : { name: t.name, dims: t.dims, type: t.type, data: new Uint8Array(data) };
    });
    const file = path.join(dir, name);
    writeGguf(file, md, tensors);
    return file;
  };
  const mamba = rewrite("mamba.gguf", (md) => md.set("general.architecture", { type: GGUF_TYPE.string, value: "mamba" }));
  assert.throws(() => loadModel(mamba), (e: Error) => e instanceof CheckpointError && /architecture "mamba" is not supported; supported: llama, qwen2/.test(e.message));
  const noTok = rewrite("notok.gguf", (md) => md.delete("tokenizer.ggml.model"));
  assert.throws(() => loadModel(noTok), /carries no tokenizer/);
  const yarn = rewrite("yarn.gguf", (md) => md.set("llama.rope.scaling.type", { type: GGUF_TYPE.string, value: "yarn" }));
  assert.throws(() => loadModel(yarn), /rope scaling "yarn" is not supported/);
});

test("rope_freqs (llama.cpp's form of Llama-3.1 scaling) becomes per-frequency RoPE factors: llama.cpp's greedy output on the file agrees", async () => {
  const tok = byteLevelTokenizer(90, "llama-bpe");
  const tf = randomTransformer({ layers: 2, hidden: 48, heads: 4, kvHeads: 2, headDim: 32, intermediate: 80, seed: 8, vocab: tok.size });
  const plainFile = path.join(dir, "llama-plain.gguf");
  try {
    writeModelGguf(plainFile, tf.config, tf.weights, { type: "F32", tokenizer: tok.entries, name: "rope" });
  } finally {
    tf.dispose();
  }
  // divisors that matter at these positions: 1 for the fast half, 8 for the slow half
  const half = tf.config.headDim / 2;
  const factors = Float32Array.from({ length: half }, (_, i) => (i < half / 2 ? 1 : 8));
  const g = readGguf(plainFile);
  const buf = fs.readFileSync(plainFile);
  const tensors = g.tensors.map((t) => {
    const n = t.dims.reduce((a, d) => a * d, 1);
    return { name: t.name, dims: t.dims, type: t.type, data: new Uint8Array(buf.subarray(g.dataStart + t.offset, g.dataStart + t.offset + n * 4)) };
  });
  tensors.push({ name: "rope_freqs.weight", dims: [half], type: GGML_TYPE.F32, data: new Uint8Array(factors.buffer) });
  const file = path.join(dir, "llama-rope-freqs.gguf");
  writeGguf(file, g.metadata, tensors);
  using m = loadModel(file);
  assert.equal(m.config.ropeScaling.type, "factors");
  assert.deepEqual(m.config.ropeScaling.factors, Array.from(factors));
  using plain = loadModel(plainFile);
  const prompt = Array.from({ length: 40 }, (_, i) => 5 + ((i * 13) % 200));
  assert.notDeepEqual(lastLogits(m, prompt), lastLogits(plain, prompt), "the factors change the positions' rotation");
  const cpp = await llamaCpp(file, [], prompt, 12);
  assert.deepEqual(generate(m, prompt, { maxNewTokens: 12, eosTokenIds: [] }).ids, cpp.greedy);
});
