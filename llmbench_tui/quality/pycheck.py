"""The ``python`` check: does the answer's code compile, and do the suite's tests pass on it?

Compiling never executes the code, but it still happens in the sandbox: the compiler can be
made to use a great deal of memory or time by a hostile answer, and that must not be ours. The
tests (the suite author's asserts) run only when code execution is allowed, in the sandbox, with
the answer's code and the tests as two files in its temporary folder. The code is padded with
the answer lines that came before its fenced block, so every line number in a detail is a line
of the answer as stored.

A test run passes when the process exits 0 *and* prints a token it was given on stdin after
the tests finished: model code that calls ``os._exit(0)`` while loading cannot pass by exiting
early. The runner catches the first exception and writes a one-line description as the last
line of stderr ("AssertionError: assert fib(10) == 55 (tests line 1)").
"""

from __future__ import annotations

import json
import secrets

from .sandbox import run_python

_COMPILE = r"""
import json
with open("answer.py", encoding="utf-8", errors="surrogatepass") as f:
    source = f.read()
try:
    compile(source, "answer.py", "exec", dont_inherit=True)
except SyntaxError as exc:
    result = {"error": type(exc).__name__, "line": exc.lineno, "msg": exc.msg}
except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
    result = {"error": type(exc).__name__, "line": None, "msg": str(exc)}
else:
    result = {"ok": True}
print(json.dumps(result))
"""

_RUN = r"""
import os, sys, traceback
os.environ.clear()
token = sys.stdin.readline().strip()
null = os.open(os.devnull, os.O_RDWR)
out, err = os.dup(1), os.dup(2)
for fd in (0, 1, 2):
    os.dup2(null, fd)
sys.stdin = open(os.devnull, encoding="utf-8")
sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")
LABELS = {"answer.py": "answer", "tests.py": "tests"}

def fail(message):
    os.write(err, ("\n" + message + "\n").encode("utf-8", "replace"))
    os._exit(1)

def describe(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in LABELS]
    where, source = "", ""
    if frames:
        frame = frames[-1]
        where, source = f" ({LABELS[frame.filename]} line {frame.lineno})", frame.line or ""
    if isinstance(exc, SyntaxError) and exc.filename in LABELS:
        where = f" ({LABELS[exc.filename]} line {exc.lineno})"
        text = exc.msg
    else:
        text = str(exc) or (source if isinstance(exc, AssertionError) else "")
    return type(exc).__name__ + (": " + text if text else "") + where

namespace = {"__name__": "answer", "__builtins__": __builtins__}
for name in ("answer.py", "tests.py"):
    with open(name, encoding="utf-8", errors="surrogatepass") as f:
        source = f.read()
    try:
        exec(compile(source, name, "exec", dont_inherit=True), namespace)
    except SystemExit as exc:
        fail(f"the {LABELS[name]} called exit({exc.code!r}) before the tests finished")
    except BaseException as exc:
        fail(describe(exc))
os.write(out, ("\n" + token + "\n").encode())
os._exit(0)
"""


def compile_error(code: str, line_offset: int, timeout_s: float) -> str | None:
    """``None`` when ``code`` compiles, else a one-line reason ("SyntaxError line 2: …").

    Raises ``SandboxUnavailable`` where no sandbox can be had.
    """
    result = run_python(
        _COMPILE, timeout_s=timeout_s, files={"answer.py": "\n" * line_offset + code}
    )
    lines = result.stdout.strip().splitlines()
    if result.death() or result.returncode != 0 or not lines:
        why = result.death() or f"exit {result.returncode}: {result.last_stderr_line()}"
        return f"the compiler did not finish: {why}"
    report = json.loads(lines[-1])
    if report.get("ok"):
        return None
    where = f" line {report['line']}" if report.get("line") else ""
    return f"{report['error']}{where}: {report['msg']}"


def run_tests(code: str, line_offset: int, tests: str, timeout_s: float) -> tuple[bool, str]:
    """Run ``tests`` against ``code`` in the sandbox: ``(passed, detail)``.

    The detail says when the network could not be cut or a limit not set for the run.
    """
    token = secrets.token_hex(16)
    result = run_python(
        _RUN,
        timeout_s=timeout_s,
        files={"answer.py": "\n" * line_offset + code, "tests.py": tests},
        stdin=token + "\n",
    )
    caveats = result.caveats()
    if result.death():
        return False, f"tests {result.death()}{caveats}"
    if result.returncode == 0 and result.stdout.strip().endswith(token):
        return True, f"tests passed{caveats}"
    if result.returncode == 0:
        return False, f"the code ended the process before the tests finished (exit 0){caveats}"
    reason = result.last_stderr_line() or f"exit {result.returncode}"
    return False, f"{reason}{caveats}"
