// Decode (and prefill) speed at long context, this engine against llama.cpp (node-llama-cpp) on
// the same random-weight model (HF safetensors / GGUF, f16 weights), same thread counts, in one
// run — and where every millisecond of our decode step goes: matrix products, attention (with
// its effective GB/s against the read bandwidth this run measures), cache appends, the rest.
//
// Ours: float32 and float16 caches, pm-kvq (real backend) with bodies forced to 8, 4 and 2 bits.
// Our caches are filled with random K/V rows of the model's shape (what a decode step costs does
// not depend on the values; a real 16k prefill would take minutes); llama.cpp prefills its
// context (it must), and its prefill speed is reported. Our prefill is timed on real forwards
// at the contexts of --prefill-contexts.
// llama.cpp: f16, f16 with flash attention, q8_0 and q4_0 caches (the quantized ones need it;
// in --quick mode only up to 4096 tokens: their 16k prefill alone takes minutes here).
// --big adds DeepSeek-R1-Distill-Qwen-1.5B's shape (bf16, 3.55 GB; ours only): decode at 8k and
// 32k, and the longest context each cache reaches inside the WebAssembly memory.
// Usage: node dist/bench/kv-bench.js [--quick] [--contexts 128,4096,16384] [--threads 1,2]
//        [--decode-tokens N] [--prefill-contexts 4096] [--big] [--json FILE] [--write-readme]

import { parseArgs } from "node:util";
import { getLlama, type LlamaContext } from "node-llama-cpp";
import { createCache, type CacheSpec } from "../src/cache/factory.js";
import type { KvCache } from "../src/model/kv-cache.js";
import { OutOfMemoryError } from "../src/errors.js";
import { loadModel, type LoadedModel } from "../src/model/checkpoint.js";
import { newProfile } from "../src/model/forward.js";
import { allocU32, release } from "../src/tensor/memory.js";
import { configureKernels, releaseKernelScratch, wasm } from "../src/tensor/wasm.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { median } from "./common.js";
import { benchModel, bigBenchModel, R1_DISTILL_1_5B } from "./model.js";
import { writeReadmeSection } from "./readme.js";

const { values: opt } = parseArgs({
  options: {
    quick: { type: "boolean" },
    contexts: { type: "string" },
    threads: { type: "string", default: "1,2" },
    "decode-tokens": { type: "string", default: "16" },
    "prefill-contexts": { type: "string" },
    big: { type: "boolean" },
    json: { type: "string" },
    "write-readme": { type: "boolean" },
  },
});
const contexts = (opt.contexts ?? (opt.quick ? "128,4096,16384" : "128,4096,16384,32768")).split(",").map(Number);
const prefillContexts = (opt["prefill-contexts"] ?? (opt.quick ? "4096" : "4096,16384")).split(",").filter(Boolean).map(Number);
const threadCounts = opt.threads!.split(",").map(Number);
const decodeTokens = Number(opt["decode-tokens"]);
const WARMUP = 3;
const log = (s: string) => process.stderr.write(s + "\n");
const rt = wasm();
if (!rt) throw new Error("the WebAssembly kernels are off: this benchmark measures them");

// ------------------------------------------------------------------ the machine
/** GB/s one thread reads with v128 loads over 256 MiB (median of 5). */
function readBandwidth(): number {
  const n = 256 * 2 ** 20;
  const buf = allocU32(n / 4).fill(1);
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    rt!.ex.readSum(buf.byteOffset, n);
    if (i > 0) times.push(performance.now() - t0);
  }
  release(buf);
  return n / (median(times) / 1000) / 1e9;
}
const bandwidth = readBandwidth();
log(`read bandwidth (1 thread, v128 loads over 256 MiB): ${bandwidth.toFixed(1)} GB/s`);

// ------------------------------------------------------------------ this engine
interface Row {
  model: string;
  engine: "pm-kvq" | "llama.cpp";
  cache: string;
  context: number;
  threads: number;
  prefillTokPerS: number | null;
  decodeTokPerS: number | null;
  kvHeldBytes: number;
  /** Per decode step, ms (ours). */
  matmulMs?: number;
  attendMs?: number;
  appendMs?: number;
  otherMs?: number;
  /** KV bytes held ÷ attention time (ours). */
  attendGBs?: number;
  note?: string;
}
const rows: Row[] = [];

const forced = (bits: number, L: number): CacheSpec => ({ method: "pm-kvq", budgetsMB: new Array(L).fill(1e6), progressive: { initBodyBits: bits } });
const caches = (L: number): [string, CacheSpec][] => [
  ["f32", { method: "original" }],
  ["f16", { method: "original", kvDtype: "f16" }],
  ["pmkvq-8", forced(8, L)],
  ["pmkvq-4", forced(4, L)],
  ["pmkvq-2", forced(2, L)],
];

/** Append random K/V rows to every block until the cache holds `tokens` (chunks of 256). */
function fill(model: LoadedModel, cache: KvCache, tokens: number): void {
  const R = model.config.numKvHeads * model.config.headDim;
  const chunk = 256;
  const k = new Float32Array(chunk * R).map(() => Math.random() * 2 - 1);
  const v = new Float32Array(chunk * R).map(() => Math.random() * 2 - 1);
  while (cache.length < tokens) {
    const n = Math.min(chunk, tokens - cache.length);
    for (const layer of cache.layers) layer.append(k, v, n);
  }
}

/** Decode `decodeTokens` steps after warm-up at each thread count; median tok/s, mean breakdown. */
function decode(name: string, model: LoadedModel, cache: KvCache, cacheName: string, context: number): void {
  const tf = model.transformer;
  for (const threads of threadCounts) {
    configureKernels({ threads });
    for (let i = 0; i < WARMUP; i++) tf.forward([5], [cache.length], cache, "last");
    const prof = newProfile();
    tf.profile = prof;
    const times: number[] = [];
    for (let i = 0; i < decodeTokens; i++) {
      const s = performance.now();
      tf.forward([5], [cache.length], cache, "last");
      times.push(performance.now() - s);
    }
    tf.profile = null;
    const n = prof.calls;
    const held = cache.stats().totalHeldBytes;
    const row: Row = {
      model: name, engine: "pm-kvq", cache: cacheName, context, threads, prefillTokPerS: null, decodeTokPerS: 1000 / median(times), kvHeldBytes: held,
      matmulMs: prof.matmulMs / n, attendMs: prof.attendMs / n, appendMs: prof.appendMs / n, otherMs: prof.otherMs / n,
      attendGBs: held / (prof.attendMs / n / 1000) / 1e9,
    };
    rows.push(row);
    log(`${name} pm-kvq ${cacheName} ctx ${context} threads ${threads}: ${row.decodeTokPerS!.toFixed(1)} tok/s · matmul ${row.matmulMs!.toFixed(2)} ms, attention ${row.attendMs!.toFixed(2)} ms (${row.attendGBs!.toFixed(2)} GB/s), append ${row.appendMs!.toFixed(2)}, other ${row.otherMs!.toFixed(2)}`);
  }
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 500));
const { hfDir, gguf } = benchModel();
{
  using model = loadModel(hfDir);
  for (const context of contexts) {
    for (const [cacheName, spec] of caches(model.config.numLayers)) {
      using cache = createCache(model.config, spec);
      fill(model, cache, context);
      decode("bench", model, cache, cacheName, context);
    }
    releaseKernelScratch();
  }
  // prefill: real forwards in chunks of 256 tokens, with the most threads
  for (const context of prefillContexts) {
    for (const [cacheName, spec] of caches(model.config.numLayers)) {
      configureKernels({ threads: Math.max(...threadCounts) });
      using cache = createCache(model.config, spec);
      const prompt = ids(context);
      const t0 = performance.now();
      for (let i = 0; i < context; i += 256) {
        const part = prompt.slice(i, i + 256);
        model.transformer.forward(part, part.map((_, j) => i + j), cache, "none");
      }
      const tps = (context / (performance.now() - t0)) * 1000;
      rows.push({ model: "bench", engine: "pm-kvq", cache: cacheName, context, threads: Math.max(...threadCounts), prefillTokPerS: tps, decodeTokPerS: null, kvHeldBytes: cache.stats().totalHeldBytes, note: "prefill" });
      log(`bench pm-kvq ${cacheName} prefill ${context} tokens: ${tps.toFixed(0)} tok/s (${(context / tps).toFixed(1)} s)`);
    }
  }
}

// ------------------------------------------------------------------ llama.cpp
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
const lmodel = await llama.loadModel({ modelPath: gguf });
const theirs: [string, { flashAttention: boolean; type: "F16" | "Q8_0" | "Q4_0" }][] = [
  ["f16", { flashAttention: false, type: "F16" }],
  ["f16-fa", { flashAttention: true, type: "F16" }],
  ["q8_0", { flashAttention: true, type: "Q8_0" }],
  ["q4_0", { flashAttention: true, type: "Q4_0" }],
];
for (const context of contexts) {
  for (const [name, c] of theirs) {
    if (opt.quick && c.type !== "F16" && context > 4096) continue;
    for (const threads of threadCounts) {
      let ctx: LlamaContext;
      try {
        ctx = await lmodel.createContext({
          contextSize: context + WARMUP + decodeTokens + 8, threads, batchSize: 512, flashAttention: c.flashAttention,
          experimentalKvCacheKeyType: c.type, experimentalKvCacheValueType: c.type,
        });
      } catch (e) {
        log(`llama.cpp ${name} threads ${threads}: cannot create the context (${(e as Error).message})`);
        continue;
      }
      const seq = ctx.getSequence();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(ids(context) as never);
      const prefillTokPerS = (context / (performance.now() - t0)) * 1000;
      const times: number[] = [];
      for (let i = 0; i < WARMUP + decodeTokens; i++) {
        const s = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens([5] as never);
        if (i >= WARMUP) times.push(performance.now() - s);
      }
      rows.push({ model: "bench", engine: "llama.cpp", cache: name, context, threads, prefillTokPerS, decodeTokPerS: 1000 / median(times), kvHeldBytes: ctx.stateSize });
      log(`llama.cpp ${name} ctx ${context} threads ${threads}: prefill ${prefillTokPerS.toFixed(0)} tok/s, decode ${(1000 / median(times)).toFixed(1)} tok/s`);
      await ctx.dispose();
    }
  }
}
await lmodel.dispose();
await llama.dispose();

// ------------------------------------------------------------------ the 1.5B shape
const bigRows: { cache: string; maxContext: number; limitedBy: string }[] = [];
if (opt.big) {
  const dir = bigBenchModel();
  using model = loadModel(dir);
  log(`big model: ${(model.weightBytes / 2 ** 30).toFixed(2)} GiB of weights`);
  for (const [cacheName, spec] of caches(model.config.numLayers).filter(([n]) => n !== "pmkvq-8")) {
    let cache = createCache(model.config, spec);
    let reached = 0;
    let limitedBy = `the ${R1_DISTILL_1_5B.maxPositions}-token limit of the runs`;
    try {
      for (const target of [8192, 32768]) {
        fill(model, cache, target);
        decode("1.5B", model, cache, cacheName, target);
        reached = cache.length;
      }
      while (cache.length < R1_DISTILL_1_5B.maxPositions) {
        fill(model, cache, Math.min(R1_DISTILL_1_5B.maxPositions, cache.length + 4096));
        reached = cache.length;
      }
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      limitedBy = "the 4 GiB WebAssembly memory";
      reached = Math.min(...cache.layers.map((l) => l.length));
    }
    bigRows.push({ cache: cacheName, maxContext: reached, limitedBy });
    log(`1.5B ${cacheName}: reaches ${reached} tokens (${limitedBy})`);
    cache.dispose();
    cache = null as never;
    releaseKernelScratch();
  }
}

// ------------------------------------------------------------------ report
const fmt = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "—" : x.toFixed(d));
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const decodeRows = (model: string) => rows.filter((r) => r.model === model && r.decodeTokPerS !== null);
const lines = [
  "| context | threads | engine | cache | decode tok/s | vs llama.cpp f16 | vs fastest llama.cpp | matmul ms | attention ms | attention GB/s (% of read bw) | append ms | other ms | KV MiB |",
  "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
for (const context of contexts) {
  for (const threads of threadCounts) {
    const here = decodeRows("bench").filter((r) => r.context === context && r.threads === threads);
    const lc = here.filter((r) => r.engine === "llama.cpp");
    const f16 = lc.find((r) => r.cache === "f16");
    const fastest = lc.reduce<Row | null>((a, r) => (!a || r.decodeTokPerS! > a.decodeTokPerS! ? r : a), null);
    for (const r of here) {
      const ratio = (b?: Row | null) => (r.engine === "pm-kvq" && b ? `${(r.decodeTokPerS! / b.decodeTokPerS!).toFixed(2)}×` : "");
      const gbs = r.attendGBs === undefined ? "—" : `${r.attendGBs.toFixed(2)} (${((100 * r.attendGBs) / bandwidth).toFixed(0)}%)`;
      lines.push(`| ${context} | ${threads} | ${r.engine} | ${r.cache} | ${fmt(r.decodeTokPerS)} | ${ratio(f16)} | ${ratio(fastest)}${fastest && r.engine === "pm-kvq" ? ` (${fastest.cache})` : ""} | ${fmt(r.matmulMs, 2)} | ${fmt(r.attendMs, 2)} | ${gbs} | ${fmt(r.appendMs, 2)} | ${fmt(r.otherMs, 2)} | ${mib(r.kvHeldBytes)} |`);
    }
  }
}
const prefill = rows.filter((r) => r.prefillTokPerS !== null);
const prefillLines = [
  "| context | threads | engine | cache | prefill tok/s | seconds |",
  "|---:|---:|---|---|---:|---:|",
  ...prefill.map((r) => `| ${r.context} | ${r.threads} | ${r.engine} | ${r.cache} | ${r.prefillTokPerS!.toFixed(0)} | ${(r.context / r.prefillTokPerS!).toFixed(1)} |`),
];
let table = `read bandwidth of one thread in this run: ${bandwidth.toFixed(1)} GB/s\n\n` + lines.join("\n") + "\n\nPrefill (ours: real forwards in 256-token chunks with the most threads; llama.cpp: its context fill):\n\n" + prefillLines.join("\n");
if (opt.big) {
  const big = decodeRows("1.5B");
  table +=
    "\n\nDeepSeek-R1-Distill-Qwen-1.5B's shape (random bf16 weights, 3.55 GB; ours only):\n\n| context | threads | cache | decode tok/s | matmul ms | attention ms | attention GB/s | KV MiB |\n|---:|---:|---|---:|---:|---:|---:|---:|\n" +
    big.map((r) => `| ${r.context} | ${r.threads} | ${r.cache} | ${fmt(r.decodeTokPerS, 2)} | ${fmt(r.matmulMs, 1)} | ${fmt(r.attendMs, 1)} | ${fmt(r.attendGBs, 2)} | ${mib(r.kvHeldBytes)} |`).join("\n") +
    "\n\n| cache | longest context reached | limited by |\n|---|---:|---|\n" + bigRows.map((r) => `| ${r.cache} | ${r.maxContext} | ${r.limitedBy} |`).join("\n");
}
console.log(table);
if (opt.json) writeFileAtomic(opt.json, JSON.stringify({ bandwidthGBs: bandwidth, rows, big: bigRows }, null, 1) + "\n");
if (opt["write-readme"]) {
  const cmd = `npm run bench -- ${process.argv.slice(2).filter((a) => a !== "--write-readme").join(" ")}`.trim();
  writeReadmeSection("kv-bench-table", `Made by \`${cmd}\` on this machine (2 cores), model: 4 blocks, hidden 1024, 8 heads, 2 KV heads, head_dim 128, FFN 2816, f16 weights; ${decodeTokens} decode steps (median tok/s; the breakdown is the mean per step):\n\n${table}`);
}
