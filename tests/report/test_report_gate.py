"""The regression gate points to a report of its two sides: the command that writes it when a
gate fails, the file itself with ``--report-html`` (runs against the Ollama-protocol test
server, one model made slower between the baseline and the gated session)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from support.ollama_server import OllamaTestServer

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]
DATA = re.compile(r'<script type="application/json" id="llmbench-data">(.*?)</script>', re.S)


def run_cli(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(data)}
    return subprocess.run([*LLMBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def test_failed_gate_points_to_a_report_of_both_sides(ollama_server: OllamaTestServer,
                                                      tmp_path: Path):  # fmt: skip
    data = tmp_path / "data"
    batch = ["--batch", "-m", f"ollama:smollm-fake:135m@{ollama_server.url}", "-p", "hi",
             "-n", "4", "--warmup", "0"]  # fmt: skip
    assert run_cli(batch, data).returncode == 0
    history = json.loads(run_cli(["history", "--json"], data).stdout)
    (base,) = {r["session_id"] for r in history}
    ollama_server.models["smollm-fake:135m"].token_delay_s = 0.02  # 10 x slower decode
    gate = [*batch, "--baseline", base, "--fail-if", "decode_tok_s<-10%"]
    p = run_cli(gate, data)
    assert p.returncode == 3, p.stderr
    (line,) = [x for x in p.stderr.splitlines() if "both sides as a report" in x]
    command = line.split("both sides as a report: ", 1)[1]
    assert command.startswith("llmbench report ") and f"--against {base}" in command
    argv = shlex.split(command)[2:]
    argv[argv.index("gate-report.html")] = str(tmp_path / "gate-report.html")
    p = run_cli(["report", *argv], data)
    assert p.returncode == 0, p.stderr
    html = (tmp_path / "gate-report.html").read_text(encoding="utf-8")
    comp = json.loads(DATA.findall(html)[0])["baseline_comparison"]
    assert comp["a"] == f"baseline {base}" and comp["n_a"] == comp["n_b"] == 4
    (decode,) = [d for d in comp["diffs"] if d["figure"] == "timings.decode_tok_s"]
    assert decode["change_pct"] < -50 and decode["verdict"] == "real" and not decode["better"]
    assert '<section id="baseline">' in html and "worse (p=" in html
    # --report-html writes it at once, with the verdict in its title.
    out = tmp_path / "gate.html"
    p = run_cli([*gate, "--report-html", str(out)], data)
    assert p.returncode == 3 and f"both sides as a report: {out}" in p.stderr
    page = out.read_text(encoding="utf-8")
    assert "<title>llmbench regression gate: FAILED</title>" in page
    assert '<section id="baseline">' in page
