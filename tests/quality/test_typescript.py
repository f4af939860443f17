"""Which ``tsc`` the typescript check uses (LLMBENCH_TSC, a project-local node_modules, PATH),
and what it says when there is none or it misbehaves. Fake ``tsc`` scripts stand in, so these
run without Node; the real compiler is exercised in test_quality_checks and the fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from llmbench_tui.quality import find_tsc, parse_checks, score_answer
from llmbench_tui.quality import typescript as ts

TOOLS_PATH = os.environ.get("PATH", os.defpath)  # for cat and env in a fake tsc
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake tsc scripts need /bin/sh")


def fake_tsc(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tsc"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No tsc anywhere: not configured, not near the current folder or this checkout, not on
    PATH."""
    monkeypatch.delenv("LLMBENCH_TSC", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setattr(ts, "_REPO_ROOT", empty)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    return tmp_path


def check(answer: str = "const x: number = 1\n", **spec) -> tuple:
    (result,) = score_answer(answer, parse_checks([{"kind": "typescript", **spec}])).checks
    return result.passed, result.score, result.detail


def test_no_tsc_means_not_run(nowhere):
    assert find_tsc() == (None, ts.NOT_FOUND)
    assert check() == (
        None,
        None,
        "tsc not found (set LLMBENCH_TSC or install TypeScript: npm install typescript)",
    )
    quality = score_answer("x", parse_checks([{"kind": "typescript"}]))
    assert quality.score is None


def test_llmbench_tsc_comes_first(nowhere, monkeypatch):
    on_path = fake_tsc(nowhere / "bin", 'echo "answer.ts(1,1): error TS1111: from PATH."; exit 2')
    chosen = fake_tsc(nowhere / "chosen", 'echo "answer.ts(1,7): error TS9999: chosen."; exit 2')
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv("LLMBENCH_TSC", str(chosen))
    assert find_tsc() == (str(chosen), "")
    assert check() == (False, 0.0, "TS9999: chosen. (line 1)")


def test_llmbench_tsc_that_is_not_there(nowhere, monkeypatch):
    monkeypatch.setenv("LLMBENCH_TSC", "/nonexistent/tsc")
    assert check() == (None, None, "LLMBENCH_TSC=/nonexistent/tsc is not an executable file")


def test_project_local_node_modules_above_the_current_folder(nowhere, monkeypatch):
    local = fake_tsc(nowhere / "project" / "node_modules" / ".bin", "exit 0")
    deep = nowhere / "project" / "src" / "deep"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_tsc() == (str(local), "")
    assert check() == (True, 1.0, "tsc --strict: no errors")


def test_node_modules_of_this_checkout(nowhere, monkeypatch):
    checkout = nowhere / "checkout"
    local = fake_tsc(checkout / "node_modules" / ".bin", "exit 0")
    monkeypatch.setattr(ts, "_REPO_ROOT", checkout)
    assert find_tsc() == (str(local), "")


def test_path_is_the_last_resort(nowhere, monkeypatch):
    on_path = fake_tsc(nowhere / "bin", "exit 0")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_tsc() == (str(on_path), "")


def test_broken_tsc_is_not_run_not_failed(nowhere, monkeypatch):
    broken = fake_tsc(nowhere / "bin", 'echo "error TS5023: Unknown compiler option"; exit 1')
    monkeypatch.setenv("LLMBENCH_TSC", str(broken))
    assert check() == (None, None, "tsc failed (exit 1): error TS5023: Unknown compiler option")


def test_slow_tsc_is_not_run_not_failed(nowhere, monkeypatch):
    slow = fake_tsc(nowhere / "bin", "while :; do :; done")
    monkeypatch.setenv("LLMBENCH_TSC", str(slow))
    assert check(timeout_s=1) == (None, None, "tsc did not finish within 1 s")


def test_tsc_gets_the_files_and_flags(nowhere, monkeypatch):
    """The command line: strict, no emit, both files; the code keeps its answer lines."""
    log = nowhere / "args.txt"
    spy = fake_tsc(
        nowhere / "bin",
        f'PATH="{TOOLS_PATH}"; echo "$@" > {log}; cat answer.ts >> {log}; echo >> {log}; '
        f"cat prelude.d.ts >> {log}; echo >> {log}; env >> {log}; exit 0",
    )
    monkeypatch.setenv("LLMBENCH_TSC", str(spy))
    monkeypatch.setenv("LLMBENCH_SECRET", "x")
    answer = "Code:\n```ts\nlet a = 1\n```"
    assert check(answer, prelude="declare const p: number")[0] is True
    args, *rest = log.read_text().split("\n")
    assert args.split() == [*ts.TSC_FLAGS, "answer.ts", "prelude.d.ts"]
    assert rest[:4] == ["", "", "let a = 1", "declare const p: number"]
    assert "LLMBENCH_SECRET" not in log.read_text()
    assert os.environ["LLMBENCH_SECRET"] == "x"
