"""``llmbench report`` without a browser: hostile records stay inert, the figures are those of the
JSON export of the same selection, ``--svg`` files stand alone, bad input is one sentence.

The browser half (Chromium opening reports made from real runs) is ``test_report_browser.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support.seed_history import seed_store
from support.store_helpers import run

from llmbench_tui.commands import export, report
from llmbench_tui.compare import compare_records
from llmbench_tui.engine.report import cell, llamabench_results
from llmbench_tui.engine.stats import summarize
from llmbench_tui.exporting import read_records
from llmbench_tui.report.model import TABLE_COLUMNS
from llmbench_tui.store import Store

DATA = re.compile(r'<script type="application/json" id="llmbench-data">(.*?)</script>', re.S)
RYZEN = "AMD Ryzen 9 7950X 16-Core Processor"
GPU = [{"index": 0, "name": "NVIDIA GeForce RTX 4090", "mem_total_mb": 24564}]
HOSTILE = '</script><script>alert(1)</script><img src=x onerror=alert(2)>\x1b]52;c;aGk=\x07\u202e'


def env_of(hostname: str, cpu: str, gpus: list[dict] | None = None) -> dict[str, Any]:
    """A session environment as ``environment.snapshot`` writes it (the machine's parts)."""
    return {"os": {"system": "Linux", "kernel": "6.1.0-18", "machine": "x86_64",
                   "hostname": hostname, "distro": "Debian GNU/Linux 12"},
            "cpu": {"model": cpu, "cores": 8, "threads": 16}, "ram_mb": 64_000,
            "gpus": gpus or [], "gpu_driver": None}  # fmt: skip


def cli(module: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = module.main(module.build_parser("llmbench x").parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def page_data(html: str) -> dict[str, Any]:
    (blob,) = DATA.findall(html)
    return json.loads(blob)


class Tags(HTMLParser):
    """Every element and attribute of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "dl",
             "dt", "dd", "ul", "li", "p", "nav", "a", "section", "details", "summary", "div",
             "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "script", "br",
             "svg", "rect", "line", "path", "circle", "text", "g"}  # fmt: skip


def assert_inert(html: str) -> None:
    """Only the page's own elements and two scripts; no handler attribute, no link but the
    page's own anchors; no control character anywhere; the CSP allows exactly the page's
    script."""
    parser = Tags()
    parser.feed(html)
    assert {t for t, _ in parser.tags} <= PAGE_TAGS
    assert [t for t, _ in parser.tags].count("script") == 2
    assert len(re.findall(r"</script", html, re.I)) == 2
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src", "action", "xlink:href"):
                assert (value or "").startswith("#"), (tag, name, value)
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", html)
    script = html.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"default-src 'none'; script-src 'sha256-{digest}';" in html


# -- hostile records -------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    store = Store(tmp_path / "history.json")
    env = env_of(f"box{HOSTILE}", f"CPU {HOSTILE}", gpus=GPU)
    store.add_session({"id": "s-evil", "started_at": "2025-03-01T10:00:00Z", "environment": env,
                       "plan": {"options": {"system": HOSTILE, "temperature": 0.0}}})
    store.add_session({"id": "s-other", "started_at": "2025-03-02T10:00:00Z",
                       "environment": env_of("javascript:alert(3)", RYZEN)})  # fmt: skip
    for i in range(3):
        for sid, rate in (("s-evil", 50.0 + i), ("s-other", 20.0 + i)):
            rec = run(id=f"{sid}-{i}", session_id=sid, model=f"m{HOSTILE}",
                      model_spec=f"ollama:m{HOSTILE}", prompt_id=f"javascript:alert(4){HOSTILE}",
                      host="http://127.0.0.1:11434", response=HOSTILE, warnings=[HOSTILE],
                      timings={"decode_tok_s": rate, "ttft_s": 0.1 + i / 100,
                               "itl_p50_s": 0.02, "itl_p90_s": 0.03, "itl_p99_s": 0.05})
            rec["quality"] = {
                "score": 7.0,
                "checks": [{"name": f"c{HOSTILE}", "kind": "judge", "passed": True,
                            "score": 0.7, "detail": HOSTILE, "weight": 1.0}],
                "judge": {"spec": f"ollama:j{HOSTILE}", "rubric_sha256": "ab" * 32,
                          "rubric_source": HOSTILE, "n": 1, "mean": 7.0,
                          "verdicts": [{"score": 7.0, "reason": f"javascript:x {HOSTILE}"},
                                       {"score": None, "error": HOSTILE}]},
            }  # fmt: skip
            rec["workload"] = {"pp": 16, "tg": 4, "depth": 0, "test": "pp16+tg4",
                               "flags": [HOSTILE]}  # fmt: skip
            store.add_run(rec)
    store.add_run(run(id="failed", session_id="s-evil", model=f"m{HOSTILE}", status="error",
                      error=HOSTILE))  # fmt: skip
    store.close()
    return tmp_path


def test_hostile_records_are_escaped_never_interpreted(hostile: Path, capsys):
    out = hostile / "r.html"
    code, text, err = cli(report, ["--data-dir", str(hostile), "--html", str(out)], capsys)
    assert code == 0, err
    assert text.startswith(f"wrote {out} (7 runs, ")
    html = out.read_text(encoding="utf-8")
    assert_inert(html)
    # Shown as the characters they are (escaped), escape bytes stripped.
    assert ("m&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x "
            "onerror=alert(2)&gt;") in html
    assert "javascript:alert(4)" in html  # as text: no link is ever made of record text
    assert "box&lt;/script&gt;" in html  # the machine block's host name
    # The data block reads back as the very same strings (the JSON escapes are lossless).
    data = page_data(html)
    assert f"ollama:m{HOSTILE}" in data["models"]
    assert data["sessions"][0]["plan"]["options"]["system"] == HOSTILE
    # Every section was rendered with the hostile text in it.
    for section in ("summary", "distributions", "decision", "grid", "quality", "machines"):
        assert f'<section id="{section}">' in html
    assert "one model&#x27;s opinion" in html  # the judge's caveat


def test_hostile_svg_files_are_inert_xml(hostile: Path, capsys):
    folder = hostile / "svg"
    code, text, err = cli(report, ["--data-dir", str(hostile), "--svg", str(folder)], capsys)
    assert code == 0, err
    files = sorted(folder.glob("*.svg"))
    assert len(files) >= 5 and text.startswith(f"wrote {len(files)} charts to {folder}")
    for path in files:
        svg = path.read_text(encoding="utf-8")
        root = ET.fromstring(svg.split("\n", 1)[1])  # well-formed XML, standalone
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}style") is not None
        assert "<script" not in svg and "\x1b" not in svg and "href" not in svg


# -- the figures are the export's ------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    store = Store(tmp_path / "history.json")
    seed_store(store, 600)
    store.close()
    return tmp_path


def test_figures_equal_the_json_export_of_the_same_selection(seeded: Path, capsys):
    d = str(seeded)
    selection = ["--model", "qwen", "--since", "2025-03-10"]
    code, _, err = cli(export, ["--data-dir", d, "--format", "json", "--out",
                                str(seeded / "x.json"), *selection], capsys)  # fmt: skip
    assert code == 0, err
    code, _, err = cli(report, ["--data-dir", d, "--html", str(seeded / "r.html"), *selection],
                       capsys)  # fmt: skip
    assert code == 0, err
    records = read_records(seeded / "x.json")[0]
    html = (seeded / "r.html").read_text(encoding="utf-8")
    data = page_data(html)
    assert data["counts"]["runs"] == len(records) > 50
    assert data["selection"] == "--model qwen --since 2025-03-10"
    groups = summarize(sorted(records, key=lambda r: r["started_at"]))
    assert len(data["summary"]) == len(groups) > 4
    for row, g in zip(data["summary"], groups, strict=True):
        assert (row["model"], row["prompt_id"], row["n_ok"]) == (g.model, g.prompt_id, g.n_ok)
        assert row["figures"] == g.to_json()["figures"]
        for _, path, fmt in TABLE_COLUMNS:
            shown = cell(g.figures.get(path), fmt, g.n_ok)
            assert row["cells"][path] == shown
            if shown != "-":
                assert f"<td>{shown}</td>" in html
    # The sessions here ran on no known machine (no environment): no machine section.
    assert data["machine_comparisons"] == [] and '<section id="machines">' not in html


def test_machine_comparison_and_grid_equal_compare_and_bench_export(hostile: Path, capsys):
    d = str(hostile)
    cli(export, ["--data-dir", d, "--format", "json", "--out", str(hostile / "x.json")], capsys)
    code, _, err = cli(report, ["--data-dir", d, "--html", str(hostile / "r.html")], capsys)
    assert code == 0, err
    records = read_records(hostile / "x.json")[0]
    data = page_data((hostile / "r.html").read_text(encoding="utf-8"))
    (comp,) = data["machine_comparisons"]
    assert comp["a"].startswith("box") and comp["b"].startswith("javascript:alert(3)")
    epyc = [r for r in records if r["session_id"] == "s-evil" and r["status"] == "ok"]
    other = [r for r in records if r["session_id"] == "s-other"]
    (diff,) = [x for x in comp["diffs"] if x["figure"] == "timings.decode_tok_s"]
    (expect,) = [x for x in compare_records(epyc, other) if x.figure == "timings.decode_tok_s"]
    assert (diff["mean_a"], diff["mean_b"], diff["p_value"]) == (
        expect.mean_a, expect.mean_b, expect.p_value)  # fmt: skip
    assert diff["verdict"] == "real" and diff["better"] is False
    assert data["grid"]["results"] == json.loads(json.dumps(llamabench_results(records)))


def test_report_of_an_export_file_equals_the_stores(seeded: Path, capsys):
    d = str(seeded)
    cli(export, ["--data-dir", d, "--format", "jsonl", "--out", str(seeded / "x.jsonl")], capsys)
    code, _, err = cli(report, ["--input", str(seeded / "x.jsonl"), "--html",
                                str(seeded / "a.html")], capsys)  # fmt: skip
    assert code == 0, err
    cli(report, ["--data-dir", d, "--html", str(seeded / "b.html")], capsys)
    a = page_data((seeded / "a.html").read_text(encoding="utf-8"))
    b = page_data((seeded / "b.html").read_text(encoding="utf-8"))
    for key in ("counts", "summary", "distributions", "decision", "quality", "warnings"):
        assert a[key] == b[key], key


def test_selection_by_sessions_and_bad_input(seeded: Path, capsys):
    d = str(seeded)
    out = str(seeded / "r.html")
    code, _, err = cli(report, ["s00001", "s00002", "--data-dir", d, "--html", out], capsys)
    assert code == 0, err
    data = page_data(Path(out).read_text(encoding="utf-8"))
    assert sorted(s["id"] for s in data["sessions"]) == ["s00001", "s00002"]
    assert data["selection"] == "s00001 s00002"
    code, _, err = cli(report, ["s00001", "--data-dir", d], capsys)
    assert code == 2
    assert err == "llmbench report: say what to write: --html OUT.html and/or --svg DIR\n"
    code, _, err = cli(report, ["nope", "--data-dir", d, "--html", out], capsys)
    assert code == 1 and "'nope' is neither a run id, a session id nor model:NAME" in err
    code, _, err = cli(report, ["--data-dir", d, "--model", "absent", "--html", out], capsys)
    assert code == 1 and err == "llmbench report: no runs match this selection\n"
    code, _, err = cli(report, ["--input", str(seeded / "missing.json"), "--html", out], capsys)
    assert code == 1 and "cannot read" in err and "Traceback" not in err
    code, _, err = cli(report, ["s00001", "--data-dir", d, "--html",
                                str(seeded / "no" / "dir" / "r.html")], capsys)  # fmt: skip
    assert code == 1 and err.startswith("llmbench report: cannot write ") and err.count("\n") == 1


# -- the decision chart's front and the distributions' axis ----------------------------------


def test_pareto_front_is_the_models_no_other_beats_on_both():
    from llmbench_tui.report.sections import decision

    records = []
    for model, rate, score in (("a", 100.0, 6.0), ("b", 50.0, 8.0), ("c", 40.0, 7.0),
                               ("d", 120.0, 5.0), ("e", 100.0, 5.5)):  # fmt: skip
        for i in range(2):
            rec = run(model=model, timings={"decode_tok_s": rate + i})
            rec["quality"] = {"score": score, "checks": []}
            records.append(rec)
    data = decision(records)
    front = {p["model"] for p in data["points"] if p["front"]}
    assert front == {"a", "b", "d"}  # c: slower and worse than b; e: as fast as a, worse
    assert data["front"] == [[50.5, 8.0], [100.5, 6.0], [120.5, 5.0]]


def test_box_axis_goes_logarithmic_only_across_orders_of_magnitude():
    from llmbench_tui.report.svg import Box, box_chart

    near = [Box("x", 3, 1.0, 1.5, 2.0, 2.5, 3.0), Box("y", 3, 2.0, 2.5, 3.0, 3.5, 4.0)]
    far = [*near, Box("z", 3, 400.0, 450.0, 500.0, 550.0, 600.0)]
    assert "(log scale)" not in box_chart("t", "ms", near)
    svg = box_chart("t", "ms", far)
    assert "ms (log scale)" in svg and ">100<" in svg and ">1000<" not in svg
