// Quality of every KV-cache method at equal honest memory on stories260K: the 300-token
// reference sequence fed token by token (decode-style, as in generation), mean KL divergence
// of next-token distributions from full precision and greedy (argmax) agreement, for RTN,
// KIVI, MiKV and RotateKV at 4- and 2-bit K/V, each next to pm-kvq with the largest uniform
// per-block budget whose measured held bytes do not exceed that baseline's.
// Usage: node dist/bench/baselines.js [--json FILE] [--write-readme]

import path from "node:path";
import { parseArgs } from "node:util";
import { createCache, prepareModelForMethod, type CacheSpec } from "../src/cache/factory.js";
import type { KvCache } from "../src/model/kv-cache.js";
import { KvBudgetError } from "../src/errors.js";
import { loadModel, type LoadedModel } from "../src/model/checkpoint.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { SHARED_DIR } from "./common.js";
import { writeReadmeSection } from "./readme.js";

const { values: args } = parseArgs({ options: { json: { type: "string" }, "write-readme": { type: "boolean" } } });
const dir = path.join(SHARED_DIR, "models", "stories260K");
const reference = (await import("node:fs")).readFileSync(path.join(dir, "reference.json"), "utf8");
const ids: number[] = JSON.parse(reference).long_case.ids;
const PROMPT = 5;

interface Run {
  logProbs: Float64Array[];
  heldBytes: number;
  codeBytes: number;
  bodyBits: number[];
}

/** Prefill the prompt, then feed the rest one token at a time; log-probs of every prediction. */
function run(model: LoadedModel, cache: KvCache): Run | null {
  const V = model.config.vocabSize;
  const out: Float64Array[] = [];
  const push = (row: Float32Array) => {
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = Math.log(sum) + max;
    out.push(Float64Array.from(row, (v) => v - lse));
  };
  try {
    const all = model.transformer.forward(ids.slice(0, PROMPT), [0, 1, 2, 3, 4], cache, "all");
    for (let t = 0; t < PROMPT; t++) push(all.subarray(t * V, (t + 1) * V));
    for (let t = PROMPT; t < ids.length - 1; t++) push(model.transformer.forward([ids[t]], [t], cache, "last"));
  } catch (e) {
    if (e instanceof KvBudgetError) return null;
    throw e;
  }
  const st = cache.stats();
  return { logProbs: out, heldBytes: st.totalHeldBytes, codeBytes: st.totalCodeBytes, bodyBits: st.blocks.map((b) => b.bodyBits) };
}

function compare(full: Run, r: Run): { kl: number; agreement: number } {
  let kl = 0;
  let agree = 0;
  full.logProbs.forEach((p, t) => {
    const q = r.logProbs[t];
    let argP = 0;
    let argQ = 0;
    for (let i = 0; i < p.length; i++) {
      kl += Math.exp(p[i]) * (p[i] - q[i]);
      if (p[i] > p[argP]) argP = i;
      if (q[i] > q[argQ]) argQ = i;
    }
    if (argP === argQ) agree++;
  });
  return { kl: kl / full.logProbs.length, agreement: agree / full.logProbs.length };
}

const base = loadModel(dir);
const full = run(base, createCache(base.config, { method: "original" }))!;
const rows: Record<string, unknown>[] = [];
const fmtKB = (b: number) => (b / 1024).toFixed(1);

function methodRun(spec: CacheSpec): Run {
  const model = spec.method === "rotatekv" ? loadModel(dir) : base;
  prepareModelForMethod(model.transformer, spec);
  return run(model, createCache(model.config, spec))!;
}

/** pm-kvq with the largest uniform budget whose held bytes fit in `heldLimit`. */
function pmkvqAt(heldLimit: number, window: number): { run: Run; budgetMB: number } | null {
  const spec = (mb: number): CacheSpec => ({ method: "pm-kvq", budgetsMB: new Array(5).fill(mb), progressive: { nWindowTokens: window } });
  let lo = 0;
  let hi = 0.25;
  let best: { run: Run; budgetMB: number } | null = null;
  for (let i = 0; i < 18; i++) {
    const mid = (lo + hi) / 2;
    const r = run(base, createCache(base.config, spec(mid)));
    if (r && r.heldBytes <= heldLimit) {
      best = { run: r, budgetMB: mid };
      lo = mid;
    } else if (!r) lo = mid; // too small to hold the sequence: the budget must grow
    else hi = mid;
  }
  return best;
}

const lines = [
  "| K/V bits | method | mean KL ↓ | greedy agreement ↑ | held KiB | code KiB | final body bits |",
  "|---|---|---:|---:|---:|---:|---|",
  `| 32 (float) | original | 0 | 100% | ${fmtKB(full.heldBytes)} | ${fmtKB(full.codeBytes)} | — |`,
];
for (const bits of [4, 2]) {
  for (const method of ["rtn", "kivi", "mikv", "rotatekv"] as const) {
    const r = methodRun({ method, kBits: bits, vBits: bits, mikvSinkTokens: 16, rotatekv: { nPivotTokens: 1 } });
    const q = compare(full, r);
    rows.push({ bits, method, kl: q.kl, agreement: q.agreement, heldBytes: r.heldBytes, codeBytes: r.codeBytes });
    lines.push(`| ${bits} | ${method} | ${q.kl.toFixed(4)} | ${(100 * q.agreement).toFixed(1)}% | ${fmtKB(r.heldBytes)} | ${fmtKB(r.codeBytes)} | — |`);
    for (const window of [32, 128]) {
      const p = pmkvqAt(r.heldBytes, window);
      const label = `↳ pm-kvq, W = ${window}, same held memory`;
      if (!p) {
        lines.push(`| ${bits} | ${label} | — | — | — | — | does not fit |`);
        rows.push({ bits, method: `pm-kvq-W${window}`, against: method, fits: false });
        continue;
      }
      const pq = compare(full, p.run);
      rows.push({ bits, method: `pm-kvq-W${window}`, against: method, budgetMB: p.budgetMB, kl: pq.kl, agreement: pq.agreement, heldBytes: p.run.heldBytes, codeBytes: p.run.codeBytes, bodyBits: p.run.bodyBits });
      lines.push(`| ${bits} | ${label} | ${pq.kl.toFixed(4)} | ${(100 * pq.agreement).toFixed(1)}% | ${fmtKB(p.run.heldBytes)} | ${fmtKB(p.run.codeBytes)} | ${p.run.bodyBits.join(",")} |`);
    }
  }
}
const table = lines.join("\n");
console.log(table);
if (args.json) writeFileAtomic(args.json, JSON.stringify({ rows }, null, 1) + "\n");
if (args["write-readme"]) {
  writeReadmeSection("baselines-table", `Made by \`npm run bench:baselines\` (stories260K, the 300-token reference sequence fed token by token, ${ids.length - 1} predictions; held = bytes of the buffers each cache holds, codes + scales + zeros + spare capacity; MiKV keeps 16 tokens at full precision, RotateKV 1 pivot token):\n\n${table}`);
}
