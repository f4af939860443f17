"""The manual's shape: a short README, every page of ``docs/`` in the MkDocs nav, the site built
strictly by the test command, and no README link to a file that is not there.

``mkdocs build --strict`` itself (run by the README's test command, so by CI) checks the links
inside the site; the README is not part of the site, so its links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250
MARKER = "<!-- test-command -->"


def nav_pages(nav: Any) -> list[str]:
    """Every page path named anywhere in a MkDocs ``nav`` (lists of titles -> page or section)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def readme_test_command() -> str:
    """The line ``.ci/run`` runs: the second line after the marker (the first opens the fence)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    index = lines.index(MARKER)
    assert lines[index + 1].startswith("```"), "the marker must be followed by a code fence"
    return lines[index + 2]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; keep it to the first five minutes "
        f"(≤ {MAX_README_LINES}) and put the rest in a docs/ page"
    )


def test_site_is_built_from_docs_with_the_material_theme() -> None:
    cfg = config()
    assert cfg["docs_dir"] == "docs"
    assert cfg["theme"]["name"] == "material"


def test_every_page_is_in_the_nav() -> None:
    in_nav = nav_pages(config()["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if p not in in_nav]
    assert not missing, f"docs pages not reachable from the nav in mkdocs.yml: {missing}"
    absent = [p for p in in_nav if not (DOCS / p).is_file()]
    assert not absent, f"nav entries without a page: {absent}"
    assert len(in_nav) == len(set(in_nav)), "a page is in the nav twice"


def test_the_test_command_builds_the_manual_strictly() -> None:
    command = readme_test_command()
    assert "mkdocs build --strict" in command, command
    assert command.index("ruff check .") < command.index("mkdocs build --strict"), command


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert local, "the README links to the manual"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
    assert "docs/img/dashboard-finished.svg" in local  # the picture of the dashboard


def test_every_picture_is_shown_somewhere() -> None:
    """A picture no page shows is left over from a renamed screen (scripts/screenshots.py)."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    pictures = sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "img").glob("*.svg"))
    assert pictures, "docs/img holds the screen pictures"
    unused = [p for p in pictures if f"({p})" not in pages]
    assert not unused, f"pictures no page shows: {unused}"
