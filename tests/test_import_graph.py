"""No import circles inside ``llmbench_tui``.

A circle works only while one side imports the other lazily (inside a function) or late in the
file; it breaks when someone moves an import to the top or imports the modules in another order.
This test reads every module of the package with ``ast`` (nothing is imported), resolves each
``import llmbench_tui...`` and ``from . import ...`` into an edge between modules, function-level
imports included, and fails with the circle printed when the graph has one.

Two rules follow Python's import system:

- Importing ``a.b.c`` first runs ``a/__init__`` and ``a/b/__init__``, so an edge also goes to
  every package above the imported module, except the packages above the importing module itself
  (those already started before the importing module's first line ran).
- ``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is one, else to
  ``pkg`` itself.

Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import llmbench_tui

PACKAGE = "llmbench_tui"
ROOT = Path(llmbench_tui.__file__).resolve().parent


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> its file, for every ``.py`` under ``root``."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at any depth, but not under ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that importing ``module`` (or calling its functions) imports."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()

    def add(target: str) -> None:
        # The closest module at or above the dotted name (``pkg.mod.attr`` -> ``pkg.mod``).
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if not target:
            return
        own = set(_ancestors(module)) | {module}
        targets.add(target)
        targets.update(a for a in _ancestors(target) if a not in own)

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    add(alias.name)
            continue
        if node.level:
            base = module.split(".")
            if not is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if not (source == PACKAGE or source.startswith(PACKAGE + ".")):
            continue
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            add(submodule if submodule in modules else source)
    targets.discard(module)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as one circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_circle(graph, component) for component in components]


def _circle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete circle through a component: a -> b -> ... -> a (shortest from its first)."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return component  # pragma: no cover - a component always holds a circle


def test_the_package_has_no_import_circles() -> None:
    graph = import_graph()
    assert "llmbench_tui.ui.history.screen" in graph  # the walk found the modules
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_finder_sees_lazy_imports_and_package_inits(tmp_path: Path) -> None:
    """The walk itself: a function-level import closes a circle; TYPE_CHECKING does not; importing
    a submodule runs its package's ``__init__``."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .b import x\n",
        "b.py": "def f():\n    from . import a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n",
        "d.py": "from .c import z\n",
        "sub/__init__.py": "from .leaf import w\n",
        "sub/leaf.py": "",
        "e.py": "from .sub.leaf import w\n",
        "sub/other.py": "from llmbench_tui.e import v\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    modules = module_files(pkg, PACKAGE)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["llmbench_tui.e"] == {"llmbench_tui.sub.leaf", "llmbench_tui.sub"}
    assert graph["llmbench_tui.sub"] == {"llmbench_tui.sub.leaf"}
    assert graph["llmbench_tui.c"] == set()
    cycles = find_cycles(graph)
    assert cycles == [["llmbench_tui.a", "llmbench_tui.b", "llmbench_tui.a"]]
    # A submodule importing back into a module that imports its package is a circle too.
    (pkg / "sub/__init__.py").write_text("from .other import q\n")
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert ["llmbench_tui.e", "llmbench_tui.sub", "llmbench_tui.sub.other", "llmbench_tui.e"] in (
        find_cycles(graph)
    )


def test_the_history_screens_pure_parts_import_no_textual() -> None:
    """Grouping, filters, the re-run request and the column model hold no Textual code: the same
    rules can be used (and tested) without a screen."""
    modules = module_files()
    graph = import_graph()
    pure = [f"llmbench_tui.ui.history.{name}" for name in ("grouping", "filters", "rerun")]
    pure.append("llmbench_tui.ui.history.columns")
    reached, todo = set(), list(pure)
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    assert "llmbench_tui.ui.history.screen" not in reached
    textual = set()
    for module in reached:
        tree = ast.parse(modules[module].read_text(encoding="utf-8"))
        for node in _runtime_imports(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = [node.module or ""] if not node.level else []
            if any(name.split(".")[0] == "textual" for name in names):
                textual.add(module)
    assert not textual, textual


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing ``start`` imports, directly or through others."""
    reached, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    return reached


def test_the_store_and_the_telemetry_import_no_engine() -> None:
    """The layers: the engine imports the store and the telemetry, never the other way round (the
    store reads machine blocks from the telemetry, not from the engine)."""
    graph = import_graph()
    for lower in ("llmbench_tui.store", "llmbench_tui.telemetry"):
        below = {m for m in graph if m == lower or m.startswith(lower + ".")}
        assert below, lower
        reached = {m for start in below for m in _reach(graph, start)}
        engine = {m for m in reached if m.startswith("llmbench_tui.engine")}
        assert not engine, f"{lower} imports {sorted(engine)}"
