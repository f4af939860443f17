"""Figures, groups and the side-by-side comparison of two sets of runs.

A difference between two means only matters when it is larger than the run-to-run noise, so each
figure is compared over the *repetitions* on both sides with Welch's t-test (unequal variances,
``engine.stats.welch``): ``p < 0.05`` is reported as a real difference, otherwise as noise. With
one run a side there is no spread to judge, and the comparison says so instead of guessing.

Figures come from successful runs that are neither warm-up nor cold (``counted``): README Metrics
leaves warm-up runs out of statistics and reports cold runs apart, so a model load can never pass
for a slower warm TTFT. Runs are only ever judged against runs of the same group, as in
``engine.stats.summarize``: the same model (spec), backend, host, prompt and concurrency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from llmbench_tui.engine.stats import counted, describe, figure_values, welch
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import Efficiency, Quality, ServerStats, Timings, Tokens

SECTIONS = ("timings", "server", "tokens", "efficiency", "quality")
_ORDER = (
    "timings.ttft_s", "timings.ttfc_s", "timings.decode_tok_s", "server.decode_tok_s",
    "server.prompt_tok_s", "server.load_s", "timings.e2e_s", "timings.tpot_s",
    "tokens.output", "tokens.prompt",
)  # fmt: skip
HIGHER_IS_BETTER = ("tok_s", "bytes_per_s", "achieved_gb_s", "mbu", "score")
ALPHA = 0.05


def figure_path(name: str) -> str:
    """A figure name as a record path: ``decode_tok_s`` -> ``timings.decode_tok_s``.

    Client figures win over server ones of the same name (write ``server.decode_tok_s`` for the
    server's); a dotted name is taken as it is.
    """
    if "." in name:
        return name
    for section, model in (
        ("timings", Timings),
        ("server", ServerStats),
        ("tokens", Tokens),
        ("efficiency", Efficiency),
        ("quality", Quality),  # score -> quality.score
    ):
        if name in model.model_fields:
            return f"{section}.{name}"
    raise ValueError(
        f"unknown figure {name!r}: use e.g. decode_tok_s, ttft_s, server.load_s, score"
    )


# What makes two runs comparable, named for labels: the group of ``engine.stats.summarize`` less
# ``cold`` (cold runs are never counted) and ``options`` (a changed option is what a comparison or
# a gate is there to judge, not a reason to stop comparing).
GROUP_FIELDS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("model", lambda r: _plain(r.get("model_spec") or r.get("model"))),
    ("prompt", lambda r: _plain(r.get("prompt_id"))),
    ("backend", lambda r: _plain(r.get("backend"))),
    ("host", lambda r: _plain(r.get("host"))),
    ("concurrency", lambda r: _plain(r.get("concurrency") or 1)),
)


def _plain(value: Any) -> Any:
    """A field usable as a group key: an imported record may hold a list or object anywhere."""
    return value if isinstance(value, str | int | float | bool | None) else str(value)


def run_group(record: dict[str, Any]) -> tuple:
    """The group a run is judged in: (model spec or name, prompt id, backend, host, concurrency)."""
    return tuple(get(record) for _, get in GROUP_FIELDS)


def values(records: Iterable[dict[str, Any]], path: str) -> list[float]:
    """One value per run (per round for a round's figure: ``engine.stats.figure_values``)."""
    return figure_values(records, path)


def figures_of(records: Iterable[dict[str, Any]]) -> list[str]:
    """Every numeric figure path present in the records, the usual ones first."""
    found: dict[str, None] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{prefix}.{key}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[prefix] = None

    for record in records:
        for section in SECTIONS:
            walk(record.get(section), section)
    first = [p for p in _ORDER if p in found]
    return first + sorted(p for p in found if p not in first)


# -- side-by-side comparison ----------------------------------------------------------------


@dataclass
class FigureDiff:
    """One figure of one group, side A against side B (B is the one measured against A)."""

    group: str
    figure: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    stdev_a: float | None
    stdev_b: float | None
    change_pct: float | None  # (B - A) / A
    p_value: float | None

    @property
    def verdict(self) -> str:
        """``"real"``, ``"noise"`` or ``"n<2"`` (not enough repetitions to tell)."""
        if self.p_value is None:
            return "n<2"
        return "real" if self.p_value < ALPHA else "noise"

    @property
    def better(self) -> bool | None:
        """Whether B is better than A for this figure (``None`` when no change is known)."""
        if not self.change_pct:
            return None
        higher = self.figure.endswith(HIGHER_IS_BETTER)
        return (self.change_pct > 0) == higher


def pct_change(a: float | None, b: float | None) -> float | None:
    """(b - a) / |a| in %; ``None`` when a side is unknown or a is 0."""
    if a is None or b is None or a == 0:
        return None
    return (b - a) / abs(a) * 100.0


def _mean_sd(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    stats = describe(xs)
    return stats.mean, stats.stdev


def compare_records(
    a: list[dict[str, Any]],
    b: list[dict[str, Any]],
    group_by: Callable[[dict[str, Any]], str] = lambda r: "all",
) -> list[FigureDiff]:
    """Every figure of every group present on either side, A against B (counted runs only)."""
    a, b = counted(a), counted(b)
    groups: dict[str, tuple[list, list]] = {}
    for side, records in ((0, a), (1, b)):
        for record in records:
            groups.setdefault(group_by(record), ([], []))[side].append(record)
    diffs = []
    for group, (ga, gb) in groups.items():
        for fig in figures_of(ga + gb):
            xa, xb = values(ga, fig), values(gb, fig)
            (ma, sa), (mb, sb) = _mean_sd(xa), _mean_sd(xb)
            diffs.append(
                FigureDiff(
                    group, fig, len(xa), len(xb), ma, mb, sa, sb, pct_change(ma, mb), welch(xa, xb)
                )
            )
    return diffs


def group_label(name: str, value: Any) -> str:
    """One field of a group (``GROUP_FIELDS``) as shown in labels and sentences."""
    if name == "concurrency":
        return f"c={value}"
    return "-" if value is None else one_line(value)
