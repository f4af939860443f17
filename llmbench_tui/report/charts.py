"""The report's charts: its data (``report.model.build``) laid out with ``report.svg``.

Each chart has a file-name-safe id (``--svg DIR`` writes ``DIR/<id>.svg``), the section it
belongs to and its SVG text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from llmbench_tui.report import svg
from llmbench_tui.safe_text import one_line


@dataclass(frozen=True)
class Chart:
    id: str
    section: str
    title: str
    svg: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", one_line(text).lower()).strip("-")[:60] or "chart"


def short_names(names: list[str]) -> dict[str, str]:
    """Model specs for chart labels: without their ``@host`` part where no two specs then read
    the same (the tooltips keep the full spec)."""
    short = {n: re.sub(r"@\S+", "", n) for n in names}
    counts: dict[str, int] = {}
    for v in short.values():
        counts[v] = counts.get(v, 0) + 1
    return {n: short[n] if counts[short[n]] == 1 else n for n in names}


def _all_models(data: dict[str, Any]) -> dict[str, str]:
    names = [r["label"] for r in data["summary"]] + [str(m) for m in data["models"]]
    return short_names(list(dict.fromkeys(names)))


def summary_charts(data: dict[str, Any]) -> list[Chart]:
    """Bars with ± one standard deviation: decode rate (client and server) and TTFT, per
    model × prompt group."""
    out = []
    for cid, path, title, unit in (
        ("decode-rate", "timings.decode_tok_s", "Decode rate per model and prompt (client)",
         "tok/s"),
        ("server-decode-rate", "server.decode_tok_s",
         "Decode rate per model and prompt (server-reported)", "tok/s"),
        ("ttft", "timings.ttft_s", "Time to first token per model and prompt", "s"),
    ):  # fmt: skip
        bars = []
        models = list(dict.fromkeys(row["label"] for row in data["summary"]))
        rows = sorted(data["summary"], key=lambda r: (models.index(r["label"]),
                                                      str(r["prompt_id"])))  # fmt: skip
        for row in rows:
            st = row["figures"].get(path)
            if st:
                short = _all_models(data)[row["label"]]
                label = f"{one_line(short, 20)} · {one_line(row['prompt_id'] or '-', 12)}"
                tip = (f"{row['label']} · {row['prompt_id'] or '-'}: {svg.num(st['mean'])} ± "
                       f"{svg.num(st['stdev'])} {unit} (n={st['n']})")
                bars.append(svg.Bar(label, st["mean"], st["stdev"], st["n"], tip,
                                    models.index(row["label"])))  # fmt: skip
        if bars:
            out.append(Chart(cid, "summary", title, svg.bar_chart(title, unit, bars)))
    return out


def distribution_charts(data: dict[str, Any]) -> list[Chart]:
    out = []
    for key, title, unit, scale in (
        ("ttft_s", "TTFT distribution per model", "s", 1.0),
        ("itl_s", "Inter-token latency per model (box: runs' ITL p50)", "ms", 1000.0),
    ):
        boxes = []
        short = _all_models(data)
        for d in data["distributions"]:
            b = d.get(key)
            if b:
                boxes.append(svg.Box(
                    short.get(d["model"], d["model"]), b["n"], b["min"] * scale,
                    b["q1"] * scale, b["median"] * scale, b["q3"] * scale, b["max"] * scale,
                    {k: None if v is None else v * scale for k, v in b["marks"].items()},
                ))  # fmt: skip
        if boxes:
            cid = "ttft-distribution" if key == "ttft_s" else "itl-distribution"
            out.append(Chart(cid, "distributions", title, svg.box_chart(title, unit, boxes)))
    return out


def decision_charts(data: dict[str, Any]) -> list[Chart]:
    pts = data["decision"]["points"]
    if not pts:
        return []
    title = "Quality score against decode rate (ringed: the Pareto front)"
    short = _all_models(data)
    series = [
        svg.Series(p["model"], [svg.Point(
            p["decode_tok_s"], p["score"], short.get(p["model"], p["model"]), ring=p["front"],
            tip=f"{p['model']}: {svg.num(p['decode_tok_s'])} tok/s, score {svg.num(p['score'])} "
                f"(n={p['n']}){' — on the Pareto front' if p['front'] else ''}",
        )], line=False)
        for p in pts
    ]  # fmt: skip
    chart = svg.xy_chart(title, "decode rate, tok/s", "quality score (0-10)", series,
                         front=[tuple(f) for f in data["decision"]["front"]],
                         point_labels=True)  # fmt: skip
    return [Chart("quality-vs-speed", "decision", title, chart)]


def sweep_charts(data: dict[str, Any]) -> list[Chart]:
    """Throughput against TTFT p90 per model (one point per level), SLO lines, the knee ringed."""
    sweeps = data["sweeps"]
    if not sweeps:
        return []
    series: list[svg.Series] = []
    refs: list[svg.RefLine] = []
    for sw in sweeps:
        points = []
        for lv in sw["levels"]:
            x, y = lv["ttft_s"].get("p90"), lv["aggregate_tok_s"]
            if x is None or y is None:
                continue
            tip = (f"{sw['model']} c={lv['level']}: {svg.num(y)} tok/s aggregate, TTFT p90 "
                   f"{svg.num(x)} s, goodput {svg.num(lv['goodput_tok_s'])} tok/s")
            points.append(svg.Point(x, y, f"c={lv['level']}", tip,
                                    ring=lv["level"] == sw["knee"]["level"]))  # fmt: skip
        model = _all_models(data).get(sw["model"], sw["model"])
        label = model + (f" · {sw['prompt_id']}" if sw["prompt_id"] else "")
        series.append(svg.Series(label, points))
        for text in sw["slos"]:
            metric, _, value = re.split(r"(<=|>=|<|>)", text, maxsplit=1)
            if metric == "ttft_s" and not any(r.label == text for r in refs):
                refs.append(svg.RefLine("x", float(value), f"SLO {text}"))
    title = "Throughput against latency per concurrency level (ringed: the knee)"
    chart = svg.xy_chart(title, "TTFT p90, s", "aggregate tok/s", series, refs=refs,
                         point_labels=True)  # fmt: skip
    return [Chart("concurrency-sweep", "sweeps", title, chart)]


def grid_charts(data: dict[str, Any]) -> list[Chart]:
    """The llama-bench tests down, the models across: one column per model."""
    results = data["grid"]["results"]
    if not results:
        return []
    short = short_names([str(r["model"]) for r in results])

    def model(r: dict[str, Any]) -> str:
        return short[str(r["model"])] + (f" [x{r['concurrency']}]" if r["concurrency"] > 1 else "")

    cols = list(dict.fromkeys(model(r) for r in results))
    rows = list(dict.fromkeys(r["test"] for r in results))
    values = {}
    for r in results:
        v = r["avg_ts"] if r["avg_ts"] is not None else r["client_avg_ts"]
        if v is not None:
            values[(rows.index(r["test"]), cols.index(model(r)))] = v
    title = "Size grid: t/s per test and model (backend-reported, else client)"
    return [Chart("size-grid", "grid", title, svg.heatmap(title, "t/s", rows, cols, values))]


def conversation_charts(data: dict[str, Any]) -> list[Chart]:
    turns = data["conversations"]
    if not turns:
        return []
    series: dict[str, svg.Series] = {}
    for t in turns:
        if t["ttft_s"] is None:
            continue
        name = f"{_all_models(data).get(t['model'], t['model'])} · {t['conversation']}"
        s = series.setdefault(name, svg.Series(name, []))
        s.points.append(svg.Point(t["turn"], t["ttft_s"], f"turn {t['turn']}",
                                  f"{name} turn {t['turn']}: TTFT {svg.num(t['ttft_s'])} s, "
                                  f"{svg.num(t['decode_tok_s'])} tok/s (n={t['n']})"))
    title = "Conversations: TTFT per turn"
    chart = svg.xy_chart(title, "turn", "TTFT, s", list(series.values()), integer_x=True)
    return [Chart("conversation-turns", "conversations", title, chart)]


def machine_charts(data: dict[str, Any]) -> list[Chart]:
    """Per comparison: the decode-rate change of each group (bars), significance in the tip."""
    out = []
    for i, comp in enumerate(data["machine_comparisons"]):
        bars = []
        for d in comp["diffs"]:
            if d["figure"] != "timings.decode_tok_s" or d["change_pct"] is None:
                continue
            sig = "n<2" if d["p_value"] is None else f"p={d['p_value']:.3f} ({d['verdict']})"
            tip = (f"{d['group']}: {svg.num(d['mean_a'])} → {svg.num(d['mean_b'])} tok/s, "
                   f"{d['change_pct']:+.1f}% ({sig})")
            bars.append(svg.Bar(d["group"], d["mean_b"], d["stdev_b"], d["n_b"], tip))
        if bars:
            a, b = (one_line(comp[k].split(" · ")[0], 40) for k in ("a", "b"))
            title = f"Decode rate on {b} (reference: {a})"
            out.append(Chart(f"machines-{i + 1}", "machines", title,
                             svg.bar_chart(title, "tok/s", bars)))  # fmt: skip
    return out


def all_charts(data: dict[str, Any]) -> list[Chart]:
    charts = (summary_charts(data) + distribution_charts(data) + decision_charts(data)
              + sweep_charts(data) + grid_charts(data) + conversation_charts(data)
              + machine_charts(data))  # fmt: skip
    seen: dict[str, int] = {}
    out = []
    for c in charts:
        n = seen[c.id] = seen.get(c.id, 0) + 1
        out.append(c if n == 1 else Chart(f"{_slug(c.id)}-{n}", c.section, c.title, c.svg))
    return out
