"""The report's sections beyond the summary table, each as plain data for its chart and table.

Each function takes run records and returns JSON-ready data; each figure comes from the project's
own rule for it (named in the docstrings), never a second formula.
"""

from __future__ import annotations

import statistics
from typing import Any

from llmbench_tui.compare import (
    Side,
    compare_records,
    group_key,
    machine_key,
    machine_label,
    values,
)
from llmbench_tui.conversations import parse_turn_id
from llmbench_tui.engine import goodput
from llmbench_tui.engine.report import llamabench_results, llamabench_rows
from llmbench_tui.engine.stats import counted, describe
from llmbench_tui.engine.timing import percentile
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import get_path
from llmbench_tui.workload_syntax import Slo, WorkloadError, parse_slo

JUDGE_CAVEAT = (
    "A judge score is one model's opinion of the answer against a rubric, on a 1-10 scale: not "
    "a ground truth, not comparable across judges or rubrics, nor with the checks' pass/fail. "
    "Compare judge scores only where the judge (spec, digest or file hash) and the rubric's "
    "SHA-256 are the same; a small local judge is weak."
)
MAX_VERDICTS = 200  # judged runs listed one by one; the per-model means cover them all


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one (imported records hold anything)."""
    return value if isinstance(value, dict) else {}


def model_of(record: dict[str, Any]) -> str:
    return one_line(record.get("model_spec") or record.get("model"))


def figure_values(records: list[dict[str, Any]], path: str) -> list[float]:
    """The finite numbers at ``path`` (``compare.values``: the comparison's own reading)."""
    return values(records, path)


def mean_of(records: list[dict[str, Any]], path: str) -> float | None:
    xs = figure_values(records, path)
    return describe(xs).mean if xs else None


def _by(records: list[dict[str, Any]], key: Any) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return out


# -- distributions ---------------------------------------------------------------------------


def _box(values: list[float], marks: dict[str, float | None]) -> dict[str, Any] | None:
    if not values:
        return None
    xs = sorted(values)
    return {
        "n": len(xs), "min": xs[0], "q1": percentile(xs, 25), "median": percentile(xs, 50),
        "q3": percentile(xs, 75), "max": xs[-1], "marks": marks,
    }  # fmt: skip


def distributions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TTFT and ITL per model over the counted runs.

    TTFT: the runs' TTFTs, with p50/p90/p99 of those. ITL: a run stores its own ITL percentiles
    (the gaps themselves live in the series, which exports leave out), so the box spans the runs'
    ITL p50s and the marks follow ``engine.goodput``'s rule: the p50 of the runs' p50s, the p90
    of their p90s, the p99 of their p99s."""
    out = []
    for model, recs in _by(counted(records), model_of).items():
        ttft = figure_values(recs, "timings.ttft_s")
        ttft_marks: dict[str, float | None] = {
            f"p{q}": percentile(sorted(ttft), q) if ttft else None for q in (50, 90, 99)
        }
        itl_marks: dict[str, float | None] = {}
        for q in (50, 90, 99):
            xs = sorted(figure_values(recs, f"timings.itl_p{q}_s"))
            itl_marks[f"p{q}"] = percentile(xs, q) if xs else None
        out.append({
            "model": model,
            "ttft_s": _box(ttft, ttft_marks),
            "itl_s": _box(figure_values(recs, "timings.itl_p50_s"), itl_marks),
        })  # fmt: skip
    return out


# -- quality against speed -------------------------------------------------------------------


def decision(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One point per model: mean decode rate and mean quality score of its counted single-stream
    runs; the Pareto front is the models no other model beats on both (faster and better)."""
    points = []
    single = [r for r in counted(records) if (r.get("concurrency") or 1) == 1]
    for model, recs in _by(single, model_of).items():
        speed, score = mean_of(recs, "timings.decode_tok_s"), mean_of(recs, "quality.score")
        if speed is not None and score is not None:
            points.append({"model": model, "decode_tok_s": speed, "score": score,
                           "n": len(recs), "front": False})  # fmt: skip
    best = float("-inf")
    for p in sorted(points, key=lambda p: (-p["decode_tok_s"], -p["score"])):
        if p["score"] > best:
            p["front"], best = True, p["score"]
    front = sorted((p for p in points if p["front"]), key=lambda p: p["decode_tok_s"])
    return {"points": points, "front": [[p["decode_tok_s"], p["score"]] for p in front]}


# -- concurrency sweeps ----------------------------------------------------------------------


def slos_of(records: list[dict[str, Any]]) -> list[Slo]:
    """The SLO rules the runs were judged against (their ``slo.rules``), each once."""
    texts: dict[str, None] = {}
    for r in records:
        for text in get_path(r, "slo.rules") or []:
            if isinstance(text, str):
                texts.setdefault(text, None)
    out = []
    for text in texts:
        try:
            out.append(parse_slo(text))
        except WorkloadError:
            continue  # a rule this version does not know (an imported record): not drawn
    return out


def concurrency_sweeps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sweep (one model, host and prompt over two or more levels): ``goodput.levels`` and
    ``goodput.knee``, as ``--batch`` prints them."""
    if not any((r.get("concurrency") or 1) > 1 for r in records):
        return []  # no level but 1: no sweep (and no need to work the levels out)
    slos = slos_of(records)
    out = []
    for (model, host, prompt), lvls in goodput.sweeps(goodput.levels(records, slos)).items():
        if len(lvls) < 2:
            continue
        k = goodput.knee(lvls)
        out.append({
            "model": one_line(model), "host": host, "prompt_id": prompt,
            "slos": [s.text for s in slos], "levels": [lv.to_json() for lv in lvls],
            "knee": {"level": k.level, "sentence": k.sentence},
        })  # fmt: skip
    return out


# -- size grids ------------------------------------------------------------------------------


def grid(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The llama-bench-shaped results (``engine.report.llamabench_results``) and table rows."""
    results = llamabench_results(records)
    return {"results": results, "rows": llamabench_rows(records) if results else []}


# -- conversations ---------------------------------------------------------------------------


def conversations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, conversation and turn: runs, mean TTFT, decode rate, prompt tokens, score."""
    turns: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in counted(records):
        parsed = parse_turn_id(r.get("prompt_id")) if isinstance(r.get("prompt_id"), str) else None
        if parsed:
            turns.setdefault((model_of(r), parsed[0], parsed[1]), []).append(r)
    return [
        {"model": m, "conversation": one_line(c), "turn": t, "n": len(recs),
         "ttft_s": mean_of(recs, "timings.ttft_s"),
         "decode_tok_s": mean_of(recs, "timings.decode_tok_s"),
         "prompt_tokens": mean_of(recs, "tokens.prompt"), "score": mean_of(recs, "quality.score")}
        for (m, c, t), recs in sorted(turns.items())
    ]  # fmt: skip


# -- quality: checks and judge verdicts ------------------------------------------------------


def quality(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model, prompt and check: passed / failed / not run and the mean check score; the
    judge's verdicts (per model and prompt, then run by run) with the judge's caveat."""
    checks: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    judged: dict[tuple[str, str], list[float]] = {}
    verdicts: list[dict[str, Any]] = []
    for r in counted(records):
        q = as_object(r.get("quality"))
        prompt = one_line(r.get("prompt_id"))
        for c in q.get("checks") or []:
            if isinstance(c, dict):
                key = (model_of(r), prompt, one_line(c.get("name")), one_line(c.get("kind")))
                checks.setdefault(key, []).append(c)
        j = q.get("judge")
        if isinstance(j, dict) and isinstance(j.get("mean"), int | float):
            judged.setdefault((model_of(r), prompt), []).append(float(j["mean"]))
            if len(verdicts) < MAX_VERDICTS:
                verdicts.append({
                    "run": one_line(r.get("id"))[:12], "model": model_of(r), "prompt_id": prompt,
                    "judge": one_line(j.get("spec")),
                    "rubric_sha256": one_line(j.get("rubric_sha256"))[:12],
                    "mean": j.get("mean"), "stdev": j.get("stdev"), "n": j.get("n"),
                    "verdicts": [{"score": v.get("score"), "reason": one_line(v.get("reason")),
                                  "error": v.get("error") and one_line(v.get("error"))}
                                 for v in j.get("verdicts") or [] if isinstance(v, dict)],
                })  # fmt: skip
    check_rows = []
    for (model, prompt, name, kind), cs in checks.items():
        scores = [float(c["score"]) for c in cs if isinstance(c.get("score"), int | float)]
        check_rows.append({
            "model": model, "prompt_id": prompt, "check": name, "kind": kind,
            "passed": sum(c.get("passed") is True for c in cs),
            "failed": sum(c.get("passed") is False for c in cs),
            "not_run": sum(c.get("passed") is None for c in cs),
            "mean_score": statistics.fmean(scores) if scores else None,
        })  # fmt: skip
    judge_rows = [
        {"model": m, "prompt_id": p, **describe(xs).to_json()} for (m, p), xs in judged.items()
    ]
    return {"checks": check_rows, "judge": judge_rows, "verdicts": verdicts,
            "caveat": JUDGE_CAVEAT if judge_rows else None}  # fmt: skip


# -- machine against machine -----------------------------------------------------------------


def _comparison(a: Side, b: Side) -> dict[str, Any]:
    diffs = compare_records(a.records, b.records, group_key(a, b))
    return {
        "a": a.label, "b": b.label, "n_a": len(a.records), "n_b": len(b.records),
        "diffs": [dict(vars(d), verdict=d.verdict, better=d.better) for d in diffs],
    }  # fmt: skip


def against_baseline(
    name: str, baseline: list[dict[str, Any]], records: list[dict[str, Any]]
) -> dict[str, Any]:
    """The selection (B) against a baseline (A), as ``llmbench compare A B`` reads them."""
    return _comparison(Side("baseline", f"baseline {one_line(name)}", baseline),
                       Side("selection", "the selected runs", records))  # fmt: skip


def machine_comparisons(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """When the counted runs span machines: each machine against the one with the most runs,
    paired by model, prompt, backend and concurrency — ``compare --by machine``'s reading
    (``compare.machine_key``, ``compare_records``, ``group_key``), on the selected records."""
    by_machine: dict[str, list[dict[str, Any]]] = {}
    blocks: dict[str, Any] = {}
    for r in counted(records):
        block = r.get("machine") if isinstance(r.get("machine"), dict) else None
        key = machine_key(r, block)
        if key:
            by_machine.setdefault(key, []).append(r)
            blocks.setdefault(key, block)
    known = sorted(by_machine, key=lambda k: -len(by_machine[k]))
    if len(known) < 2:
        return []
    ref = known[0]
    a = Side("machine", machine_label(ref, blocks[ref]), by_machine[ref])
    return [
        _comparison(a, Side("machine", machine_label(key, blocks[key]), by_machine[key]))
        for key in known[1:]
    ]

