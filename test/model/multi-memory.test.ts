// A model spread over several WebAssembly memories (PMKVQ_MEMORY_MAX_MIB caps each) computes
// what the same model in one memory computes: the same logits, bit for bit, and the same greedy
// tokens, for prefill and decode, with 1 and 2 threads and several cache methods; bytes in use
// return to where they were. Each run is a child process (the cap is read when the runtime starts).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeRandomModelDir } from "../model-fixtures.js";
import { tempDir } from "../helpers.js";

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "multi-memory-child.js");

interface ChildResult {
  kernels: string;
  threads: number;
  arenas: number;
  arenasUsed: number;
  placement: { blockArena: number[]; embedArena: number; headArena: number };
  before: number;
  after: number;
  /** Cache buffers found outside their block's memory. */
  wrongPlace: string[];
  results: Record<string, { prefill: number[]; decode: number[][]; tokens: number[] }>;
}

function runChild(dir: string, env: Record<string, string>, bug?: string): ChildResult {
  const r = spawnSync(process.execPath, [CHILD, dir, ...(bug ? [bug] : [])], { encoding: "utf8", timeout: 120000, env: { ...process.env, PMKVQ_MEMORY_MAX_MIB: "", ...env } });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as ChildResult;
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest |Δ| over every logit of every method, and whether all greedy tokens agree. */
function compare(one: ChildResult, many: ChildResult): { maxAbs: number; sameTokens: boolean } {
  let maxAbs = 0;
  let sameTokens = true;
  for (const [m, r] of Object.entries(one.results)) {
    const o = many.results[m];
    maxAbs = Math.max(maxAbs, maxDiff(r.prefill, o.prefill), ...r.decode.map((d, i) => maxDiff(d, o.decode[i])));
    sameTokens &&= r.tokens.join() === o.tokens.join();
  }
  return { maxAbs, sameTokens };
}

// head_dim 32 and group 32, so the WebAssembly attention kernels (not their twins) run
const SPEC = { layers: 6, hidden: 128, heads: 4, kvHeads: 2, headDim: 32, intermediate: 352, vocab: 512, seed: 7 };
const dir = writeRandomModelDir(path.join(tempDir("pmkvq-multi-"), "model"), SPEC);

for (const threads of ["1", "2"]) {
  test(`a model over ≥ 3 memories gives the one-memory logits and tokens (${threads} thread${threads === "1" ? "" : "s"}; original, pm-kvq, kivi)`, () => {
    const one = runChild(dir, { PMKVQ_THREADS: threads });
    const many = runChild(dir, { PMKVQ_THREADS: threads, PMKVQ_MEMORY_MAX_MIB: "1" });
    assert.equal(one.kernels, "wasm", "the WebAssembly kernels must be on (dist/kernels.wasm built)");
    assert.equal(many.threads, Number(threads));
    assert.equal(one.arenasUsed, 1);
    assert.ok(many.arenasUsed >= 3, `spans ${many.arenasUsed} memories: ${JSON.stringify(many.placement)}`);
    // ranges are contiguous and in order
    assert.deepEqual([...many.placement.blockArena].sort((a, b) => a - b), many.placement.blockArena);
    const { maxAbs, sameTokens } = compare(one, many);
    assert.equal(maxAbs, 0, `max |Δ logit| = ${maxAbs}`);
    assert.ok(sameTokens, "greedy tokens differ");
    assert.deepEqual(many.wrongPlace, [], "every KV cache buffer lives in the memory of its block");
    // the random model is not degenerate: methods differ from each other
    assert.notEqual(maxDiff(one.results.original.decode[3], one.results.kivi.decode[3]), 0);
    for (const r of [one, many]) assert.equal(r.after, r.before, "bytes in use return to baseline after dispose");
  });
}

test("bit-equality means the WebAssembly kernels ran in every memory: the plain-TypeScript twins give other bits", () => {
  const many = runChild(dir, { PMKVQ_THREADS: "1", PMKVQ_MEMORY_MAX_MIB: "1" });
  const twins = runChild(dir, { PMKVQ_KERNELS: "ts" });
  assert.equal(twins.kernels, "ts");
  const { maxAbs } = compare(many, twins);
  assert.ok(maxAbs > 0 && maxAbs < 1e-3, `wasm vs ts max |Δ| = ${maxAbs}`);
});

test("a tied head computes in the embedding's memory (the residual stream goes back to the first memory)", () => {
  const tied = writeRandomModelDir(path.join(tempDir("pmkvq-multi-"), "tied"), { ...SPEC, tied: true, seed: 8 });
  const one = runChild(tied, { PMKVQ_THREADS: "2" });
  const many = runChild(tied, { PMKVQ_THREADS: "2", PMKVQ_MEMORY_MAX_MIB: "1" });
  assert.ok(many.arenasUsed >= 3);
  assert.equal(many.placement.headArena, many.placement.embedArena);
  assert.notEqual(many.placement.blockArena.at(-1), many.placement.headArena);
  const { maxAbs, sameTokens } = compare(one, many);
  assert.equal(maxAbs, 0);
  assert.ok(sameTokens);
  assert.equal(many.after, many.before);
});

test("the comparison catches a planted bug: the residual stream not carried to the next memory", () => {
  const one = runChild(dir, { PMKVQ_THREADS: "1" });
  const buggy = runChild(dir, { PMKVQ_THREADS: "1", PMKVQ_MEMORY_MAX_MIB: "1" }, "skip-residual-copy");
  const { maxAbs } = compare(one, buggy);
  assert.ok(maxAbs > 1e-3, `the planted bug must change the logits (max |Δ| = ${maxAbs})`);
});
