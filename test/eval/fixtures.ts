// A tiny benchmark folder in the original's layout, written by the tests that need one.

import fs from "node:fs";
import path from "node:path";

/** A benchmark "toy" version "1" in the original's layout, three problems. */
export function writeToyBenchmark(root: string, problems: [string, string][]): void {
  const dir = path.join(root, "toy", "toy_1");
  fs.mkdirSync(path.join(dir, "problems"), { recursive: true });
  fs.writeFileSync(path.join(dir, "config.yaml"), 'instruction: "Please reason step by step, and put your final answer within \\\\boxed{{}}."\nn_problems: 3\n');
  fs.writeFileSync(path.join(dir, "answers.csv"), "id,answer\n" + problems.map(([, a], i) => `${i + 1},"${a}"`).join("\n") + "\n");
  problems.forEach(([q], i) => fs.writeFileSync(path.join(dir, "problems", `${i + 1}.tex`), q));
}

