"""No module uses another module's underscore names.

An underscore name is a module's own business: it may change without notice, so code in another
module that reaches for it (``engine._round(...)``, ``from .sampler import _cpu_busy``) breaks the
day the owner tidies up, and hides a seam that should have a public name. This test reads every
module of ``llmbench_tui`` with ``ast`` (nothing is imported) and fails on

- ``from M import _name`` where ``M`` is one of the package's modules (relative or absolute), and
- an attribute ``x._name`` where ``x`` is not ``self``, ``cls`` or ``super()`` and ``_name`` is not
  defined in the same module (a module may use its own private helpers on its own objects:
  ``store._checked()`` inside ``store/runs.py``, where ``_checked`` is defined).

Dunder names (``__name__``) are public protocol, and standard-library modules' own underscore
API (``os._exit``, ``sys._getframe``) is documented, so both are allowed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import llmbench_tui

PACKAGE = "llmbench_tui"
ROOT = Path(llmbench_tui.__file__).resolve().parent
OWNERS = {"self", "cls"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined(tree: ast.AST) -> set[str]:
    """Every name the module itself defines: functions, classes, assigned names and attributes,
    arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _is_package_module(node: ast.ImportFrom) -> bool:
    module = node.module or ""
    return bool(node.level) or module == PACKAGE or module.startswith(PACKAGE + ".")


def _stdlib_receiver(value: ast.expr) -> bool:
    return isinstance(value, ast.Name) and value.id in sys.stdlib_module_names


def _own_receiver(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in OWNERS
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def violations(source: str, filename: str = "<module>") -> list[str]:
    """``file:line: what`` for each use of another module's underscore name in ``source``."""
    tree = ast.parse(source, filename=filename)
    own = _defined(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_package_module(node):
            for alias in node.names:
                if _private(alias.name):
                    where = "." * node.level + (node.module or "")
                    found.append(f"{filename}:{node.lineno}: from {where} import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in own
            and not _own_receiver(node.value)
            and not _stdlib_receiver(node.value)
        ):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_another_modules_underscore_names() -> None:
    found = []
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 50  # the walk found the package
    for path in files:
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "underscore names used outside their module:\n" + "\n".join(found)


def test_the_checker_finds_each_kind_and_allows_the_owners() -> None:
    source = "\n".join(
        [
            "import os",
            "from .engine.sampler import _cpu_busy, serving_pids",
            "from llmbench_tui.store import _helper",
            "from collections import _sentinel",  # not the package's: someone else's problem
            "class Store:",
            "    def _checked(self):",
            "        return self._path, super()._name(), self.__class__",
            "def use(store, engine):",
            "    store._checked()",  # defined in this module: its own object
            "    os._exit(0)",
            "    return engine._round([]) + engine.plan._private",
        ]
    )
    assert sorted(v.split(": ", 1)[1] for v in violations(source)) == [
        "engine._round",
        "engine.plan._private",
        "from .engine.sampler import _cpu_busy",
        "from llmbench_tui.store import _helper",
    ]
