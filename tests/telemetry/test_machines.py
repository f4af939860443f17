"""Machines as a dimension: the machine block and its id, runs that carry their machine, exports
that carry their session, import into an empty folder, `show`, `history --machine`, and compare
saying when two sides ran on different machines (`compare --by machine`)."""

from __future__ import annotations

import csv
import io
import json
import platform
import re
from pathlib import Path

import pytest
from support.store_helpers import run

from llmbench_tui.commands import compare, export, history, import_, show
from llmbench_tui.compare import machine_notes, record_machines
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.exporting import read_records
from llmbench_tui.schema import ModelSpec, PromptSpec
from llmbench_tui.store import RunQuery, Store
from llmbench_tui.telemetry.environment import _cpu_model, machine_block, machine_matches
from llmbench_tui.telemetry.telemetry import TelemetryHub


def cli(module, argv, capsys):
    code = module.main(module.build_parser("llmbench x").parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def env_of(hostname: str, cpu: str, *, driver: str | None = None, kernel: str = "6.1.0-18",
           gpus: list[dict] | None = None, threads: int = 16, ram_mb: int = 64_000) -> dict:
    """A session environment as ``environment.snapshot`` writes it (the parts that matter)."""
    return {
        "captured_at": "2025-03-01T10:00:00+00:00",
        "os": {"system": "Linux", "kernel": kernel, "version": "#1 SMP", "machine": "x86_64",
               "hostname": hostname, "distro": "Debian GNU/Linux 12 (bookworm)"},
        "cpu": {"model": cpu, "cores": threads // 2, "threads": threads, "max_mhz": 5000.0},
        "ram_mb": ram_mb, "swap_mb": 0, "gpus": gpus or [], "gpu_driver": driver,
        "python": {"version": "3.11.7", "implementation": "cpython"},
        "packages": {"llmbench_tui": "0.1.0"}, "git": None, "cpu_peak_gb_s": None,
        "models": {"ollama:qwen2.5:7b": {"size_bytes": 4_683_087_332}},
        "conditions": {"other_cpu_pct": 1.5, "idle": True},
    }  # fmt: skip


EPYC = "AMD EPYC 9654 96-Core Processor"
RYZEN = "AMD Ryzen 9 7950X 16-Core Processor"
GPU = [{"index": 0, "name": "NVIDIA GeForce RTX 4090", "mem_total_mb": 24564,
        "peak_gb_s": 1008.1}]  # fmt: skip


# -- the machine block ---------------------------------------------------------------------


def test_machine_block_and_a_stable_id():
    env = env_of("bench-epyc", EPYC, driver="550.54.15", gpus=GPU)
    block = machine_block(env)
    assert block == {
        "machine_id": block["machine_id"], "hostname": "bench-epyc",
        "os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-18", "arch": "x86_64",
        "cpu": EPYC, "cores": 8, "threads": 16, "ram_mb": 64_000,
        "gpus": [{"name": "NVIDIA GeForce RTX 4090", "mem_total_mb": 24564}],
        "gpu": "NVIDIA GeForce RTX 4090 (24564 MiB)", "gpu_driver": "550.54.15",
    }  # fmt: skip
    assert len(block["machine_id"]) == 12 and int(block["machine_id"], 16) >= 0
    # The same box after a driver and kernel update, with other load and a few MiB less RAM
    # visible: still the same machine.
    later = env_of("BENCH-EPYC", EPYC, driver="555.42.02", kernel="6.1.0-21", gpus=GPU,
                   ram_mb=63_990)  # fmt: skip
    later["conditions"] = {"other_cpu_pct": 80.0}
    assert machine_block(later)["machine_id"] == block["machine_id"]
    # Another CPU, another host, another GPU: another machine.
    for other in (env_of("bench-epyc", RYZEN, gpus=GPU), env_of("bench-2", EPYC, gpus=GPU),
                  env_of("bench-epyc", EPYC)):  # fmt: skip
        assert machine_block(other)["machine_id"] != block["machine_id"]
    assert machine_block(None) is None and machine_block({"error": "probe failed"}) is None
    assert machine_matches(block, "EPYC") and machine_matches(block, "bench-EP")
    assert machine_matches(block, block["machine_id"][:4]) and machine_matches(block, "4090")
    assert not machine_matches(block, "ryzen") and not machine_matches(None, "epyc")


# -- the store -------------------------------------------------------------------------------


def test_runs_get_their_machine_from_the_session(tmp_path):
    store = Store(tmp_path / "history.json")
    store.add_session({"id": "s-epyc", "started_at": "2025-03-01T10:00:00Z",
                       "environment": env_of("bench-epyc", EPYC)})  # fmt: skip
    store.add_run(run(id="r1" + "0" * 30, session_id="s-epyc"))
    # An older run stored before its machine was known (or before this version): found on read.
    store.add_run(run(id="r2" + "0" * 30, session_id="s-ryzen"))
    store.add_session({"id": "s-ryzen", "started_at": "2025-03-02T10:00:00Z",
                       "environment": env_of("desk", RYZEN)})  # fmt: skip
    store.add_run(run(id="r3" + "0" * 30, session_id="nobody"))
    store.close()

    store = Store(tmp_path / "history.json")
    stored = store.get_run("r1")
    assert stored["machine"]["cpu"] == EPYC  # stored with the run at insert time
    assert "machine" not in store.get_run("r2")
    assert store.machine_of(store.get_run("r2"))["cpu"] == RYZEN  # from its session, on read
    assert store.machine_of(store.get_run("r3")) is None
    ids = lambda q: sorted(r["id"][:2] for r in store.query(RunQuery(machine=q)))  # noqa: E731
    assert ids("epyc") == ["r1"] and ids("DESK") == ["r2"] and ids("intel") == []
    assert ids(stored["machine"]["machine_id"][:6]) == ["r1"]
    assert [(b["hostname"], n) for b, n in store.machines()] in (
        [("bench-epyc", 1), ("desk", 1)], [("desk", 1), ("bench-epyc", 1)])
    assert store.count(RunQuery(machine="epyc")) == 1


# -- export from one folder, import into an empty one (a real engine session) ---------------


async def _session_in(folder: Path, server) -> tuple[str, list[str]]:
    """A real session: the engine with telemetry against the Ollama test server, stored."""
    store = Store(folder / "history.json")
    hub = TelemetryHub(0.1, data_dir=folder)
    hub.start()
    try:
        plan = Plan(models=[ModelSpec.parse(f"ollama:smollm-fake:135m@{server.url}")],
                    prompts=[PromptSpec(id="p", text="Why is the sky blue?")], repetitions=2,
                    warmup=0)  # fmt: skip
        fin = await Engine(plan, store=store, telemetry=hub).run()
    finally:
        hub.stop()
        store.close()
    assert all(r.status == "ok" for r in fin.records)
    return fin.session_id, [r.id for r in fin.records]


async def test_export_import_keeps_machine_and_session(ollama_server, tmp_path, capsys):
    here, there = tmp_path / "here", tmp_path / "there"
    sid, ids = await _session_in(here, ollama_server)
    cpu = _cpu_model()
    assert cpu, "this machine's CPU model is unknown"

    exports = tmp_path / "exports"
    exports.mkdir()
    for fmt in ("json", "jsonl", "csv", "md"):
        code, out, err = cli(export, ["--format", fmt, "--out", str(exports / f"runs.{fmt}"),
                                      "--data-dir", str(here)], capsys)  # fmt: skip
        assert code == 0, err
    # JSON and JSONL: each run carries its machine and its session (with the environment).
    for fmt in ("json", "jsonl"):
        text = (exports / f"runs.{fmt}").read_text()
        records = json.loads(text) if fmt == "json" else [json.loads(x) for x in text.splitlines()]
        assert len(records) == 2
        for r in records:
            assert r["machine"]["cpu"] == cpu and r["machine"]["hostname"] == platform.node()
            assert r["session"]["id"] == sid and r["session"]["environment"]["cpu"]["model"] == cpu
            assert "other_cpu_pct" in r["session"]["environment"]["conditions"]
    runs, sessions, _ = read_records(exports / "runs.jsonl")
    assert [s["id"] for s in sessions] == [sid] and all("session" not in r for r in runs)
    # CSV and Markdown: machine columns, no session blob.
    rows = list(csv.DictReader(io.StringIO((exports / "runs.csv").read_text())))
    assert rows[0]["machine.cpu"] == cpu and rows[0]["machine.hostname"] == platform.node()
    assert len(rows[0]["machine.machine_id"]) == 12
    assert not any(k == "session" or k.startswith("session.") for k in rows[0])
    md = (exports / "runs.md").read_text()
    assert "| machine | CPU | GPU | machine id |" in md and cpu.split()[0] in md

    # Import into an empty folder: the runs, their session, their machine.
    code, out, _ = cli(import_, [str(exports / "runs.jsonl"), "--data-dir", str(there)], capsys)
    assert (code, out.strip()) == (0, "added 2, skipped 0 already present; 1 session restored")
    code, out, _ = cli(import_, [str(exports / "runs.json"), "--data-dir", str(there)], capsys)
    assert (code, out.strip()) == (0, "added 0, skipped 2 already present")
    code, out, _ = cli(import_, [str(here / "history.json"), "--data-dir", str(there)], capsys)
    assert (code, out.strip()) == (0, "added 0, skipped 2 already present")
    stored = Store(there / "history.json")
    assert stored.count() == 2 and [s["id"] for s in stored.sessions()] == [sid]
    stored.close()

    code, out, _ = cli(show, [ids[0][:10], "--data-dir", str(there)], capsys)
    assert code == 0 and f"machine {platform.node()} · {cpu}" in out
    assert "\nmachine:\n" in out and f"  cpu: {cpu}" in out
    assert re.search(r"\n    busy: (yes|no)\n", out)  # flags read yes/no, not "-"
    assert "\nsession environment:\n" in out and "  packages:" in out and "  conditions:" in out
    code, out, _ = cli(show, [ids[0][:10], "--json", "--data-dir", str(there)], capsys)
    doc = json.loads(out)
    assert doc["machine"]["cpu"] == cpu and doc["session"]["id"] == sid

    for needle in (cpu.split()[-1], platform.node().upper(), doc["machine"]["machine_id"][:5]):
        code, out, _ = cli(history, ["--machine", needle, "--data-dir", str(there)], capsys)
        assert code == 0 and sum(i[:8] in out for i in ids) == 2, needle
    code, out, _ = cli(history, ["--machine", "no-such-box", "--data-dir", str(there)], capsys)
    assert "no runs match" in out


def test_import_a_database_restores_its_sessions(tmp_path, capsys):
    src = Store(tmp_path / "a" / "history.json")
    src.add_session({"id": "s-epyc", "started_at": "2025-03-01T10:00:00Z",
                     "environment": env_of("bench-epyc", EPYC)})  # fmt: skip
    src.add_run(run(id="e1" + "0" * 30, session_id="s-epyc"))
    src.close()
    dst = tmp_path / "b"
    code, out, _ = cli(import_, [str(tmp_path / "a" / "history.json"), "--data-dir", str(dst)],
                       capsys)  # fmt: skip
    assert (code, out.strip()) == (0, "added 1, skipped 0 already present; 1 session restored")
    code, out, _ = cli(import_, [str(tmp_path / "a" / "history.json"), "--data-dir", str(dst)],
                       capsys)  # fmt: skip
    assert (code, out.strip()) == (0, "added 0, skipped 1 already present")
    _, out, _ = cli(history, ["--machine", "epyc", "--data-dir", str(dst)], capsys)
    assert "e1" in out


# -- compare ---------------------------------------------------------------------------------


@pytest.fixture
def two_machines(tmp_path):
    """qwen2.5:7b on two boxes (each its own local Ollama), plus a driver update on one."""
    store = Store(tmp_path / "history.json")
    sessions = {
        "s-epyc": env_of("bench-epyc", EPYC, driver="550.54.15", gpus=GPU),
        "s-epyc2": env_of("bench-epyc", EPYC, driver="555.42.02", gpus=GPU),
        "s-desk": env_of("desk", RYZEN),
    }
    for sid, env in sessions.items():
        store.add_session({"id": sid, "started_at": "2025-03-01T10:00:00Z", "environment": env})
    speeds = {"s-epyc": [95.0, 96.0, 94.0], "s-epyc2": [99.0, 100.0, 98.5],
              "s-desk": [31.0, 30.0, 32.0]}  # fmt: skip
    for sid, values in speeds.items():
        for i, v in enumerate(values):
            busy = {"conditions": {"busy": True, "other_cpu_pct": 60.0}} if sid == "s-desk" else {}
            store.add_run(run(id=f"{sid}-{i}", session_id=sid, timings={"decode_tok_s": v},
                              host="http://127.0.0.1:11434", efficiency=busy))  # fmt: skip
    store.close()
    return tmp_path


def test_compare_says_when_machines_differ(two_machines, capsys):
    d = str(two_machines)
    code, out, _ = cli(compare, ["s-epyc", "s-desk", "--data-dir", d], capsys)
    assert code == 0
    note, busy = [line for line in out.splitlines() if line.startswith("note:")]
    assert "ran on different machines" in note and "bench-epyc" in note and "desk ·" in note
    assert busy == ("note: 3 of 3 runs of B were measured beside other work (other processes "
                    "used more than 25 % of the CPU): their figures are not comparable")
    code, out, _ = cli(compare, ["s-epyc", "s-epyc2", "--data-dir", d], capsys)
    assert "note: same machine (bench-epyc" in out and "GPU driver 550.54.15 → 555.42.02" in out
    code, out, _ = cli(compare, ["s-epyc-0", "s-epyc-1", "--data-dir", d], capsys)
    assert "note:" not in out  # one machine, one driver: nothing to say


def test_compare_by_machine(two_machines, capsys):
    d = str(two_machines)
    code, out, err = cli(compare, ["--by", "machine", "qwen2.5", "--data-dir", d], capsys)
    assert code == 0, err
    lines = out.splitlines()
    # The machine with the most runs is A (the EPYC: 6 runs over two sessions); the desk is B.
    assert lines[0].startswith("A = machine bench-epyc · AMD EPYC 9654") and "(6 runs)" in lines[0]
    assert any(x.startswith("B = machine desk · AMD Ryzen 9 7950X") for x in lines)
    row = next(x for x in lines if "timings.decode_tok_s" in x)
    assert "-68." in row and "worse (p=" in row
    assert lines[lines.index(next(x for x in lines if x.startswith("B = "))) + 1].startswith(
        "note: 3 of 3 runs of B were measured beside other work")
    code, out, _ = cli(compare, ["--by", "machine", "model:qwen2.5:7b", "--against", "desk",
                                 "--json", "--data-dir", d], capsys)  # fmt: skip
    (only,) = json.loads(out)
    assert only["a"].startswith("desk") and only["b"].startswith("bench-epyc")
    (fig,) = [x for x in only["diffs"] if x["figure"] == "timings.decode_tok_s"]
    assert fig["better"] is True and fig["verdict"] == "real" and (fig["n_a"], fig["n_b"]) == (3, 6)
    code, _, err = cli(compare, ["--by", "machine", "llama", "--data-dir", d], capsys)
    assert code == 1 and "no runs of 'llama'" in err
    code, _, err = cli(compare, ["only-one", "--data-dir", d], capsys)
    assert code == 1 and "give two things to compare" in err


def test_gate_notes_from_records_alone():
    """The gate reads a baseline file: the records' own machine blocks are enough."""
    epyc, desk = machine_block(env_of("bench-epyc", EPYC)), machine_block(env_of("desk", RYZEN))
    base = [run(machine=epyc, timings={"decode_tok_s": 90.0}) for _ in range(2)]
    now = [run(machine=desk, timings={"decode_tok_s": 30.0}) for _ in range(2)]
    (note,) = machine_notes(record_machines(base), record_machines(now), ("the baseline", "now"))
    assert note.startswith("the baseline and now ran on different machines")
    assert machine_notes(record_machines(base), record_machines(base)) == []
    assert machine_notes(record_machines(base), record_machines([run()])) == []  # unknown: silent


def test_gate_says_the_baseline_ran_elsewhere(ollama_server, tmp_path):
    """`--baseline FILE --fail-if`: a baseline exported on another machine is judged, with a
    note saying so."""
    import os
    import subprocess
    import sys

    def batch(*extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
        return subprocess.run(
            [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m",
             f"ollama:smollm-fake:135m@{ollama_server.url}", "-n", "2", "--warmup", "0", *extra],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    base = tmp_path / "base.json"
    assert batch("--no-store", "--json", str(base)).returncode == 0
    records = json.loads(base.read_text())
    elsewhere = machine_block(env_of("bench-epyc", EPYC))
    base.write_text(json.dumps([{**r, "machine": elsewhere} for r in records]))
    done = batch("--baseline", str(base), "--fail-if", "decode_tok_s<-99%")
    assert done.returncode == 0, done.stderr
    assert "llmbench: note: the baseline and this session ran on different machines: the " \
           "baseline on bench-epyc · AMD EPYC 9654" in done.stderr  # fmt: skip
    assert f"this session on {platform.node()} · " in done.stderr
    assert "regression gate passed" in done.stderr
