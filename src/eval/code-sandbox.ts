// Running one program's tests in a subprocess (the Python harness of code-harness.ts): a fresh
// temp folder as its cwd (removed after), a minimal environment, its own process group (killed
// with SIGKILL to -pid when a test outlives its time, when it floods stdout, and after every
// run), limits set by the harness (address space, CPU time, file size). stdout is read up to a
// cap and only the harness's nonce-prefixed lines are believed.
//
// A subprocess is not a security boundary: the code can read your files and use the network.
// For untrusted code give a container as the runner (e.g. `docker run --rm -i --network none
// python:3.11 python3`); the harness's limits and watchdog hold inside it too.

import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { CodeRunnerError, UsageError } from "../errors.js";
import { harnessProgram } from "./code-harness.js";
import type { CodeTest } from "./livecodebench.js";

export const DEFAULT_RUNNER = ["python3"];

export interface SandboxOptions {
  /** The command that reads a Python program on stdin and runs it (default: python3). */
  runner?: string[];
  /** Seconds per test, and for loading the code (LiveCodeBench: 6). */
  timeoutS?: number;
  /** Address-space limit of the process in MiB; 0: none (default 4096, as LiveCodeBench's guard suggests). */
  memoryMB?: number;
  /** Captured output per test, and stray stdout of the process, past which a test fails (default 32 MiB). */
  outputLimitBytes?: number;
  /** Seconds past a test's time before the process is ended even if the code swallows the timeout (default 0.5). */
  graceS?: number;
  /** Seconds the runner may take to start the harness, e.g. a container (default 60). */
  startupTimeoutS?: number;
  /** Told the process id and its folder as it starts (diagnostics, tests). */
  onStart?: (info: { pid: number; dir: string }) => void;
}

export const SANDBOX_DEFAULTS = { timeoutS: 6, memoryMB: 4096, outputLimitBytes: 32 * 2 ** 20, graceS: 0.5, startupTimeoutS: 60 } as const;

export type CodeVerdict = "passed" | "wrong answer" | "timeout" | "runtime error" | "output limit" | "compile error" | "no code";

export interface CodeResult {
  judgement: boolean;
  verdict: CodeVerdict;
  /** 1-based test the verdict is about; null for passed, no code, and failures while loading the code. */
  test: number | null;
  nTests: number;
  /** "passed", "wrong answer on test 3 of 12", "timeout while loading the code", "no code", … */
  reason: string;
  /** What went wrong, briefly (expected vs got, the exception), or null. */
  detail: string | null;
}

export interface CodeTask {
  code: string;
  /** The method a functional test calls; null: the tests are stdin/stdout. */
  fnName: string | null;
  tests: CodeTest[];
}

/** The reason a result carries, from its verdict and where it happened. */
export function formatReason(verdict: CodeVerdict, test: number | null, nTests: number): string {
  if (verdict === "passed" || verdict === "no code") return verdict;
  if (test !== null) return `${verdict} on test ${test} of ${nTests}`;
  return verdict === "compile error" ? verdict : `${verdict} while loading the code`;
}

export function codeResult(verdict: CodeVerdict, test: number | null, nTests: number, detail: string | null = null): CodeResult {
  return { judgement: verdict === "passed", verdict, test, nTests, reason: formatReason(verdict, test, nTests), detail };
}

/** A runner command line split into words as a shell would (quotes, backslashes), but never run through a shell. */
export function parseRunnerCommand(command: string, flag = "--judge-runner"): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < command.length && '"\\$`'.includes(command[i + 1])) word += command[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < command.length) {
      word += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if ("|;&<>`".includes(c) || (c === "$" && command[i + 1] === "(")) {
      throw new UsageError(`${flag} ${command}: "${c}" — the command is not run through a shell (no pipes, redirections or substitutions); put them in a script, or use sh -c '…'`);
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new UsageError(`${flag} ${command}: unbalanced ${quote}`);
  if (inWord) words.push(word);
  if (words.length === 0) throw new UsageError(`${flag}: empty command (give e.g. python3)`);
  return words;
}

/** PATH, UTF-8, HOME and TMPDIR in the temp folder; a custom runner also gets what container tools read. */
function runnerEnv(dir: string, custom: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    HOME: dir,
    TMPDIR: dir,
    PYTHONIOENCODING: "utf-8",
    PYTHONDONTWRITEBYTECODE: "1",
    PYTHONNOUSERSITE: "1",
    PYTHONHASHSEED: "0",
    OMP_NUM_THREADS: "1",
  };
  if (custom) {
    for (const k of ["HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "CONTAINER_HOST", "CONTAINER_CONNECTION"]) {
      if (process.env[k] !== undefined) env[k] = process.env[k];
    }
  }
  return env;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

/** Groups still running: killed if this process exits first (they are detached, so Ctrl-C does not reach them). */
const liveGroups = new Set<number>();
let exitHookSet = false;
function track(pid: number | undefined): void {
  if (pid === undefined) return;
  liveGroups.add(pid);
  if (!exitHookSet) {
    exitHookSet = true;
    process.on("exit", () => liveGroups.forEach(killGroup));
  }
}

type Phase = { kind: "startup" } | { kind: "load" } | { kind: "test"; k: number } | { kind: "between"; after: number };

/** Run the tests of one program; the result says which test failed and how. CodeRunnerError when the runner never started. */
export function runCodeTests(task: CodeTask, options: SandboxOptions = {}): Promise<CodeResult> {
  const o = { ...SANDBOX_DEFAULTS, ...options };
  const runner = o.runner ?? DEFAULT_RUNNER;
  const n = task.tests.length;
  const nonce = `@pmkvq-${crypto.randomBytes(12).toString("hex")}@`;
  const program = harnessProgram({
    nonce,
    code: task.code,
    fn_name: task.fnName,
    tests: task.tests.map((t) => [t.input, t.output]),
    timeout: o.timeoutS,
    grace: o.graceS,
    memory_bytes: Math.round(o.memoryMB * 2 ** 20),
    cpu_seconds: Math.ceil(o.timeoutS * (n + 1) + o.graceS * 2 + 5),
    file_bytes: o.outputLimitBytes,
    output_limit: o.outputLimitBytes,
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pmkvq-judge-"));
  const custom = JSON.stringify(runner) !== JSON.stringify(DEFAULT_RUNNER);
  const what = `the code runner "${runner.join(" ")}"`;

  return new Promise<CodeResult>((resolve, reject) => {
    const child = spawn(runner[0], runner.slice(1), { cwd: dir, env: runnerEnv(dir, custom), stdio: ["pipe", "pipe", "pipe"], detached: true });
    let phase: Phase = { kind: "startup" };
    let outcome: { result: CodeResult } | { error: Error } | null = null;
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    let afterExit: NodeJS.Timeout | null = null;
    let stderrTail = "";
    let stdoutBytes = 0;
    let partial = "";
    let skipping = false;
    const decoder = new StringDecoder("utf8");
    const rawLimit = o.outputLimitBytes + 2 ** 20;

    const settle = () => {
      if (settled || !outcome) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (afterExit) clearTimeout(afterExit);
      killGroup(child.pid);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      fs.rmSync(dir, { recursive: true, force: true });
      if ("error" in outcome) reject(outcome.error);
      else resolve(outcome.result);
    };
    const finish = (result: CodeResult | Error) => {
      if (outcome) return;
      outcome = result instanceof Error ? { error: result } : { result };
      killGroup(child.pid);
      // the process group is gone; settle when its pipes close, or soon if something outside it holds them
      setTimeout(settle, 2000).unref();
    };
    const at = (p: Phase): number | null => (p.kind === "test" ? p.k : p.kind === "between" ? Math.min(p.after + 1, n) : null);
    const arm = (seconds: number, onFire: () => void) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(onFire, seconds * 1000);
    };
    const armTest = () => arm(o.timeoutS + 2 * o.graceS, () => finish(codeResult("timeout", at(phase), n, `still running after ${o.timeoutS} s; killed`)));

    const onMessage = (m: Record<string, unknown>) => {
      if (outcome) return;
      if ("ready" in m && phase.kind === "startup") {
        phase = { kind: "load" };
        armTest();
      } else if ("load_failed" in m) {
        finish(codeResult(m.load_failed as CodeVerdict, null, n, (m.detail as string | null) ?? null));
      } else if ("loaded" in m) {
        phase = { kind: "between", after: 0 };
        if (timer) clearTimeout(timer);
      } else if ("start" in m) {
        phase = { kind: "test", k: m.start as number };
        armTest();
      } else if ("test" in m) {
        if (timer) clearTimeout(timer);
        const k = m.test as number;
        if (m.verdict !== "passed") finish(codeResult(m.verdict as CodeVerdict, k, n, (m.detail as string | null) ?? null));
        else phase = { kind: "between", after: k };
      } else if ("hard_timeout" in m) {
        finish(codeResult("timeout", phase.kind === "load" ? null : at(phase), n, `still running after ${o.timeoutS} s (the timeout was caught); ended`));
      } else if ("done" in m) {
        finish(codeResult("passed", null, n));
      }
    };
    const onLine = (line: string) => {
      if (!line.startsWith(nonce)) return;
      try {
        onMessage(JSON.parse(line.slice(nonce.length)) as Record<string, unknown>);
      } catch {
        // not one of ours after all
      }
    };

    child.on("error", (e: NodeJS.ErrnoException) => {
      const why = e.code === "ENOENT" ? "not found on PATH" : e.code ?? e.message;
      finish(new CodeRunnerError(`${what} cannot be started (${why}); install Python 3, or give --judge-runner a command that runs a Python program read on stdin`));
      settle();
    });
    child.stdin.on("error", () => {}); // the process may end before reading all of its program
    child.stdin.end(program);
    child.stderr.on("data", (d: Buffer) => {
      stderrTail = (stderrTail + d.toString("utf8")).slice(-4000);
    });
    child.stdout.on("data", (chunk: Buffer) => {
      if (outcome) return;
      stdoutBytes += chunk.length;
      if (stdoutBytes > rawLimit) {
        const where = phase.kind === "startup" ? null : at(phase);
        finish(codeResult("output limit", where, n, `more than ${rawLimit} bytes written to stdout`));
        return;
      }
      const segments = decoder.write(chunk).split("\n");
      segments.forEach((s, i) => {
        if (!skipping) partial += s;
        if (i < segments.length - 1) {
          if (!skipping) onLine(partial);
          partial = "";
          skipping = false;
        } else if (!skipping && !(partial.startsWith(nonce) || nonce.startsWith(partial))) {
          partial = ""; // the rest of this line is the code's own output
          skipping = true;
        }
      });
    });
    child.on("exit", () => {
      // a grandchild outside the group may hold the pipes: do not wait for them long
      afterExit = setTimeout(() => killGroup(child.pid), 200);
      afterExit.unref();
    });
    child.on("close", (code: number | null, signal: NodeJS.Signals | null) => {
      if (!outcome) {
        const how = signal ? `killed by ${signal}` : `exit code ${code}`;
        const lastErr = stderrTail.trim().split("\n").at(-1)?.slice(0, 200) ?? "";
        if (phase.kind === "startup") {
          finish(new CodeRunnerError(`${what} ended (${how}) before the harness started${lastErr ? `: ${lastErr}` : ""}; it must run a Python 3 program read on its stdin`));
        } else if (signal === "SIGXCPU") {
          finish(codeResult("timeout", at(phase), n, "CPU time limit"));
        } else {
          finish(codeResult("runtime error", at(phase), n, `the process ended (${how})${lastErr ? `: ${lastErr}` : ""}`));
        }
      }
      settle();
    });
    arm(o.startupTimeoutS, () => finish(new CodeRunnerError(`${what} did not start the harness within ${o.startupTimeoutS} s`)));
    track(child.pid);
    o.onStart?.({ pid: child.pid ?? -1, dir });
  });
}
