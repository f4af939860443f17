"""Comparing runs, sessions or models, and the CI regression gate.

A difference between two means only matters when it is larger than the run-to-run noise, so each
figure is compared over the *repetitions* on both sides with Welch's t-test (unequal variances):
``p < 0.05`` is reported as a real difference, otherwise as noise. With one run a side there is
no spread to judge, and the comparison says so instead of guessing.

Figures come from successful runs that are neither warm-up nor cold (``counted``): README Metrics
leaves warm-up runs out of statistics and reports cold runs apart, so a model load can never pass
for a slower warm TTFT. Runs are only ever judged against runs of the same group, as in
``engine.stats.summarize``: the same model (spec), backend, host, prompt and concurrency.

The gate (``--fail-if "decode_tok_s<-10%"``) compares each group's mean with the same group's mean
in a baseline and reports every threshold crossed, as a sentence naming the model, the prompt, the
figure, both means and the change. An absolute rule (``--fail-if "score<7"``: no sign, no percent)
needs no baseline: each group's mean now must not cross the threshold.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench_tui.engine.stats import counted, describe, figure_values
from llmbench_tui.exporting import read_records
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import Efficiency, Quality, ServerStats, Timings, Tokens, get_path
from llmbench_tui.store import RunQuery, Store, StoreError

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


# -- Welch's t-test -------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Numerical Recipes, modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):  # fmt: skip
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def welch(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; ``None`` when a side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return _betai(df / 2.0, 0.5, df / (df + t * t))


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


def _pct(a: float | None, b: float | None) -> float | None:
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
                    group, fig, len(xa), len(xb), ma, mb, sa, sb, _pct(ma, mb), welch(xa, xb)
                )
            )
    return diffs


@dataclass
class Side:
    """One operand of ``llmbench compare``: a run, a session or a model, with its runs."""

    kind: str  # "run" | "session" | "model"
    label: str
    records: list[dict[str, Any]]


def resolve_side(store: Store, ref: str) -> Side:
    """``model:NAME``, a run id (or unique prefix) or a session id (or unique prefix)."""
    if ref.startswith("model:"):
        name = ref.removeprefix("model:")
        runs = [
            r
            for r in store.query(RunQuery(model=name))
            if name in (r.get("model"), r.get("model_spec"))
        ]
        if not runs:
            raise StoreError(f"no runs of model {name!r} in {store.path}")
        return Side("model", name, runs)
    errors = []
    for kind in ("run", "session"):
        try:
            if kind == "run":
                run = store.get_run(ref)
                return Side("run", one_line(run["id"])[:12], [run])
            sid = store.resolve_session_id(ref)
            runs = store.query(RunQuery(session_id=sid))
            return Side("session", one_line(sid)[:12], runs)
        except StoreError as exc:
            errors.append(str(exc))
    if any("matches" in e for e in errors):
        raise StoreError(next(e for e in errors if "matches" in e))
    raise StoreError(f"{ref!r} is neither a run id, a session id nor model:NAME in {store.path}")


def group_key(a: Side, b: Side) -> Callable[[dict[str, Any]], str]:
    """How to pair runs across the two sides: on every field of ``GROUP_FIELDS`` whose values the
    two sides share.

    A field with no value in common (model:X against model:Y, two hosts, two concurrency levels)
    is what the comparison is about, so it is left out of the pairing instead of leaving every
    group one-sided. The label names the model and prompt, and any other field that varies.
    """
    ra, rb = counted(a.records), counted(b.records)
    shown = []
    for name, get in GROUP_FIELDS:
        if not {get(r) for r in ra} & {get(r) for r in rb}:
            continue
        if name in ("model", "prompt") or len({get(r) for r in ra + rb}) > 1:
            shown.append((name, get))

    def key(record: dict[str, Any]) -> str:
        parts = [_label(name, get(record)) for name, get in shown]
        return " / ".join(parts) or "all"

    return key


def _label(name: str, value: Any) -> str:
    if name == "concurrency":
        return f"c={value}"
    return "-" if value is None else one_line(value)


# -- regression gate ------------------------------------------------------------------------

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
        where = f"{model}, prompt {_label('prompt', self.prompt_id)}"
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
            change = _pct(then, now)
            if change is not None and rule.crossed(change):
                violations.append(Violation(*group, rule.figure, then, now, change, rule.text))
    return violations


def _absolute(group: tuple, runs: list[dict[str, Any]], rules: list[Rule]) -> list[Violation]:
    found = []
    for rule in rules:
        xs = values(runs, rule.path)
        if xs:
            now = describe(xs).mean
            if now < rule.pct if rule.op == "<" else now > rule.pct:
                found.append(Violation(*group, rule.figure, None, now, None, rule.text))
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
        ", ".join(_label(name, value) for (name, _), value in zip(GROUP_FIELDS, group, strict=True))
        for group in _by_group(current_records)
        if group not in base
    ]


def load_baseline(ref: str, store: Store | None) -> list[dict[str, Any]]:
    """Baseline runs from an export/database file, or from a session id (prefix) in the store.

    Raises StoreError (unknown session, no store) or ExportError (unreadable file).
    """
    if Path(ref).is_file():
        return read_records(ref)[0]
    if store is None:
        raise StoreError(f"baseline {ref!r} is not a file, and without a store no session is known")
    sid = store.resolve_session_id(ref)
    return store.query(RunQuery(session_id=sid))


# -- machines -------------------------------------------------------------------------------

# What may differ on one machine between two sessions, worth saying when it does.
_SOFTWARE = (("gpu_driver", "GPU driver"), ("kernel", "kernel"), ("os", "OS"))


def machine_key(record: dict[str, Any], machine: dict[str, Any] | None) -> str | None:
    """Which machine did the work: the run's own (its session's) for local and in-process runs;
    for a model served by another host, that host (the session's machine only sent requests)."""
    from llmbench_tui.engine.efficiency import is_local_host

    host = record.get("host")
    if isinstance(host, str) and not is_local_host(host):
        return f"host:{host}"
    return machine.get("machine_id") if machine else None


def record_machines(
    records: Iterable[dict[str, Any]], store: Store | None = None
) -> dict[str, tuple[dict[str, Any] | None, int]]:
    """``{machine key: (machine block, runs)}`` of the counted runs (``machine_key``); a run
    whose machine is unknown (no block, no session) is counted under ``"?"``."""
    sessions = store.sessions_by_id() if store is not None else {}
    found: dict[str, tuple[dict[str, Any] | None, int]] = {}
    for record in counted(list(records)):
        if store is not None:
            block = store.machine_of(record, sessions)
        else:
            block = record.get("machine") if isinstance(record.get("machine"), dict) else None
        key = machine_key(record, block) or "?"
        if key.startswith("host:"):
            block = {"hostname": key.removeprefix("host:"), "remote": True, "client": block}
        previous = found.get(key, (block, 0))
        found[key] = (previous[0] or block, previous[1] + 1)
    return found


def machine_label(key: str, block: dict[str, Any] | None) -> str:
    """One line for a machine key: the machine line, or the remote host it names."""
    from llmbench_tui.engine.environment import machine_line

    if key == "?":
        return "an unknown machine (runs without a session)"
    if key.startswith("host:"):
        return f"the server at {one_line(key.removeprefix('host:'))}"
    return one_line(machine_line(block))


def machine_notes(
    a: dict[str, tuple[dict[str, Any] | None, int]],
    b: dict[str, tuple[dict[str, Any] | None, int]],
    names: tuple[str, str] = ("A", "B"),
) -> list[str]:
    """Sentences for ``compare`` and the gate when the two sides did not run on one machine, or
    ran on one machine whose software changed (driver, kernel, OS); nothing when nothing is
    known or everything matches."""
    known_a, known_b = set(a) - {"?"}, set(b) - {"?"}
    if not known_a or not known_b:
        return []
    notes = []
    for name, side in zip(names, (a, b), strict=True):
        if len(set(side) - {"?"}) > 1:
            shown = "; ".join(machine_label(k, side[k][0]) for k in sorted(side) if k != "?")
            notes.append(f"{name} ran on {len(set(side) - {'?'})} machines: {shown}")
    if known_a != known_b:
        (ka,), (kb,) = (sorted(known_a)[:1], sorted(known_b)[:1])
        if len(known_a) == len(known_b) == 1:
            notes.append(
                f"{names[0]} and {names[1]} ran on different machines: {names[0]} on "
                f"{machine_label(ka, a[ka][0])}, {names[1]} on {machine_label(kb, b[kb][0])}; "
                "the differences are the hardware's as much as the software's"
            )
        elif not notes:
            notes.append(f"{names[0]} and {names[1]} ran on different sets of machines")
        return notes
    for key in sorted(known_a):
        block_a, block_b = a[key][0] or {}, b[key][0] or {}
        changed = [
            f"{label} {one_line(block_a.get(field))} → {one_line(block_b.get(field))}"
            for field, label in _SOFTWARE
            if block_a.get(field) and block_b.get(field) and block_a[field] != block_b[field]
        ]
        if changed:
            notes.append(
                f"same machine ({machine_label(key, block_a)}), but " + ", ".join(changed)
            )
    return notes


@dataclass
class MachineComparison:
    """``llmbench compare --by machine``: one machine against the reference machine."""

    a: Side
    b: Side
    diffs: list[FigureDiff]


def compare_machines(
    store: Store, models: list[str], against: str | None = None
) -> list[MachineComparison]:
    """Machine against machine for the same model(s): the counted runs of ``models`` (``model:X``
    exactly, else part of the name as ``history --model``) split by the machine that did the work
    (``machine_key``); each machine is compared with the reference one (``against``: host name,
    CPU or id prefix; default the machine with the most runs), paired by model, prompt, backend
    and concurrency."""
    from llmbench_tui.engine.environment import machine_matches

    runs: dict[str, dict[str, Any]] = {}
    for ref in models:
        exact = ref.startswith("model:")
        name = ref.removeprefix("model:")
        for r in store.query(RunQuery(model=name)):
            if not exact or name in (r.get("model"), r.get("model_spec")):
                runs[r["id"]] = r
    if not runs:
        raise StoreError(f"no runs of {', '.join(map(repr, models))} in {store.path}")
    sessions = store.sessions_by_id()
    by_machine: dict[str, list[dict[str, Any]]] = {}
    blocks: dict[str, dict[str, Any] | None] = {}
    for record in counted(list(runs.values())):
        block = store.machine_of(record, sessions)
        key = machine_key(record, block) or "?"
        by_machine.setdefault(key, []).append(record)
        blocks.setdefault(key, block)
    known = sorted((k for k in by_machine if k != "?"), key=lambda k: -len(by_machine[k]))
    if not known:
        raise StoreError("none of these runs has a known machine (runs without a session)")
    if against:
        hits = [k for k in known if machine_matches(blocks.get(k), against) or against in k]
        if not hits:
            raise StoreError(f"no machine matching {against!r} ran these models")
        ref = hits[0]
    else:
        ref = known[0]
    if len(known) < 2:
        raise StoreError(
            f"only one machine ran these models ({machine_label(ref, blocks.get(ref))}): "
            "import the other machine's results first (llmbench import FILE)"
        )
    side_a = Side("machine", machine_label(ref, blocks.get(ref)), by_machine[ref])
    out = []
    for key in known:
        if key == ref:
            continue
        side_b = Side("machine", machine_label(key, blocks.get(key)), by_machine[key])
        out.append(
            MachineComparison(
                side_a, side_b, compare_records(side_a.records, side_b.records,
                                                group_key(side_a, side_b))
            )
        )  # fmt: skip
    return out


def condition_notes(
    a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]], names: tuple[str, str] = ("A", "B")
) -> list[str]:
    """Sentences for ``compare`` and the gate when counted runs of a side were measured beside
    other work (``efficiency.conditions.busy``) or hold physically impossible figures
    (``efficiency.implausible``): a difference resting on them is not the hardware's or the
    software's."""
    from llmbench_tui.engine.conditions import BUSY_OTHER_CPU_PCT

    notes = []
    for name, records in zip(names, (a, b), strict=True):
        runs = counted(list(records))
        busy = sum(bool(get_path(r, "efficiency.conditions.busy")) for r in runs)
        odd = sum(bool(get_path(r, "efficiency.implausible")) for r in runs)
        if busy:
            notes.append(
                f"{busy} of {len(runs)} runs of {name} were measured beside other work (other "
                f"processes used more than {BUSY_OTHER_CPU_PCT:.0f} % of the CPU): their figures "
                "are not comparable"
            )
        if odd:
            notes.append(
                f"{odd} of {len(runs)} runs of {name} have physically impossible figures "
                "(a decode rate above the bandwidth ceiling)"
            )
    return notes
