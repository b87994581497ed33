// The Python side of the code judge: a program read by the runner (python3, or a container's
// python) on its stdin, with its job appended. It grades one response as LiveCodeBench's
// lcb_runner/evaluation/testing_util.py does (read to learn, written anew here):
//  - the code is preceded by LiveCodeBench's import block (star imports of the standard
//    modules solutions lean on, recursion limit 50000);
//  - stdin problems: a trailing `if __name__ == '__main__':` is unwrapped, imports are hoisted
//    and the rest becomes the body of one function, called once per test with sys.stdin and
//    sys.stdin.buffer serving the test's input (readline without newlines, readlines split on
//    "\n", not iterable — as theirs), SystemExit counting as a normal end; outputs compare line
//    by line after stripping the whole text and each line, a line matching exactly or as a list
//    of Decimals. Kept from theirs because verdicts depend on it: `open(0)` reads the process's
//    own (empty) stdin — their mock of open() is shadowed by the import block's `open` — and
//    top-level names are locals of the function (`global x` finds nothing);
//  - functional problems: `class Solution` is instantiated (else the module is used) and its
//    method metadata.func_name is called with the JSON lines of the input as arguments; the
//    result (a tuple counts as a list) must == the JSON-decoded output;
//  - tests run in order and grading stops at the first failure; each has `timeout` seconds.
// Our additions: limits (address space, CPU time, file size, no core files), captured output
// capped (past the cap the test fails as "output limit"), a watchdog that ends the process when
// a test outlives its time even if the code swallows the timeout, and results sent to the real
// stdout only on lines that start with a nonce the code under test is not told.

export const HARNESS_SOURCE = String.raw`
import ast, base64, builtins, decimal, io, json, os, resource, signal, sys, threading, time, types

IMPORTS = "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\nfrom heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"

_write, _exit, _monotonic, _sleep = os.write, os._exit, time.monotonic, time.sleep
_send_lock = threading.Lock()
_deadline = [None, None]  # [monotonic deadline, what is running]


class _Timeout(BaseException):
    pass


class _OutputLimit(BaseException):
    pass


def _send(job, message):
    data = ("\n" + job["nonce"] + json.dumps(message) + "\n").encode()
    with _send_lock:
        while data:
            data = data[_write(1, data):]


def _short(value, n=300):
    s = value if isinstance(value, str) else repr(value)
    return s if len(s) <= n else s[: n // 2] + " … " + s[-n // 2 :]


def _lower(kind, soft, hard):
    current_hard = resource.getrlimit(kind)[1]
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(kind, (soft, hard))


def _limits(job):
    if job["memory_bytes"] > 0:
        _lower(resource.RLIMIT_AS, job["memory_bytes"], job["memory_bytes"])
    _lower(resource.RLIMIT_CPU, job["cpu_seconds"], job["cpu_seconds"] + 1)  # SIGXCPU, then SIGKILL
    _lower(resource.RLIMIT_FSIZE, job["file_bytes"], job["file_bytes"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails instead of killing
    _lower(resource.RLIMIT_CORE, 0, 0)


def _watchdog(job):
    while True:
        _sleep(0.02)
        deadline, what = _deadline
        if deadline is not None and _monotonic() > deadline:
            _send(job, {"hard_timeout": what})
            _exit(124)


def _guard():
    # as LiveCodeBench's reliability_guard: not a sandbox, only fewer accidents
    for name in ["kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty", "killpg",
                 "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags",
                 "lchmod", "lchown", "getcwd", "chdir"]:
        if hasattr(os, name):
            setattr(os, name, None)
    import shutil, subprocess
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.quit = None
    builtins.help = None
    for name in ["ipdb", "joblib", "resource", "psutil", "tkinter"]:
        sys.modules[name] = None


class _Capture(io.StringIO):
    def __init__(self, limit):
        super().__init__()
        self._left = limit

    def write(self, s):
        self._left -= len(s)
        if self._left < 0:
            raise _OutputLimit()
        return super().write(s)


class _Buffer:
    def __init__(self, text):
        self._data = text.encode("utf-8")

    def read(self, *args):
        return self._data

    def readline(self, *args):
        return self._data.split(b"\n")[0] + b"\n"


class _Stdin:
    def __init__(self, text):
        self._text = text
        self._lines = iter(text.split("\n"))
        self._io = io.StringIO(text)
        self.buffer = _Buffer(text)

    def read(self, *args):
        return self._text

    def readline(self, *args):
        return next(self._lines)

    def readlines(self, *args):
        return self._text.split("\n")

    def __getattr__(self, name):
        return getattr(self._io, name)


class _Redirect:
    # sys.stdout (and for stdin tests sys.stdin) replaced while the code runs
    def __init__(self, stdout, stdin_text=None):
        self._stdout, self._text = stdout, stdin_text

    def __enter__(self):
        self._saved = sys.stdout, sys.stdin
        sys.stdout = self._stdout
        if self._text is not None:
            sys.stdin = _Stdin(self._text)

    def __exit__(self, *exc):
        sys.stdout, sys.stdin = self._saved
        return False


def _timed(job, what, fn):
    _deadline[:] = [_monotonic() + job["timeout"] + job["grace"], what]
    signal.setitimer(signal.ITIMER_REAL, job["timeout"])
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _deadline[:] = [None, None]


def _alarm(signum, frame):
    raise _Timeout()


def _stdin_program(code):
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # compiling it reports the error
    body = tree.body
    if body and isinstance(body[-1], ast.If) and ast.unparse(body[-1].test).strip() == "__name__ == '__main__'":
        body = body[:-1] + body[-1].body
    imports = [s for s in body if isinstance(s, (ast.Import, ast.ImportFrom))]
    rest = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    fields = dict(name="wrapped_function", args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
                  body=rest or [ast.Pass()], decorator_list=[], returns=None, lineno=1)
    if "type_params" in ast.FunctionDef._fields:
        fields["type_params"] = []
    fn = ast.FunctionDef(**fields)
    module = ast.Module(body=imports + [fn], type_ignores=[])
    return IMPORTS + "\n" + ast.unparse(ast.fix_missing_locations(module))


def _load(job):
    fn_name = job["fn_name"]
    code = IMPORTS + "\n\n" + job["code"] if fn_name else _stdin_program(job["code"])
    module = types.ModuleType("tmp_sol")
    exec(compile(code, "<solution>", "exec"), module.__dict__)
    if not fn_name:
        return module.wrapped_function
    owner = module.Solution() if "class Solution" in job["code"] else module
    method = getattr(owner, fn_name, None)
    if method is None:
        raise AttributeError(("class Solution has no method " if owner is not module else "no function ") + fn_name)
    return method


def _compare_stdin(got, expected):
    lines = lambda s: [line.strip() for line in s.strip().split("\n")]
    got_lines, want_lines = lines(got), lines(expected)
    if len(got_lines) != len(want_lines):
        return "output has %d lines, expected %d" % (len(got_lines), len(want_lines))
    for i, (a, b) in enumerate(zip(got_lines, want_lines)):
        if a == b:
            continue
        try:
            if [decimal.Decimal(t) for t in a.split()] == [decimal.Decimal(t) for t in b.split()]:
                continue
        except Exception:
            pass
        return "line %d: got %s, expected %s" % (i + 1, _short(a, 120), _short(b, 120))
    return None


def _run_test(job, method, k, test):
    inp, out = test
    capture = _Capture(job["output_limit"])
    if job["fn_name"]:
        args = [json.loads(line) for line in inp.split("\n")]
        expected = json.loads(out)
        with _Redirect(capture):
            got = _timed(job, k, lambda: method(*args))
        if isinstance(got, tuple):
            got = list(got)
        return None if bool(got == expected) else "returned %s, expected %s" % (_short(got, 140), _short(expected, 140))

    def call():
        try:
            method()
        except SystemExit:
            pass
    with _Redirect(capture, inp):
        _timed(job, k, call)
    return _compare_stdin(capture.getvalue(), out)


def _failure(e):
    if isinstance(e, _Timeout):
        return "timeout", None
    if isinstance(e, _OutputLimit):
        return "output limit", None
    message = str(e)
    return None, _short("%s: %s" % (type(e).__name__, message) if message else type(e).__name__)


def _main(encoded):
    if sys.version_info < (3, 9):
        sys.stderr.write("the code judge needs Python 3.9 or later (ast.unparse), found %s\n" % sys.version.split()[0])
        _exit(3)
    job = json.loads(base64.b64decode(encoded).decode("utf-8"))
    _limits(job)
    signal.signal(signal.SIGALRM, _alarm)
    threading.Thread(target=_watchdog, args=(job,), daemon=True).start()
    _send(job, {"ready": sys.version.split()[0]})
    _guard()
    try:
        method = _timed(job, "load", lambda: _load(job))
    except BaseException as e:
        verdict, detail = _failure(e)
        _send(job, {"load_failed": verdict or "compile error", "detail": detail})
        _exit(0)
    _send(job, {"loaded": True})
    for k, test in enumerate(job["tests"], 1):
        _send(job, {"start": k})
        try:
            wrong = _run_test(job, method, k, test)
            verdict, detail = ("wrong answer", wrong) if wrong else ("passed", None)
        except BaseException as e:
            verdict, detail = _failure(e)
            verdict = verdict or "runtime error"
        _send(job, {"test": k, "verdict": verdict, "detail": detail})
        if verdict != "passed":
            break
    _send(job, {"done": True})
    _exit(0)
`;

/** What the harness is told, besides the code and tests. */
export interface HarnessJob {
  nonce: string;
  code: string;
  fn_name: string | null;
  tests: [string, string][];
  /** Seconds per test (and for loading the code). */
  timeout: number;
  /** Seconds past the timeout before the harness's watchdog ends the process. */
  grace: number;
  memory_bytes: number;
  cpu_seconds: number;
  file_bytes: number;
  /** Characters of captured output per test before "output limit". */
  output_limit: number;
}

/** The program the runner reads on its stdin: the harness, then its job. */
export function harnessProgram(job: HarnessJob): string {
  return `${HARNESS_SOURCE}\n_main("${Buffer.from(JSON.stringify(job), "utf8").toString("base64")}")\n`;
}
