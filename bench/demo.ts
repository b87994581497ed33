// The demo at README scale: `pmkvq demo` on the default model over many held-out problems
// (default 200), its table written into README.md between the demo-table markers.
// Usage: node dist/bench/demo.js [--problems N] [--calibration-samples N] [--out DIR] [--write-readme]

import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_MODEL_DIR, runDemo } from "../src/demo/demo.js";
import { demoSummary, demoTable } from "../src/demo/report.js";
import { writeReadmeSection } from "./readme.js";

const { values: args } = parseArgs({
  options: { problems: { type: "string", default: "200" }, "calibration-samples": { type: "string", default: "16" }, out: { type: "string", default: "pmkvq-demo-200" }, "write-readme": { type: "boolean" } },
});
const problems = Number(args.problems);
const samples = Number(args["calibration-samples"]);
const t0 = performance.now();
const r = runDemo({ modelDir: DEFAULT_MODEL_DIR, outDir: args.out!, problems, calibrationSamples: samples, fourBit: true, onProgress: (m) => process.stderr.write(m + "\n") });
const minutes = (performance.now() - t0) / 60000;
const body = `Made by \`npm run bench:demo -- --problems ${problems}\` (${minutes.toFixed(1)} min on this machine, 2 cores; the chart is \`${path.join(args.out!, "demo.svg")}\`):\n\n${demoSummary(r)}\n\n${demoTable(r, true)}`;
console.log(body);
if (args["write-readme"]) writeReadmeSection("demo-table", body);
