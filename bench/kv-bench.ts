// Prefill and decode speed at long context, this engine against llama.cpp (node-llama-cpp) on
// the same random-weight model (HF safetensors / GGUF, f16 weights), same thread counts, in
// one run. Ours: float32 and float16 caches, pm-kvq (real backend) with 4- and 2-bit bodies.
// llama.cpp: f16, f16 with flash attention, q8_0 and q4_0 caches (quantized ones need it).
// Decode is timed per token (median over tokens after warm-up); prefill once per context.
// Usage: node dist/bench/kv-bench.js [--quick] [--contexts 128,1024] [--threads 1,2]
//        [--decode-tokens N] [--weights-dtype auto|f32] [--json FILE] [--write-readme]

import { parseArgs } from "node:util";
import { getLlama, type LlamaContext } from "node-llama-cpp";
import { createCache, type CacheSpec } from "../src/cache/factory.js";
import { loadModel, type LoadedModel } from "../src/model/checkpoint.js";
import { configureKernels } from "../src/tensor/wasm.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { median } from "./common.js";
import { benchModel } from "./model.js";
import { writeReadmeSection } from "./readme.js";

const { values: opt } = parseArgs({
  options: {
    quick: { type: "boolean" },
    contexts: { type: "string" },
    threads: { type: "string", default: "1,2" },
    "decode-tokens": { type: "string", default: "24" },
    "weights-dtype": { type: "string", default: "auto" },
    json: { type: "string" },
    "write-readme": { type: "boolean" },
  },
});
const contexts = (opt.contexts ?? (opt.quick ? "128,4096" : "128,1024,4096,16384")).split(",").map(Number);
const threadCounts = opt.threads!.split(",").map(Number);
const decodeTokens = Number(opt["decode-tokens"]);
const WARMUP = 4;

interface Row {
  engine: "pm-kvq" | "llama.cpp";
  cache: string;
  context: number;
  threads: number;
  prefillTokPerS: number | null;
  decodeTokPerS: number;
  /** Decode through the engine's generation loop (ours: generate(); llama.cpp: sequence.evaluate). */
  decodeLoopTokPerS: number | null;
  kvHeldBytes: number;
}
const rows: Row[] = [];
const ids = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 500));
const log = (s: string) => process.stderr.write(s + "\n");

// ------------------------------------------------------------------ this engine
const { hfDir, gguf } = benchModel();
const model: LoadedModel = loadModel(hfDir, { weightsDtype: opt["weights-dtype"] as "auto" | "f32" });
const ours: [string, CacheSpec][] = [
  ["f32", { method: "original" }],
  ["f16", { method: "original", kvDtype: "f16" }],
  ["pmkvq-4", { method: "pm-kvq", budgetsMB: new Array(model.config.numLayers).fill(1e6), progressive: { initBodyBits: 4 } }],
  ["pmkvq-2", { method: "pm-kvq", budgetsMB: new Array(model.config.numLayers).fill(1e6), progressive: { initBodyBits: 2 } }],
];
for (const context of contexts) {
  for (const [name, spec] of ours) {
    // prefill once with the most threads; decode from the same cache at every thread count
    configureKernels({ threads: Math.max(...threadCounts) });
    const cache = createCache(model.config, spec);
    const prompt = ids(context);
    const t0 = performance.now();
    for (let i = 0; i < context; i += 256) {
      const part = prompt.slice(i, i + 256);
      model.transformer.forward(part, part.map((_, j) => i + j), cache, "last");
    }
    const prefillTokPerS = (context / (performance.now() - t0)) * 1000;
    for (const threads of [...threadCounts].sort((a, b) => b - a)) {
      configureKernels({ threads });
      const times: number[] = [];
      for (let i = 0; i < WARMUP + decodeTokens; i++) {
        const s = performance.now();
        model.transformer.forward([5], [cache.length], cache, "last");
        if (i >= WARMUP) times.push(performance.now() - s);
      }
      rows.push({
        engine: "pm-kvq", cache: name, context, threads,
        prefillTokPerS: threads === Math.max(...threadCounts) ? prefillTokPerS : null,
        decodeTokPerS: 1000 / median(times), decodeLoopTokPerS: null, kvHeldBytes: cache.stats().totalHeldBytes,
      });
      log(`pm-kvq ${name} ctx ${context} threads ${threads}: prefill ${prefillTokPerS.toFixed(0)} tok/s, decode ${(1000 / median(times)).toFixed(1)} tok/s`);
    }
    cache.reset();
  }
}
// our generation loop at the shortest context (sampling, streaming decode, cache stats per step)
for (const threads of threadCounts) {
  configureKernels({ threads });
  const { generate } = await import("../src/generate/generate.js");
  const r = generate(model, ids(contexts[0]), { maxNewTokens: decodeTokens, eosTokenIds: [], cache: createCache(model.config, { method: "original" }) });
  const row = rows.find((x) => x.engine === "pm-kvq" && x.cache === "f32" && x.context === contexts[0] && x.threads === threads);
  if (row) row.decodeLoopTokPerS = r.timings.decodeTokPerS;
}

// which precision to hold f16 weights in (decode at the shortest context, float32 cache)
const weightRows: { held: string; threads: number; decodeTokPerS: number; weightMiB: number }[] = [];
for (const held of ["auto", "bf16", "f32"] as const) {
  const m = loadModel(hfDir, { weightsDtype: held });
  for (const threads of threadCounts) {
    configureKernels({ threads });
    const cache = createCache(m.config, { method: "original" });
    const prompt = ids(contexts[0]);
    m.transformer.forward(prompt, prompt.map((_, j) => j), cache, "last");
    const times: number[] = [];
    for (let i = 0; i < WARMUP + decodeTokens; i++) {
      const s = performance.now();
      m.transformer.forward([5], [cache.length], cache, "last");
      if (i >= WARMUP) times.push(performance.now() - s);
    }
    weightRows.push({ held: held === "auto" ? "f16 (as stored)" : held, threads, decodeTokPerS: 1000 / median(times), weightMiB: m.weightBytes / 2 ** 20 });
    log(`weights held as ${held}, threads ${threads}: decode ${(1000 / median(times)).toFixed(1)} tok/s`);
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
    for (const threads of threadCounts) {
      let ctx: LlamaContext;
      try {
        ctx = await lmodel.createContext({
          contextSize: context + WARMUP + 2 * decodeTokens + 8, threads, batchSize: 512, flashAttention: c.flashAttention,
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
      // the generation loop (greedy), timed from its first token
      let n = 0;
      let tFirst = 0;
      for await (const _ of seq.evaluate([6] as never, { temperature: 0 })) {
        if (n === 0) tFirst = performance.now();
        if (++n >= decodeTokens) break;
      }
      const loop = ((n - 1) / (performance.now() - tFirst)) * 1000;
      rows.push({ engine: "llama.cpp", cache: name, context, threads, prefillTokPerS, decodeTokPerS: 1000 / median(times), decodeLoopTokPerS: loop, kvHeldBytes: ctx.stateSize });
      log(`llama.cpp ${name} ctx ${context} threads ${threads}: prefill ${prefillTokPerS.toFixed(0)} tok/s, decode ${(1000 / median(times)).toFixed(1)} tok/s (loop ${loop.toFixed(1)})`);
      await ctx.dispose();
    }
  }
}
await lmodel.dispose();
await llama.dispose();

// ------------------------------------------------------------------ report
const fmt = (x: number | null, d = 1) => (x === null ? "—" : x.toFixed(d));
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const lines = ["| context | threads | engine | cache | prefill tok/s | decode tok/s | decode (loop) tok/s | KV MiB | decode vs llama.cpp f16 | vs fastest llama.cpp | vs q4_0 |", "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"];
for (const context of contexts) {
  for (const threads of threadCounts) {
    const here = rows.filter((r) => r.context === context && r.threads === threads);
    const lc = here.filter((r) => r.engine === "llama.cpp");
    const f16 = lc.find((r) => r.cache === "f16");
    const q4 = lc.find((r) => r.cache === "q4_0");
    const fastest = lc.reduce<Row | null>((a, r) => (!a || r.decodeTokPerS > a.decodeTokPerS ? r : a), null);
    for (const r of here) {
      const ratio = (b?: Row | null) => (r.engine === "pm-kvq" && b ? `${(r.decodeTokPerS / b.decodeTokPerS).toFixed(2)}×` : "");
      lines.push(`| ${context} | ${threads} | ${r.engine} | ${r.cache} | ${fmt(r.prefillTokPerS, 0)} | ${fmt(r.decodeTokPerS)} | ${fmt(r.decodeLoopTokPerS)} | ${mib(r.kvHeldBytes)} | ${ratio(f16)} | ${ratio(fastest)}${fastest && r.engine === "pm-kvq" ? ` (${fastest.cache})` : ""} | ${ratio(q4)} |`);
    }
  }
}
const weightTable = [
  `| weights held as | threads | decode tok/s at ${contexts[0]} | weight MiB |`,
  "|---|---:|---:|---:|",
  ...weightRows.map((r) => `| ${r.held} | ${r.threads} | ${r.decodeTokPerS.toFixed(1)} | ${r.weightMiB.toFixed(0)} |`),
].join("\n");
const table = lines.join("\n") + "\n\n" + weightTable;
console.log(table);
if (opt.json) writeFileAtomic(opt.json, JSON.stringify({ rows, weights: weightRows }, null, 1) + "\n");
if (opt["write-readme"]) {
  const cmd = `npm run bench -- ${process.argv.slice(2).filter((a) => a !== "--write-readme").join(" ")}`.trim();
  writeReadmeSection("kv-bench-table", `Made by \`${cmd}\` on this machine (2 cores), model: 4 blocks, hidden 1024, 8 heads, 2 KV heads, head_dim 128, FFN 2816, f16 weights (ours held as \`${opt["weights-dtype"]}\`), ${decodeTokens} decode tokens (median):\n\n${table}`);
}
