"""``llmbench show ID``: one run in full — figures, response, environment (``--json`` as stored).

Model output is printed with control characters made visible, never passed to the terminal raw:
a response containing escape sequences must not be able to repaint or retitle the user's terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from llmbench_tui.commands.history import add_data_dir, fail, fmt_num, open_store
from llmbench_tui.store import StoreError

_SECTIONS = ("tokens", "timings", "server", "efficiency", "telemetry", "quality")


def safe(text: Any) -> str:
    """Keep newlines and tabs; show every other control character as ``\\xNN``."""
    raw = "" if text is None else str(text)
    return "".join(ch if ch in "\n\t" or ch.isprintable() else f"\\x{ord(ch):02x}" for ch in raw)


def _lines(value: Any, indent: str) -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, sub in value.items():
            if isinstance(sub, dict | list) and sub:
                out.append(f"{indent}{safe(key)}:")
                out.extend(_lines(sub, indent + "  "))
            else:
                out.append(f"{indent}{safe(key)}: {safe(fmt_num(sub, 4)) if sub != [] else '[]'}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            sub = _lines(item, indent + "  ")
            if isinstance(item, dict) and sub:
                out.append(f"{indent}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{indent}- {safe(fmt_num(item, 4))}")
        return out
    return [f"{indent}{safe(fmt_num(value, 4))}"]


def render(record: dict[str, Any], series: dict[str, Any] | None) -> str:
    head = [
        f"run {record.get('id')}",
        f"session {record.get('session_id')}  started {record.get('started_at')}",
        f"model {safe(record.get('model_spec') or record.get('model'))}  backend "
        f"{record.get('backend')}  host {safe(record.get('host'))}",
        f"status {record.get('status')}"
        + (f"  error: {safe(record.get('error'))}" if record.get("error") else ""),
        f"prompt [{safe(record.get('prompt_id'))}]:",
        safe(record.get("prompt")),
    ]
    if record.get("options"):
        head += ["options:", *_lines(record["options"], "  ")]
    for section in _SECTIONS:
        if record.get(section):
            head += [f"{section}:", *_lines(record[section], "  ")]
    if record.get("warnings"):
        head += ["warnings:", *_lines(record["warnings"], "  ")]
    if record.get("thinking"):
        head += ["thinking:", safe(record["thinking"])]
    head += ["response:", safe(record.get("response"))]
    if record.get("environment"):
        head += ["environment:", *_lines(record["environment"], "  ")]
    if series:
        lengths = ", ".join(
            f"{safe(k)} ({len(v)})" for k, v in series.items() if isinstance(v, list)
        )
        head.append(f"series stored: {lengths or ', '.join(map(safe, series))}")
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
    except StoreError as exc:
        return fail("llmbench show", str(exc))
    if args.json:
        doc = dict(record, series=series) if series else record
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(record, series))
    return 0
