"""Comparing runs, sessions, models or machines, and the CI regression gate.

One job per module: ``figures`` (which figures a record holds, the groups runs are judged in,
the side-by-side diff), ``sides`` (resolving the two operands of ``llmbench compare``), ``gate``
(``--fail-if`` rules) and ``machines`` (which machine ran what, and the notes when the sides
differ). The statistics (Welch's t-test, means, intervals) live in ``engine.stats``. The names
below are the package's surface, so ``from llmbench_tui.compare import X`` keeps working.
"""

from .figures import (
    ALPHA,
    GROUP_FIELDS,
    HIGHER_IS_BETTER,
    SECTIONS,
    FigureDiff,
    compare_records,
    figure_path,
    figures_of,
    group_label,
    pct_change,
    run_group,
    values,
)
from .gate import (
    Rule,
    Violation,
    evaluate_gate,
    load_baseline,
    parse_rule,
    ungated,
    unjudged_absolute,
)
from .machines import (
    MachineComparison,
    compare_machines,
    condition_notes,
    machine_key,
    machine_label,
    machine_notes,
    record_machines,
)
from .sides import (
    Side,
    group_key,
    resolve_side,
)

__all__ = [
    "ALPHA",
    "GROUP_FIELDS",
    "HIGHER_IS_BETTER",
    "SECTIONS",
    "FigureDiff",
    "MachineComparison",
    "Rule",
    "Side",
    "Violation",
    "compare_machines",
    "compare_records",
    "condition_notes",
    "evaluate_gate",
    "figure_path",
    "figures_of",
    "group_key",
    "group_label",
    "load_baseline",
    "machine_key",
    "machine_label",
    "machine_notes",
    "parse_rule",
    "pct_change",
    "record_machines",
    "resolve_side",
    "run_group",
    "ungated",
    "unjudged_absolute",
    "values",
]
