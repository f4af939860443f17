"""Running Python we do not trust in a separate, limited process.

Model-written code (a ``python`` check's tests), the compiler fed model-written code, regex
searches over hostile answers and fixture templates written by someone else all run here, never
in our process: a subprocess can be killed when its time is up, a loop inside C code in ours
cannot, and a crash or a memory blow-up takes only the subprocess down.

Each run gets a fresh temporary folder as its working directory, an empty environment, the
isolated interpreter (``-I``: no ``PYTHON*`` variables, no user site, no script folder on
``sys.path``) without ``site`` (``-S``: the standard library only, plus folders a caller names;
it also starts faster), a wall-clock timeout after which the whole process group is killed, and
these limits: CPU seconds (the timeout rounded up, plus one), address space (512 MiB), the size
of any file written (1 MiB by default; stdout and stderr are files, so they are capped too), no
core files, 64 open files, and no new processes or threads (``RLIMIT_NPROC`` 0; the kernel
exempts root from this one). The network is cut with a new network namespace (Linux
``unshare(CLONE_NEWNET)``, together with a new user namespace when not root): the process sees
only a loopback interface that is down. Where the system refuses, ``network_cut`` is False and
``network_note`` says why; callers report it rather than pretend.

The limits are set by a small launcher that then ``exec``s the real interpreter, not by
``preexec_fn``: Python documents ``preexec_fn`` as unsafe in programs with threads (the
dashboard works in threads), where the child can deadlock between ``fork`` and ``exec``.

This is a seatbelt for benchmark answers, not a jail for attackers: the code can still read
whatever files this user can read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MEMORY_BYTES = 512 * 2**20
FILE_BYTES = 2**20

# Runs as ``python -I -S -c _LAUNCHER CONFIG`` in the temporary folder; stdlib only.
_LAUNCHER = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
status = {"network_cut": False, "network_note": "", "limits_not_set": []}
CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
try:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        status["network_cut"] = True
    else:
        status["network_note"] = "unshare refused: " + os.strerror(ctypes.get_errno())
except (OSError, AttributeError):
    status["network_note"] = "this system has no network namespaces"
for name, value in cfg["limits"].items():
    try:
        key = getattr(resource, name)
        hard = resource.getrlimit(key)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(key, (value, value))
    except (AttributeError, ValueError, OSError):
        status["limits_not_set"].append(name)
os.write(cfg["status_fd"], json.dumps(status).encode())
os.close(cfg["status_fd"])
os.execve(sys.executable, [sys.executable, "-I", "-S", cfg["script"]], {})
"""


class SandboxUnavailable(RuntimeError):
    """This system cannot run code in the sandbox (not POSIX)."""


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended. ``returncode`` is negative when a signal ended it."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    timeout_s: float
    network_cut: bool
    network_note: str
    limits_not_set: tuple[str, ...] = ()

    def last_stderr_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def death(self) -> str:
        """Why the process ended early, in words ("" when it exited normally)."""
        if self.timed_out:
            return f"killed after {self.timeout_s:g} s (timeout)"
        if self.returncode >= 0:
            return ""
        sig = -self.returncode
        if sig == signal.SIGXCPU:
            return "killed: CPU time limit reached"
        if sig == signal.SIGXFSZ:
            return "killed: file size limit reached"
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"

    def caveats(self) -> str:
        """What the sandbox could not do for this run, as a detail suffix ("" when nothing)."""
        notes = []
        if not self.network_cut:
            notes.append(f"network not cut: {self.network_note}")
        if self.limits_not_set:
            notes.append(f"limits not set: {', '.join(self.limits_not_set)}")
        return f" ({'; '.join(notes)})" if notes else ""


def run_python(
    script: str,
    *,
    timeout_s: float,
    files: Mapping[str, str] | None = None,
    stdin: str = "",
    extra_path: Sequence[str] = (),
    file_bytes: int = FILE_BYTES,
    memory_bytes: int = MEMORY_BYTES,
) -> SandboxResult:
    """Run ``script`` (Python source) in the sandbox, with ``files`` (name → text) written into
    its working folder first and ``stdin`` as its standard input.

    Text is written and read as UTF-8 with lone surrogates passed through, so any ``str`` an
    answer can hold arrives intact. ``extra_path`` folders are put first on the child's
    ``sys.path`` (for a library such as Jinja2 that a worker script needs).
    """
    if os.name != "posix":
        raise SandboxUnavailable("sandboxed runs need Linux or another POSIX system")
    limits = {
        "RLIMIT_CPU": math.ceil(timeout_s) + 1,
        "RLIMIT_AS": memory_bytes,
        "RLIMIT_FSIZE": file_bytes,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": 64,
        "RLIMIT_NPROC": 0,
    }
    header = f"import sys\nsys.path[:0] = {list(extra_path)!r}\n" if extra_path else ""
    with (
        tempfile.TemporaryDirectory(prefix="llmbench-sandbox-", ignore_cleanup_errors=True) as work,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        folder = Path(work)
        (folder / "main.py").write_text(header + script, encoding="utf-8")
        for name, text in (files or {}).items():
            (folder / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        read_fd, write_fd = os.pipe()
        config = {"status_fd": write_fd, "script": "main.py", "limits": limits}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config)],
                cwd=work,
                env={},
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        timed_out = False
        try:
            proc.communicate(stdin.encode("utf-8", "surrogatepass"), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)  # also whatever it started (root is not held by NPROC)
            proc.wait()
        with os.fdopen(read_fd, "rb") as pipe:
            raw = pipe.read(65536)
        try:
            status = json.loads(raw)
        except ValueError:
            status = {"network_cut": False, "network_note": "the launcher did not report"}
        return SandboxResult(
            returncode=proc.returncode,
            stdout=_read(out, file_bytes),
            stderr=_read(err, file_bytes),
            timed_out=timed_out,
            timeout_s=timeout_s,
            network_cut=bool(status.get("network_cut")),
            network_note=str(status.get("network_note", "")),
            limits_not_set=tuple(status.get("limits_not_set", ())),
        )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read(handle, limit: int) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", "surrogateescape")
