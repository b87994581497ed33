// Decode speed of a model past 4 GiB with the WebAssembly kernels (several memories):
// DeepSeek-R1-Distill-Llama-8B's shape, random bf16 weights (16 GB, built once in .bench-cache/).
// Reports load time, RSS, how the model is spread over memories, decode tok/s at each thread
// count after a short prompt, and the bandwidth bound: bytes a decode step reads (every matrix
// but the embedding) over the read bandwidth this run measures with the same thread count.
//   node dist/bench/big8b.js [--threads 1,2] [--decode-tokens 16] [--json FILE] [--model DIR --probe-mib M (another folder and a smaller bandwidth probe, for a smoke run)]

import os from "node:os";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { createCache } from "../src/cache/factory.js";
import { loadModel } from "../src/model/checkpoint.js";
import { placementArenas } from "../src/model/placement.js";
import { allocU32, arenaList, release } from "../src/tensor/memory.js";
import { matrixBytes } from "../src/tensor/matrix.js";
import { configureKernels, wasm } from "../src/tensor/wasm.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { median } from "./common.js";
import { bigBenchModel, R1_DISTILL_LLAMA_8B } from "./model.js";

const { values: opt } = parseArgs({
  options: { model: { type: "string" }, "probe-mib": { type: "string", default: "256" }, threads: { type: "string", default: "1,2" }, "decode-tokens": { type: "string", default: "16" }, json: { type: "string" } },
});
const threadCounts = opt.threads!.split(",").map(Number);
const decodeTokens = Number(opt["decode-tokens"]);
const log = (s: string) => process.stderr.write(s + "\n");
const GiB = 2 ** 30;
const rt = wasm();
if (!rt) throw new Error("the WebAssembly kernels are off: this benchmark measures them");

/** GB/s that `threads` threads read together with v128 loads, each over its own 256 MiB (median of 5). */
async function readBandwidth(threads: number): Promise<number> {
  const n = Math.floor((Number(opt["probe-mib"]) * 2 ** 20) / 64) * 64;
  const bufs = Array.from({ length: threads }, () => allocU32(n / 4).fill(1));
  const ctrl = new Int32Array(new SharedArrayBuffer(8));
  // helper threads: each waits for a round number, reads its buffer, counts in
  const code = `const { workerData: w } = require("node:worker_threads");
    const ex = new WebAssembly.Instance(w.module, { env: { memory: w.memory, abort() {} } }).exports;
    const c = w.ctrl; let seen = 0;
    for (;;) { Atomics.wait(c, 0, seen); seen = Atomics.load(c, 0); if (seen < 0) break; ex.readSum(w.ptr, w.n); Atomics.add(c, 1, 1); Atomics.notify(c, 1); }`;
  const workers = bufs.slice(1).map((b) => new Worker(code, { eval: true, workerData: { module: rt!.module, memory: rt!.arena.memory, ptr: b.byteOffset, n, ctrl } }));
  await new Promise((r) => setTimeout(r, 300)); // let them start
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    Atomics.store(ctrl, 1, 0);
    const t0 = performance.now();
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    rt!.ex.readSum(bufs[0].byteOffset, n);
    while (Atomics.load(ctrl, 1) < workers.length) Atomics.wait(ctrl, 1, Atomics.load(ctrl, 1), 1);
    if (i > 0) times.push(performance.now() - t0);
  }
  Atomics.store(ctrl, 0, -1);
  Atomics.notify(ctrl, 0);
  await Promise.all(workers.map((w) => w.terminate()));
  for (const b of bufs) release(b);
  return (threads * n) / (median(times) / 1000) / 1e9;
}

const bandwidth: Record<number, number> = {};
for (const t of threadCounts) {
  bandwidth[t] = await readBandwidth(t);
  log(`read bandwidth, ${t} thread${t > 1 ? "s" : ""}: ${bandwidth[t].toFixed(1)} GB/s`);
}

const dir = opt.model ?? bigBenchModel(R1_DISTILL_LLAMA_8B);
const PROMPT = [1, 450, 49, 173, 17, 432, 172, 97];
const t0 = performance.now();
using model = loadModel(dir, { kvTokens: PROMPT.length + decodeTokens + 8, chunkTokens: PROMPT.length });
const loadS = (performance.now() - t0) / 1000;
const rssGiB = process.memoryUsage().rss / GiB;
const place = model.transformer.placement;
const memories = placementArenas(place).map((a) => {
  const blocks = place.blockArena.flatMap((b, l) => (b === a ? [l] : []));
  const parts = [a === place.embedArena ? "embedding" : "", blocks.length ? `blocks ${blocks[0]}–${blocks.at(-1)}` : "", a === place.headArena ? "head" : ""].filter(Boolean).join(", ");
  return { memory: a, parts, inUseGiB: arenaList()[a].inUse / GiB };
});
log(`loaded ${(model.weightBytes / 1e9).toFixed(2)} GB of weights in ${loadS.toFixed(1)} s; RSS ${rssGiB.toFixed(2)} GiB; ${memories.length} memories:`);
for (const m of memories) log(`  memory ${m.memory}: ${m.parts} (${m.inUseGiB.toFixed(2)} GiB)`);

// a decode step reads every matrix once, except the embedding (one row)
const stepBytes = model.weightBytes - matrixBytes(model.transformer.weights.embed);
/** Index of the largest logit (a loop: spreading 128k values as arguments overflows the stack). */
function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
const rows: { threads: number; decodeTokPerS: number; boundTokPerS: number; ofBound: number; bandwidthGBs: number }[] = [];
for (const threads of threadCounts) {
  configureKernels({ threads });
  using cache = createCache(model.config, { method: "original" }, place);
  const tf = model.transformer;
  let logits = tf.forward(PROMPT, PROMPT.map((_, i) => i), cache);
  let next = argmax(logits);
  let pos = PROMPT.length;
  const step = () => {
    logits = tf.forward([next], [pos++], cache);
    next = argmax(logits);
  };
  step(); // warm-up
  const s0 = performance.now();
  for (let i = 0; i < decodeTokens; i++) step();
  const tokPerS = decodeTokens / ((performance.now() - s0) / 1000);
  const bound = (bandwidth[threads] * 1e9) / stepBytes;
  rows.push({ threads, decodeTokPerS: tokPerS, boundTokPerS: bound, ofBound: tokPerS / bound, bandwidthGBs: bandwidth[threads] });
  log(`decode, ${threads} thread${threads > 1 ? "s" : ""}: ${tokPerS.toFixed(3)} tok/s; bound ${bound.toFixed(3)} tok/s (${(stepBytes / 1e9).toFixed(2)} GB per step at ${bandwidth[threads].toFixed(1)} GB/s): ${((100 * tokPerS) / bound).toFixed(0)}% of it`);
}

const table =
  `${opt.model ?? "DeepSeek-R1-Distill-Llama-8B's shape, random bf16 weights"} (${(model.weightBytes / 1e9).toFixed(2)} GB) in ${memories.length} WebAssembly memories; ` +
  `load ${loadS.toFixed(1)} s, RSS ${rssGiB.toFixed(2)} GiB; ${os.cpus()[0]?.model ?? "cpu"}\n\n` +
  "| threads | decode tok/s | read GB/s | bound tok/s | of bound |\n|---:|---:|---:|---:|---:|\n" +
  rows.map((r) => `| ${r.threads} | ${r.decodeTokPerS.toFixed(3)} | ${r.bandwidthGBs.toFixed(1)} | ${r.boundTokPerS.toFixed(3)} | ${(100 * r.ofBound).toFixed(0)}% |`).join("\n");
console.log(table);
if (opt.json) writeFileAtomic(opt.json, JSON.stringify({ loadS, rssGiB, weightBytes: model.weightBytes, stepBytes, memories, rows }, null, 1) + "\n");
