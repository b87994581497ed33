// Judging (spec §8): merge response files (shards from several machines), re-extract and
// re-judge every response against its gold, check completeness, and report pass@1 (mean
// judgement × 100), voting accuracy (share of problems whose most frequent answer — votes
// counted over equivalent answers, ties to the first seen — equals gold), per-problem figures.
// Responses made under different settings are not judged together unless asked to.
// `rules: "original"` judges by the original's string rules instead (original-judge.ts).

import path from "node:path";
import { UsageError } from "../errors.js";
import { answersEquivalent, extractAnswer } from "./answer.js";
import type { Benchmark } from "./benchmarks.js";
import { originalExtractAnswer, originalJudge, originalVote, pandasColumnStrings } from "./original-judge.js";
import {
  responseKey,
  splitKey,
  type MergedResponses,
  type ResponseFileSummary,
  type ResponseRecord,
  type SettingsGroup,
  type SkippedEntry,
} from "./responses.js";
import { diffSettings, formatDifferences } from "./settings.js";

export { readResponsesDir, type MergedResponses } from "./responses.js";

export interface ProblemReport {
  id: string;
  n_responses: number;
  /** null when the problem has no gold answer. */
  pass_at_1: number | null;
  voted_answer: string | null;
  voting_correct: boolean | null;
  mean_length: number;
}

export interface JudgeReport {
  /** The rules judged by (JudgeOptions.rules). */
  rules: JudgeRules;
  pass_at_1: number | null;
  voting_accuracy: number | null;
  n_responses: number;
  n_problems: number;
  missing: string[];
  duplicates: string[];
  gradable: boolean;
  per_problem: ProblemReport[];
  /** The folder judged, each file read (format, responses, settings) and each entry not read. */
  dir: string;
  files: ResponseFileSummary[];
  skipped_files: SkippedEntry[];
  settings_groups: SettingsGroup[];
  /** More than one settings group was judged together (allowed by allowMixedSettings). */
  mixed_settings: boolean;
  /** Problems with responses that are not in the benchmark (not judged). */
  outside_benchmark: string[];
}

export interface JudgeOptions {
  /** When given, completeness is checked against every problem of it. */
  benchmark?: Benchmark;
  /** Responses expected per problem (default: the most any problem has). */
  nResponses?: number;
  /** Use the stored judgements instead of re-judging. */
  trustStored?: boolean;
  /** Judge responses made under different settings together instead of refusing. */
  allowMixedSettings?: boolean;
  /**
   * "ours" (default): numeric/LaTeX equivalence, votes by equivalence class. "original": the
   * original's string rules — its extraction, judge(), vote on the raw mode string, gold as
   * pandas reads answers.csv.
   */
  rules?: JudgeRules;
}

export const JUDGE_RULES = ["ours", "original"] as const;
export type JudgeRules = (typeof JUDGE_RULES)[number];

/** How one set of rules extracts, judges and votes. */
interface Rules {
  extract(response: string): string | null;
  judge(answer: string | null, gold: string): boolean;
  vote(answers: (string | null)[]): string | null;
  votedCorrect(voted: string | null, gold: string): boolean;
}

const OUR_RULES: Rules = {
  extract: extractAnswer,
  judge: (a, gold) => a !== null && answersEquivalent(a, gold),
  vote: (answers) => majorityAnswer(answers),
  votedCorrect: (v, gold) => v !== null && answersEquivalent(v, gold),
};

const ORIGINAL_RULES: Rules = {
  extract: originalExtractAnswer,
  judge: originalJudge,
  vote: originalVote,
  votedCorrect: (v, gold) => v === gold,
};

/**
 * Gold answers as the original holds them: each subset's answers.csv column through pandas
 * (with a benchmark), else each stored gold on its own (an integer loses leading zeros).
 */
function originalGolds(benchmark: Benchmark | undefined): Map<string, string | null> {
  const out = new Map<string, string | null>();
  if (!benchmark) return out;
  for (const subset of benchmark.subsets) {
    const problems = benchmark.problems.filter((p) => p.subset === subset);
    if (problems.some((p) => p.gold === null)) {
      for (const p of problems) out.set(p.id, null);
      continue;
    }
    const strings = pandasColumnStrings(problems.map((p) => p.gold!));
    problems.forEach((p, i) => out.set(p.id, strings[i]));
  }
  return out;
}

const groupLabel = (g: SettingsGroup) => `[${g.group}]`;
const responses = (n: number) => `${n} response${n === 1 ? "" : "s"}`;

function listFiles(files: string[], max = 4): string {
  const names = files.map((f) => path.basename(f));
  return names.length > max ? `${names.slice(0, max).join(", ")}, … ${names.length} files` : names.join(", ");
}

/** "[1] a.json (9 responses); [2] b.json (5 responses); [1] → [2]: method: pm-kvq → kivi" — one line. */
export function describeSettingsMix(groups: SettingsGroup[]): string {
  const parts = groups.map((g) => `${groupLabel(g)} ${g.settings ? "" : "no settings recorded: "}${listFiles(g.files)} (${responses(g.n_responses)})`);
  const [first, ...rest] = groups;
  for (const g of rest) {
    const diff = !first.settings ? `no settings recorded in ${groupLabel(first)}`
      : !g.settings ? `no settings recorded in ${groupLabel(g)}`
      : formatDifferences(diffSettings(first.settings, g.settings));
    parts.push(`${groupLabel(first)} → ${groupLabel(g)}: ${diff}`);
  }
  return parts.join("; ");
}

/** Refuse to judge several settings groups together unless allowed; true when they are mixed. */
export function checkSettings(merged: MergedResponses, allowMixed = false): boolean {
  const groups = merged.settings_groups;
  if (groups.length <= 1) return false;
  if (!allowMixed) {
    throw new UsageError(
      `${merged.dir}: responses made under ${groups.length} different settings would be judged together — ${describeSettingsMix(groups)}. ` +
        "Judge each set in its own folder, or pass --allow-mixed-settings to judge them together",
    );
  }
  return true;
}

/** The most frequent answer, counting equivalent answers as one class; ties go to the first seen. */
export function majorityAnswer(answers: (string | null)[]): string | null {
  const classes: { answer: string; count: number }[] = [];
  for (const a of answers) {
    if (a === null) continue;
    const c = classes.find((k) => answersEquivalent(k.answer, a));
    if (c) c.count++;
    else classes.push({ answer: a, count: 1 });
  }
  let best: { answer: string; count: number } | null = null;
  for (const c of classes) if (!best || c.count > best.count) best = c;
  return best?.answer ?? null;
}

export function judgeResponses(merged: MergedResponses, o: JudgeOptions = {}): JudgeReport {
  const mixed = checkSettings(merged, o.allowMixedSettings);
  const byProblem = new Map<string, { i: number; r: ResponseRecord }[]>();
  for (const [key, r] of merged.records) {
    const split = splitKey(key);
    if (!split) continue;
    const list = byProblem.get(split[0]) ?? [];
    list.push({ i: split[1], r });
    byProblem.set(split[0], list);
  }
  const problemIds = o.benchmark ? o.benchmark.problems.map((p) => p.id) : [...byProblem.keys()];
  const original = o.rules === "original";
  const rules = original ? ORIGINAL_RULES : OUR_RULES;
  const golds = original ? originalGolds(o.benchmark) : new Map(o.benchmark?.problems.map((p) => [p.id, p.gold]) ?? []);
  const storedGold = (g: string) => (original ? pandasColumnStrings([g])[0] : g);
  const nExpected = o.nResponses ?? Math.max(0, ...[...byProblem.values()].map((l) => Math.max(...l.map((x) => x.i)) + 1));
  const missing: string[] = [];
  for (const id of problemIds) {
    const have = new Set((byProblem.get(id) ?? []).map((x) => x.i));
    for (let i = 0; i < nExpected; i++) if (!have.has(i)) missing.push(responseKey(id, i));
  }
  const perProblem: ProblemReport[] = [];
  let judged = 0;
  let correct = 0;
  let votedProblems = 0;
  let votedCorrect = 0;
  let responses = 0;
  for (const id of problemIds) {
    const list = (byProblem.get(id) ?? []).sort((a, b) => a.i - b.i);
    if (list.length === 0) continue;
    const stored = list.find((x) => x.r.gold !== null)?.r.gold;
    const gold = golds.has(id) ? golds.get(id)! : stored === undefined || stored === null ? null : storedGold(stored);
    const answers = list.map((x) => rules.extract(x.r.response));
    const judgements = list.map((x, k) => {
      if (gold === null) return null;
      if (o.trustStored && typeof x.r.judgement === "boolean") return x.r.judgement;
      return rules.judge(answers[k], gold);
    });
    const voted = rules.vote(answers);
    const votingCorrect = gold === null ? null : rules.votedCorrect(voted, gold);
    const graded = judgements.filter((j): j is boolean => j !== null);
    responses += list.length;
    if (gold !== null) {
      judged += graded.length;
      correct += graded.filter(Boolean).length;
      votedProblems++;
      if (votingCorrect) votedCorrect++;
    }
    perProblem.push({
      id,
      n_responses: list.length,
      pass_at_1: gold === null ? null : (100 * graded.filter(Boolean).length) / graded.length,
      voted_answer: voted,
      voting_correct: votingCorrect,
      mean_length: list.reduce((a, x) => a + x.r.input_len + x.r.output_len, 0) / list.length,
    });
  }
  const gradable = judged > 0;
  return {
    rules: o.rules ?? "ours",
    pass_at_1: gradable ? (100 * correct) / judged : null,
    voting_accuracy: votedProblems > 0 ? (100 * votedCorrect) / votedProblems : null,
    n_responses: responses,
    n_problems: perProblem.length,
    missing,
    duplicates: merged.duplicates,
    gradable,
    per_problem: perProblem,
    dir: merged.dir,
    files: merged.files,
    skipped_files: merged.skipped,
    settings_groups: merged.settings_groups,
    mixed_settings: mixed,
    outside_benchmark: o.benchmark ? [...byProblem.keys()].filter((id) => !golds.has(id)) : [],
  };
}
