"""Size grids and sweeps against the Ollama-protocol test server: raw prompts calibrated from the
server's reported count, concurrency levels with goodput, and ``--batch`` refusing bad grids."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.ollama_server import FakeModel, count_tokens

from llmbench_tui.backends.ollama import OllamaBackend
from llmbench_tui.engine import goodput
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.synthetic_prompts import PromptBuilder
from llmbench_tui.engine.workload import Workload, cell_prompt, make_cells
from llmbench_tui.schema import ModelSpec, Options
from llmbench_tui.workload_syntax import Cell, parse_slo

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]


def run_cli(args, tmp_path, timeout=120):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*LLMBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


async def test_calibration_converges_within_2_tokens_in_3_probes(ollama_server):
    backend = OllamaBackend(ollama_server.url)
    spec = ModelSpec.parse(f"ollama:smollm-fake:135m@{ollama_server.url}")
    try:
        for cell in (Cell(64, 4), Cell(700, 4), Cell(512, 4, depth=1000)):
            builder = PromptBuilder()
            before = len(ollama_server.generations())
            built = await builder.build(backend, spec, cell, Options(num_ctx=4096))
            probes = ollama_server.generations()[before:]
            # At most 3 probes per size: the context part and the whole, for a depth cell.
            assert len(probes) <= (6 if cell.depth else 3), cell
            assert all(p.body["raw"] is True and p.body["options"]["num_predict"] == 1
                       for p in probes)  # fmt: skip
            # The server counts the raw prompt by its documented rule: within 2 tokens.
            target = cell.depth + cell.pp
            assert abs(count_tokens(built.raw.text) - target) <= 2, cell
            assert built.meta["count_method"] == "calibrated"
            assert built.meta["calibration_probes"] == len(probes)
            if cell.depth:
                assert built.raw.text.startswith(built.raw.context)
                assert abs(count_tokens(built.raw.context) - cell.depth) <= 2
            # Calibrated once: the next prompt of this size costs no probe and is a fresh order
            # of the same words (same count, another text: no cache prefix to share).
            n = len(ollama_server.generations())
            again = await builder.build(backend, spec, cell, Options(num_ctx=4096))
            assert len(ollama_server.generations()) == n
            assert again.raw.text != built.raw.text
            assert count_tokens(again.raw.text) == count_tokens(built.raw.text)
    finally:
        await backend.aclose()


async def test_sweep_records_three_levels_with_goodput(ollama_server):
    ollama_server.add_model(FakeModel("sweep:1b", tokens=[f" w{i}" for i in range(12)],
                                      token_delay_s=0.004, parallel=2))  # fmt: skip
    url = ollama_server.url
    slos = [parse_slo("ttft_s<=5"), parse_slo("itl_p90_s<=1")]
    workload = Workload(make_cells([64], [8], [0]), levels=[1, 2, 4], slos=slos)
    plan = Plan(models=[ModelSpec.parse(f"ollama:sweep:1b@{url}")],
                prompts=[cell_prompt(c) for c in workload.cells], repetitions=2, warmup=1,
                options=Options(num_ctx=2048), workload=workload)  # fmt: skip
    fin = await Engine(plan).run()
    assert len(fin.records) == plan.total_runs() == 1 + 2 * (1 + 2 + 4)
    assert all(r.status == "ok" for r in fin.records), [r.error for r in fin.records]
    records = [r.to_json() for r in fin.records]
    measured = [r for r in records if not r["warmup"]]
    assert {r["concurrency"] for r in measured} == {1, 2, 4}
    for r in measured:
        assert r["concurrent"]["round_s"] > 0 and r["slo"]["met"] is True
        w = r["workload"]
        assert w["test"] == "pp64+tg8" and w["prompt_tokens_requested"] == 64
        assert abs(w["prompt_tokens_reported"] - 64) <= 2 and r["tokens"]["prompt"] == \
            w["prompt_tokens_reported"]  # fmt: skip
        assert w["count_method"] == "calibrated" and w["exact_output"]
        # The server got raw prompts (no template) asking for 8 tokens.
    raw = [g for g in ollama_server.generations("sweep:1b") if g.body.get("stream") is not False]
    assert all(g.body["raw"] and g.body["options"]["num_predict"] == 8 for g in raw)
    levels = goodput.levels(records, slos)
    assert [lv.level for lv in levels] == [1, 2, 4]
    for lv in levels:
        assert lv.n_runs == lv.n_ok == 2 * lv.level and lv.rounds == 2
        assert lv.aggregate_tok_s > 0 and lv.goodput_tok_s == lv.aggregate_tok_s
        assert lv.slo_met_share == 1.0
    # The server serves two at a time: 4 streams cannot go faster than 2 (the knee is named).
    k = goodput.knee(levels)
    assert k.level in (1, 2) and "stops growing" in k.sentence


def test_batch_sweep_prints_levels_goodput_and_llama_bench_table(ollama_server, tmp_path):
    out, md = tmp_path / "runs.json", tmp_path / "summary.md"
    p = run_cli(["--batch", "-m", f"ollama:smollm-fake:135m@{ollama_server.url}",
                 "--pp", "32", "--tg", "4", "-c", "1,2,4", "--slo", "ttft_s<=5",
                 "-n", "1", "--warmup", "0", "--json", str(out), "--markdown", str(md)],
                tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "pp32+tg4" in p.stdout and "tg4 @ d32" in p.stdout  # the llama-bench table
    assert "goodput tok/s" in p.stdout and "SLOs: ttft_s<=5" in p.stdout
    assert "throughput" in p.stdout and "c=" in p.stdout
    records = json.loads(out.read_text())
    assert sorted({r["concurrency"] for r in records}) == [1, 2, 4]
    assert all(r["options"]["num_ctx"] == 2048 for r in records)
    assert all(r["slo"]["rules"] == ["ttft_s<=5"] for r in records)
    text = md.read_text()
    assert "| model | backend | test | t/s | client t/s | n |" in text
    assert "goodput" in text


def test_batch_refuses_bad_grids_before_running(ollama_server, tmp_path):
    url = ollama_server.url
    model = ["-m", f"ollama:smollm-fake:135m@{url}", "--no-store"]
    p = run_cli(["--batch", *model, "--pp", "0"], tmp_path)
    assert p.returncode == 2 and "--pp 0: must be >= 1" in p.stderr
    # smollm-fake's context is 8192 tokens (/api/show).
    p = run_cli(["--batch", *model, "--pp", "512", "--depth", "0,9000"], tmp_path)
    assert p.returncode == 2 and "--depth 9000" in p.stderr and "8192" in p.stderr
    p = run_cli(["--batch", *model, "--pp", "64", "--slo", "goodness>=1"], tmp_path)
    assert p.returncode == 2 and "unknown metric 'goodness'" in p.stderr
    p = run_cli(["--batch", *model, "-c", "1,x"], tmp_path)
    assert p.returncode == 2 and "-c 'x'" in p.stderr
    p = run_cli(["--batch", *model, "--prefix-cache"], tmp_path)
    assert p.returncode == 2 and "--prefix-cache needs a size grid" in p.stderr
    # Nothing was generated: every refusal came before the first run.
    assert not [g for g in ollama_server.generations() if g.body.get("prompt") or
                g.body.get("messages")]  # fmt: skip


def test_suite_workload_table(ollama_server, tmp_path):
    suite = tmp_path / "grid.toml"
    suite.write_text(
        f'models = ["ollama:smollm-fake:135m@{ollama_server.url}"]\nrepetitions = 1\n'
        "warmup = 0\n[workload]\npp = \"16-32*2\"\ntg = [4]\nconcurrency = [1, 2]\n"
        'slo = ["ttft_s<=5"]\n'
    )
    out = tmp_path / "runs.json"
    p = run_cli(["--batch", str(suite), "--no-store", "--json", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    records = json.loads(out.read_text())
    assert sorted({(r["workload"]["pp"], r["concurrency"]) for r in records}) == [
        (16, 1), (16, 2), (32, 1), (32, 2)]  # fmt: skip
    bad = tmp_path / "bad.toml"
    bad.write_text('models = ["embedded"]\n[workload]\npp = [64]\nslo = ["ttft<=1"]\n')
    p = run_cli(["--batch", str(bad)], tmp_path)
    assert p.returncode == 2 and f"{bad}:4: field 'workload.slo'" in p.stderr


def test_batch_sweep_of_plain_prompts(ollama_server, tmp_path):
    out = tmp_path / "runs.json"
    p = run_cli(["--batch", "-m", f"ollama:smollm-fake:135m@{ollama_server.url}", "-p", "hi",
                 "-c", "1,2", "-n", "2", "--warmup", "0", "--no-store", "--json", str(out)],
                tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    records = json.loads(out.read_text())
    assert [r["concurrency"] for r in records] == [1, 1, 2, 2, 2, 2]
    assert all("workload" not in r and r["concurrent"]["round_s"] > 0 for r in records)
    assert "agg tok/s" in p.stdout and "c=2" in p.stdout


def test_batch_localscore_runs_the_nine_shapes(ollama_server, tmp_path):
    out = tmp_path / "runs.json"
    p = run_cli(["--batch", "--localscore", "-m", f"ollama:smollm-fake:135m@{ollama_server.url}",
                 "-n", "1", "--warmup", "0", "--no-store", "--json", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "LocalScore-formula score:" in p.stdout and "9 of 9 shapes" in p.stdout
    assert "LocalScore formula: 10 × cbrt(" in p.stdout
    records = json.loads(out.read_text())
    assert sorted(r["workload"]["test"] for r in records) == sorted(
        f"pp{pp}+tg{tg}" for pp, tg in [(1024, 16), (4096, 256), (2048, 256), (2048, 768),
                                         (1024, 1024), (1280, 3072), (384, 1152), (64, 1024),
                                         (16, 1536)])  # fmt: skip
    assert all(r["workload"]["localscore"] for r in records)
    # Ollama cannot ignore end-of-sequence: the fake model's 22-token answer is flagged.
    assert "Ollama has no ignore_eos" in p.stdout
