"""Writing run records as JSON, JSONL, CSV or Markdown, and reading them back for import.

One function per direction so ``llmbench export`` and ``--batch`` write identical files and
``llmbench import`` / ``--baseline`` read anything either produced (or a whole database file).
CSV flattens nested figures into dotted columns (``timings.decode_tok_s``) because spreadsheets
cannot hold objects; the environment snapshot, which is large and irregular, stays one JSON cell.

Exports are self-contained (``self_contained``): every run carries its ``machine`` block and, in
JSON and JSONL, its ``session`` (id, start, plan and the environment snapshot of the machine), so
``llmbench import`` on another machine restores sessions and machines and a merged database
compares hardware. CSV and Markdown get the machine's columns instead (host name, CPU, GPU, id).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from llmbench_tui.safe_text import strip_controls
from llmbench_tui.schema import get_path
from llmbench_tui.store import SERIES, normalize_tables
from llmbench_tui.store.journal import AtomicJSONStorage, CorruptDatabase, parse_tables
from llmbench_tui.user_files import write_user_file

FORMATS = ("json", "jsonl", "csv", "md", "bench-json", "bench-csv", "bench-md")
# bench-*: the size-grid runs as llama-bench's table (engine.report.llamabench_results), one row
# per (model, backend, host, test) with t/s mean ± stdev and n, instead of one row per run.
_BENCH_COLUMNS = (
    "model", "backend", "host", "concurrency", "test", "n_prompt", "n_gen", "n_depth",
    "avg_ts", "stddev_ts", "client_avg_ts", "client_stddev_ts", "n",
)  # fmt: skip
_LEAD_COLUMNS = (
    "id", "session_id", "started_at", "model", "model_spec", "backend", "host", "prompt_id",
    "status", "error", "warmup", "cold", "repetition", "concurrency",
)  # fmt: skip
_MACHINE_COLUMNS = ("machine.hostname", "machine.cpu", "machine.gpu", "machine.machine_id")
_OPAQUE = ("environment",)  # kept as one JSON cell in CSV
_NOT_IN_CSV = ("session",)  # the whole session snapshot: JSON and JSONL only
_MD_COLUMNS = (
    ("started", "started_at"), ("id", "id"), ("model", "model"), ("backend", "backend"),
    ("prompt", "prompt_id"), ("status", "status"), ("TTFT s", "timings.ttft_s"),
    ("decode tok/s", "timings.decode_tok_s"), ("server tok/s", "server.decode_tok_s"),
    ("e2e s", "timings.e2e_s"), ("out tokens", "tokens.output"),
    ("machine", "machine.hostname"), ("CPU", "machine.cpu"), ("GPU", "machine.gpu"),
    ("machine id", "machine.machine_id"),
)  # fmt: skip
_MD_SCORE = ("score", "quality.score")  # a column when any record has a score
# A column when any record has it: the round's output tok/s (every stream of a round shows it).
_MD_AGGREGATE = ("round tok/s", "concurrent.aggregate_tok_s")


class ExportError(Exception):
    """An export or import file problem, in one sentence."""


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys; lists and the environment as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if name == "quality.checks" and isinstance(value, list):
            flat[name] = compact_checks(value)
        elif isinstance(value, dict) and name not in _OPAQUE:
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list | dict):
            flat[name] = orjson.dumps(value).decode()
        else:
            flat[name] = value
    return flat


def self_contained(
    records: list[dict[str, Any]], store: Any, *, sessions: bool = True
) -> list[dict[str, Any]]:
    """The records, each with its ``machine`` block (``Store.machine_of``: stored with the run,
    or computed from its session) and, with ``sessions``, its ``session`` as stored (id,
    start, plan, environment). Records are copied at the top level, never changed in place."""
    table = store.sessions_by_id()
    out = []
    for record in records:
        record = dict(record)
        machine = store.machine_of(record, table)
        if machine and not isinstance(record.get("machine"), dict):
            record["machine"] = machine
        session = table.get(record.get("session_id")) if sessions else None
        if isinstance(session, dict):
            record["session"] = session
        out.append(record)
    return out


def compact_checks(checks: list[Any]) -> str:
    """A quality block's checks in one CSV cell: ``name=score`` (0-1) or ``name=not run``,
    ``; ``-separated. The details are in the JSON export and ``llmbench show``."""
    parts = []
    for check in checks:
        if not isinstance(check, dict):
            continue
        score = check.get("score")
        shown = f"{score:.3g}" if isinstance(score, int | float) else "not run"
        parts.append(f"{strip_controls(str(check.get('name')))}={shown}")
    return "; ".join(parts)


def _csv(records: list[dict[str, Any]], out: IO[str]) -> None:
    rows = [
        flatten({k: v for k, v in r.items() if k not in _NOT_IN_CSV}) for r in records
    ]
    lead = (*_LEAD_COLUMNS, *_MACHINE_COLUMNS)
    columns = dict.fromkeys(c for c in lead if any(c in row for row in rows))
    for row in rows:
        columns.update(dict.fromkeys(row))
    writer = csv.DictWriter(
        out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _md_cell(value: Any) -> str:
    """Model output is untrusted text: escape what Markdown tables would interpret."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = strip_controls(str(value)).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split())[:80]


def _md(records: list[dict[str, Any]], out: IO[str]) -> None:
    columns: tuple[tuple[str, str], ...] = _MD_COLUMNS
    for optional in (_MD_AGGREGATE, _MD_SCORE):
        if any(get_path(r, optional[1]) is not None for r in records):
            columns = (*columns, optional)
    out.write("| " + " | ".join(h for h, _ in columns) + " |\n")
    out.write("|" + "|".join("---" for _ in columns) + "|\n")
    for record in records:
        cells = [_md_cell(get_path(record, path)) for _, path in columns]
        out.write("| " + " | ".join(cells) + " |\n")


def render(records: list[dict[str, Any]], fmt: str) -> str:
    """The export as text."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "jsonl":
        return "".join(orjson.dumps(r).decode() + "\n" for r in records)
    if fmt.startswith("bench-"):
        return _bench(records, fmt)
    buf = io.StringIO()
    (_csv if fmt == "csv" else _md)(records, buf)
    return buf.getvalue()


def _bench(records: list[dict[str, Any]], fmt: str) -> str:
    """The llama-bench-shaped table of the grid runs among ``records``."""
    from llmbench_tui.engine.report import llamabench_results, llamabench_rows, render_markdown

    if fmt == "bench-md":
        rows = llamabench_rows(records)
        return render_markdown([[strip_controls(c) for c in row] for row in rows]) + "\n"
    results = [{k: e[k] for k in _BENCH_COLUMNS} for e in llamabench_results(records)]
    if fmt == "bench-json":
        return orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(_BENCH_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow({k: "" if v is None else v for k, v in result.items()})
    return buf.getvalue()


def write_export(
    records: list[dict[str, Any]], fmt: str, path_or_stream: str | os.PathLike[str] | IO[str] | None
) -> None:
    """Write ``records`` in ``fmt`` to a path (written whole, then renamed) or a text stream
    (``None`` or ``"-"`` is stdout)."""
    text = render(records, fmt)
    if path_or_stream is None or path_or_stream == "-":
        sys.stdout.write(text)
        return
    if hasattr(path_or_stream, "write"):
        path_or_stream.write(text)
        return
    write_user_file(Path(path_or_stream), text, ExportError)


def _jsonl(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ExportError(f"{path} line {number} is not valid JSON") from None
        if not isinstance(item, dict):
            raise ExportError(f"{path} line {number} is not a run record (not an object)")
        yield item


def _sessions_apart(records: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Runs of a self-contained export without their ``session`` blocks, and those sessions
    (once each): the store keeps a session once, not once per run."""
    runs: list[dict[str, Any]] = []
    sessions: dict[str, dict[str, Any]] = {}
    for record in records:
        session = record.get("session")
        if "session" in record:
            record = {k: v for k, v in record.items() if k != "session"}
        if isinstance(session, dict) and isinstance(session.get("id"), str) and session["id"]:
            sessions.setdefault(session["id"], session)
        runs.append(record)
    return runs, list(sessions.values())


def read_records(path: str | os.PathLike[str]) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """Runs, sessions and series from a JSON/JSONL export or an llmbench database file.

    A database is read as it is (never migrated or written); its ``<name>.series/`` folder is
    read too when it sits beside it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return (*_sessions_apart(list(_jsonl(data, path))), {})
    if isinstance(parsed, list):
        if not all(isinstance(r, dict) for r in parsed):
            raise ExportError(f"{path} is a JSON list but not of run records")
        return (*_sessions_apart(parsed), {})
    if isinstance(parsed, dict) and "started_at" in parsed:
        return (*_sessions_apart([parsed]), {})  # a one-line JSONL export
    try:
        parse_tables(data, path)  # refuse what is neither an export nor a database, early
        # Through the storage, so runs still in the database's journal are read too.
        storage = AtomicJSONStorage(path, side_tables=(SERIES,))
        tables = storage.read() or {}
    except CorruptDatabase as exc:
        raise ExportError(f"{path} is neither an export nor a database ({exc.reason})") from None
    runs, sessions, series = normalize_tables(tables)
    for rid, doc in storage.side(SERIES).items():
        series[rid] = {k: v for k, v in doc.items() if k != "started_at"}
    series_dir = path.with_name(path.stem + ".series")
    if series_dir.is_dir():
        for shard in sorted(series_dir.glob("*.json")):
            with contextlib.suppress(OSError, CorruptDatabase):
                for rid, doc in (
                    (parse_tables(shard.read_bytes(), shard) or {}).get(SERIES, {}).items()
                ):
                    series[rid] = {k: v for k, v in doc.items() if k != "started_at"}
    return runs, sessions, series
