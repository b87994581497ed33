// Judging (spec §8): merge response files (shards from several machines), re-extract and
// re-judge every response against its gold, check completeness, and report pass@1 (mean
// judgement × 100), voting accuracy (share of problems whose most frequent answer — votes
// counted over equivalent answers, ties to the first seen — equals gold), per-problem figures.

import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { answersEquivalent, extractAnswer } from "./answer.js";
import type { Benchmark } from "./benchmarks.js";
import { readResponseFile, responseKey, splitKey, type ResponseRecord } from "./responses.js";

export interface MergedResponses {
  records: Map<string, ResponseRecord>;
  files: string[];
  /** Keys found in more than one file (the first file's record is kept). */
  duplicates: string[];
}

/** Every *.json response file in dir (sorted), merged. */
export function readResponsesDir(dir: string): MergedResponses {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--responses-dir ${dir}: no such folder`);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".json") && !f.startsWith(".")).sort().map((f) => path.join(dir, f));
  if (files.length === 0) throw new UsageError(`--responses-dir ${dir}: no .json response files`);
  const records = new Map<string, ResponseRecord>();
  const duplicates: string[] = [];
  for (const f of files) {
    for (const [k, v] of Object.entries(readResponseFile(f))) {
      if (records.has(k)) duplicates.push(k);
      else records.set(k, v);
    }
  }
  return { records, files, duplicates };
}

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
  pass_at_1: number | null;
  voting_accuracy: number | null;
  n_responses: number;
  n_problems: number;
  missing: string[];
  duplicates: string[];
  gradable: boolean;
  per_problem: ProblemReport[];
}

export interface JudgeOptions {
  /** When given, completeness is checked against every problem of it. */
  benchmark?: Benchmark;
  /** Responses expected per problem (default: the most any problem has). */
  nResponses?: number;
  /** Use the stored judgements instead of re-judging. */
  trustStored?: boolean;
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
  const byProblem = new Map<string, { i: number; r: ResponseRecord }[]>();
  for (const [key, r] of merged.records) {
    const split = splitKey(key);
    if (!split) continue;
    const list = byProblem.get(split[0]) ?? [];
    list.push({ i: split[1], r });
    byProblem.set(split[0], list);
  }
  const problemIds = o.benchmark ? o.benchmark.problems.map((p) => p.id) : [...byProblem.keys()];
  const golds = new Map(o.benchmark?.problems.map((p) => [p.id, p.gold]) ?? []);
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
    const gold = golds.has(id) ? golds.get(id)! : (list.find((x) => x.r.gold !== null)?.r.gold ?? null);
    const answers = list.map((x) => extractAnswer(x.r.response));
    const judgements = list.map((x, k) => {
      if (gold === null) return null;
      if (o.trustStored && typeof x.r.judgement === "boolean") return x.r.judgement;
      return answers[k] !== null && answersEquivalent(answers[k]!, gold);
    });
    const voted = majorityAnswer(answers);
    const votingCorrect = gold === null ? null : voted !== null && answersEquivalent(voted, gold);
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
    pass_at_1: gradable ? (100 * correct) / judged : null,
    voting_accuracy: votedProblems > 0 ? (100 * votedCorrect) / votedProblems : null,
    n_responses: responses,
    n_problems: perProblem.length,
    missing,
    duplicates: merged.duplicates,
    gradable,
    per_problem: perProblem,
  };
}
