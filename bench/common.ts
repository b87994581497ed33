// Helpers shared by the benchmark scripts.

import path from "node:path";
import { fileURLToPath } from "node:url";
import fs from "node:fs";

export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return dir;
})();

export const SHARED_DIR = path.resolve(REPO_ROOT, "..", "shared");

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
