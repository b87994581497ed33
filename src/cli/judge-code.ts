// `pmkvq judge --benchmark livecodebench`: run every response's tests (or use the stored
// judgements), report pass@1 per problem and overall, and why each failure failed. There is no
// voting accuracy for code, and the report says so.

import { judgeCodeResponses, type CodeJudgeReport } from "../eval/code-judge.js";
import { loadLiveCodeBench, LIVECODEBENCH_PROMPT_TEMPLATE, type CodeBenchmark } from "../eval/livecodebench.js";
import { readResponsesDir, type MergedResponses } from "../eval/responses.js";
import { UsageError } from "../errors.js";
import { sandboxFromFlags } from "./code-judge-options.js";
import { Progress } from "./common.js";
import { count, pct, settingsComparison, sourceLines, warnMixed, type JudgeFlags } from "./judge.js";

/** Refuse to judge LiveCodeBench responses as math (their prompt is recorded in their settings); else the folder. */
export function refuseCodeAsMath(merged: MergedResponses): MergedResponses {
  const code = merged.settings_groups.find((g) => g.settings?.["prompt.instruction"] === LIVECODEBENCH_PROMPT_TEMPLATE);
  if (code) {
    throw new UsageError(`${merged.dir}: ${code.n_responses} responses answer LiveCodeBench's prompt; judge them with --benchmark livecodebench --dataset-path DIR --version V (their tests are run)`);
  }
  return merged;
}

const verdictList = (v: Record<string, number>) =>
  Object.entries(v)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");

function reportLines(r: CodeJudgeReport, flags: JudgeFlags, how: string): string[] {
  const failures = r.per_response.filter((x) => !x.judgement);
  return [
    `${["livecodebench", flags.version].filter(Boolean).join(" ")}: ${count(r.n_responses, "response")} to ${count(r.n_problems, "problem")}`,
    r.n_responses === 0 ? "no responses to judge" : `pass@1 ${pct(r.pass_at_1)} (mean over problems, as LiveCodeBench)`,
    r.voting_note,
    how,
    ...sourceLines(r),
    "",
    `${"problem".padEnd(22)} ${"n".padStart(3)} ${"pass@1".padStart(7)} ${"mean len".padStart(8)}  verdicts`,
    ...r.per_problem.map((p) => `${p.id.padEnd(22)} ${String(p.n_responses).padStart(3)} ${pct(p.pass_at_1).padStart(7)} ${p.mean_length.toFixed(0).padStart(8)}  ${verdictList(p.verdicts)}`),
    ...(failures.length ? ["", "failures:", ...failures.map((x) => `  ${x.key}: ${x.reason}${x.detail ? ` — ${x.detail}` : ""}`)] : []),
  ];
}

export async function runCodeJudge(flags: JudgeFlags): Promise<void> {
  let bench: CodeBenchmark | undefined;
  if (flags.datasetPath) {
    if (!flags.version) throw new UsageError("--dataset-path needs --version (livecodebench: release_vN, release_latest, vN or vA_vB)");
    bench = loadLiveCodeBench(flags.datasetPath, flags.version, { startDate: flags.startDate, endDate: flags.endDate });
  } else if (!flags.trustStored) {
    throw new UsageError("judging livecodebench runs each response's tests: give --dataset-path DIR --version V (the release files test.jsonl, …), or --trust-stored to use the stored judgements");
  }
  const run = flags.trustStored && !flags.datasetPath ? null : sandboxFromFlags(flags, false);
  const how = run ? run.label : "stored judgements (--trust-stored)";
  const judge = async (merged: MergedResponses): Promise<CodeJudgeReport> => {
    const progress = new Progress(`judge ${merged.dir}`, Math.max(1, merged.records.size), !flags.json);
    let told = 0; // stored judgements count as done when the first test run is told
    try {
      return await judgeCodeResponses(merged, {
        benchmark: bench, nResponses: flags.nResponses, trustStored: flags.trustStored, allowMixedSettings: flags.allowMixedSettings,
        sandbox: run?.sandbox, jobs: run?.jobs,
        onJudged: (e) => {
          progress.tick(e.done - told);
          told = e.done;
        },
      });
    } finally {
      progress.stop();
    }
  };
  if (flags.compare) {
    if (flags.compare.length !== 2) throw new UsageError("--compare takes exactly two folders");
    const a = await judge(readResponsesDir(flags.compare[0], "--compare"));
    const b = await judge(readResponsesDir(flags.compare[1], "--compare"));
    warnMixed(a);
    warnMixed(b);
    if (flags.json) {
      process.stdout.write(JSON.stringify({ a, b }, null, 1) + "\n");
      return;
    }
    const ids = [...new Set([...a.per_problem, ...b.per_problem].map((p) => p.id))];
    const row = (r: CodeJudgeReport, id: string) => r.per_problem.find((p) => p.id === id);
    const lines = [`${"problem".padEnd(22)} ${"A pass@1".padStart(9)} ${"B pass@1".padStart(9)} ${"A len".padStart(7)} ${"B len".padStart(7)}`];
    for (const id of ids) {
      const [pa, pb] = [row(a, id), row(b, id)];
      lines.push(`${id.padEnd(22)} ${pct(pa?.pass_at_1 ?? null).padStart(9)} ${pct(pb?.pass_at_1 ?? null).padStart(9)} ${(pa?.mean_length.toFixed(0) ?? "—").padStart(7)} ${(pb?.mean_length.toFixed(0) ?? "—").padStart(7)}`);
    }
    lines.push(`${"overall".padEnd(22)} ${pct(a.pass_at_1).padStart(9)} ${pct(b.pass_at_1).padStart(9)}  (${a.voting_note})`);
    const side = (label: string, r: CodeJudgeReport) => [`${label} = ${r.dir}: ${count(r.n_responses, "response")} to ${count(r.n_problems, "problem")}`, ...sourceLines(r).map((l) => `  ${l}`)];
    process.stdout.write([how, ...side("A", a), ...side("B", b), settingsComparison(a, b), "", ...lines].join("\n") + "\n");
    return;
  }
  if (!flags.responsesDir) throw new UsageError("give --responses-dir DIR (or --compare DIR_A DIR_B)");
  const r = await judge(readResponsesDir(flags.responsesDir));
  warnMixed(r);
  process.stdout.write(flags.json ? JSON.stringify(r, null, 1) + "\n" : reportLines(r, flags, how).join("\n") + "\n");
}
