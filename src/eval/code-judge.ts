// Judging code responses (LiveCodeBench): a response passes when its last code block passes
// every test of its problem in the sandbox (code-sandbox.ts). pass@1 of a problem = share of its
// responses that pass; overall = mean over problems, as LiveCodeBench's compute_metrics_from_results
// (the same as the mean over responses when every problem has as many). There is no voting:
// answers are programs, not values to count.

import { UsageError } from "../errors.js";
import { codeResult, runCodeTests, type CodeResult, type SandboxOptions } from "./code-sandbox.js";
import { checkSettings, type JudgeReport, type ProblemReport } from "./judge.js";
import { extractCode, loadCodeTests, type CodeBenchmark, type CodeProblem, type CodeTest } from "./livecodebench.js";
import { readResponseFile, responseKey, splitKey, writeResponseFile, type MergedResponses, type ResponseFile, type ResponseRecord } from "./responses.js";
import { lockOutput } from "../util/lock.js";

export const VOTING_DOES_NOT_APPLY = "voting accuracy does not apply to code: a response is a program, judged by running its tests (pass@1 only)";

export interface CodeJudgeOptions {
  /** The problems and their tests; needed unless every response's stored judgement is used. */
  benchmark?: CodeBenchmark;
  nResponses?: number;
  /** Use stored judgements (true/false) instead of running the tests again. */
  trustStored?: boolean;
  allowMixedSettings?: boolean;
  sandbox?: SandboxOptions;
  /** Programs run at once (default 1). */
  jobs?: number;
  onJudged?: (e: { key: string; done: number; total: number; result: CodeResult }) => void;
}

export interface CodeResponseReport {
  key: string;
  judgement: boolean;
  reason: string;
  detail: string | null;
  /** The stored judgement was used (--trust-stored). */
  stored: boolean;
}

export interface CodeProblemReport extends ProblemReport {
  /** Responses per verdict ("passed", "wrong answer", "timeout", …). */
  verdicts: Record<string, number>;
}

export interface CodeJudgeReport extends JudgeReport {
  kind: "code";
  voting_note: string;
  per_problem: CodeProblemReport[];
  per_response: CodeResponseReport[];
}

/** "wrong answer on test 3 of 12" → "wrong answer". */
export function verdictOf(reason: string): string {
  return reason.replace(/ (on test \d+ of \d+|while loading the code)$/, "");
}

/** Judge one response against its problem's tests: its last code block, or "no code". */
export function judgeCodeResponse(response: string, problem: Pick<CodeProblem, "fnName">, tests: CodeTest[], sandbox: SandboxOptions = {}): Promise<CodeResult> {
  const code = extractCode(response);
  if (code === null) return Promise.resolve(codeResult("no code", null, tests.length));
  return runCodeTests({ code, fnName: problem.fnName, tests }, sandbox);
}

/** Run `fn` on every item, `jobs` at a time; the first error stops new items and is thrown once all running ones end. */
async function pool<T>(items: T[], jobs: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  if (failure) throw (failure as { error: unknown }).error;
}

/** Tests read once per problem while its responses are judged, then dropped (release files are large). */
class TestsCache {
  private readonly held = new Map<string, { tests: CodeTest[]; users: number }>();
  constructor(private readonly uses: Map<string, number>) {}

  take(p: CodeProblem): CodeTest[] {
    let entry = this.held.get(p.id);
    if (!entry) {
      entry = { tests: loadCodeTests(p), users: this.uses.get(p.id) ?? 1 };
      this.held.set(p.id, entry);
    }
    return entry.tests;
  }

  done(id: string): void {
    const entry = this.held.get(id);
    if (entry && --entry.users <= 0) this.held.delete(id);
  }
}

interface Job {
  key: string;
  problem: CodeProblem;
  response: string;
}

/** Run the jobs' tests, `jobs` at a time, telling each result as it comes. */
async function runJobs(list: Job[], o: Pick<CodeJudgeOptions, "sandbox" | "jobs">, onResult: (job: Job, r: CodeResult) => void): Promise<void> {
  const uses = new Map<string, number>();
  for (const j of list) uses.set(j.problem.id, (uses.get(j.problem.id) ?? 0) + 1);
  const cache = new TestsCache(uses);
  await pool(list, o.jobs ?? 1, async (j) => {
    try {
      onResult(j, await judgeCodeResponse(j.response, j.problem, cache.take(j.problem), o.sandbox));
    } finally {
      cache.done(j.problem.id);
    }
  });
}

export async function judgeCodeResponses(merged: MergedResponses, o: CodeJudgeOptions = {}): Promise<CodeJudgeReport> {
  const mixed = checkSettings(merged, o.allowMixedSettings);
  // grouping and completeness as judgeResponses (judge.ts)
  const byProblem = new Map<string, { i: number; key: string; r: ResponseRecord }[]>();
  for (const [key, r] of merged.records) {
    const split = splitKey(key);
    if (!split) continue;
    const list = byProblem.get(split[0]) ?? [];
    list.push({ i: split[1], key, r });
    byProblem.set(split[0], list);
  }
  const problems = new Map(o.benchmark?.problems.map((p) => [p.id, p]) ?? []);
  const problemIds = o.benchmark ? o.benchmark.problems.map((p) => p.id) : [...byProblem.keys()];
  const nExpected = o.nResponses ?? Math.max(0, ...[...byProblem.values()].map((l) => Math.max(...l.map((x) => x.i)) + 1));
  const missing: string[] = [];
  for (const id of problemIds) {
    const have = new Set((byProblem.get(id) ?? []).map((x) => x.i));
    for (let i = 0; i < nExpected; i++) if (!have.has(i)) missing.push(responseKey(id, i));
  }

  const results = new Map<string, CodeResponseReport>();
  const toRun: Job[] = [];
  for (const id of problemIds) {
    for (const { key, r } of byProblem.get(id) ?? []) {
      if (o.trustStored && typeof r.judgement === "boolean") {
        results.set(key, { key, judgement: r.judgement, reason: r.judge_reason ?? (r.judgement ? "passed" : "failed"), detail: r.judge_detail ?? null, stored: true });
      } else {
        const problem = problems.get(id);
        if (problem) toRun.push({ key, problem, response: r.response });
      }
    }
  }
  if (!o.benchmark) {
    const unjudged = problemIds.flatMap((id) => (byProblem.get(id) ?? []).filter((x) => !results.has(x.key)));
    if (unjudged.length) {
      throw new UsageError(
        `${merged.dir}: ${unjudged.length} code responses ${o.trustStored ? "carry no stored judgement" : "need their tests run"} (e.g. ${unjudged[0].key}); ` +
          "give --dataset-path DIR --version V (the LiveCodeBench release files) to run them",
      );
    }
  }
  let done = results.size;
  const total = results.size + toRun.length;
  await runJobs(toRun, o, (j, r) => {
    results.set(j.key, { key: j.key, judgement: r.judgement, reason: r.reason, detail: r.detail, stored: false });
    o.onJudged?.({ key: j.key, done: ++done, total, result: r });
  });

  const perProblem: CodeProblemReport[] = [];
  const perResponse: CodeResponseReport[] = [];
  let responses = 0;
  for (const id of problemIds) {
    const list = (byProblem.get(id) ?? []).sort((a, b) => a.i - b.i);
    if (list.length === 0) continue;
    const judged = list.map((x) => results.get(x.key)!);
    perResponse.push(...judged);
    responses += list.length;
    const verdicts: Record<string, number> = {};
    for (const j of judged) verdicts[verdictOf(j.reason)] = (verdicts[verdictOf(j.reason)] ?? 0) + 1;
    perProblem.push({
      id,
      n_responses: list.length,
      pass_at_1: (100 * judged.filter((j) => j.judgement).length) / judged.length,
      voted_answer: null,
      voting_correct: null,
      mean_length: list.reduce((a, x) => a + x.r.input_len + x.r.output_len, 0) / list.length,
      verdicts,
    });
  }
  return {
    kind: "code",
    rules: "ours", // LiveCodeBench's grader (code-harness.ts); --rules is for math answers
    pass_at_1: perProblem.length ? perProblem.reduce((a, p) => a + p.pass_at_1!, 0) / perProblem.length : null,
    voting_accuracy: null,
    voting_note: VOTING_DOES_NOT_APPLY,
    n_responses: responses,
    n_problems: perProblem.length,
    missing,
    duplicates: merged.duplicates,
    gradable: perProblem.length > 0,
    per_problem: perProblem,
    per_response: perResponse,
    dir: merged.dir,
    files: merged.files,
    skipped_files: merged.skipped,
    settings_groups: merged.settings_groups,
    mixed_settings: mixed,
    outside_benchmark: o.benchmark ? [...byProblem.keys()].filter((id) => !problems.has(id)) : [],
  };
}

/**
 * Judge the responses of an eval output that are not judged yet (judgement null) for these
 * problems, writing the file after each one (so a killed judge loses at most the ones running).
 */
export async function judgeCodeOutput(
  output: string,
  benchmark: CodeBenchmark,
  problems: CodeProblem[],
  nResponses: number,
  o: Pick<CodeJudgeOptions, "sandbox" | "jobs" | "onJudged"> = {},
): Promise<{ judged: number; records: ResponseFile }> {
  using _lock = lockOutput(output, `--output ${output}`);
  const records = readResponseFile(output);
  const order = benchmark.problems.map((p) => p.id);
  const jobs: Job[] = problems.flatMap((problem) =>
    Array.from({ length: nResponses }, (_, i) => responseKey(problem.id, i))
      .filter((key) => records[key] && records[key].judgement === null)
      .map((key) => ({ key, problem, response: records[key].response })),
  );
  let done = 0;
  await runJobs(jobs, o, (j, r) => {
    Object.assign(records[j.key], { response_answer: extractCode(j.response), judgement: r.judgement, judge_reason: r.reason, judge_detail: r.detail });
    writeResponseFile(output, records, order);
    o.onJudged?.({ key: j.key, done: ++done, total: jobs.length, result: r });
  });
  return { judged: jobs.length, records };
}
