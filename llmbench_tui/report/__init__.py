"""The self-contained HTML report (``llmbench report``, ``serve``'s ``/report``) and its charts
as SVG files.

- ``select``: which runs (the ``compare``/``history`` selection, or an export file);
- ``model``/``sections``: what the report says, as plain data built from the records only;
- ``svg``/``charts``: the charts, drawn as SVG text;
- ``html``: the page (inline styles and script, a CSP that forbids any request).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmbench_tui.report.charts import Chart, all_charts
from llmbench_tui.report.html import asset, render
from llmbench_tui.report.model import build
from llmbench_tui.user_files import write_user_file


class ReportError(Exception):
    """A report that cannot be written, in one sentence."""


def _write(path: Path, text: str) -> None:
    write_user_file(path, text, ReportError)


def write_html(path: str | os.PathLike[str], data: dict[str, Any]) -> int:
    """Write the page for ``data`` to ``path`` (whole, then renamed); its size in bytes."""
    text = render(data)
    _write(Path(path), text)
    return len(text.encode())


def write_svgs(folder: str | os.PathLike[str], data: dict[str, Any]) -> list[Path]:
    """Each chart as ``folder/<id>.svg`` (a standalone SVG file); the paths written."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create {out}: {exc.strerror or exc}") from None
    written = []
    for chart in all_charts(data):
        path = out / f"{chart.id}.svg"
        opening = chart.svg.index(">") + 1  # the styles go in, so the file stands alone
        text = chart.svg[:opening] + f"<style>{asset('chart.css')}</style>" + chart.svg[opening:]
        _write(path, '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
        written.append(path)
    return written


__all__ = ["Chart", "ReportError", "all_charts", "build", "render", "write_html", "write_svgs"]
