// The frontier at README scale: `pmkvq frontier`'s default run on the embedded model (every
// method, 8/4/3/2 bits, pm-kvq with W = 32 and 128 and the Hadamard variant), its tables and
// verdicts written into README.md between the frontier-table markers and its chart to
// docs/frontier.svg; also the default model's training summary (train-summary markers).
// Usage: node dist/bench/frontier.js [--problems N] [--out DIR] [--fresh] [--write-readme]
//   [--model DIR --min-length F --readme-suffix S]: another trained model (its answers' step
//   counts drawn from [F·S, S]), written to the README sections frontier-table-S and
//   train-summary-S and to docs/frontier-S.svg; [--pm-stride K]: pm-kvq at every K-th exact
//   allocation only (and the last), for a deep model whose table is long

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_MODEL_DIR, trainedTask } from "../src/demo/demo.js";
import { FRONTIER_METHODS, runFrontier } from "../src/frontier/frontier.js";
import { frontierSummary, levelsTable, settingsTable } from "../src/frontier/report.js";
import { writeFileAtomic } from "../src/util/atomic.js";
import { REPO_ROOT } from "./common.js";
import { writeReadmeSection } from "./readme.js";

const { values: args } = parseArgs({
  options: {
    problems: { type: "string", default: "60" }, out: { type: "string", default: ".bench-cache/frontier" }, fresh: { type: "boolean" }, "write-readme": { type: "boolean" },
    model: { type: "string", default: DEFAULT_MODEL_DIR }, "min-length": { type: "string", default: "1" }, "readme-suffix": { type: "string", default: "" },
    "pm-stride": { type: "string", default: "1" },
  },
});
const modelDir = args.model!;
const pmStride = Number(args["pm-stride"]);
if (!(Number.isInteger(pmStride) && pmStride >= 1)) throw new Error(`--pm-stride must be a whole number ≥ 1, not ${args["pm-stride"]}`);
const suffix = args["readme-suffix"] ? `-${args["readme-suffix"]}` : "";
const t0 = performance.now();
const r = runFrontier({
  modelDir, outDir: args.out!, problems: Number(args.problems), task: trainedTask(modelDir), minLengthFraction: Number(args["min-length"]), fresh: args.fresh,
  methods: [...FRONTIER_METHODS], bits: [8, 4, 3, 2], windows: [32, 128], hadamard: true, calibrationSamples: 16, pmStride,
  onNotice: (m: string) => process.stderr.write(m + "\n"),
  onAnswer: (done: number, total: number, key: string) => done % 50 === 0 && process.stderr.write(`${done}/${total} answers (${key})\n`),
});
const minutes = (performance.now() - t0) / 60000;
const flags = process.argv.slice(2).filter((a) => a !== "--write-readme").join(" ");
const body = [
  `Made by \`npm run bench:frontier -- ${flags}\` (${minutes.toFixed(1)} min on this machine, 2 cores, ${r.generated} answers generated; the same as \`pmkvq frontier --problems ${r.problems}${modelDir === DEFAULT_MODEL_DIR ? "" : ` --model ${path.relative(REPO_ROOT, modelDir)} --min-length ${args["min-length"]}`}\`${pmStride > 1 ? `, but pm-kvq at one exact allocation in ${pmStride} (and the last) only (\`--pm-stride\`, a flag of this bench)` : ""}; chart: \`docs/frontier${suffix}.svg\`):`,
  "",
  frontierSummary(r),
  "",
  settingsTable(r, true),
  "",
  "Reserved protocol, level by level (pm-kvq's best within each fixed-bit setting's reservation):",
  "",
  levelsTable(r, true),
  "",
  `**${r.verdicts.reserved}**`,
  "",
  `**${r.verdicts.held}**`,
  ...(r.skipped.length ? ["", `Not run: ${r.skipped.join("; ")}.`] : []),
].join("\n");
console.log(body);
if (args["write-readme"]) {
  writeReadmeSection(`frontier-table${suffix}`, body);
  writeReadmeSection(`train-summary${suffix}`, trainingSummary(modelDir));
  writeFileAtomic(path.join(REPO_ROOT, "docs", `frontier${suffix}.svg`), fs.readFileSync(path.join(args.out!, "frontier.svg"), "utf8"));
}

/** A trained model's curve, from its train_log.json (after its first stage's, train_log_stage1.json, when it was trained in two). */
function trainingSummary(dir: string): string {
  const files = ["train_log_stage1.json", "train_log.json"].filter((f) => fs.existsSync(path.join(dir, f)));
  return files.map((f) => stageSummary(path.join(dir, f))).join("\n\n");
}

function stageSummary(file: string): string {
  const t = JSON.parse(fs.readFileSync(file, "utf8")) as {
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
    `Training (from \`${path.relative(REPO_ROOT, file)}\`): ${t.log.length} steps of 8 problems in ${((t.seconds ?? 0) / 60).toFixed(0)} min on this machine (${last.tokensPerS.toFixed(0)} tokens/s). Means over each 100 steps (token accuracy over solution tokens, teacher-forced):`,
    "",
    "| steps | loss | token accuracy | facts ≤ | solution steps ≤ |",
    "|---|---:|---:|---:|---:|",
    ...rows,
  ].join("\n");
}
