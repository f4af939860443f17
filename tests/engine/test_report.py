"""The summary table both faces print."""

from llmbench_tui.engine.report import footnotes, render_markdown, render_text, summary_table
from llmbench_tui.engine.stats import summarize


def rec(ttft, rate, server_rate=None, status="ok", **kw):
    r = {"model": "m", "model_spec": "ollama:m", "backend": "ollama", "host": None,
         "prompt_id": "p", "options": {}, "status": status, "warmup": False, "cold": False,
         "concurrency": 1, "error": None if status == "ok" else "boom",
         "timings": {"ttft_s": ttft, "decode_tok_s": rate}, "tokens": {"output": 10},
         "server": {"decode_tok_s": server_rate} if server_rate else None}
    r.update(kw)
    return r


def test_row_has_mean_stdev_and_counts():
    groups = summarize([rec(0.1, 40.0, 42.0), rec(0.3, 60.0, 62.0), rec(0.2, 50.0),
                        rec(0, 0, status="error")])
    rows = summary_table(groups)
    header, row = rows
    assert header[:3] == ["model", "prompt", "ok"]
    assert row[2] == "3/4"
    cols = dict(zip(header, row, strict=True))
    assert cols["TTFT s"] == "0.200 ± 0.100"
    assert cols["decode tok/s"] == "50.0 ± 10.0"
    # The server reported its rate for two runs only: the cell says so.
    assert cols["server tok/s"] == "52.0 ± 14.1 (n=2)"
    assert cols["load s"] == "-"
    notes = footnotes(groups)
    assert "ollama:m: boom" in notes


def test_render_text_and_markdown_align():
    rows = summary_table(summarize([rec(0.1, 40.0)]))
    text = render_text(rows).splitlines()
    assert len(text) == 3 and set(text[1]) <= {"-", " "}
    md = render_markdown(rows).splitlines()
    assert md[0].startswith("| model | prompt | ok |") and md[1].startswith("|---|")
    assert any("n < 3" in n for n in footnotes(summarize([rec(0.1, 40.0)])))
