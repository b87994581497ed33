// Fuzzing the readers of untrusted files: model folders (single file and sharded: config,
// index, safetensors, tokenizer, tokenizer and generation configs), GGUF files, --kv-budgets
// files, calibration manifests, response files and rep scales, each mutated one way per case (targets.ts has the table, mutate.ts
// the mutations). Every case must end in one of two ways:
//   1. a PmkvqError whose message names a file of the case (its path or base name, or the folder);
//   2. the input is accepted — a model loads and generate(model, "Once upon a time",
//      { maxNewTokens: 4 }) returns; a GGUF or budgets file reads back what it promises.
// Anything else — a TypeError, a RangeError, an untyped Error, a typed error naming no file, a
// case running past the time limit — fails the test with the seed and case index.
//
// Seeded and deterministic: the normal suite runs a few hundred cases (seconds). Environment:
//   PMKVQ_FUZZ_CASES=N    run N cases per target instead (a longer run)
//   PMKVQ_FUZZ_SEED=S     another seed (default 1)
//   PMKVQ_FUZZ_ONLY=T[:I] only target T (see TARGETS in targets.ts), only case I
//   PMKVQ_FUZZ_CASE_MS=M  the time limit of one case (default 5000 ms)
// A failing case is copied to $TMPDIR/pmkvq-fuzz-failures/<target>-seed<S>-case<I>/ with a note.
// Each case runs in a worker thread, so one that hangs is stopped and reported, not waited for.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { TARGETS, type FuzzTarget } from "./targets.js";
import { keepCase, type WorkerJob, type WorkerMessage } from "./worker.js";

const envInt = (name: string, fallback: number): number => {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative integer`);
  return n;
};

const SEED = envInt("PMKVQ_FUZZ_SEED", 1);
const CASES = process.env.PMKVQ_FUZZ_CASES ? envInt("PMKVQ_FUZZ_CASES", 0) : null;
const CASE_MS = envInt("PMKVQ_FUZZ_CASE_MS", 5000);
const [ONLY_TARGET, ONLY_INDEX] = (process.env.PMKVQ_FUZZ_ONLY ?? "").split(":");
/** Building a target's fixture (copying the model, writing shards or a GGUF) may take this long. */
const SETUP_MS = 60_000;

const ROOT = fs.mkdtempSync(path.join(os.tmpdir(), "pmkvq-fuzz-"));
process.on("exit", () => fs.rmSync(ROOT, { recursive: true, force: true }));
const KEEP_DIR = path.join(os.tmpdir(), "pmkvq-fuzz-failures");
const WORKER = new URL("./worker.js", import.meta.url);

interface Failure {
  index: number;
  what: string;
  detail: string;
}

interface Summary {
  tried: number;
  typed: number;
  accepted: number;
  failures: Failure[];
}

/** Run `indices` of `target` in a worker; a case past the limit is stopped and the rest go on in a new worker. */
async function runTarget(target: FuzzTarget<unknown>, indices: number[]): Promise<Summary> {
  const summary: Summary = { tried: 0, typed: 0, accepted: 0, failures: [] };
  const root = path.join(ROOT, target.name);
  let pending = indices;
  while (pending.length) {
    const job: WorkerJob = { fuzzTarget: target.name, seed: SEED, indices: pending, root, keepDir: KEEP_DIR, caseMs: CASE_MS };
    pending = await new Promise<number[]>((resolve, reject) => {
      const w = new Worker(WORKER, { workerData: job });
      let left = [...job.indices];
      let current: { index: number; what: string } | null = null;
      let ready = false;
      let stopped = "";
      let timer = setTimeout(() => stop(`setting up the fixture took more than ${SETUP_MS} ms`), SETUP_MS);
      const stop = (why: string) => {
        stopped = why;
        void w.terminate();
      };
      const fail = (detail: string) => {
        if (!current) return;
        const kept = keepCase(job, current.index, current.what, detail);
        summary.tried++;
        summary.failures.push({ index: current.index, what: current.what, detail: `${detail} (case kept in ${kept})` });
        left = left.filter((i) => i !== current!.index);
        current = null;
      };
      w.on("message", (m: WorkerMessage) => {
        clearTimeout(timer);
        if (m.type === "ready") ready = true;
        else if (m.type === "begin") {
          current = { index: m.index, what: m.what };
          timer = setTimeout(() => stop(`still running after ${CASE_MS * 2} ms (a hang?)`), CASE_MS * 2);
        } else {
          current = null;
          left = left.filter((i) => i !== m.index);
          summary.tried++;
          if (m.outcome === "typed") summary.typed++;
          else if (m.outcome === "accepted") summary.accepted++;
          else summary.failures.push({ index: m.index, what: m.what, detail: m.detail });
        }
      });
      w.on("error", (e) => {
        if (!ready) stopped ||= `the worker failed before its first case: ${e.stack ?? e}`;
        else fail(`the worker died: ${e.stack ?? e}`);
      });
      w.on("exit", (code) => {
        clearTimeout(timer);
        if (!ready) return reject(new Error(`fuzz ${target.name}: ${stopped || `the worker exited with code ${code} before its first case`}`));
        if (current) fail(stopped || `the worker exited with code ${code} during the case`);
        resolve(left);
      });
    });
  }
  return summary;
}

function indicesFor(target: FuzzTarget<unknown>): number[] {
  if (ONLY_INDEX !== undefined && ONLY_INDEX !== "") return [Number(ONLY_INDEX)];
  return Array.from({ length: CASES ?? target.cases }, (_, i) => i);
}

for (const target of TARGETS) {
  const skip = ONLY_TARGET && ONLY_TARGET !== target.name ? `PMKVQ_FUZZ_ONLY=${process.env.PMKVQ_FUZZ_ONLY}` : false;
  test(`fuzz ${target.name}: every mutated input is refused with a typed error naming its file, or accepted`, { skip }, async () => {
    const t0 = performance.now();
    const s = await runTarget(target, indicesFor(target));
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `fuzz ${target.name} (seed ${SEED}): ${s.tried} tried, ${s.typed} typed errors, ${s.accepted} ${target.accepted}, ${s.failures.length} failed (${seconds} s)`,
    );
    const report = s.failures.slice(0, 12).map((f) =>
      `  case ${f.index}: ${f.what}\n    → ${f.detail}\n    reproduce: PMKVQ_FUZZ_SEED=${SEED} PMKVQ_FUZZ_ONLY=${target.name}:${f.index} node --test <build>/test/fuzz/fuzz.test.js`,
    );
    assert.equal(s.failures.length, 0, `${s.failures.length} of ${s.tried} ${target.name} cases failed (seed ${SEED}):\n${report.join("\n")}`);
    assert.equal(s.tried, indicesFor(target).length);
  });
}
