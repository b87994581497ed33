// The LiveCodeBench flags shared by eval and judge: contest dates, and how the tests of each
// response are run (runner command, time per test, memory, parallel runs).

import os from "node:os";
import { Command } from "commander";
import { DEFAULT_RUNNER, parseRunnerCommand, runCodeTests, SANDBOX_DEFAULTS, type SandboxOptions } from "../eval/code-sandbox.js";
import { UsageError } from "../errors.js";
import { parseFloatArg, parseIntArg } from "./args.js";

export interface CodeJudgeFlags {
  startDate?: string;
  endDate?: string;
  judgeRunner?: string;
  judgeTimeout: number;
  judgeMemoryMb: number;
  judgeJobs: number;
}

const DEFAULT_JOBS = Math.max(1, Math.floor(os.availableParallelism() / 2));

export function addCodeJudgeOptions(cmd: Command, what: "eval" | "judge"): Command {
  const none = what === "eval" ? '; "none": save the responses unjudged (judge them later with pmkvq judge)' : "";
  return cmd
    .option("--start-date <YYYY-MM-DD>", "livecodebench: only problems whose contest_date is on or after this day (as LiveCodeBench's --start_date)")
    .option("--end-date <YYYY-MM-DD>", "livecodebench: only problems whose contest_date is on or before this day")
    .option(
      "--judge-runner <command>",
      "livecodebench: the command that runs each response's tests; it must run a Python 3 program read on its stdin (default: python3). " +
        "Split into words like a shell, never run through one. A subprocess is NOT a security boundary: for untrusted code give a container, " +
        `e.g. "docker run --rm -i --network none --memory 4g python:3.11 python3"${none}`,
    )
    .option("--judge-timeout <s>", "livecodebench: seconds per test, as the original's 6", parseFloatArg(0, 3600, true), SANDBOX_DEFAULTS.timeoutS)
    .option("--judge-memory-mb <n>", "livecodebench: address-space limit of the test process in MiB (0: none)", parseIntArg(0), SANDBOX_DEFAULTS.memoryMB)
    .option("--judge-jobs <n>", `livecodebench: responses tested at once (default: half the CPUs, ${DEFAULT_JOBS} here; more makes timeouts less fair)`, parseIntArg(1, 256), DEFAULT_JOBS);
}

/** The sandbox the flags ask for; null for `--judge-runner none` (eval only). */
export function sandboxFromFlags(f: Partial<CodeJudgeFlags>, allowNone: boolean): { sandbox: SandboxOptions; jobs: number; label: string } | null {
  if (f.judgeRunner?.trim() === "none") {
    if (!allowNone) throw new UsageError("--judge-runner none: judging runs the tests; give a runner, or --trust-stored to use the stored judgements");
    return null;
  }
  const runner = f.judgeRunner === undefined ? DEFAULT_RUNNER : parseRunnerCommand(f.judgeRunner);
  const timeoutS = f.judgeTimeout ?? SANDBOX_DEFAULTS.timeoutS;
  const memoryMB = f.judgeMemoryMb ?? SANDBOX_DEFAULTS.memoryMB;
  const jobs = f.judgeJobs ?? DEFAULT_JOBS;
  const memory = memoryMB > 0 ? `${memoryMB} MiB` : "no memory limit";
  return { sandbox: { runner, timeoutS, memoryMB }, jobs, label: `tests run by ${runner.join(" ")}, ${timeoutS} s per test, ${memory}, ${jobs} at once` };
}

/** Run one trivial program, so a runner that cannot work fails before hours of generation. */
export async function checkRunner(sandbox: SandboxOptions): Promise<void> {
  const r = await runCodeTests({ code: "print(sum(map(int, input().split())))", fnName: null, tests: [{ input: "2 3\n", output: "5\n" }] }, sandbox);
  if (!r.judgement) throw new UsageError(`--judge-runner: a correct test program was judged "${r.reason}"${r.detail ? ` (${r.detail})` : ""}; check the runner`);
}
