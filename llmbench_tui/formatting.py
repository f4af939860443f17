"""How stored values are written for people: shared by the commands, exports and screens.

A leaf module (it imports only ``safe_text``), so every front end can use it without pulling in
another one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .safe_text import one_line


def local_time(iso: Any, *, short: bool = False) -> str:
    """A stored timestamp in the local time zone (what a user remembers).

    A naive timestamp is UTC: records are written in UTC, so reading it as local time would shift
    it by the UTC offset. ``short`` drops the year (``MM-DD HH:MM``) for narrow table columns.
    Unreadable text is shown inert and clipped, or ``-`` when empty.
    """
    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return one_line(iso, 16) or "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M")


def fmt_num(value: Any, digits: int = 3) -> str:
    """A figure with ``digits`` significant digits (whole numbers above that); ``-`` if absent."""
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"
    return str(value)


def short_host(record: dict[str, Any]) -> str:
    """``backend@host`` without the URL scheme: where a run ran, in a narrow column."""
    host = str(record.get("host") or "local")
    host = host.split("://", 1)[-1].rstrip("/")
    return f"{record.get('backend') or '?'}@{host}"
