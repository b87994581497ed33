// The fuzz targets, as a table: each builds its unmutated inputs once (setup), writes one
// mutated case into a folder (prepare), and runs the code under test on it (run). `run`
// returns when the input was accepted (after checking what came back) and throws otherwise;
// fuzz.test.ts decides whether what it threw is a typed error that names a file of the case.

import fs from "node:fs";
import path from "node:path";
import { parseKvBudgetsMB } from "../../src/cache/budgets.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { GGML_TYPE, GGUF_TYPE, readGguf, writeGguf, type GgufEntry, type GgufTensorToWrite } from "../../src/model/gguf.js";
import { encodeSafetensors, SafetensorsFile, type TensorToWrite } from "../../src/model/safetensors.js";
import { f32ToBf16 } from "../../src/tensor/dtype.js";
import { readManifest } from "../../src/calib/calibrate.js";
import { readRepScales, writeRepScales } from "../../src/calib/rep-scales.js";
import { readResponseFile, writeResponseFile } from "../../src/eval/responses.js";
import { parseModelConfig, type ModelConfig } from "../../src/model/config.js";
import { REPO_ROOT } from "../helpers.js";
import { int, mutateBytes, mutateJson, pick, type Mutated, type Rand } from "./mutate.js";

export interface FuzzCase {
  /** One line: which file, what was done to it. */
  what: string;
  /** Base names of the case's files (a removed one included): an error must name one, or the case folder. */
  files: string[];
  /** Set when the input must be refused (accepting it is a failure): why. */
  refuse?: string;
}

export interface FuzzTarget<F = unknown> {
  name: string;
  /** Cases in a normal test run (PMKVQ_FUZZ_CASES=N runs N instead). */
  cases: number;
  /** What an accepted case did, for the counts ("loaded and generated"). */
  accepted: string;
  setup(dir: string): F;
  prepare(fixture: F, rand: Rand, caseDir: string): FuzzCase;
  /** Throws for a refused input; returns after checking an accepted one. */
  run(caseDir: string, fixture: F): void;
}

const DEFAULT_MODEL = path.join(REPO_ROOT, "models", "default");
const MODEL_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];
const PROMPT = "Once upon a time";

// ---- model folders ----------------------------------------------------------------------

interface ModelFixture {
  base: string;
  files: string[];
}

/** The default model, as shipped. */
function setupSingle(dir: string): ModelFixture {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of MODEL_FILES) fs.copyFileSync(path.join(DEFAULT_MODEL, f), path.join(dir, f));
  return { base: dir, files: MODEL_FILES };
}

/** The default model in two shards with an index, as transformers writes large models. */
function setupSharded(dir: string): ModelFixture {
  fs.mkdirSync(dir, { recursive: true });
  const jsons = MODEL_FILES.filter((f) => f.endsWith(".json"));
  for (const f of jsons) fs.copyFileSync(path.join(DEFAULT_MODEL, f), path.join(dir, f));
  const st = new SafetensorsFile(path.join(DEFAULT_MODEL, "model.safetensors"));
  const shards: TensorToWrite[][] = [[], []];
  const weightMap: Record<string, string> = {};
  const shardNames = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
  let totalSize = 0;
  try {
    st.names.forEach((name, i) => {
      const info = st.info(name);
      const shard = i < st.names.length / 2 ? 0 : 1;
      shards[shard].push({ name, dtype: info.dtype as "F16", shape: info.shape, data: Float32Array.from(st.readF32(name)) });
      weightMap[name] = shardNames[shard];
      totalSize += info.end - info.begin;
    });
  } finally {
    st.close();
  }
  shards.forEach((tensors, i) => fs.writeFileSync(path.join(dir, shardNames[i]), encodeSafetensors(tensors, { format: "pt" })));
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
  // sampling settings, so that mutations of them reach the sampler
  const generation = { bos_token_id: 1, eos_token_id: [2], do_sample: true, temperature: 0.8, top_p: 0.9, top_k: 20 };
  fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify(generation, null, 1));
  return { base: dir, files: [...jsons, "model.safetensors.index.json", ...shardNames] };
}

/** Mutations that know the safetensors layout: header bytes, data bytes, the length field, the header's JSON. */
function mutateSafetensors(rand: Rand, b: Buffer): Mutated {
  const headerEnd = 8 + Number(b.readBigUInt64LE(0));
  const kind = pick(rand, ["header", "header", "data", "length", "length", "json", "json"] as const);
  if (kind === "header") return mutateBytes(rand, b, 0, headerEnd, "header");
  if (kind === "data") return mutateBytes(rand, b, headerEnd, b.length, "data section");
  if (kind === "length") {
    const k = int(rand, 1, 16) * (rand() < 0.5 ? -1 : 1);
    const out = Buffer.from(b);
    out.writeBigUInt64LE(BigInt(headerEnd - 8 + k));
    return { bytes: out, what: `header length field ${k > 0 ? "+" : ""}${k}`, refuse: "the data section no longer starts where the tensors do" };
  }
  const m = mutateJson(rand, b.subarray(8, headerEnd).toString("utf8"));
  const padded = Buffer.concat([m.bytes, Buffer.alloc((8 - (m.bytes.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  return { bytes: Buffer.concat([len, padded, b.subarray(headerEnd)]), what: `header JSON: ${m.what}`, refuse: m.refuse };
}

function prepareModel(fx: ModelFixture, rand: Rand, caseDir: string): FuzzCase {
  const target = pick(rand, fx.files);
  for (const f of fx.files) if (f !== target) fs.copyFileSync(path.join(fx.base, f), path.join(caseDir, f));
  if (rand() < 0.03) return { what: `${target}: removed`, files: fx.files };
  const original = fs.readFileSync(path.join(fx.base, target));
  const m = target.endsWith(".safetensors")
    ? mutateSafetensors(rand, original)
    : rand() < 0.9 ? mutateJson(rand, original.toString("utf8")) : mutateBytes(rand, original);
  fs.writeFileSync(path.join(caseDir, target), m.bytes);
  return { what: `${target}: ${m.what}`, files: fx.files, refuse: m.refuse };
}

function runModel(caseDir: string): void {
  const model = loadModel(caseDir);
  try {
    const r = generate(model, PROMPT, { maxNewTokens: 4 });
    const vocab = model.config.vocabSize;
    if (r.ids.length > 4 || !r.ids.every((id) => Number.isInteger(id) && id >= 0 && id < vocab)) {
      throw new Error(`generate returned ids ${JSON.stringify(r.ids)} for a vocabulary of ${vocab}`);
    }
  } finally {
    (model as { dispose?: () => void }).dispose?.();
  }
}

// ---- GGUF -------------------------------------------------------------------------------

interface Field {
  at: number;
  bytes: 4 | 8;
  kind: string;
}

interface GgufFixture {
  file: string;
  bytes: Buffer;
  /** Every count, length, type, dimension and offset of the header, found by our own walk. */
  fields: Map<string, Field[]>;
  headerEnd: number;
  /** Pairs of equal-length metadata keys / tensor names (renaming one to the other duplicates it). */
  keyPairs: [string, string][];
  namePairs: [string, string][];
}

/** The default model as a GGUF: F16 matrices, F32 vectors, one BF16 matrix, a vocabulary and one entry of each type. */
function setupGguf(dir: string): GgufFixture {
  fs.mkdirSync(dir, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL, "config.json"), "utf8"));
  const tj = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL, "tokenizer.json"), "utf8"));
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(tj.model.vocab as Record<string, number>)) tokens[id] = t;
  const u32 = (v: number): GgufEntry => ({ type: GGUF_TYPE.u32, value: v });
  const md = new Map<string, GgufEntry>([
    ["general.architecture", { type: GGUF_TYPE.string, value: "llama" }],
    ["general.alignment", u32(32)],
    ["llama.context_length", u32(config.max_position_embeddings)],
    ["llama.embedding_length", u32(config.hidden_size)],
    ["llama.block_count", u32(config.num_hidden_layers)],
    ["llama.attention.head_count", u32(config.num_attention_heads)],
    ["llama.attention.layer_norm_rms_epsilon", { type: GGUF_TYPE.f32, value: config.rms_norm_eps }],
    ["llama.rope.freq_base", { type: GGUF_TYPE.f64, value: 10000 }],
    ["fuzz.i64", { type: GGUF_TYPE.i64, value: -5n }],
    ["fuzz.u64", { type: GGUF_TYPE.u64, value: 7n }],
    ["fuzz.bool", { type: GGUF_TYPE.bool, value: true }],
    ["fuzz.i8", { type: GGUF_TYPE.i8, value: -3 }],
    ["fuzz.u16", { type: GGUF_TYPE.u16, value: 3 }],
    ["tokenizer.ggml.model", { type: GGUF_TYPE.string, value: "llama" }],
    ["tokenizer.ggml.tokens", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.string, values: tokens } }],
    ["tokenizer.ggml.scores", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.f32, values: tokens.map((_, i) => -i) } }],
    ["tokenizer.ggml.token_type", { type: GGUF_TYPE.array, value: { type: GGUF_TYPE.i32, values: tokens.map(() => 1) } }],
  ]);
  const st = new SafetensorsFile(path.join(DEFAULT_MODEL, "model.safetensors"));
  const tensors: GgufTensorToWrite[] = [];
  try {
    for (const name of st.names) {
      const info = st.info(name);
      const dims = [...info.shape].reverse();
      if (info.shape.length === 1) {
        const f32 = Float32Array.from(st.readF32(name));
        tensors.push({ name, dims, type: GGML_TYPE.F32, data: new Uint8Array(f32.buffer) });
      } else if (name === "lm_head.weight") {
        const half = new Uint16Array(info.shape[0] * info.shape[1]);
        f32ToBf16(Float32Array.from(st.readF32(name)), half);
        tensors.push({ name, dims, type: GGML_TYPE.BF16, data: new Uint8Array(half.buffer) });
      } else tensors.push({ name, dims, type: GGML_TYPE.F16, data: Uint8Array.from(st.readBytes(name)) });
    }
  } finally {
    st.close();
  }
  const file = path.join(dir, "model.gguf");
  writeGguf(file, md, tensors);
  const bytes = fs.readFileSync(file);
  const pairs = (names: string[]) => names.flatMap((a) => names.filter((b) => b !== a && b.length === a.length).slice(0, 2).map((b) => [a, b] as [string, string]));
  return { file, bytes, ...walkGguf(bytes), keyPairs: pairs([...md.keys()]), namePairs: pairs(tensors.map((t) => t.name)) };
}

/** Our own walk of a (valid) GGUF header, recording where each field lies — the layout as the spec describes it. */
function walkGguf(b: Buffer): { fields: Map<string, Field[]>; headerEnd: number } {
  const fields = new Map<string, Field[]>();
  const add = (kind: string, at: number, bytes: 4 | 8) => {
    if (!fields.has(kind)) fields.set(kind, []);
    fields.get(kind)!.push({ at, bytes, kind });
  };
  let off = 8;
  const u64 = (kind: string) => (add(kind, off, 8), (off += 8), Number(b.readBigUInt64LE(off - 8)));
  const u32 = (kind: string) => (add(kind, off, 4), (off += 4), b.readUInt32LE(off - 4));
  const str = (kind: string) => {
    const n = u64(kind);
    off += n;
  };
  add("version", 4, 4);
  const nTensors = u64("tensor count");
  const nKv = u64("metadata entry count");
  const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (type: number, kind: string) => {
    if (type === GGUF_TYPE.string) str(`${kind} string length`);
    else {
      if (SIZES[type] >= 4) add(`${kind} value`, off, SIZES[type] as 4 | 8);
      off += SIZES[type];
    }
  };
  for (let i = 0; i < nKv; i++) {
    str("metadata key length");
    const type = u32("metadata value type");
    if (type === GGUF_TYPE.array) {
      const elem = u32("array element type");
      const n = u64("array length");
      for (let j = 0; j < n; j++) value(elem, "array element");
    } else value(type, "metadata");
  }
  for (let i = 0; i < nTensors; i++) {
    str("tensor name length");
    const nd = u32("tensor dimension count");
    for (let d = 0; d < nd; d++) u64("tensor dimension");
    u32("tensor type");
    u64("tensor offset");
  }
  return { fields, headerEnd: off };
}

function prepareGguf(fx: GgufFixture, rand: Rand, caseDir: string): FuzzCase {
  const kind = pick(rand, ["field", "field", "field", "header", "header", "anywhere", "duplicate"] as const);
  let m: Mutated;
  if (kind === "field") {
    const category = pick(rand, [...fx.fields.keys()]);
    const f = pick(rand, fx.fields.get(category)!);
    const out = Buffer.from(fx.bytes);
    const old = f.bytes === 8 ? out.readBigUInt64LE(f.at) : BigInt(out.readUInt32LE(f.at));
    const max = f.bytes === 8 ? 2n ** 64n - 1n : 2n ** 32n - 1n;
    const candidates = [0n, 1n, 3n, 9n, 13n, 30n, 48n, 64n, 99n, old + 1n, old - 1n, old * 2n, old + 32n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 60n, 2n ** 63n, max, BigInt(fx.bytes.length)];
    let v = pick(rand, candidates);
    if (v < 0n || v > max) v = max;
    if (f.bytes === 8) out.writeBigUInt64LE(v, f.at);
    else out.writeUInt32LE(Number(v), f.at);
    m = { bytes: out, what: `${category} at byte ${f.at}: ${old} → ${v}` };
  } else if (kind === "duplicate") {
    const [a, b] = pick(rand, rand() < 0.5 && fx.keyPairs.length ? fx.keyPairs : fx.namePairs);
    const out = Buffer.from(fx.bytes);
    const at = out.indexOf(Buffer.from(b));
    Buffer.from(a).copy(out, at);
    m = { bytes: out, what: `renamed "${b}" to "${a}" (now twice)`, refuse: "a name given twice" };
  } else if (kind === "header") m = mutateBytes(rand, fx.bytes, 0, fx.headerEnd, "header");
  else m = mutateBytes(rand, fx.bytes);
  fs.writeFileSync(path.join(caseDir, "model.gguf"), m.bytes);
  return { what: `model.gguf: ${m.what}`, files: ["model.gguf"], refuse: m.refuse };
}

const GGML_BYTES: Record<number, number> = { [GGML_TYPE.F32]: 4, [GGML_TYPE.F16]: 2, [GGML_TYPE.BF16]: 2 };

function runGguf(caseDir: string): void {
  const file = path.join(caseDir, "model.gguf");
  const g = readGguf(file);
  // what an accepted file promises its readers
  const size = fs.statSync(file).size;
  const names = new Set(g.tensors.map((t) => t.name));
  if (names.size !== g.tensors.length) throw new Error("readGguf accepted two tensors of one name");
  if (!(g.alignment >= 1 && (g.alignment & (g.alignment - 1)) === 0)) throw new Error(`readGguf accepted alignment ${g.alignment}`);
  for (const t of g.tensors) {
    if (t.dims.length > 4) throw new Error(`readGguf accepted tensor "${t.name}" with ${t.dims.length} dimensions`);
    if (t.offset % g.alignment !== 0) throw new Error(`readGguf accepted tensor "${t.name}" at unaligned offset ${t.offset}`);
    const bytes = GGML_BYTES[t.type] === undefined ? 0 : t.dims.reduce((a, d) => a * d, GGML_BYTES[t.type]);
    if (g.dataStart + t.offset + bytes > size) throw new Error(`readGguf accepted tensor "${t.name}" ending at byte ${g.dataStart + t.offset + bytes} of a ${size}-byte file`);
  }
}

// ---- KV budgets -------------------------------------------------------------------------

interface BudgetsFixture {
  texts: Record<string, string>;
  numLayers: number;
}

function setupBudgets(): BudgetsFixture {
  return {
    texts: {
      "budgets.json": "[0.5, 0.25]\n",
      "allocation.json": JSON.stringify({ bits: [4, 2], budgetsMB: [0.5, 0.25], totalMB: 0.75 }, null, 1) + "\n",
    },
    numLayers: 2,
  };
}

function prepareBudgets(fx: BudgetsFixture, rand: Rand, caseDir: string): FuzzCase {
  const name = pick(rand, Object.keys(fx.texts));
  const file = path.join(caseDir, name);
  if (rand() < 0.04) {
    fs.mkdirSync(file);
    return { what: `${name}: a folder instead of a file`, files: [name] };
  }
  const m = rand() < 0.85 ? mutateJson(rand, fx.texts[name]) : mutateBytes(rand, Buffer.from(fx.texts[name]));
  fs.writeFileSync(file, m.bytes);
  return { what: `${name}: ${m.what}`, files: [name], refuse: m.refuse };
}

function runBudgets(caseDir: string, fx: BudgetsFixture): void {
  const [name] = fs.readdirSync(caseDir);
  const budgets = parseKvBudgetsMB(path.join(caseDir, name), fx.numLayers);
  if (budgets.length !== fx.numLayers || !budgets.every((b) => typeof b === "number" && Number.isFinite(b) && b > 0)) {
    throw new Error(`parseKvBudgetsMB accepted ${JSON.stringify(budgets)}`);
  }
}

// ---- calibration manifest, response files, rep scales -----------------------------------

interface TextFixture {
  name: string;
  bytes: Buffer;
}

/** One file, mutated as JSON (mostly) or as bytes, or replaced by a folder. */
function prepareText(json: boolean) {
  return (fx: TextFixture, rand: Rand, caseDir: string): FuzzCase => {
    const file = path.join(caseDir, fx.name);
    if (rand() < 0.04) {
      fs.mkdirSync(file);
      return { what: `${fx.name}: a folder instead of a file`, files: [fx.name] };
    }
    const m = json && rand() < 0.85 ? mutateJson(rand, fx.bytes.toString("utf8")) : mutateBytes(rand, fx.bytes);
    fs.writeFileSync(file, m.bytes);
    return { what: `${fx.name}: ${m.what}`, files: [fx.name], refuse: m.refuse };
  };
}

function setupManifest(): TextFixture {
  const step = (file: string) => ({ file, sha256: "0".repeat(64), inputsKey: "1".repeat(64), seconds: 1.5, finishedAt: "2026-12-02T00:00:00.000Z" });
  const manifest = {
    tool: "pm-kvq", version: "0.1.0", model: { dir: "/m", sha256: "2".repeat(64) }, dataset: { path: "/d", files: ["/d/a.jsonl"], sha256: "3".repeat(64) },
    options: { memoryBudgetMB: 1, bits: [4, 2] },
    steps: { sensitivity: step("sensitivity.json"), allocation: step("allocation.json"), "max-keys": step("max_keys.safetensors"), "rep-scales": step("rep_scales.safetensors") },
  };
  return { name: "manifest.json", bytes: Buffer.from(JSON.stringify(manifest, null, 2)) };
}

function runManifest(caseDir: string): void {
  const m = readManifest(path.join(caseDir, "manifest.json"));
  for (const [name, r] of Object.entries(m.steps)) {
    if (!r || typeof r.sha256 !== "string" || typeof r.inputsKey !== "string") throw new Error(`readManifest accepted step ${name}: ${JSON.stringify(r)}`);
  }
}

function setupResponses(dir: string): TextFixture {
  const settings = { "pmkvq.version": "0.1.0", method: "pm-kvq", "kv.budgets_mb": [0.5, 0.25], max_new_tokens: 64 };
  const rec = (i: number) => ({
    seed: i, response: `so \\boxed{${i}}`, response_answer: String(i), gold: "1", judgement: i === 1, input_len: 10, output_len: 20,
    finish_reason: "stop", kv: { method: "pm-kvq/real", totalCodeBytes: 100, totalHeldBytes: 200, bodyBits: [4, 2] }, settings, settings_id: "abc",
  });
  const file = path.join(dir, "r.json");
  fs.mkdirSync(dir, { recursive: true });
  writeResponseFile(file, { "toy_1.1.0": rec(0), "toy_1.1.1": rec(1), "toy_1.2.0": rec(2) }, ["toy_1.1", "toy_1.2"]);
  return { name: "r.json", bytes: fs.readFileSync(file) };
}

function runResponses(caseDir: string): void {
  const records = readResponseFile(path.join(caseDir, "r.json"));
  for (const [k, r] of Object.entries(records)) {
    if (!/\.\d+$/.test(k) || typeof r.response !== "string") throw new Error(`readResponseFile accepted ${k}: ${JSON.stringify(r).slice(0, 80)}`);
  }
}

interface RepScalesFixture extends TextFixture {
  config: ModelConfig;
}

function setupRepScales(dir: string): RepScalesFixture {
  const config = parseModelConfig(JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL, "config.json"), "utf8")));
  const half = config.headDim / 2;
  const scales = Array.from({ length: config.numLayers }, (_, l) => Float32Array.from({ length: config.numKvHeads * half }, (_, i) => 0.5 + ((l + i) % 7) / 4));
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "rep_scales.safetensors");
  writeRepScales(file, scales, scales.map(() => 0.5), scales.map(() => new Float64Array(3)), scales.map(() => 0.1), config, { k_bits: "4" });
  return { name: "rep_scales.safetensors", bytes: fs.readFileSync(file), config };
}

function runRepScales(caseDir: string, fx: RepScalesFixture): void {
  const { scales } = readRepScales(path.join(caseDir, fx.name), fx.config);
  for (const r of scales) if (!r.every((v) => Number.isFinite(v) && v > 0)) throw new Error("readRepScales accepted a scale that is not finite and > 0");
}

// ---- the table --------------------------------------------------------------------------

/** Each target keeps its fixture type to itself. */
const target = <F>(t: FuzzTarget<F>): FuzzTarget<unknown> => t as unknown as FuzzTarget<unknown>;

export const TARGETS: FuzzTarget<unknown>[] = [
  target({ name: "model-folder", cases: 200, accepted: "loaded and generated", setup: setupSingle, prepare: prepareModel, run: runModel }),
  target({ name: "sharded-model-folder", cases: 120, accepted: "loaded and generated", setup: setupSharded, prepare: prepareModel, run: runModel }),
  target({ name: "gguf", cases: 200, accepted: "read", setup: setupGguf, prepare: prepareGguf, run: runGguf }),
  target({ name: "kv-budgets", cases: 100, accepted: "parsed", setup: setupBudgets, prepare: prepareBudgets, run: runBudgets }),
  target({ name: "calibration-manifest", cases: 100, accepted: "read", setup: setupManifest, prepare: prepareText(true), run: runManifest }),
  target({ name: "response-file", cases: 100, accepted: "read", setup: setupResponses, prepare: prepareText(true), run: runResponses }),
  target({ name: "rep-scales", cases: 100, accepted: "read", setup: setupRepScales, prepare: prepareText(false), run: runRepScales }),
];
