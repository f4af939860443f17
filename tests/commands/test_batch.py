"""``llmbench --batch`` as a user runs it: a subprocess, its exit code, stdout, stderr, files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.ollama_server import FakeModel

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]


def run(args, tmp_path, **kw):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*LLMBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=kw.pop("timeout", 120), **kw)


def test_batch_ollama_summary_json_csv_markdown(ollama_server, tmp_path):
    out = tmp_path / "runs.json"
    csv_path, md = tmp_path / "runs.csv", tmp_path / "summary.md"
    p = run(["--batch", "-m", f"ollama:smollm-fake:135m@{ollama_server.url}", "-p", "hi",
             "-n", "3", "--json", str(out), "--csv", str(csv_path), "--markdown", str(md)],
            tmp_path)
    assert p.returncode == 0, p.stderr
    # Summary table on stdout, llama-bench style mean ± stdev with n.
    assert "decode tok/s" in p.stdout and " 3/3 " in p.stdout and " ± " in p.stdout
    # Plain progress lines on stderr when not a terminal: warm-up + 3 runs.
    assert p.stderr.count("[") >= 4 and "warm-up ok" in p.stderr
    records = json.loads(out.read_text())
    assert len(records) == 4 and records[0]["warmup"] is True
    assert all(r["schema"] == 1 and r["status"] == "ok" for r in records)
    assert len(csv_path.read_text().strip().splitlines()) == 5  # header + 4 runs
    assert md.read_text().startswith("| model | prompt | ok |")


def test_batch_exit_1_when_a_model_fails_others_go_on(ollama_server, dead_url, tmp_path):
    p = run(["--batch", "-m", f"ollama:x@{dead_url}", "-m",
             f"ollama:smollm-fake:135m@{ollama_server.url}", "-n", "1", "--warmup", "0",
             "--no-store"], tmp_path)
    assert p.returncode == 1
    assert "cannot connect to Ollama" in p.stdout + p.stderr
    assert "1/1" in p.stdout  # the healthy model's group still ran
    assert "Traceback" not in p.stderr


def test_batch_bad_suite_exit_2_names_file_field_line(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text('models = ["embedded"]\nrepetitions = 0\n[[prompts]]\nid="a"\ntext="x"\n')
    p = run(["--batch", str(suite)], tmp_path)
    assert p.returncode == 2
    assert f"{suite}:2: field 'repetitions'" in p.stderr


def test_batch_bad_usage_exit_2(tmp_path):
    p = run(["--batch", "-m", "llama3"], tmp_path)
    assert p.returncode == 2 and "bad model spec 'llama3'" in p.stderr
    p = run(["--batch", "--repetitions", "0"], tmp_path)
    assert p.returncode == 2 and "must be >= 1" in p.stderr
    p = run(["--batch", "--fail-if", "ttft_s>+10%"], tmp_path)
    assert p.returncode == 2 and "--fail-if needs --baseline" in p.stderr


def test_batch_timeout_exit_1(ollama_server, tmp_path):
    ollama_server.add_model(FakeModel("stall:1b", fault="stall", fault_after=2))
    p = run(["--batch", "-m", f"ollama:stall:1b@{ollama_server.url}", "-n", "1", "--warmup",
             "0", "--timeout", "0.5", "--no-store"], tmp_path)
    assert p.returncode == 1
    assert "timeout" in p.stderr and "stall timeout" in p.stdout + p.stderr


def test_batch_ctrl_c_exit_130_keeps_partial(ollama_server, tmp_path):
    ollama_server.add_model(FakeModel("long:1b", tokens=[f" w{i}" for i in range(2000)],
                                      token_delay_s=0.005))
    out = tmp_path / "runs.json"
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*LLMBENCH, "--batch", "-m", f"ollama:long:1b@{ollama_server.url}", "-n", "3",
         "--warmup", "0", "--max-tokens", "5000", "--json", str(out), "--no-store"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        gens = ollama_server.generations("long:1b")
        if gens and gens[-1].tokens_sent > 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    records = json.loads(out.read_text())
    assert [r["status"] for r in records] == ["cancelled"]
    assert records[0]["response"].startswith(" w0 w1")
    assert "model" in stdout  # the summary so far is printed


@pytest.mark.slow
def test_batch_default_runs_embedded_model_and_stores(tmp_path):
    """The quick start: no server configured -> the embedded SmolLM2 runs, results stored."""
    p = run(["--batch", "-n", "2", "--max-tokens", "16"], tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "embedded" in p.stdout and " 2/2 " in p.stdout
    assert (tmp_path / "data" / "history.json").exists()
    h = run(["history", "--json"], tmp_path)
    assert h.returncode == 0, h.stderr
    rows = json.loads(h.stdout)
    assert len(rows) == 3 and {r["backend"] for r in rows} == {"gguf"}
    assert all(r["tokens"]["output"] >= 2 for r in rows)


def test_regression_gate_exit_3_against_stored_baseline(ollama_server, tmp_path):
    model = ollama_server.add_model(FakeModel("gate:1b", tokens=[f" t{i}" for i in range(30)],
                                              token_delay_s=0.005))
    spec = f"ollama:gate:1b@{ollama_server.url}"
    first = run(["--batch", "-m", spec, "-n", "3", "--warmup", "0"], tmp_path)
    assert first.returncode == 0, first.stderr
    session = first.stdout.split("session ")[1].split()[0]
    # Same speed: the gate passes.
    same = run(["--batch", "-m", spec, "-n", "3", "--warmup", "0", "--baseline", session[:8],
                "--fail-if", "decode_tok_s<-50%"], tmp_path)
    assert same.returncode == 0, same.stderr
    assert "regression gate passed" in same.stderr
    # Four times slower decoding: the gate fails with exit 3 and names model, figure, change.
    model.token_delay_s = 0.02
    slow = run(["--batch", "-m", spec, "-n", "3", "--warmup", "0", "--baseline", session,
                "--fail-if", "decode_tok_s<-50%"], tmp_path)
    assert slow.returncode == 3, slow.stderr
    assert "REGRESSION" in slow.stderr and "gate:1b" in slow.stderr
    assert "decode_tok_s" in slow.stderr


def test_bad_output_path_refused_before_running(ollama_server, tmp_path):
    p = run(["--batch", "-m", f"ollama:smollm-fake:135m@{ollama_server.url}", "--no-store",
             "--json", str(tmp_path / "missing" / "runs.json")], tmp_path)
    assert p.returncode == 2
    assert "--json" in p.stderr and "does not exist" in p.stderr
    assert not ollama_server.generations()  # nothing ran, nothing was lost


def test_hostile_server_text_never_reaches_the_terminal(ollama_server, tmp_path):
    """A server's error text (and a model name) is untrusted: no escape sequence of it may reach
    stdout or stderr, where the user's terminal would act on it."""
    evil = "boom \x1b]52;c;ZXZpbA==\x07\x1b[2J gone"
    ollama_server.add_model(FakeModel("evil:1b", fault="error_midstream", fault_after=2,
                                      error_message=evil))
    p = run(["--batch", "-m", f"ollama:evil:1b@{ollama_server.url}", "-n", "1", "--warmup", "0",
             "--no-store"], tmp_path)
    assert p.returncode == 1
    assert "boom" in p.stderr and "gone" in p.stderr  # the sentence is still there...
    assert "\x1b" not in p.stderr and "\x1b" not in p.stdout  # ...without its escapes
    assert "\x07" not in p.stderr


def test_gate_refuses_a_baseline_with_nothing_in_common(ollama_server, tmp_path):
    ollama_server.add_model(FakeModel("base:1b"))
    ollama_server.add_model(FakeModel("other:1b"))
    first = run(["--batch", "-m", f"ollama:base:1b@{ollama_server.url}", "-n", "2",
                 "--warmup", "0"], tmp_path)
    session = first.stdout.split("session ")[1].split()[0]
    p = run(["--batch", "-m", f"ollama:other:1b@{ollama_server.url}", "-n", "2", "--warmup",
             "0", "--baseline", session, "--fail-if", "decode_tok_s<-10%"], tmp_path)
    assert p.returncode == 2, p.stderr
    assert "has no runs of the same model" in p.stderr
