// `pmkvq judge`: merge response files, re-judge, report pass@1 and voting accuracy.

import { Command } from "commander";
import { loadBenchmark, type Benchmark } from "../eval/benchmarks.js";
import { judgeResponses, readResponsesDir, type JudgeReport } from "../eval/judge.js";
import { UsageError } from "../errors.js";
import { parseIntArg } from "./args.js";

export interface JudgeFlags {
  benchmark?: string;
  version?: string;
  responsesDir?: string;
  datasetPath?: string;
  nResponses?: number;
  json?: boolean;
  trustStored?: boolean;
  compare?: string[];
}

export function judgeCommand(run: (f: JudgeFlags) => void | Promise<void>): Command {
  return new Command("judge")
    .description("Judge saved responses: pass@1, voting accuracy, per-problem figures; or compare two runs")
    .option("--benchmark <name>", "benchmark (aime, cmimc, hmmt, usamo, …); with --dataset-path completeness is checked against all its problems")
    .option("--version <v>", "benchmark version")
    .option("--responses-dir <dir>", "folder of response files (shards are merged; the original's files are read too)")
    .option("--dataset-path <dir>", "benchmark root, to list every problem and its gold answer (else: the problems present)")
    .option("--n-responses <n>", "responses expected per problem (default: the most any problem has)", parseIntArg(1))
    .option("--trust-stored", "use the stored judgements instead of re-judging each response")
    .option("--json", "print the report as JSON")
    .option("--compare <dirs...>", "compare two response folders side by side: --compare DIR_A DIR_B")
    .action(async (f: JudgeFlags) => run(f));
}

function report(dir: string, flags: JudgeFlags, bench: Benchmark | undefined): JudgeReport {
  return judgeResponses(readResponsesDir(dir), { benchmark: bench, nResponses: flags.nResponses, trustStored: flags.trustStored });
}

const pct = (x: number | null) => (x === null ? "—" : `${x.toFixed(1)}%`);

export async function runJudge(flags: JudgeFlags): Promise<void> {
  let bench: Benchmark | undefined;
  if (flags.datasetPath) {
    if (!flags.benchmark || !flags.version) throw new UsageError("--dataset-path needs --benchmark and --version");
    bench = loadBenchmark(flags.datasetPath, flags.benchmark, flags.version);
  }
  if (flags.compare) {
    if (flags.compare.length !== 2) throw new UsageError("--compare takes exactly two folders");
    const [a, b] = flags.compare.map((d) => report(d, flags, bench));
    if (flags.json) {
      process.stdout.write(JSON.stringify({ a, b }, null, 1) + "\n");
      return;
    }
    const ids = [...new Set([...a.per_problem, ...b.per_problem].map((p) => p.id))];
    const row = (r: JudgeReport, id: string) => r.per_problem.find((p) => p.id === id);
    const lines = [`${"problem".padEnd(22)} ${"A pass@1".padStart(9)} ${"B pass@1".padStart(9)}  ${"A voted".padEnd(14)} ${"B voted".padEnd(14)} ${"A len".padStart(7)} ${"B len".padStart(7)}`];
    for (const id of ids) {
      const [pa, pb] = [row(a, id), row(b, id)];
      const voted = (p?: (typeof a.per_problem)[number]) => `${p?.voted_answer ?? "—"}${p?.voting_correct ? " ✓" : ""}`.slice(0, 14);
      lines.push(`${id.padEnd(22)} ${pct(pa?.pass_at_1 ?? null).padStart(9)} ${pct(pb?.pass_at_1 ?? null).padStart(9)}  ${voted(pa).padEnd(14)} ${voted(pb).padEnd(14)} ${(pa?.mean_length.toFixed(0) ?? "—").padStart(7)} ${(pb?.mean_length.toFixed(0) ?? "—").padStart(7)}`);
    }
    lines.push(`${"overall".padEnd(22)} ${pct(a.pass_at_1).padStart(9)} ${pct(b.pass_at_1).padStart(9)}  voting ${pct(a.voting_accuracy)} vs ${pct(b.voting_accuracy)}`);
    process.stdout.write(`A = ${flags.compare[0]}\nB = ${flags.compare[1]}\n` + lines.join("\n") + "\n");
    return;
  }
  if (!flags.responsesDir) throw new UsageError("give --responses-dir DIR (or --compare DIR_A DIR_B)");
  const r = report(flags.responsesDir, flags, bench);
  if (flags.json) {
    process.stdout.write(JSON.stringify(r, null, 1) + "\n");
    return;
  }
  const lines = [
    `${flags.benchmark ?? "responses"} ${flags.version ?? ""}: ${r.n_responses} responses to ${r.n_problems} problems`,
    r.gradable ? `pass@1 ${pct(r.pass_at_1)} · voting accuracy ${pct(r.voting_accuracy)}` : "not auto-gradable (no final answers): responses are for human grading",
    ...(r.missing.length ? [`missing ${r.missing.length} responses: ${r.missing.slice(0, 10).join(", ")}${r.missing.length > 10 ? ", …" : ""}`] : ["complete"]),
    ...(r.duplicates.length ? [`${r.duplicates.length} responses appear in more than one file (the first file's is used)`] : []),
    "",
    `${"problem".padEnd(22)} ${"n".padStart(3)} ${"pass@1".padStart(7)}  ${"voted answer".padEnd(20)} ${"mean len".padStart(8)}`,
    ...r.per_problem.map((p) => `${p.id.padEnd(22)} ${String(p.n_responses).padStart(3)} ${pct(p.pass_at_1).padStart(7)}  ${`${p.voted_answer ?? "—"}${p.voting_correct ? " ✓" : ""}`.slice(0, 20).padEnd(20)} ${p.mean_length.toFixed(0).padStart(8)}`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}
