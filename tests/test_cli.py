"""``llmbench --help``: the options come in named groups, not one block of fifty."""

from __future__ import annotations

from llmbench_tui.cli import build_parser

GROUPS = (
    "models and prompts",
    "workload (size grids, sweeps, open-loop load)",
    "output and storage",
    "answer quality",
    "run conditions and telemetry",
    "regression gate",
    "dashboard",
)
UNGROUPED = {"--help", "--version", "--batch"}


def test_every_option_is_in_a_named_group() -> None:
    parser = build_parser()
    titles = [g.title for g in parser._action_groups]  # argparse keeps no public list
    assert all(title in titles for title in GROUPS), titles
    loose = [
        opt
        for group in parser._action_groups
        if group.title not in GROUPS
        for action in group._group_actions
        for opt in action.option_strings
        if opt.startswith("--") and opt not in UNGROUPED
    ]
    assert not loose, f"options outside the named groups: {loose}"


def test_help_lists_the_groups_in_order() -> None:
    text = build_parser().format_help()
    places = [text.index(f"\n{title}:") for title in GROUPS]
    assert places == sorted(places)
    assert "--rate" in text.split("\nworkload")[1].split("\noutput and storage:")[0]
