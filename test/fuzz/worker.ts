// A fuzz worker: runs the cases of one target that fuzz.test.ts hands it, reporting each
// before it starts and after it ends, so the main thread can stop a case that hangs. Loaded
// by node --test as a file of its own it does nothing (it only runs as a worker).

import fs from "node:fs";
import path from "node:path";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { PmkvqError } from "../../src/errors.js";
import { seededRandom } from "../helpers.js";
import { TARGETS } from "./targets.js";

export interface WorkerJob {
  fuzzTarget: string;
  seed: number;
  indices: number[];
  /** Cases are written to root/case-N; fixtures to root/fixture. */
  root: string;
  /** Failing cases are copied here. */
  keepDir: string;
  caseMs: number;
}

export type CaseOutcome = "typed" | "accepted" | "failed";

export type WorkerMessage =
  | { type: "ready" }
  | { type: "begin"; index: number; what: string }
  | { type: "end"; index: number; outcome: CaseOutcome; what: string; detail: string; ms: number };

/** The case's own random numbers: the same seed, target and index give the same case on any run. */
export function caseRandom(seed: number, target: string, index: number): () => number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${target}:${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return seededRandom(h);
}

export const caseDirOf = (root: string, index: number) => path.join(root, `case-${index}`);

/** "TypeError: … at readHeader (src/model/gguf.ts…)" — the error and the top of its stack. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return `a thrown ${typeof e}: ${String(e)}`;
  const top = (e.stack ?? "").split("\n").filter((l) => l.trim().startsWith("at ")).slice(0, 3).map((l) => l.trim());
  return `${e.name}: ${e.message}${top.length ? ` [${top.join(" ← ")}]` : ""}`;
}

function runJob(job: WorkerJob): void {
  const target = TARGETS.find((t) => t.name === job.fuzzTarget);
  if (!target) throw new Error(`no fuzz target "${job.fuzzTarget}"`);
  const fixture = target.setup(path.join(job.root, "fixture"));
  const post = (m: WorkerMessage) => parentPort!.postMessage(m);
  post({ type: "ready" });
  for (const index of job.indices) {
    const caseDir = caseDirOf(job.root, index);
    fs.rmSync(caseDir, { recursive: true, force: true });
    fs.mkdirSync(caseDir, { recursive: true });
    const c = target.prepare(fixture, caseRandom(job.seed, target.name, index), caseDir);
    post({ type: "begin", index, what: c.what });
    const t0 = performance.now();
    let outcome: CaseOutcome = "accepted";
    let detail = "";
    try {
      target.run(caseDir, fixture);
      if (c.refuse) {
        outcome = "failed";
        detail = `accepted, but ${c.refuse}`;
      }
    } catch (e) {
      const named = [caseDir, ...c.files].some((n) => e instanceof Error && e.message.includes(n));
      if (e instanceof PmkvqError && named) outcome = "typed";
      else {
        outcome = "failed";
        detail = `${e instanceof PmkvqError ? "a typed error that names no file of the case" : "not a PmkvqError"}: ${describeError(e)}`;
      }
    }
    const ms = performance.now() - t0;
    if (outcome !== "failed" && ms > job.caseMs) {
      outcome = "failed";
      detail = `took ${ms.toFixed(0)} ms (limit ${job.caseMs} ms)`;
    }
    if (outcome === "failed") keepCase(job, index, c.what, detail);
    fs.rmSync(caseDir, { recursive: true, force: true });
    post({ type: "end", index, outcome, what: c.what, detail, ms });
  }
}

/** Copy a failing case where the report says, with a note of what was done to it. */
export function keepCase(job: WorkerJob, index: number, what: string, detail: string): string {
  const dest = path.join(job.keepDir, `${job.fuzzTarget}-seed${job.seed}-case${index}`);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.cpSync(caseDirOf(job.root, index), dest, { recursive: true });
  fs.writeFileSync(path.join(dest, "FUZZ-CASE.txt"), `${what}\n${detail}\n`);
  return dest;
}

if (!isMainThread && (workerData as { fuzzTarget?: string } | null)?.fuzzTarget) runJob(workerData as WorkerJob);
