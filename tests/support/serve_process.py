"""``llmbench serve`` as a subprocess on a free loopback port, for the web tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .fixtures_llama import free_port
from .paths import REPO


def serve_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout first on the path (the command and each dashboard it spawns)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


class ServeProcess:
    """``llmbench serve`` in its own process group (so its dashboards go with it)."""

    def __init__(self, data_dir: Path, log_dir: Path, *args: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / f"serve-{self.port}.out"
        self.stderr_path = log_dir / f"serve-{self.port}.err"
        argv = [sys.executable, "-m", "llmbench_tui.cli", "serve", "--data-dir", str(data_dir),
                "--port", str(self.port), *args]  # fmt: skip
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"llmbench serve exited early: {self.output()}")
            try:
                answer = httpx.get(f"{self.url}/api/runs?limit=1", timeout=2)
                if answer.status_code in (200, 401):  # 401: up, and wants its token
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"llmbench serve did not answer within {timeout}s: {self.output()}")

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):  # dashboards it spawned, if any are left
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
