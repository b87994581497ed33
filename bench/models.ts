// The models people run, at their real shapes, as GGUF files both engines load: load time,
// resident memory, prefill of a prompt and decode speed — this engine against llama.cpp
// (node-llama-cpp) on the same file, same threads, same run. Random weights (speed and memory do
// not depend on their values), streamed to .bench-cache/ once.
// Usage: node dist/bench/models.js [--shapes 1.5b] [--weights BF16,Q8_0,Q4_K_M] [--threads 1,2] [--prompt 512] [--decode 16]
//        [--json FILE] [--write-readme]
//   1.5b: DeepSeek-R1-Distill-Qwen-1.5B's shape (as llama, bf16, 3.55 GB)

import { parseArgs } from "node:util";
import { getLlama } from "node-llama-cpp";
import { createFullPrecisionCache } from "../src/cache/full.js";
import { loadModel } from "../src/model/checkpoint.js";
import { configureKernels, relaxedSimd } from "../src/tensor/wasm.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { median } from "./common.js";
import { bigBenchGguf, R1_DISTILL_1_5B, type BenchModelSpec, type BenchWeights } from "./model.js";
import { writeReadmeSection } from "./readme.js";

const SHAPES: Record<string, { name: string; spec: BenchModelSpec & { vocab: number } }> = {
  "1.5b": { name: "r1-distill-qwen-1.5b-shape", spec: R1_DISTILL_1_5B },
};

const { values: opt } = parseArgs({
  options: {
    shapes: { type: "string", default: "1.5b" },
    weights: { type: "string", default: "BF16,Q8_0,Q4_K_M" },
    threads: { type: "string", default: "1,2" },
    prompt: { type: "string", default: "512" },
    decode: { type: "string", default: "16" },
    json: { type: "string" },
    "write-readme": { type: "boolean" },
  },
});
const log = (s: string) => process.stderr.write(s + "\n");
const threadCounts = opt.threads!.split(",").map(Number);
const promptLen = Number(opt.prompt);
const decodeTokens = Number(opt.decode);
const gib = (b: number) => b / 2 ** 30;

interface Row {
  shape: string;
  weights: string;
  engine: "pm-kvq" | "llama.cpp";
  threads: number;
  loadS: number;
  rssGiB: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
}
const rows: Row[] = [];
const ids = (n: number) => Array.from({ length: n }, (_, i) => 300 + ((i * 7919) % 5000));

const WEIGHTS: BenchWeights[] = ["BF16", "F16", "Q8_0", "Q4_K_M"];
for (const key of opt.shapes!.split(",")) for (const weights of opt.weights!.split(",") as BenchWeights[]) {
  const shape = SHAPES[key];
  if (!shape) throw new Error(`unknown shape ${key}; known: ${Object.keys(SHAPES).join(", ")}`);
  if (!WEIGHTS.includes(weights)) throw new Error(`unknown weights ${weights}; known: ${WEIGHTS.join(", ")}`);
  log(`${key} ${weights}: building or reusing the GGUF …`);
  const file = bigBenchGguf(shape.spec, shape.name, weights);
  // ours
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const model = loadModel(file);
  const loadS = (performance.now() - t0) / 1000;
  const rssGiB = gib(process.memoryUsage().rss - rss0);
  log(`pm-kvq: loaded in ${loadS.toFixed(1)} s, +${rssGiB.toFixed(2)} GiB resident (weights ${gib(model.weightBytes).toFixed(2)} GiB), relaxed SIMD ${relaxedSimd()}`);
  for (const threads of threadCounts) {
    configureKernels({ threads });
    using cache = createFullPrecisionCache(model.config, model.config.numLayers, "f16");
    const prompt = ids(promptLen);
    const p0 = performance.now();
    model.transformer.forward(prompt, prompt.map((_, i) => i), cache, "last");
    const prefillTokPerS = promptLen / ((performance.now() - p0) / 1000);
    const times: number[] = [];
    for (let i = 0; i < decodeTokens; i++) {
      const s = performance.now();
      model.transformer.forward([5], [cache.length], cache, "last");
      times.push(performance.now() - s);
    }
    const decodeTokPerS = 1000 / median(times);
    rows.push({ shape: key, weights, engine: "pm-kvq", threads, loadS, rssGiB, prefillTokPerS, decodeTokPerS });
    log(`pm-kvq ${key} ${weights} threads ${threads}: prefill ${prefillTokPerS.toFixed(1)} tok/s, decode ${decodeTokPerS.toFixed(2)} tok/s`);
  }
  model.dispose();
  // llama.cpp on the same file
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const r0 = process.memoryUsage().rss;
  const l0 = performance.now();
  const lm = await llama.loadModel({ modelPath: file, useMmap: false });
  const lLoadS = (performance.now() - l0) / 1000;
  const lRss = gib(process.memoryUsage().rss - r0);
  for (const threads of threadCounts) {
    const ctx = await lm.createContext({ contextSize: promptLen + decodeTokens + 16, threads, batchSize: promptLen, experimentalKvCacheKeyType: "F16", experimentalKvCacheValueType: "F16" });
    const seq = ctx.getSequence();
    const p0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(ids(promptLen) as never);
    const prefillTokPerS = promptLen / ((performance.now() - p0) / 1000);
    const times: number[] = [];
    for (let i = 0; i < decodeTokens; i++) {
      const s = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens([5] as never);
      times.push(performance.now() - s);
    }
    const decodeTokPerS = 1000 / median(times);
    rows.push({ shape: key, weights, engine: "llama.cpp", threads, loadS: lLoadS, rssGiB: lRss, prefillTokPerS, decodeTokPerS });
    log(`llama.cpp ${key} ${weights} threads ${threads}: prefill ${prefillTokPerS.toFixed(1)} tok/s, decode ${decodeTokPerS.toFixed(2)} tok/s`);
    await ctx.dispose();
  }
  await lm.dispose();
  await llama.dispose();
}

const lines = [
  `| shape | weights | threads | engine | load s | resident GiB | prefill ${promptLen} tok/s | vs llama.cpp | decode tok/s | vs llama.cpp |`,
  "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
];
for (const r of rows) {
  const peer = rows.find((p) => p.engine === "llama.cpp" && p.shape === r.shape && p.weights === r.weights && p.threads === r.threads);
  const ratio = (a: number, b?: number) => (r.engine === "pm-kvq" && b ? `${(a / b).toFixed(2)}×` : "");
  lines.push(`| ${r.shape} | ${r.weights} | ${r.threads} | ${r.engine} | ${r.loadS.toFixed(1)} | ${r.rssGiB.toFixed(2)} | ${r.prefillTokPerS.toFixed(1)} | ${ratio(r.prefillTokPerS, peer?.prefillTokPerS)} | ${r.decodeTokPerS.toFixed(2)} | ${ratio(r.decodeTokPerS, peer?.decodeTokPerS)} |`);
}
const table = lines.join("\n");
process.stdout.write(table + "\n");
if (opt.json) writeFileAtomic(opt.json, JSON.stringify({ rows, relaxedSimd: relaxedSimd() }, null, 1) + "\n");
if (opt["write-readme"]) writeReadmeSection("models", `Measured by \`npm run bench:models\` (random weights, GGUF files both engines load; this host is shared, rows move between runs):\n\n${table}`);
process.exit(0);
