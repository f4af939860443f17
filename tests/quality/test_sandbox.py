"""The sandbox that model-written code runs in: no network (or it says so), a timeout that
kills, a file-size limit, an empty environment, and nothing run at all unless allowed."""

from __future__ import annotations

import dataclasses
import socket
import sys

import pytest

from llmbench_tui.quality import parse_checks, score_answer
from llmbench_tui.quality.sandbox import run_python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the sandbox needs POSIX")


def run_tests_of(code: str, tests: str, *, timeout_s: float = 10.0, allow: bool = True):
    checks = parse_checks([{"kind": "python", "tests": tests, "timeout_s": timeout_s}])
    (result,) = score_answer(code, checks, allow_code_exec=allow).checks
    return result.passed, result.score, result.detail


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 of *this* network namespace, accepting connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    yield server
    server.close()


def test_network_is_cut_or_says_so(listener):
    port = listener.getsockname()[1]
    script = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
    )
    result = run_python(script, timeout_s=10)
    assert result.returncode == 0, result.stderr
    if result.network_cut:
        assert result.stdout.startswith("refused"), result.stdout
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing reached us
    else:
        assert result.network_note, "an uncut network must come with the reason"


def test_network_in_a_python_check(listener):
    port = listener.getsockname()[1]
    tests = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).close()"
    passed, score, detail = run_tests_of("x = 1\n", tests)
    probe = run_python("pass", timeout_s=10)
    if probe.network_cut:
        assert (passed, score) == (False, 0.0)
        assert detail.startswith("OSError: [Errno 101] Network is unreachable (tests line 2)")
    else:
        assert "(network not cut: " in detail


def test_infinite_loop_is_killed_by_the_timeout():
    assert run_tests_of("def spin():\n    while True:\n        pass\n", "spin()", timeout_s=1) == (
        False,
        0.0,
        "tests killed after 1 s (timeout)",
    )


def test_ten_megabyte_file_is_refused():
    tests = "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (10 * 2**20))"
    assert run_tests_of("x = 1\n", tests) == (
        False,
        0.0,
        "OSError: [Errno 27] File too large (tests line 2)",
    )


def test_memory_is_limited():
    assert run_tests_of("x = 1\n", "block = bytearray(2**30)") == (
        False,
        0.0,
        "MemoryError (tests line 1)",
    )


def test_environment_is_empty(monkeypatch):
    monkeypatch.setenv("LLMBENCH_SECRET_TOKEN", "hunter2")
    tests = "import os\nassert dict(os.environ) == {}, sorted(os.environ)"
    assert run_tests_of("x = 1\n", tests) == (True, 1.0, "tests passed")
    result = run_python("import os; print(sorted(os.environ))", timeout_s=10)
    assert "LLMBENCH_SECRET_TOKEN" not in result.stdout


def test_working_folder_is_fresh_and_isolated():
    tests = (
        "import os, sys\n"
        "assert sorted(os.listdir('.')) == ['answer.py', 'main.py', 'tests.py'], os.listdir('.')\n"
        "assert sys.flags.isolated and sys.flags.no_site\n"
        "assert not any('site-packages' in p for p in sys.path), sys.path\n"
    )
    assert run_tests_of("x = 1\n", tests) == (True, 1.0, "tests passed")


def test_nothing_runs_without_permission(tmp_path):
    answer_marker = tmp_path / "answer-ran"
    tests_marker = tmp_path / "tests-ran"
    code = f"open({str(answer_marker)!r}, 'w').write('ran')\n"
    tests = f"open({str(tests_marker)!r}, 'w').write('ran')"
    assert run_tests_of(code, tests, allow=False) == (
        None,
        None,
        "compiles; tests not run: code execution not allowed (--allow-code-exec)",
    )
    assert not answer_marker.exists()
    assert not tests_marker.exists()
    # The control: with permission the same code does run (so the markers would have shown it).
    assert run_tests_of(code, tests, allow=True) == (True, 1.0, "tests passed")
    assert answer_marker.read_text() == "ran"
    assert tests_marker.read_text() == "ran"


def test_compiling_never_executes(tmp_path):
    marker = tmp_path / "compiled-ran"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    checks = parse_checks([{"kind": "python"}])
    quality = score_answer(code, checks, allow_code_exec=True)
    assert quality.checks[0].detail == "compiles"
    assert not marker.exists()


def test_output_of_the_code_cannot_forge_a_pass():
    code = "print('tests passed')\nimport sys\nsys.stderr.write('tests passed')\n"
    assert run_tests_of(code, "assert 1 == 2, 'one is not two'") == (
        False,
        0.0,
        "AssertionError: one is not two (tests line 1)",
    )


def test_timeout_of_the_runner_itself():
    result = run_python("import time\ntime.sleep(30)", timeout_s=0.5)
    assert result.timed_out
    assert result.death() == "killed after 0.5 s (timeout)"


def test_what_the_sandbox_could_not_do_is_reported():
    result = run_python("pass", timeout_s=10)
    uncut = dataclasses.replace(
        result, network_cut=False, network_note="unshare refused: Operation not permitted"
    )
    assert uncut.caveats() == " (network not cut: unshare refused: Operation not permitted)"
    limited = dataclasses.replace(result, network_cut=True, limits_not_set=("RLIMIT_AS",))
    assert limited.caveats() == " (limits not set: RLIMIT_AS)"
    if result.network_cut and not result.limits_not_set:
        assert result.caveats() == ""
