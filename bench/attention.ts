// Attention alone, per decode step, on the bench model's shape (8 query heads, 2 KV heads,
// head_dim 128; per block): f32, f16 and pm-kvq caches with 8-, 4- and 2-bit bodies, at
// several contexts and thread counts. Reports ms per block and step, the bytes each cache's
// attention reads, and the GB/s that makes — beside the bandwidth one thread (and every thread)
// reads in the same run (a v128 read-sum over 256 MiB). The fastest of --reps runs is reported
// beside the median: this machine is shared, and the fastest run is what the kernel costs.
// Usage: node dist/bench/attention.js [--contexts 4096,16384] [--threads 1,2] [--heads 8/2] [--reps 20]

import { parseArgs } from "node:util";
import { createCache, type CacheSpec } from "../src/cache/factory.js";
import { allocF32, allocU32, arenaBytesInUse, release } from "../src/tensor/memory.js";
import { configureKernels, wasm } from "../src/tensor/wasm.js";
import { median } from "./common.js";

const { values: opt } = parseArgs({
  options: { contexts: { type: "string", default: "4096,16384" }, threads: { type: "string", default: "1,2" }, heads: { type: "string", default: "8/2" }, reps: { type: "string", default: "20" } },
});
const contexts = opt.contexts!.split(",").map(Number);
const threadCounts = opt.threads!.split(",").map(Number);
const [numHeads, numKvHeads] = opt.heads!.split("/").map(Number);
const reps = Number(opt.reps);
const rt = wasm();
if (!rt) throw new Error("the WebAssembly kernels are off");
const d = 128;
const config = { numHeads, numKvHeads, headDim: d, numLayers: 1 } as never;

/** GB/s of one thread reading 256 MiB with v128 loads (median of 5). */
function bandwidth(): number {
  const n = 256 * 2 ** 20;
  const buf = allocU32(n / 4);
  buf.fill(1);
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    rt!.ex.readSum(buf.byteOffset, n);
    if (i > 0) times.push(performance.now() - t0);
  }
  release(buf);
  return n / (median(times) / 1000) / 1e9;
}

const caches: [string, CacheSpec][] = [
  ["f32", { method: "original" }],
  ["f16", { method: "original", kvDtype: "f16" }],
  ["pmkvq-8", { method: "pm-kvq", budgetsMB: [1e6], progressive: { initBodyBits: 8 } }],
  ["pmkvq-4", { method: "pm-kvq", budgetsMB: [1e6], progressive: { initBodyBits: 4 } }],
  ["pmkvq-2", { method: "pm-kvq", budgetsMB: [1e6], progressive: { initBodyBits: 2 } }],
];
const bw = bandwidth();
console.log(`read bandwidth, 1 thread: ${bw.toFixed(1)} GB/s; arena ${(arenaBytesInUse() / 2 ** 20).toFixed(0)} MiB`);
console.log(`heads ${numHeads}/${numKvHeads}, head_dim ${d}, one block`);
console.log("| context | threads | cache | ms (fastest) | ms (median) | KV bytes read | GB/s (fastest) | % of 1-thread bandwidth |");
console.log("|---:|---:|---|---:|---:|---:|---:|---:|");
const R = numKvHeads * d;
for (const L of contexts) {
  for (const [name, spec] of caches) {
    using cache = createCache(config, spec);
    const layer = cache.layers[0];
    const k = new Float32Array(256 * R).map(() => Math.random() * 2 - 1);
    const v = new Float32Array(256 * R).map(() => Math.random() * 2 - 1);
    for (let i = 0; i < L; i += 256) layer.append(k, v, Math.min(256, L - i));
    const q = new Float32Array(numHeads * d).map(() => Math.random());
    const out = new Float32Array(numHeads * d);
    const qa = allocF32(q.length);
    qa.set(q);
    const oa = allocF32(out.length);
    const bytes = cache.stats().blocks[0].heldBytes;
    for (const threads of threadCounts) {
      configureKernels({ threads });
      const times: number[] = [];
      for (let i = 0; i < reps + 3; i++) {
        const t0 = performance.now();
        layer.attend(qa, 1, oa);
        if (i >= 3) times.push(performance.now() - t0);
      }
      const ms = Math.min(...times);
      const gbs = bytes / (ms / 1000) / 1e9;
      console.log(`| ${L} | ${threads} | ${name} | ${ms.toFixed(3)} | ${median(times).toFixed(3)} | ${(bytes / 2 ** 20).toFixed(1)} MiB | ${gbs.toFixed(2)} | ${((100 * gbs) / bw).toFixed(0)}% |`);
    }
    release(qa);
    release(oa);
  }
}
