// `pmkvq judge`: merge response files, re-judge, report pass@1 and voting accuracy, which files
// were read under which settings, and which folder entries were not read.

import path from "node:path";
import { Command, Option } from "commander";
import { loadBenchmark, type Benchmark } from "../eval/benchmarks.js";
import { describeSettingsMix, JUDGE_RULES, judgeResponses, readResponsesDir, type JudgeReport, type JudgeRules } from "../eval/judge.js";
import type { SettingsGroup, SkippedEntry } from "../eval/responses.js";
import { diffSettings, formatDifferences, type SettingsDifference } from "../eval/settings.js";
import { UsageError } from "../errors.js";
import { LIVECODEBENCH } from "../eval/livecodebench.js";
import { parseIntArg } from "./args.js";
import { addCodeJudgeOptions, type CodeJudgeFlags } from "./code-judge-options.js";
import { refuseCodeAsMath, runCodeJudge } from "./judge-code.js";

export interface JudgeFlags extends Partial<CodeJudgeFlags> {
  benchmark?: string;
  version?: string;
  responsesDir?: string;
  datasetPath?: string;
  nResponses?: number;
  json?: boolean;
  trustStored?: boolean;
  allowMixedSettings?: boolean;
  compare?: string[];
  rules?: JudgeRules | "both";
}

export function judgeCommand(run: (f: JudgeFlags) => void | Promise<void>): Command {
  const cmd = new Command("judge")
    .description(
      "Judge saved responses: pass@1, voting accuracy, per-problem figures; or compare two runs. " +
        "Reads every .json and .jsonl file of the folder (one JSON object of records keyed \"<problem id>.<i>\", as ours and the " +
        "original's; or JSON lines); lists the files read with their settings, and every other entry as skipped or ignored (hidden)",
    )
    .option("--benchmark <name>", "benchmark (aime, cmimc, hmmt, usamo, …); with --dataset-path completeness is checked against all its problems; livecodebench: each response's tests are run (pass@1; no voting for code)")
    .option("--version <v>", "benchmark version (aime: 2024 or 2025, hmmt: feb_2024, …; livecodebench: release_vN, release_latest, vN, vA_vB), with --benchmark")
    .option("--responses-dir <dir>", "folder of response files (.json, .jsonl: shards are merged; the original's files are read too)")
    .option("--dataset-path <dir>", "benchmark root, to list every problem and its gold answer (else: the problems present)")
    .option("--n-responses <n>", "responses expected per problem (default: the most any problem has)", parseIntArg(1))
    .option("--trust-stored", "use the stored judgements instead of re-judging each response")
    .option("--allow-mixed-settings", "judge responses made under different settings together (a warning is printed); without it judging them refuses")
    .addOption(
      new Option(
        "--rules <rules>",
        "ours: answers compared by value (numeric and LaTeX equivalence), votes counted over equivalent answers; " +
          "original: the original's string rules exactly (its \\boxed / first-sentence extraction, _strip_string + normalize_final_answer, " +
          "vote on the raw mode string, gold as pandas reads answers.csv: 025 → 25); both: report both (math benchmarks)",
      ).choices([...JUDGE_RULES, "both"]).default("ours"),
    )
    .option("--json", "print the report as JSON (with its files, settings groups and skipped files; with --rules both: {ours, original})")
    .option("--compare <dirs...>", "compare two response folders side by side: --compare DIR_A DIR_B (each checked on its own; their settings' differences are shown)");
  return addCodeJudgeOptions(cmd, "judge").action(async (f: JudgeFlags) => run(f));
}

export const pct = (x: number | null) => (x === null ? "—" : `${x.toFixed(1)}%`);
export const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function listed(items: string[], max = 10): string {
  return items.slice(0, max).join(", ") + (items.length > max ? `, … ${items.length - max} more` : "");
}

/** The files read (responses, settings), the entries not read, settings mixing and completeness. */
export function sourceLines(r: JudgeReport): string[] {
  const name = (f: string) => path.relative(r.dir, f) || f;
  const entryName = (s: SkippedEntry) => name(s.file) + (s.reason.startsWith("sub-folder") ? "/" : "");
  const group = (n: number) => r.settings_groups.find((g) => g.group === n)!;
  const groupText = (g: SettingsGroup) => `[${g.group}] ${g.description}`;
  const width = Math.max(...r.files.map((f) => name(f.file).length));
  const lines = [`${count(r.files.length, "file")} read from ${r.dir}:`];
  for (const f of r.files) {
    const head = `  ${name(f.file).padEnd(width)}  ${count(f.n_responses, "response").padStart(15)}${f.format === "json-lines" ? " (JSON lines)" : ""}`;
    if (f.settings.length <= 1) lines.push(`${head}  ${f.settings.length ? groupText(group(f.settings[0].group)) : ""}`.trimEnd());
    else lines.push(head, ...f.settings.map((s) => `      ${String(s.n_responses).padStart(5)} × ${groupText(group(s.group))}`));
  }
  const skipped = r.skipped_files.filter((s) => !s.hidden);
  const hidden = r.skipped_files.filter((s) => s.hidden);
  const entry = (s: SkippedEntry) => `${entryName(s)} (${s.reason})`;
  if (skipped.length) lines.push(`skipped ${count(skipped.length, "entry", "entries")}, not response files: ${listed(skipped.map(entry))}`);
  if (hidden.length) lines.push(`ignored ${count(hidden.length, "hidden file")}: ${listed(hidden.map(entry))}`);
  if (r.mixed_settings) lines.push(`mixed settings judged together (--allow-mixed-settings): ${describeSettingsMix(r.settings_groups)}`);
  if (r.outside_benchmark.length) lines.push(`not in the benchmark (not judged): ${listed(r.outside_benchmark)}`);
  lines.push(r.missing.length ? `missing ${count(r.missing.length, "response")}: ${listed(r.missing)}` : "complete");
  if (r.duplicates.length) lines.push(`${count(r.duplicates.length, "response")} appear in more than one file or line (the first one's is used)`);
  return lines;
}

/** The differences between two folders' settings, when each holds one settings group. */
function settingsDifferences(a: JudgeReport, b: JudgeReport): SettingsDifference[] | null {
  const [sa, sb] = [a.settings_groups, b.settings_groups].map((g) => (g.length === 1 ? g[0].settings : null));
  return sa && sb ? diffSettings(sa, sb) : null;
}

export function settingsComparison(a: JudgeReport, b: JudgeReport): string {
  const diffs = settingsDifferences(a, b);
  if (diffs) return diffs.length ? `settings A → B: ${formatDifferences(diffs, 20)}` : "settings: A and B were made under the same settings";
  const side = (label: string, r: JudgeReport) =>
    r.settings_groups.length === 0 ? `${label} has no responses`
      : r.settings_groups.length > 1 ? `${label} holds ${r.settings_groups.length} settings`
      : r.settings_groups[0].settings ? "" : `${label} has no settings recorded`;
  return `settings A → B: not compared (${[side("A", a), side("B", b)].filter(Boolean).join(", ")})`;
}

export function warnMixed(r: JudgeReport): void {
  if (r.mixed_settings) process.stderr.write(`warning: ${r.dir}: judging responses made under ${r.settings_groups.length} different settings together (--allow-mixed-settings)\n`);
}

export async function runJudge(flags: JudgeFlags): Promise<void> {
  if (flags.benchmark === LIVECODEBENCH) {
    if (flags.rules !== undefined && flags.rules !== "ours") throw new UsageError(`--rules ${flags.rules} is for math answers; livecodebench is judged by running its tests`);
    return runCodeJudge(flags); // code: tests are run (cli/judge-code.ts)
  }
  let bench: Benchmark | undefined;
  if (flags.datasetPath) {
    if (!flags.benchmark || !flags.version) throw new UsageError("--dataset-path needs --benchmark and --version");
    bench = loadBenchmark(flags.datasetPath, flags.benchmark, flags.version);
  }
  const rules: JudgeRules = flags.rules === "both" ? "ours" : (flags.rules ?? "ours");
  const options = { benchmark: bench, nResponses: flags.nResponses, trustStored: flags.trustStored, allowMixedSettings: flags.allowMixedSettings, rules };
  if (flags.compare) {
    if (flags.rules === "both") throw new UsageError("--compare judges by one set of rules: give --rules ours or --rules original");
    if (flags.compare.length !== 2) throw new UsageError("--compare takes exactly two folders");
    const [a, b] = flags.compare.map((d) => judgeResponses(refuseCodeAsMath(readResponsesDir(d, "--compare")), options));
    warnMixed(a);
    warnMixed(b);
    if (flags.json) {
      process.stdout.write(JSON.stringify({ a, b, settings_differences: settingsDifferences(a, b) }, null, 1) + "\n");
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
    const side = (label: string, r: JudgeReport) => [`${label} = ${r.dir}: ${count(r.n_responses, "response")} to ${count(r.n_problems, "problem")}`, ...sourceLines(r).map((l) => `  ${l}`)];
    process.stdout.write([...side("A", a), ...side("B", b), settingsComparison(a, b), "", ...lines].join("\n") + "\n");
    return;
  }
  if (!flags.responsesDir) throw new UsageError("give --responses-dir DIR (or --compare DIR_A DIR_B)");
  const merged = refuseCodeAsMath(readResponsesDir(flags.responsesDir));
  const r = judgeResponses(merged, options);
  const theirs = flags.rules === "both" ? judgeResponses(merged, { ...options, rules: "original" }) : null;
  warnMixed(r);
  if (flags.json) {
    process.stdout.write(JSON.stringify(theirs ? { ours: r, original: theirs } : r, null, 1) + "\n");
    return;
  }
  const scores = (x: JudgeReport) => `pass@1 ${pct(x.pass_at_1)} · voting accuracy ${pct(x.voting_accuracy)}`;
  const lines = [
    `${[flags.benchmark ?? "responses", flags.version].filter(Boolean).join(" ")}: ${count(r.n_responses, "response")} to ${count(r.n_problems, "problem")}`,
    r.n_responses === 0 ? "no responses to judge"
      : !r.gradable ? "not auto-gradable (no final answers): responses are for human grading"
      : theirs ? `our rules: ${scores(r)}\noriginal's rules: ${scores(theirs)}`
      : `${rules === "original" ? "original's rules: " : ""}${scores(r)}`,
    ...sourceLines(r),
    "",
    `${"problem".padEnd(22)} ${"n".padStart(3)} ${"pass@1".padStart(7)}  ${"voted answer".padEnd(20)} ${"mean len".padStart(8)}`,
    ...r.per_problem.map((p) => `${p.id.padEnd(22)} ${String(p.n_responses).padStart(3)} ${pct(p.pass_at_1).padStart(7)}  ${`${p.voted_answer ?? "—"}${p.voting_correct ? " ✓" : ""}`.slice(0, 20).padEnd(20)} ${p.mean_length.toFixed(0).padStart(8)}`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}
