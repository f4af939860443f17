"""``llmbench show ID``: one run in full — figures, response, machine and environment (``--json``
as stored, plus ``machine``, ``session`` and ``series``).

The machine is the run's own ``machine`` block (stored with it, or imported), else its session's;
the session environment (OS, packages, git revision, backend versions, the conditions as the
session began) is printed after the run's own per-model environment.

Every field is untrusted (model output, server errors, anything ``llmbench import`` read), so all
of it goes through ``strip_controls``: one-line fields by ``clean``, the prompt, response and
thinking as blocks that keep their newlines. A response holding escape sequences can neither
repaint, retitle nor write the clipboard of the user's terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmbench_tui.commands.common import add_data_dir, fail, json_text, open_store
from llmbench_tui.formatting import fmt_num
from llmbench_tui.safe_text import one_line, strip_controls
from llmbench_tui.store import StoreError

_SECTIONS = ("tokens", "timings", "server", "efficiency", "telemetry")
_VERDICT = {True: "pass", False: "FAIL", None: "not run"}


def _block(text: Any) -> str:
    """Multi-line untrusted text, inert, newlines kept."""
    return strip_controls("" if text is None else str(text))


def _shown(value: Any) -> str:
    """A leaf: ``yes``/``no`` for flags (``busy``, ``idle``), else the figure (``fmt_num``)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return one_line(fmt_num(value, 4))


def _lines(value: Any, indent: str) -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, sub in value.items():
            if isinstance(sub, dict | list) and sub:
                out.append(f"{indent}{one_line(key)}:")
                out.extend(_lines(sub, indent + "  "))
            else:
                shown = _shown(sub) if sub != [] else "[]"
                out.append(f"{indent}{one_line(key)}: {shown}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            sub = _lines(item, indent + "  ")
            if isinstance(item, dict) and sub:
                out.append(f"{indent}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{indent}- {_shown(item)}")
        return out
    return [f"{indent}{_shown(value)}"]


def _quality(record: dict[str, Any]) -> list[str]:
    """``quality: 6.7/10`` then one line per check (verdict, score, name, kind, detail), and
    earlier scores (``llmbench score``) with when they were given."""
    quality = record.get("quality")
    out = []
    if isinstance(quality, dict):
        score = quality.get("score")
        shown = f"{fmt_num(score, 3)}/10" if isinstance(score, int | float) else "-"
        out.append(f"quality: {shown}  scored {one_line(quality.get('scored_at'))}")
        for check in quality.get("checks") or []:
            if not isinstance(check, dict):
                continue
            passed = check.get("passed")
            verdict = _VERDICT.get(passed, "?") if isinstance(passed, bool | None) else "?"
            value = check.get("score")
            points = f"{value:.2f}" if isinstance(value, int | float) else "   -"
            out.append(
                f"  {verdict:<7} {points}  {one_line(check.get('name'), 60)} "
                f"({one_line(check.get('kind'))}): {one_line(check.get('detail'))}"
            )
    for old in record.get("quality_history") or []:
        if isinstance(old, dict):
            out.append(f"  earlier: {one_line(fmt_num(old.get('score'), 3))}/10 "
                       f"scored {one_line(old.get('scored_at'))}")
    return out


def render(
    record: dict[str, Any],
    series: dict[str, Any] | None,
    machine: dict[str, Any] | None = None,
    session: dict[str, Any] | None = None,
) -> str:
    from llmbench_tui.telemetry.environment import machine_line

    if machine is None and isinstance(record.get("machine"), dict):
        machine = record["machine"]
    head = [
        f"run {one_line(record.get('id'))}",
        f"session {one_line(record.get('session_id'))}  "
        f"started {one_line(record.get('started_at'))}",
        f"model {one_line(record.get('model_spec') or record.get('model'))}  backend "
        f"{one_line(record.get('backend'))}  host {one_line(record.get('host'))}",
        f"machine {one_line(machine_line(machine)) if machine else 'unknown (no session)'}",
        f"status {one_line(record.get('status'))}"
        + (f"  error: {one_line(record.get('error'))}" if record.get("error") else ""),
        f"prompt [{one_line(record.get('prompt_id'))}]:",
        _block(record.get("prompt")),
    ]
    if record.get("options"):
        head += ["options:", *_lines(record["options"], "  ")]
    for section in _SECTIONS:
        if record.get(section):
            head += [f"{section}:", *_lines(record[section], "  ")]
    head += _quality(record)
    if record.get("warnings"):
        head += ["warnings:", *_lines(record["warnings"], "  ")]
    if record.get("thinking"):
        head += ["thinking:", _block(record["thinking"])]
    head += ["response:", _block(record.get("response"))]
    if machine:
        head += ["machine:", *_lines(machine, "  ")]
    if record.get("environment"):
        head += ["environment:", *_lines(record["environment"], "  ")]
    env = session.get("environment") if isinstance(session, dict) else None
    if isinstance(env, dict) and env:
        # The models part is every model of the session; this run's is printed above.
        shown = {k: v for k, v in env.items() if k != "models"}
        head += ["session environment:", *_lines(shown, "  ")]
    if series:
        lengths = ", ".join(
            f"{one_line(k)} ({len(v)})" for k, v in series.items() if isinstance(v, list)
        )
        head.append(f"series stored: {lengths or ', '.join(map(one_line, series))}")
    return "\n".join(head)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Show one run in full.")
    parser.add_argument("id", help="run id or an unambiguous prefix of it")
    parser.add_argument("--json", action="store_true", help="the record as stored, plus series")
    add_data_dir(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        store = open_store(args)
        record = store.get_run(args.id)
        series = store.series(record["id"])
        machine = store.machine_of(record)
        sid = record.get("session_id")
        session = store.sessions_by_id().get(sid) if isinstance(sid, str) else None
    except StoreError as exc:
        return fail("llmbench show", str(exc))
    if args.json:
        doc = dict(record)
        if machine:
            doc["machine"] = machine
        if session:
            doc["session"] = session
        if series:
            doc["series"] = series
        sys.stdout.write(json_text(doc))
    else:
        print(render(record, series, machine, session))
    return 0
