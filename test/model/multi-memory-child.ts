// Child process of multi-memory.test.ts (PMKVQ_MEMORY_MAX_MIB and PMKVQ_THREADS must be set
// before the kernel runtime starts): loads a model folder, runs prefill + greedy decode with
// several cache methods, prints one JSON line (logits, tokens, arenas, bytes in use).
//   node multi-memory-child.js DIR [BUG]

import { createCache, type CacheSpec } from "../../src/cache/factory.js";
import { loadTransformer } from "../../src/model/checkpoint.js";
import { placementArenas } from "../../src/model/placement.js";
import { arenaBytesInUse, arenaList, arenaOf } from "../../src/tensor/memory.js";
import { kernelKind, kernelThreads, releaseKernelScratch } from "../../src/tensor/wasm.js";

const [dir, bug] = process.argv.slice(2);
// `node --test dist/test` also runs this file, with no folder: nothing to do then
if (dir === undefined) process.exit(0);
const PROMPT = [1, 17, 300, 42, 99, 7, 250, 511, 3, 64, 128, 5, 77, 200, 31, 9, 400, 12, 6, 88];
const DECODE = 8;

const before = arenaBytesInUse();
const { config, transformer } = loadTransformer(dir, { kvTokens: 64, chunkTokens: 16 });
if (bug === "skip-residual-copy") (transformer as unknown as { crossTo: (a: number, s: unknown) => unknown }).crossTo = function (this: { stateFor(a: number, T: number): unknown }, a: number, _s: unknown, T?: number) {
  return this.stateFor(a, T ?? 1); // planted bug: the next memory's residual stream is not carried over
} as never;
const methods: Record<string, CacheSpec> = {
  original: { method: "original" },
  "pm-kvq": { method: "pm-kvq", budgetsMB: new Array(config.numLayers).fill(0.004), progressive: { nSinkTokens: 2, nWindowTokens: 4 } },
  kivi: { method: "kivi", kBits: 2, vBits: 2, groupSize: 32 },
};
const results: Record<string, { prefill: number[]; decode: number[][]; tokens: number[] }> = {};

/** Buffers of a cache layer (found by walking its fields) that are not in the memory of their block. */
function misplaced(layer: object, arena: number): string[] {
  const out: string[] = [];
  const seen = new Set<object>();
  const walk = (o: unknown, where: string, depth: number) => {
    if (o === null || typeof o !== "object" || seen.has(o) || depth > 6) return;
    seen.add(o);
    if (ArrayBuffer.isView(o)) {
      const a = arenaOf(o);
      if (o.byteLength > 0 && a !== null && a.index !== arena) out.push(`${where} in memory ${a.index}`); // ordinary arrays are bookkeeping
      return;
    }
    for (const [k, v] of Object.entries(o)) walk(v, `${where}.${k}`, depth + 1);
  };
  walk(layer, "layer", 0);
  return out;
}
const wrongPlace: string[] = [];
const checkPlaces = (cache: { layers: object[] }, when: string) =>
  cache.layers.forEach((l, i) => wrongPlace.push(...misplaced(l, transformer.placement.blockArena[i]).map((m) => `${when}, block ${i}: ${m}`)));
for (const [name, spec] of Object.entries(methods)) {
  const cache = createCache(config, spec, transformer.placement);
  checkPlaces(cache, `${name} made`);
  // prefill in two chunks (16 + 4 tokens), all logits of the second
  transformer.forward(PROMPT.slice(0, 16), PROMPT.slice(0, 16).map((_, i) => i), cache, "none");
  const prefill = Array.from(transformer.forward(PROMPT.slice(16), [16, 17, 18, 19], cache, "all"));
  const last = prefill.slice(-config.vocabSize);
  let next = last.indexOf(Math.max(...last));
  const tokens: number[] = [next];
  const decode: number[][] = [];
  for (let t = 0; t < DECODE; t++) {
    const logits = Array.from(transformer.forward([next], [PROMPT.length + t], cache, "last"));
    decode.push(logits);
    next = logits.indexOf(Math.max(...logits));
    tokens.push(next);
  }
  checkPlaces(cache, `${name} after decode`);
  cache.dispose();
  results[name] = { prefill, decode, tokens };
}
const arenasUsed = placementArenas(transformer.placement).length;
transformer.dispose();
releaseKernelScratch();
const after = arenaBytesInUse();
console.log(JSON.stringify({ kernels: kernelKind(), threads: kernelThreads(), arenas: arenaList().length, arenasUsed, placement: transformer.placement, wrongPlace, before, after, results }));
