"""The CI regression gate: ``--fail-if`` rules judged against a baseline, or absolutely.

The gate (``--fail-if "decode_tok_s<-10%"``) compares each group's mean with the same group's mean
in a baseline and reports every threshold crossed, as a sentence naming the model, the prompt, the
figure, both means and the change. An absolute rule (``--fail-if "score<7"``: no sign, no percent)
needs no baseline: each group's mean now must not cross the threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench_tui.engine.stats import counted, describe
from llmbench_tui.exporting import read_records
from llmbench_tui.safe_text import one_line
from llmbench_tui.store import RunQuery, RunStore, StoreError

from .figures import GROUP_FIELDS, figure_path, group_label, pct_change, run_group, values

_RULE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*([<>])\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")
# An absolute threshold: no sign, no percent ("score<7"): a sign without "%" is refused as a
# likely typo of a relative rule.
_ABSOLUTE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*([<>])\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Rule:
    """``decode_tok_s<-10%``: fail when the figure's mean changed by less than -10 % against
    the baseline; ``score<7`` (``absolute``): fail when the figure's mean now is below 7, with
    or without a baseline. ``pct`` is the change in % or, for an absolute rule, the threshold."""

    text: str
    figure: str
    path: str
    op: str
    pct: float
    absolute: bool = False

    def crossed(self, change_pct: float) -> bool:
        return change_pct < self.pct if self.op == "<" else change_pct > self.pct


def parse_rule(text: str) -> Rule:
    """Parse ``FIGURE<PCT%`` / ``FIGURE>PCT%`` (relative to the baseline) or ``FIGURE<VALUE`` /
    ``FIGURE>VALUE`` (absolute); ValueError with a clear sentence otherwise."""
    m = _RULE.match(text)
    absolute = m is None and (m := _ABSOLUTE.match(text)) is not None
    if not m:
        raise ValueError(
            f"bad --fail-if rule {text!r}: write FIGURE<PCT% or FIGURE>PCT% (change against "
            "the baseline) or FIGURE<VALUE or FIGURE>VALUE (absolute, no sign), "
            'e.g. "decode_tok_s<-10%", "ttft_s>+20%" or "score<7"'
        )
    figure, op, pct = m.group(1), m.group(2), float(m.group(3))
    return Rule(text.strip(), figure, figure_path(figure), op, pct, absolute)


@dataclass
class Violation:
    """A rule crossed by one group: its mean now against the same group's mean in the baseline."""

    model: str  # model_spec, else model: the fields of ``run_group``, in its order
    prompt_id: str | None
    backend: str | None
    host: str | None
    concurrency: int
    figure: str
    baseline: float | None  # None for an absolute rule
    current: float
    change_pct: float | None
    rule: str

    @property
    def sentence(self) -> str:
        """One line naming the group, the figure, both means and the change (record text made
        inert: a baseline file is untrusted)."""
        model = one_line(self.model)
        if self.host and str(self.host) not in model:
            model += f" @ {one_line(self.host)}"
        where = f"{model}, prompt {group_label('prompt', self.prompt_id)}"
        if self.concurrency != 1:
            where += f", concurrency {one_line(self.concurrency)}"
        if self.baseline is None or self.change_pct is None:
            return f"{where}: {self.figure} mean {self.current:.4g}, crossing {self.rule}"
        return (
            f"{where}: {self.figure} {self.baseline:.4g} → {self.current:.4g} "
            f"({self.change_pct:+.1f}%), crossing {self.rule}"
        )


def _by_group(records: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in counted(records):
        groups.setdefault(run_group(record), []).append(record)
    return groups


def evaluate_gate(
    current_records: list[dict[str, Any]],
    baseline_records: list[dict[str, Any]],
    rules: list[Rule],
) -> list[Violation]:
    """Every rule crossed, per group (``run_group``) present on both sides, comparing means of
    counted runs: a baseline group is only ever compared with the same group now. Absolute
    rules judge every group run now, baseline or not."""
    base = _by_group(baseline_records)
    violations = []
    for group, now_runs in _by_group(current_records).items():
        violations += _absolute(group, now_runs, [r for r in rules if r.absolute])
        then_runs = base.get(group)
        if not then_runs:
            continue
        for rule in (r for r in rules if not r.absolute):
            xc, xb = values(now_runs, rule.path), values(then_runs, rule.path)
            if not xc or not xb:
                continue
            now, then = describe(xc).mean, describe(xb).mean
            change = pct_change(then, now)
            if change is not None and rule.crossed(change):
                violations.append(_violation(group, rule, then, now, change))
    return violations


def _violation(
    group: tuple[Any, ...],
    rule: Rule,
    baseline: float | None,
    current: float,
    change_pct: float | None,
) -> Violation:
    model, prompt_id, backend, host, concurrency = group  # ``run_group``'s fields, in order
    return Violation(
        model, prompt_id, backend, host, concurrency, rule.figure, baseline, current, change_pct,
        rule.text,
    )  # fmt: skip


def _absolute(group: tuple, runs: list[dict[str, Any]], rules: list[Rule]) -> list[Violation]:
    found = []
    for rule in rules:
        xs = values(runs, rule.path)
        if xs:
            now = describe(xs).mean
            if now < rule.pct if rule.op == "<" else now > rule.pct:
                found.append(_violation(group, rule, None, now, None))
    return found


def unjudged_absolute(current_records: list[dict[str, Any]], rules: list[Rule]) -> list[str]:
    """The absolute rules no counted run of this session has the figure of, when some run
    counts (no run succeeding is a failure of its own): such a rule judged nothing, and a gate
    that silently judged nothing would pass anything."""
    runs = counted(current_records)
    return [r.text for r in rules if r.absolute and runs and not values(runs, r.path)]


def ungated(
    current_records: list[dict[str, Any]], baseline_records: list[dict[str, Any]]
) -> list[str]:
    """Labels of the groups run now that the baseline has no counted runs of: the gate cannot
    judge them, and a gate that silently judged nothing would pass any regression."""
    base = _by_group(baseline_records)
    return [
        ", ".join(
            group_label(name, value)
            for (name, _), value in zip(GROUP_FIELDS, group, strict=True)
        )
        for group in _by_group(current_records)
        if group not in base
    ]


def load_baseline(ref: str, store: RunStore | None) -> list[dict[str, Any]]:
    """Baseline runs from an export/database file, or from a session id (prefix) in the store.

    Raises StoreError (unknown session, no store) or ExportError (unreadable file).
    """
    if Path(ref).is_file():
        return read_records(ref)[0]
    if store is None:
        raise StoreError(f"baseline {ref!r} is not a file, and without a store no session is known")
    sid = store.resolve_session_id(ref)
    return store.query(RunQuery(session_id=sid))
