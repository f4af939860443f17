"""The report as one self-contained HTML page: styles, script and charts inline.

Offline by construction: nothing in the page names another resource (no CDN, no web font, no
link made from record text), and its Content-Security-Policy says so to the browser too —
``default-src 'none'``, the one inline script allowed by its SHA-256 — so even a string that
slipped past escaping could neither run nor fetch anything.

Every string from a record is untrusted: text goes through ``svg.esc`` (one inert line, HTML
escaped); the data block, JSON inside ``<script type="application/json">``, is written by
``web.api.json_bytes``, which writes ``<``, ``>``, ``&`` and U+2028/U+2029 as ``\\uXXXX``, so no
``</script>`` can close it and a JSON parser reads back the very same strings.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources
from typing import Any

from llmbench_tui.engine.goodput import Level, sweep_table
from llmbench_tui.report.charts import Chart, all_charts
from llmbench_tui.report.svg import esc, num
from llmbench_tui.web.api import json_bytes
from llmbench_tui.workload_syntax import parse_slo

_ASSETS = resources.files("llmbench_tui.report") / "assets"


def asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _table(
    rows: list[list[str]], text_cols: int = 2, classes: list[list[str]] | None = None
) -> str:
    """Header row then body rows; the first ``text_cols`` columns are text (left-aligned)."""
    if len(rows) < 2:
        return ""

    def cls(j: int) -> str:
        return ' class="text"' if j < text_cols else ""

    head = "".join(f"<th{cls(j)}>{esc(c)}</th>" for j, c in enumerate(rows[0]))
    body = []
    for i, row in enumerate(rows[1:]):
        cells = []
        for j, c in enumerate(row):
            extra = classes[i][j] if classes and classes[i][j] else ""
            klass = " ".join(k for k in ("text" if j < text_cols else "", extra) if k)
            cells.append(f'<td class="{klass}">{esc(c)}</td>' if klass else f"<td>{esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')  # fmt: skip


def _figures(charts: list[Chart], section: str) -> str:
    return "".join(
        f'<figure id="chart-{esc(c.id)}" data-chart="{esc(c.id)}"><figcaption>{esc(c.title)}'
        f"</figcaption>{c.svg}</figure>"
        for c in charts
        if c.section == section
    )


def _header(data: dict[str, Any]) -> str:
    c = data["counts"]
    span = data["span"]
    items = [
        ("Selection", data["selection"] or "all stored runs"),
        ("Runs", f"{c['runs']} ({c['counted']} counted in figures: successful, not warm-up, "
                 f"not cold; {c['failed']} failed, {c['warmup']} warm-up, {c['cold']} cold)"),
        ("When", f"{span[0]} to {span[1]}" if span else "-"),
        ("Models", ", ".join(data["models"]) or "-"),
        ("Generated", data["generated_at"]),
    ]  # fmt: skip
    out = ['<dl class="header">']
    out += [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items]
    for m in data["machines"]:
        out.append(f"<dt>Machine</dt><dd>{esc(m['line'])} ({m['runs']} runs)</dd>")
    out.append("</dl>")
    rows = [["session", "started", "options", "plan"]]
    for s in data["sessions"]:
        plan = s["plan"] or {}
        opts = plan.get("options")
        opts = opts if isinstance(opts, dict) else {}
        shown = ", ".join(f"{k}={v}" for k, v in opts.items() if v is not None) or "defaults"
        extra = ", ".join(
            f"{k} {plan[k]}" for k in ("repetitions", "warmup", "cold", "concurrency")
            if plan.get(k) is not None
        )  # fmt: skip
        rows.append([s["id"], str(s["started_at"]), shown, extra or "-"])
    if len(rows) > 1:
        out.append(f"<details{' open' if len(rows) <= 6 else ''}><summary>{len(rows) - 1} "
                   f"sessions: what was run, with which options</summary>{_table(rows, 4)}"
                   "</details>")  # fmt: skip
    if data["warnings"]:
        out.append('<h3>Warnings and notes</h3><ul class="warnings">')
        out += [f"<li>{esc(w)}</li>" for w in data["warnings"]]
        out.append("</ul>")
    return "".join(out)


def _summary(data: dict[str, Any]) -> str:
    cols = [c for c in data["columns"] if any(row["cells"][c[1]] != "-" for row in data["summary"])]
    rows = [["model", "prompt", "ok", *(h for h, _ in cols), "95 % CI decode tok/s"]]
    for row in data["summary"]:
        ci = (row["figures"].get("timings.decode_tok_s") or {}).get("ci95") or [None, None]
        ci_text = f"{num(ci[0])} – {num(ci[1])}" if ci[0] is not None else "-"
        rows.append([row["label"], row["prompt_id"] or "-", f"{row['n_ok']}/{row['n_runs']}",
                     *(row["cells"][p] for _, p in cols), ci_text])  # fmt: skip
    return _table(rows) + ('<p class="muted">mean ± sample standard deviation; (n=k) where a '
                           "figure exists for fewer runs than the row; ! marks outliers (kept "
                           "in the mean). Client (measured from the stream) and server "
                           "(reported by the backend) figures are side by side, never merged."
                           "</p>")


def _sweeps(data: dict[str, Any]) -> str:
    out = []
    for sw in data["sweeps"]:
        levels = [Level(**lv) for lv in sw["levels"]]
        slos = [parse_slo(t) for t in sw["slos"]]
        out.append(f"<h3>{esc(sw['model'])} · {esc(sw['prompt_id'] or '-')}</h3>")
        out.append(_table(sweep_table(levels, slos)))
        out.append(f'<p class="knee">{esc(sw["knee"]["sentence"])}</p>')
        if sw["slos"]:
            out.append(f'<p class="muted">SLOs: {esc(", ".join(sw["slos"]))}</p>')
    return "".join(out)


def _conversations(data: dict[str, Any]) -> str:
    rows = [["model", "conversation", "turn", "n", "TTFT s", "decode tok/s", "prompt tokens",
             "score"]]  # fmt: skip
    for t in data["conversations"]:
        rows.append([t["model"], t["conversation"], str(t["turn"]), str(t["n"]), num(t["ttft_s"]),
                     num(t["decode_tok_s"]), num(t["prompt_tokens"]), num(t["score"])])
    return _table(rows)


def _quality(data: dict[str, Any]) -> str:
    q = data["quality"]
    out = []
    if q["checks"]:
        rows = [["model", "prompt", "check", "kind", "passed", "failed", "not run", "mean score"]]
        rows += [[c["model"], c["prompt_id"], c["check"], c["kind"], str(c["passed"]),
                  str(c["failed"]), str(c["not_run"]), num(c["mean_score"])]
                 for c in q["checks"]]  # fmt: skip
        out.append("<h3>Checks</h3>" + _table(rows, 4))
    if q["judge"]:
        out.append(f'<h3>Judge verdicts</h3><p class="caveat">{esc(q["caveat"])}</p>')
        rows = [["model", "prompt", "judged runs", "mean", "sd", "min", "max"]]
        rows += [[j["model"], j["prompt_id"], str(j["n"]), num(j["mean"]), num(j["stdev"]),
                  num(j["min"]), num(j["max"])] for j in q["judge"]]  # fmt: skip
        out.append(_table(rows))
        rows = [["run", "model", "prompt", "judge", "rubric", "mean", "verdicts"]]
        for v in q["verdicts"]:
            said = "; ".join(
                f"{num(x['score'])}: {x['reason']}" if x["score"] is not None
                else f"failed: {x['error'] or x['reason']}"
                for x in v["verdicts"]
            )  # fmt: skip
            rows.append([v["run"], v["model"], v["prompt_id"], v["judge"], v["rubric_sha256"],
                         num(v["mean"]), said])  # fmt: skip
        out.append(_table(rows, 5).replace("<td>", '<td class="text">'))
    return "".join(out)


def _comparisons(comps: list[dict[str, Any]]) -> str:
    """A/B tables as ``llmbench compare`` prints them (B against A, Welch's t-test)."""
    out = []
    for comp in comps:
        out.append(f"<h3>A = {esc(comp['a'])} ({comp['n_a']} runs)<br>B = {esc(comp['b'])} "
                   f"({comp['n_b']} runs)</h3>")  # fmt: skip
        rows = [["group", "figure", "A", "B", "change", "vs noise"]]
        classes = []
        for d in comp["diffs"]:
            change = "-" if d["change_pct"] is None else f"{d['change_pct']:+.1f}%"
            if d["verdict"] == "n<2":
                verdict = "n<2, can't tell"
            elif d["verdict"] == "noise":
                verdict = f"noise (p={d['p_value']:.2f})"
            else:
                word = {True: "better", False: "worse", None: "changed"}[d["better"]]
                verdict = f"{word} (p={d['p_value']:.3f})"
            rows.append([d["group"], d["figure"],
                         f"{num(d['mean_a'], 4)} ± {num(d['stdev_a'])} (n={d['n_a']})",
                         f"{num(d['mean_b'], 4)} ± {num(d['stdev_b'])} (n={d['n_b']})",
                         change, verdict])  # fmt: skip
            mark = ""
            if d["verdict"] == "real" and d["better"] is not None:
                mark = "real-better" if d["better"] else "real-worse"
            classes.append(["", "", "", "", "", mark])
        out.append(_table(rows, 2, classes))
    if out:
        out.append('<p class="muted">B against A, change = (B − A) / A; Welch\'s t-test over '
                   "the repetitions, p &lt; 0.05 is a real difference, else noise.</p>")
    return "".join(out)


def content_security_policy() -> str:
    """Nothing may be fetched; the one script that may run is the page's own (by its hash)."""
    digest = base64.b64encode(hashlib.sha256(asset("report.js").encode()).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src data:; base-uri 'none'; form-action 'none'")  # fmt: skip


def render(data: dict[str, Any], charts: list[Chart] | None = None) -> str:
    """The page for ``data`` (``report.model.build``)."""
    charts = all_charts(data) if charts is None else charts
    script = asset("report.js")
    csp = content_security_policy()
    sections = [
        ("summary", "Summary per model and prompt", _summary(data) + _figures(charts, "summary")),
        ("distributions", "Latency distributions", _figures(charts, "distributions")),
        ("decision", "Quality against speed", _figures(charts, "decision")),
        ("sweeps", "Concurrency sweeps", _figures(charts, "sweeps") + _sweeps(data)),
        ("grid", "Size grid (llama-bench shape)",
         _table(data["grid"]["rows"], 3) + _figures(charts, "grid")),
        ("conversations", "Conversations per turn",
         _conversations(data) + _figures(charts, "conversations")),
        ("quality", "Answer quality", _quality(data)),
        ("baseline", "Against the baseline", _comparisons(
            [data["baseline_comparison"]] if data.get("baseline_comparison") else [])),
        ("machines", "Machine against machine",
         _figures(charts, "machines") + _comparisons(data["machine_comparisons"])),
    ]  # fmt: skip
    shown = [(sid, title, body) for sid, title, body in sections if body]
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in shown)
    body = "".join(f'<section id="{sid}"><h2>{esc(title)}</h2>{html}</section>'
                   for sid, title, html in shown)  # fmt: skip
    blob = json_bytes(data).decode()
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(data['title'])}</title><style>{asset('report.css')}{asset('chart.css')}</style></head><body>"
        f"<header><h1>{esc(data['title'])}</h1>{_header(data)}</header><nav>{nav}</nav>{body}"
        f'<script type="application/json" id="llmbench-data">{blob}</script>'
        f"<script>{script}</script></body></html>\n"
    )
