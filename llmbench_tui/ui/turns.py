"""Conversations and judge verdicts on screen: the pane separator of a turn, the judge figure of
a pane header, the per-turn tables, and the runs of one conversation in the store.

Light on purpose (no chart library): the dashboard's panes import it before any chart is drawn.
Every string that comes from a suite, a model or a judge is made inert before it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from ..conversations import parse_turn_id
from ..safe_text import inert, one_line


def conversation_totals(plan: Any) -> dict[str, int]:
    """Conversation id -> number of turns, from a plan (or a stored plan's dict)."""
    convs = getattr(plan, "conversations", None)
    if convs is None and isinstance(plan, dict):
        convs = plan.get("conversations")
    out: dict[str, int] = {}
    for conv in convs or []:
        cid = conv.get("id") if isinstance(conv, dict) else getattr(conv, "id", None)
        turns = conv.get("turns") if isinstance(conv, dict) else getattr(conv, "turns", None)
        if cid and turns:
            out[str(cid)] = len(turns)
    return out


def turn_label(prompt_id: str | None, totals: dict[str, int]) -> str | None:
    """``lisbon · turn 2/3`` for a turn's prompt id; ``None`` for any other prompt.
    The total comes from the plan; a conversation the plan does not name shows ``turn 2``."""
    parsed = parse_turn_id(prompt_id)
    if parsed is None:
        return None
    conv, turn = parsed
    total = totals.get(conv)
    return f"{one_line(conv, 40)} · turn {turn}" + (f"/{total}" if total else "")


def _judgement(quality: Any) -> dict[str, Any] | None:
    if quality is None:
        return None
    if hasattr(quality, "model_dump"):
        quality = quality.model_dump(mode="json")
    judge = quality.get("judge") if isinstance(quality, dict) else None
    return judge if isinstance(judge, dict) else None


def judge_figure(quality: Any) -> str | None:
    """``judge 7.0 ± 1.0`` (or ``judge: no verdict``) for a run's quality block; ``None`` when
    the run was not judged."""
    judge = _judgement(quality)
    if judge is None:
        return None
    mean, stdev = judge.get("mean"), judge.get("stdev")
    if not isinstance(mean, int | float):
        return "judge: no verdict"
    text = f"judge {mean:.1f}"
    if isinstance(stdev, int | float):
        text += f" ± {stdev:.1f}"
    return text


def verdicts_table(quality: Any) -> Table | None:
    """Each verdict of a judged run: score, latency, reason (or the error); inert text."""
    judge = _judgement(quality)
    if judge is None:
        return None
    table = Table(title=inert(f"judge {judge.get('spec')} · {judge_figure(quality)}"),
                  title_justify="left", expand=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("latency s", justify="right")
    table.add_column("reason", ratio=1)
    for i, v in enumerate(judge.get("verdicts") or [], 1):
        score = v.get("score")
        latency = v.get("latency_s")
        reason = v.get("reason") or ""
        if v.get("error"):
            reason = f"{reason}  (error: {v['error']})" if reason else f"error: {v['error']}"
        table.add_row(
            str(i),
            f"{score:g}" if isinstance(score, int | float) else "-",
            f"{latency:.2f}" if isinstance(latency, int | float) else "-",
            inert(reason),
        )
    return table


def text_table(title: str, rows: Sequence[Sequence[str]]) -> Table:
    """A header row then data rows as a Rich table; the title and every cell made inert."""
    table = Table(title=inert(title), title_justify="left", box=None, pad_edge=False)
    for i, head in enumerate(rows[0]):
        table.add_column(inert(head), justify="left" if i == 0 else "right")
    for row in rows[1:]:
        table.add_row(*(inert(c) for c in row))
    return table


def conversation_runs(records: Iterable[dict[str, Any]], record: dict[str, Any]) -> list[dict]:
    """The runs of ``record``'s conversation: same session, model, conversation and
    repetition (warm-up and cold runs left out), in turn order."""
    key = ("session_id", "model_spec", "conversation_id", "repetition")
    same = [r for r in records
            if all(r.get(k) == record.get(k) for k in key)
            and isinstance(r.get("turn"), int) and not r.get("warmup") and not r.get("cold")]
    return sorted(same, key=lambda r: r["turn"])


def turn_points(runs: Sequence[dict[str, Any]], path: str) -> tuple[list[float], list[float]]:
    """(turns, values) of one figure over a conversation's runs; runs without it are left out."""
    from ..schema import get_path

    xs, ys = [], []
    for r in runs:
        value = get_path(r, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            xs.append(float(r["turn"]))
            ys.append(float(value))
    return xs, ys


def caption(text: str) -> Text:
    return Text(text, style="dim")
