// Load time and decode speed on stories260K: this engine and llama.cpp (node-llama-cpp) on
// the same model (HF safetensors vs GGUF, both float32), same thread count, same run.
// Usage: node dist/bench/stories-decode.js [--tokens N] [--threads N] [--runs N]

import path from "node:path";
import { parseArgs } from "node:util";
import { getLlama } from "node-llama-cpp";
import { generate } from "../src/generate/generate.js";
import { loadModel } from "../src/model/checkpoint.js";
import { SHARED_DIR, median } from "./common.js";

const { values } = parseArgs({ options: { tokens: { type: "string", default: "256" }, threads: { type: "string", default: "1" }, runs: { type: "string", default: "5" } } });
const tokens = Number(values.tokens);
const threads = Number(values.threads);
const runs = Number(values.runs);
const dir = path.join(SHARED_DIR, "models", "stories260K");
const prompt = [1, 403, 407, 261, 378];

const oursLoad: number[] = [];
const oursDecode: number[] = [];
for (let r = 0; r <= runs; r++) {
  const model = loadModel(dir);
  const res = generate(model, prompt, { maxNewTokens: tokens, eosTokenIds: [] });
  if (r === 0) continue; // warm-up
  oursLoad.push(model.loadMs);
  oursDecode.push(res.timings.decodeTokPerS);
}

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
const theirLoad: number[] = [];
const theirDecode: number[] = [];
for (let r = 0; r <= runs; r++) {
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: path.join(dir, "stories260K.gguf") });
  const loadMs = performance.now() - t0;
  const ctx = await model.createContext({ contextSize: 512, threads, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  const seq = ctx.getSequence();
  let n = 0;
  let tFirst = 0;
  for await (const _ of seq.evaluate(prompt as never, { temperature: 0 })) {
    if (n === 0) tFirst = performance.now();
    if (++n >= tokens) break;
  }
  const decodeTokPerS = ((n - 1) / (performance.now() - tFirst)) * 1000;
  await ctx.dispose();
  await model.dispose();
  if (r === 0) continue;
  theirLoad.push(loadMs);
  theirDecode.push(decodeTokPerS);
}
await llama.dispose();

const row = (name: string, load: number[], dec: number[]) => `| ${name} | ${median(load).toFixed(1)} | ${median(dec).toFixed(0)} |`;
console.log(`stories260K, greedy, ${tokens} new tokens, ${threads} thread(s), median of ${runs} runs after a warm-up\n`);
console.log("| engine | load ms | decode tok/s |\n|---|---:|---:|");
console.log(row("pm-kvq (float32 weights, float32 KV)", oursLoad, oursDecode));
console.log(row("llama.cpp via node-llama-cpp (F32 GGUF, F32 KV)", theirLoad, theirDecode));
console.log(`\nratio pm-kvq / llama.cpp decode: ${(median(oursDecode) / median(theirDecode)).toFixed(2)}×`);
