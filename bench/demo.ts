// The demo at README scale: `pmkvq demo` on the default model over many held-out problems
// (default 200), its table written into README.md between the demo-table markers.
// Usage: node dist/bench/demo.js [--problems N] [--calibration-samples N] [--out DIR] [--write-readme]

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_MODEL_DIR, runDemo, trainedTask } from "../src/demo/demo.js";
import { demoSummary, demoTable } from "../src/demo/report.js";
import { writeReadmeSection } from "./readme.js";

const { values: args } = parseArgs({
  options: { problems: { type: "string", default: "200" }, "calibration-samples": { type: "string", default: "16" }, out: { type: "string", default: "pmkvq-demo-200" }, facts: { type: "string" }, "task-steps": { type: "string" }, "write-readme": { type: "boolean" } },
});
const problems = Number(args.problems);
const samples = Number(args["calibration-samples"]);
const t0 = performance.now();
const trained = trainedTask(DEFAULT_MODEL_DIR);
const task = { facts: args.facts ? Number(args.facts) : trained.facts, steps: args["task-steps"] ? Number(args["task-steps"]) : trained.steps };
const r = runDemo({ modelDir: DEFAULT_MODEL_DIR, outDir: args.out!, problems, calibrationSamples: samples, fourBit: true, task, onProgress: (m) => process.stderr.write(m + "\n") });
const minutes = (performance.now() - t0) / 60000;
const flags = process.argv.slice(2).filter((a) => a !== "--write-readme").join(" ");
const body = `Made by \`npm run bench:demo -- ${flags}\` (${minutes.toFixed(1)} min on this machine, 2 cores; the chart is \`${path.join(args.out!, "demo.svg")}\`):\n\n${demoSummary(r)}\n\n${demoTable(r, true)}`;
console.log(body);
if (args["write-readme"]) {
  writeReadmeSection("demo-table", body);
  writeReadmeSection("train-summary", trainingSummary());
}

/** The default model's training curve, from its train_log.json. */
function trainingSummary(): string {
  const t = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, "train_log.json"), "utf8")) as {
    seconds?: number;
    log: { step: number; loss: number; tokenAccuracy: number; maxSteps: number; maxFacts?: number; tokensPerS: number }[];
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rows = [];
  for (let s = 0; s < t.log.length; s += 100) {
    const w = t.log.slice(s, s + 100);
    rows.push(`| ${s + 1}–${s + w.length} | ${mean(w.map((e) => e.loss)).toFixed(3)} | ${(100 * mean(w.map((e) => e.tokenAccuracy))).toFixed(1)}% | ${w[w.length - 1].maxFacts ?? "—"} | ${w[w.length - 1].maxSteps} |`);
  }
  const last = t.log[t.log.length - 1];
  return [
    `Training (from \`models/default/train_log.json\`): ${t.log.length} steps of 8 problems in ${((t.seconds ?? 0) / 60).toFixed(0)} min on this machine (${last.tokensPerS.toFixed(0)} tokens/s). Means over each 100 steps (token accuracy over solution tokens, teacher-forced):`,
    "",
    "| steps | loss | token accuracy | facts ≤ | solution steps ≤ |",
    "|---|---:|---:|---:|---:|",
    ...rows,
  ].join("\n");
}
