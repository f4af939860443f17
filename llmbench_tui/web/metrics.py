"""``GET /metrics``: the stored history in the Prometheus text exposition format (version 0.0.4).

Gauges, one series per (model, machine, backend), taken from the newest run that has the figure:

- ``llmbench_decode_tokens_per_second`` and ``llmbench_ttft_seconds``: ``timings.decode_tok_s``
  and ``timings.ttft_s`` of the newest *counted* run (ok, not warm-up, not cold:
  ``engine.stats.counts_in_figures``, the rule every mean in llmbench uses);
- ``llmbench_quality_score``: ``quality.score`` of the newest counted run that was scored;
- ``llmbench_last_run_timestamp_seconds``: when the newest run of any status started;
- ``llmbench_runs{status}``: how many runs are stored per status (a gauge, not a counter: runs
  can be deleted).

``machine`` is the record's ``host`` (the server's URL for Ollama and OpenAI-compatible runs),
else the hostname in the record's or its session's environment (in-process runs), else
``local``. Label values come from records (anything ``llmbench import`` read), so they are
stripped of escape sequences and control characters (``safe_text.strip_controls``), cut to
:data:`MAX_LABEL` characters and escaped as the format requires (backslash, double quote,
newline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from llmbench_tui.engine.stats import counts_in_figures
from llmbench_tui.safe_text import strip_controls
from llmbench_tui.schema import get_path

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_LABEL = 256
STATUSES = ("ok", "error", "timeout", "cancelled")

# metric name, help text, the figure's path in a record
_LATEST = (
    ("llmbench_decode_tokens_per_second",
     "Client-side decode rate (timings.decode_tok_s) of the newest counted run.",
     "timings.decode_tok_s"),
    ("llmbench_ttft_seconds",
     "Time to first token (timings.ttft_s) of the newest counted run.",
     "timings.ttft_s"),
    ("llmbench_quality_score",
     "Quality score (quality.score) of the newest counted run that was scored.",
     "quality.score"),
)  # fmt: skip


def clean(value: Any) -> str:
    """Record text made inert for a label: no escape sequences or controls, at most
    :data:`MAX_LABEL` characters (newlines stay: the format escapes them)."""
    return strip_controls("" if value is None else str(value))[:MAX_LABEL]


def label_value(value: Any) -> str:
    """A label value as the exposition format wants it, made inert first."""
    text = clean(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def machine(record: dict[str, Any], session_hosts: dict[str, str]) -> str:
    """Where a run ran: the server's host, else the llmbench machine's hostname, else 'local'."""
    if record.get("host"):
        return str(record["host"])
    env = record.get("environment")
    if isinstance(env, dict):
        name = get_path(env, "os.hostname") or env.get("hostname")
        if name:
            return str(name)
    return session_hosts.get(str(record.get("session_id")), "local")


def session_hostnames(sessions: Iterable[dict[str, Any]]) -> dict[str, str]:
    hosts = {}
    for session in sessions:
        name = get_path(session, "environment.os.hostname")
        if name and session.get("id"):
            hosts[str(session["id"])] = str(name)
    return hosts


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _timestamp(raw: Any) -> float | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _labels(pairs: dict[str, Any]) -> str:
    return "{" + ",".join(f'{k}="{label_value(v)}"' for k, v in pairs.items()) + "}"


def render(runs: Iterable[dict[str, Any]], sessions: Iterable[dict[str, Any]] = ()) -> str:
    """The exposition text for ``runs`` given newest first (``Store.query()``'s default)."""
    hosts = session_hostnames(sessions)
    latest: dict[str, dict[tuple, float]] = {name: {} for name, _, _ in _LATEST}
    last_seen: dict[tuple, float] = {}
    statuses = dict.fromkeys(STATUSES, 0)
    for record in runs:
        status = clean(record.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        # Keyed by the cleaned text, so two names that differ only in controls are one series.
        key = (
            clean(record.get("model") or record.get("model_spec")),
            clean(machine(record, hosts)),
            clean(record.get("backend")),
        )
        if key not in last_seen and (when := _timestamp(record.get("started_at"))) is not None:
            last_seen[key] = when
        if not counts_in_figures(record):
            continue
        for name, _, path in _LATEST:
            value = _number(get_path(record, path))
            if value is not None and key not in latest[name]:
                latest[name][key] = value
    lines: list[str] = []
    for name, help_text, _ in _LATEST:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for key, value in latest[name].items():
            lines.append(f"{name}{_series_labels(key)} {value!r}")
    name = "llmbench_last_run_timestamp_seconds"
    lines += [f"# HELP {name} Start time of the newest run (any status), Unix seconds.",
              f"# TYPE {name} gauge"]  # fmt: skip
    lines += [f"{name}{_series_labels(key)} {value!r}" for key, value in last_seen.items()]
    lines += ["# HELP llmbench_runs Runs stored, by status.", "# TYPE llmbench_runs gauge"]
    lines += [f"llmbench_runs{_labels({'status': s})} {n}" for s, n in statuses.items()]
    return "\n".join(lines) + "\n"


def _series_labels(key: tuple) -> str:
    model, where, backend = key
    return _labels({"model": model, "machine": where, "backend": backend})
