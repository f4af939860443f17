"""The llama-bench-shaped table: rows from grid runs, and the same in the bench-* exports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from llmbench_tui.engine.report import llamabench_results, llamabench_rows, workload_notes
from llmbench_tui.exporting import render


def run(pp, tg, depth, prompt_rate, decode_rate, ttft, e2e, *, role=None, **kw):
    rec = {"model": "m", "model_spec": "embedded", "backend": "gguf", "host": None,
           "status": "ok", "warmup": False, "cold": False, "concurrency": 1,
           "tokens": {"prompt": pp + depth, "output": tg},
           "server": {"prompt_tok_s": prompt_rate, "decode_tok_s": decode_rate,
                      "prompt_eval_count": pp, "prompt_eval_s": pp / prompt_rate,
                      "eval_count": tg - 1, "eval_s": (tg - 1) / decode_rate},
           "timings": {"ttft_s": ttft, "e2e_s": e2e, "decode_tok_s": decode_rate * 0.9},
           "workload": {"test": f"pp{pp}+tg{tg}", "pp": pp, "tg": tg, "depth": depth,
                        "cache_role": role, "flags": []}}
    rec.update(kw)
    return rec


def test_one_cell_gives_three_llama_bench_rows():
    recs = [run(512, 128, 0, 1000.0, 50.0, 0.5, 3.0), run(512, 128, 0, 1200.0, 60.0, 0.5, 3.0),
            run(512, 128, 4096, 800.0, 40.0, 0.7, 4.0),
            run(512, 128, 0, 9e9, 1.0, 0.1, 1.0, warmup=True),  # never counted
            run(512, 128, 0, 9e9, 1.0, 0.1, 1.0, status="error")]  # fmt: skip
    results = {e["test"]: e for e in llamabench_results(recs)}
    assert list(results) == ["pp512", "tg128 @ d512", "pp512+tg128", "pp512 @ d4096",
                             "tg128 @ d4608", "pp512+tg128 @ d4096"]  # fmt: skip
    pp = results["pp512"]
    assert (pp["n"], pp["n_prompt"], pp["n_gen"], pp["n_depth"]) == (2, 512, 0, 0)
    assert pp["avg_ts"] == pytest.approx(1100.0) and pp["stddev_ts"] == pytest.approx(141.42, 0.01)
    assert pp["client_avg_ts"] == pytest.approx(1024.0)  # 512 / 0.5 s
    tg = results["tg128 @ d512"]
    assert tg["avg_ts"] == pytest.approx(55.0) and tg["client_avg_ts"] == pytest.approx(49.5)
    both = results["pp512+tg128"]
    assert both["client_avg_ts"] == pytest.approx(640 / 3.0)
    # The engine's own pp+tg rate: (prompt + decoded tokens) / (prefill + decode time), per run.
    per_run = [639 / (512 / rate + 127 / dec) for rate, dec in ((1000, 50), (1200, 60))]
    assert both["avg_ts"] == pytest.approx(sum(per_run) / 2)
    rows = llamabench_rows(recs)
    assert rows[0] == ["model", "backend", "test", "t/s", "client t/s", "n"]
    assert rows[1][:3] == ["embedded", "gguf", "pp512"] and rows[1][3] == "1100.00 ± 141.42"


def test_cached_repeats_are_their_own_rows_and_flags_are_noted():
    recs = [run(200, 4, 0, 1000.0, 50.0, 0.3, 0.4),
            run(200, 4, 0, 9000.0, 50.0, 0.05, 0.2, role="repeat")]  # fmt: skip
    recs[1]["workload"]["flags"] = ["something to see"]
    tests = [e["test"] for e in llamabench_results(recs)]
    assert "pp200 (cached)" in tests and "pp200" in tests
    assert workload_notes(recs) == ["embedded pp200+tg4: something to see"]


def test_bench_exports_json_csv_markdown():
    recs = [run(64, 16, 0, 500.0, 80.0, 0.2, 0.5), {"model": "plain", "status": "ok"}]
    rows = json.loads(render(recs, "bench-json"))
    assert [r["test"] for r in rows] == ["pp64", "tg16 @ d64", "pp64+tg16"]
    assert rows[0]["avg_ts"] == 500.0 and rows[0]["n"] == 1 and rows[0]["stddev_ts"] is None
    table = list(csv.DictReader(io.StringIO(render(recs, "bench-csv"))))
    assert table[1]["test"] == "tg16 @ d64" and float(table[1]["avg_ts"]) == 80.0
    md = render(recs, "bench-md").splitlines()
    assert md[0] == "| model | backend | test | t/s | client t/s | n |"
    assert md[2].startswith("| embedded | gguf | pp64 | 500.00 |")
