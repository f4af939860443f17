"""Boundaries the layout promises, checked rather than hoped for.

* The engine, the telemetry, the backends, the store, the commands (``--batch`` among them) and
  the CLI's entry module never import Textual, nor the dashboard's ``llmbench_tui.ui`` package:
  only the UI depends on Textual, so ``--batch`` in CI never pays for it. Each group is imported in
  a fresh interpreter; a leak names the chain of modules that were importing when Textual (or the
  UI) was first asked for.
* Events are built with keyword arguments only (``RunStarted`` has ten fields, two of them
  adjacent booleans).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing

import pytest

from llmbench_tui.engine import events

# Run in a fresh interpreter: imports the given modules ("pkg.*": the package and every module
# below it) and reports what was loaded. A meta-path hook records, the first time a forbidden
# module is asked for, the stack of modules that were executing an import at that moment.
_PROBE = r"""
import importlib, json, pkgutil, sys

FORBIDDEN = ("textual", "llmbench_tui.ui")

def forbidden(name):
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)

first = {}

class Spy:
    def find_spec(self, name, path=None, target=None):
        if forbidden(name) and not first:
            chain, frame = [], sys._getframe(1)
            while frame is not None:
                module = frame.f_globals.get("__name__", "?")
                if not module.startswith(("importlib", "_frozen_importlib")) and (
                    not chain or chain[-1] != module
                ):
                    chain.append(module)
                frame = frame.f_back
            first["name"] = name
            first["chain"] = [*reversed(chain), name]
        return None

sys.meta_path.insert(0, Spy())

imported = []
for root in json.loads(sys.argv[1]):
    walk = root.endswith(".*")
    root = root.removesuffix(".*")
    module = importlib.import_module(root)
    imported.append(root)
    if walk:
        for info in pkgutil.walk_packages(module.__path__, root + "."):
            importlib.import_module(info.name)
            imported.append(info.name)

leaked = sorted(m for m in sys.modules if forbidden(m))
print(json.dumps({"imported": imported, "leaked": leaked, "first": first}))
"""

GROUPS = {
    "engine": ["llmbench_tui.engine.*"],
    "telemetry": ["llmbench_tui.telemetry.*"],
    "backends": ["llmbench_tui.backends.*"],
    "store": ["llmbench_tui.store.*"],
    # Every command, --batch among them: `history --tui` opens the UI from cli.py, lazily.
    "commands": ["llmbench_tui.commands.*"],
    "cli and shared modules": [
        "llmbench_tui",
        "llmbench_tui.cli",
        "llmbench_tui.config",
        "llmbench_tui.schema",
        "llmbench_tui.suite",
        "llmbench_tui.compare.*",
        "llmbench_tui.exporting",
        "llmbench_tui.formatting",
        "llmbench_tui.safe_text",
        "llmbench_tui.user_files",
    ],
}


def _probe(roots: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(roots)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"importing {roots} failed:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("group", list(GROUPS))
def test_group_imports_no_textual_and_no_ui(group: str) -> None:
    report = _probe(GROUPS[group])
    assert report["imported"], f"{group}: nothing was imported"
    if report["leaked"]:
        chain = " -> ".join(report["first"].get("chain", [])) or "(unknown)"
        pytest.fail(
            f"importing the {group} loads {len(report['leaked'])} forbidden module(s), "
            f"e.g. {report['leaked'][:5]}; first asked for by: {chain}"
        )


def test_the_walk_reaches_the_submodules() -> None:
    """The probe really imports what it claims (runner, stats, timing, report; the telemetry
    hub; the batch command), so an empty walk cannot pass silently."""
    imported = set(_probe(GROUPS["engine"] + GROUPS["telemetry"] + GROUPS["commands"])["imported"])
    for name in ("runner", "stats", "timing", "report", "events"):
        assert f"llmbench_tui.engine.{name}" in imported
    assert "llmbench_tui.telemetry.telemetry" in imported
    assert "llmbench_tui.commands.batch" in imported


EVENT_TYPES = typing.get_args(events.Event)


def test_every_event_type_is_listed() -> None:
    declared = {
        obj
        for obj in vars(events).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == events.__name__
    }
    assert declared == set(EVENT_TYPES)


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_events_are_built_with_keywords_only(cls: type) -> None:
    fields = dataclasses.fields(cls)
    assert all(f.kw_only for f in fields), [f.name for f in fields if not f.kw_only]
    with pytest.raises(TypeError):
        cls(*range(len(fields)))
