// Shared test helpers: where the repository and ../shared are, temp folders, random data.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (tests run from dist/test/…, sources live in test/…). */
export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return dir;
})();

export const SHARED = path.resolve(REPO_ROOT, "..", "shared");
export const STORIES_DIR = path.join(SHARED, "models", "stories260K");
export const DATASETS_DIR = path.join(SHARED, "datasets");

export function readStoriesReference(): {
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
  logits_last: number[];
  long_case: { ids: number[]; mean_nll: number; nll_per_token: number[]; logits_last: number[]; n_predicted: number };
  tokenizer_cases: { text: string; ids: number[] }[];
  bos_only_greedy_200: { ids?: number[]; text?: string } & Record<string, unknown>;
  top5_by_position: [number, number][][];
} {
  return JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "reference.json"), "utf8"));
}

/** A fresh temp folder, removed when the process exits. */
export function tempDir(prefix = "pmkvq-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic pseudo-random numbers for test data (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Float32Array of n values uniform in [-scale, scale). */
export function randomArray(n: number, rand: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/** max |a − b| / max(|b|, floor) over elements. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  let scale = floor;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
}
