// The code sandbox on real programs: LiveCodeBench's output comparison, each verdict with the
// test it names (wrong answer, timeout — killed in about the timeout, even when the code
// swallows it — crash, memory limit, output flooding, compile error), the process group and temp
// folder gone after, the environment it sees, a nonce no program can fake, and runner failures.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { CodeRunnerError, UsageError } from "../../src/errors.js";
import { parseRunnerCommand, runCodeTests, type CodeResult, type SandboxOptions } from "../../src/eval/code-sandbox.js";
import type { CodeTest } from "../../src/eval/livecodebench.js";
import { REPO_ROOT, tempDir } from "../helpers.js";

const PYTHON = spawnSync("python3", ["--version"]).status === 0;
const skip = PYTHON ? false : "python3 not found: the code judge runs Python programs";

const AB: CodeTest[] = [{ input: "1 2\n", output: "3\n" }, { input: "5 7\n", output: "12\n" }, { input: "-4 4\n", output: "0\n" }];
const MAXSUM: CodeTest[] = [{ input: "[1, 5, 3]\n2", output: "8" }, { input: "[4]\n1", output: "4" }, { input: "[-1, -2, 7, 7]\n3", output: "13" }];

const stdin = (code: string, o: SandboxOptions = {}, tests = AB) => runCodeTests({ code, fnName: null, tests }, { timeoutS: 2, ...o });
const functional = (code: string, o: SandboxOptions = {}, tests = MAXSUM) => runCodeTests({ code, fnName: "maxSum", tests }, { timeoutS: 2, ...o });
const brief = (r: CodeResult) => [r.judgement, r.reason, r.detail];

/** Seconds a trivial program takes here now (Python's start-up under this machine's load). */
async function startupSeconds(): Promise<number> {
  const t0 = performance.now();
  await stdin("print(3)", {}, [{ input: "", output: "3" }]);
  return (performance.now() - t0) / 1000;
}

/** Is this process gone (or a zombie waiting for its reaper)? */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? false;
  } catch {
    return true;
  }
}

test("stdin programs: passed, and wrong answer naming the test and the line", { skip }, async () => {
  assert.deepEqual(brief(await stdin("a, b = map(int, input().split())\nprint(a + b)")), [true, "passed", null]);
  // right on test 1, wrong on test 2
  assert.deepEqual(brief(await stdin("a, b = map(int, input().split())\nprint(min(a + b, 10))")), [false, "wrong answer on test 2 of 3", "line 1: got 10, expected 12"]);
  // the __main__ guard is unwrapped; sys.stdin.read and sys.stdin.buffer serve the input
  assert.equal((await stdin('import sys\ndef main():\n    a, b = map(int, sys.stdin.read().split())\n    print(a + b)\nif __name__ == "__main__":\n    main()')).reason, "passed");
  assert.equal((await stdin("import sys\na, b = map(int, sys.stdin.buffer.read().split())\nsys.stdout.write(str(a + b))")).reason, "passed");
  // LiveCodeBench's import block: sqrt without an import
  assert.equal((await stdin("a, b = map(int, input().split())\nprint(int(sqrt((a + b) ** 2)))")).reason, "passed");
});

test("stdin comparison is LiveCodeBench's: stripped lines, then lines as lists of Decimals", { skip }, async () => {
  const one: CodeTest[] = [{ input: "", output: "3 4.50\nyes\n" }];
  const cases: [string, string, string | null][] = [
    ["print('3 4.50'); print('yes')", "passed", null],
    ["print('\\n  3 4.50  \\nyes\\n\\n')", "passed", null],
    ["print('3.0 4.5'); print('yes')", "passed", null],
    ["print('3   4.50'); print('yes')", "passed", null],
    ["print('3 4.50'); print('YES')", "wrong answer on test 1 of 1", "line 2: got YES, expected yes"],
    ["print('3 4.5000001'); print('yes')", "wrong answer on test 1 of 1", "line 1: got 3 4.5000001, expected 3 4.50"],
    ["print('3 4.50')", "wrong answer on test 1 of 1", "output has 1 lines, expected 2"],
    ["print('3 4.50'); print(); print('yes')", "wrong answer on test 1 of 1", "output has 3 lines, expected 2"],
    ["print('3 4.50'); print('yes'); exit()", "passed", null],
  ];
  for (const [code, reason, detail] of cases) {
    const r = await stdin(code, {}, one);
    assert.deepEqual([r.reason, r.detail], [reason, detail], code);
  }
});

test("functional programs: Solution.method(*json args) == json output; tuples count as lists", { skip }, async () => {
  const solution = (body: string) => `class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        ${body}`;
  assert.deepEqual(brief(await functional(solution("return sum(sorted(nums)[-k:])"))), [true, "passed", null]);
  assert.deepEqual(brief(await functional(solution("return sum(sorted(nums)[-k:]) if len(nums) > 1 else 0"))), [false, "wrong answer on test 2 of 3", "returned 0, expected 4"]);
  assert.equal((await functional(solution("return (1, [2])"), {}, [{ input: "[1]\n1", output: "[1, [2]]" }])).reason, "passed");
  assert.equal((await functional(solution("return [(1, 2)]"), {}, [{ input: "[1]\n1", output: "[[1, 2]]" }])).reason, "wrong answer on test 1 of 1", "only the outer tuple counts as a list, as LiveCodeBench");
  assert.equal((await functional("def maxSum(nums, k):\n    return sum(sorted(nums)[-k:])")).reason, "passed", "a plain function when there is no class Solution");
  assert.deepEqual(brief(await functional("class Solution:\n    def other(self):\n        pass")), [false, "compile error", "AttributeError: class Solution has no method maxSum"]);
});

test("a program that never ends is killed in about the timeout, its whole process group with it", { skip }, async () => {
  const marker = path.join(tempDir(), "grandchild.pid");
  // a grandchild that would outlive its parent, then an endless loop
  const code = `import os\npid = os.posix_spawn("/bin/sleep", ["sleep", "60"], {})\nfd = os.open(${JSON.stringify(marker)}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, str(pid).encode())\nos.close(fd)\nwhile True:\n    pass`;
  let started = 0;
  let pid = -1;
  const startup = await startupSeconds();
  const r = await stdin(code, { timeoutS: 1, onStart: (s) => ((started = performance.now()), (pid = s.pid)) });
  const seconds = (performance.now() - started) / 1000;
  assert.deepEqual(brief(r), [false, "timeout on test 1 of 3", null]);
  // the CPU-time backstop alone would take 1 × 4 + 6 s
  assert.ok(seconds >= 1 && seconds < 1 + 2 * startup + 1.5, `ended after ${seconds.toFixed(2)} s (timeout 1 s; start-up here ${startup.toFixed(2)} s)`);
  assert.ok(gone(pid), "the harness is gone");
  const grandchild = Number(fs.readFileSync(marker, "utf8"));
  for (let i = 0; i < 40 && !gone(grandchild); i++) await new Promise((res) => setTimeout(res, 50));
  assert.ok(gone(grandchild), `the grandchild ${grandchild} was killed with the group`);
});

test("a judge that exits mid-run (Ctrl-C) takes its running tests with it", { skip }, async () => {
  const sandbox = path.join(REPO_ROOT, "dist", "src", "eval", "code-sandbox.js");
  const script = `import { runCodeTests } from ${JSON.stringify(sandbox)};
runCodeTests({ code: "while True:\\n    pass", fnName: null, tests: [{ input: "", output: "" }] }, { timeoutS: 60, onStart: (s) => { console.log(s.pid); setTimeout(() => process.exit(130), 500); } });`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30000 });
  assert.equal(r.status, 130, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 0, r.stdout);
  for (let i = 0; i < 40 && !gone(pid); i++) await new Promise((res) => setTimeout(res, 50));
  assert.ok(gone(pid), `the test process ${pid} outlived the judge`);
});

test("a program that swallows the timeout is ended by the watchdog, on the test it was on", { skip }, async () => {
  const code = "a, b = map(int, input().split())\nif a == 5:\n    while True:\n        try:\n            while True:\n                pass\n        except BaseException:\n            pass\nprint(a + b)";
  let started = 0;
  const startup = await startupSeconds();
  const r = await stdin(code, { timeoutS: 1, onStart: () => (started = performance.now()) });
  const seconds = (performance.now() - started) / 1000;
  assert.equal(r.reason, "timeout on test 2 of 3");
  assert.match(r.detail!, /the timeout was caught/);
  assert.ok(seconds >= 1.5 && seconds < 1.5 + 2 * startup + 1.5, `ended after ${seconds.toFixed(2)} s (timeout 1 s + grace 0.5 s; start-up here ${startup.toFixed(2)} s)`);
  // a loop while loading the code is a timeout too, not a compile error
  assert.equal((await functional("while True:\n    pass", { timeoutS: 1 })).reason, "timeout while loading the code");
});

test("crashes, the memory limit and compile errors are failures with their cause", { skip }, async () => {
  assert.deepEqual(brief(await stdin("a, b = map(int, input().split())\nprint(a + b + 0 // (b - 7))")), [false, "runtime error on test 2 of 3", "ZeroDivisionError: integer division or modulo by zero"]);
  assert.deepEqual(brief(await stdin("import os\nos._exit(3)")), [false, "runtime error on test 1 of 3", "the process ended (exit code 3)"]);
  assert.deepEqual(brief(await stdin("x = bytearray(1 << 30)\nprint(3)", { memoryMB: 256 })), [false, "runtime error on test 1 of 3", "MemoryError"]);
  assert.equal((await stdin("x = bytearray(1 << 28)\na, b = map(int, input().split())\nprint(a + b)", { memoryMB: 1024 })).reason, "passed", "within the limit it runs");
  const syntax = await stdin("def f(:\n    pass");
  assert.equal(syntax.reason, "compile error");
  assert.equal(syntax.test, null);
  assert.match(syntax.detail!, /^SyntaxError: /);
  // LiveCodeBench's kept quirks: top-level names are locals of the wrapped function; sys.stdin is not iterable
  assert.equal((await stdin("t = 0\ndef add(x):\n    global t\n    t += x\nadd(3)\nprint(t)")).detail, "NameError: name 't' is not defined");
  assert.equal((await stdin("import sys\nfor line in sys.stdin:\n    print(line)")).detail, "TypeError: '_Stdin' object is not iterable");
});

test("output flooding stops at the cap, through print or straight to the file descriptor", { skip }, async () => {
  const cap = { outputLimitBytes: 64 * 1024 };
  let t0 = performance.now();
  assert.deepEqual(brief(await stdin("while True:\n    print('x' * 1000)", cap)), [false, "output limit on test 1 of 3", null]);
  t0 = performance.now();
  const raw = await stdin("import os\nwhile True:\n    os.write(1, b'y' * 65536)", cap);
  assert.equal(raw.reason, "output limit on test 1 of 3");
  assert.match(raw.detail!, /^more than 1114112 bytes written to stdout$/);
  assert.ok(performance.now() - t0 < 5000, "stopped as soon as the cap was passed");
  // below the cap, output the code prints around the harness's lines is ignored
  assert.equal((await functional("import os\nos.write(1, b'noise without newline')\ndef maxSum(nums, k):\n    print('debug', nums)\n    return sum(sorted(nums)[-k:])", cap)).reason, "passed");
});

test("a program cannot fake the harness's report: its lines lack the nonce", { skip }, async () => {
  const fake = 'import os\nos.write(1, b\'\\n{"done": true}\\n{"test": 1, "verdict": "passed"}\\n\')\nos._exit(0)';
  assert.deepEqual(brief(await stdin(fake)), [false, "runtime error on test 1 of 3", "the process ended (exit code 0)"]);
});

test("each run has a fresh temp folder as cwd, removed after, and a minimal environment", { skip }, async () => {
  const report = path.join(tempDir(), "cwd.txt");
  process.env.PMKVQ_TEST_SECRET = "do-not-leak";
  let dir = "";
  const code = `import os\nfd = os.open("scratch.txt", os.O_WRONLY | os.O_CREAT)\nos.close(fd)\nfd = os.open(${JSON.stringify(report)}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, (os.readlink("/proc/self/cwd") + "|" + str(sorted(os.listdir("."))) + "|" + os.environ["HOME"]).encode())\nos.close(fd)\ndef maxSum(nums, k):\n    return os.environ.get("PMKVQ_TEST_SECRET")`;
  const r = await functional(code, { onStart: (s) => (dir = s.dir) }, [{ input: "[1]\n1", output: "null" }]);
  delete process.env.PMKVQ_TEST_SECRET;
  assert.equal(r.reason, "passed", "the parent's variables are not passed on");
  const [cwd, listing, home] = fs.readFileSync(report, "utf8").split("|");
  assert.equal(cwd, fs.realpathSync.native(path.dirname(dir)) + "/" + path.basename(dir));
  assert.match(path.basename(cwd), /^pmkvq-judge-/);
  assert.equal(listing, "['scratch.txt']", "empty before the code ran");
  assert.equal(home, cwd);
  assert.equal(fs.existsSync(dir), false, "removed after the run");
});

test("runner failures are CodeRunnerError; a custom runner command is used as given", { skip }, async () => {
  const runner = async (argv: string[], o: SandboxOptions = {}) => stdin("print(3)", { runner: argv, ...o }, [{ input: "", output: "3" }]);
  await assert.rejects(runner(["/no/such/python3"]), (e: unknown) => e instanceof CodeRunnerError && /"\/no\/such\/python3" cannot be started \(not found on PATH\)/.test(e.message));
  await assert.rejects(runner(["sh", "-c", "echo broken >&2; exit 5"]), (e: unknown) => e instanceof CodeRunnerError && /ended \(exit code 5\) before the harness started: broken/.test(e.message));
  await assert.rejects(runner(["sleep", "30"], { startupTimeoutS: 1 }), (e: unknown) => e instanceof CodeRunnerError && /did not start the harness within 1 s/.test(e.message));
  assert.equal((await runner(parseRunnerCommand("sh -c 'exec python3 -'"))).reason, "passed");
});

test("--judge-runner is split like a shell's words, never run through one", () => {
  assert.deepEqual(parseRunnerCommand("python3"), ["python3"]);
  assert.deepEqual(parseRunnerCommand("  docker run --rm -i --network none python:3.11 python3 "), ["docker", "run", "--rm", "-i", "--network", "none", "python:3.11", "python3"]);
  assert.deepEqual(parseRunnerCommand(`sh -c 'exec "$0"' python3`), ["sh", "-c", 'exec "$0"', "python3"]);
  assert.deepEqual(parseRunnerCommand(`a\\ b "c \\"d\\"" e''`), ["a b", 'c "d"', "e"]);
  for (const [bad, message] of [["python3 | tee log", /"\|" — the command is not run through a shell/], ["python3 > out", /">"/], ["echo $(id)", /"\$"/], ["'open", /unbalanced '/], ["   ", /empty command/]] as const) {
    assert.throws(() => parseRunnerCommand(bad), (e: unknown) => e instanceof UsageError && message.test(e.message), bad);
  }
});
