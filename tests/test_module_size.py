"""No module of the package over 600 lines: past that a module is doing more than one job, and
a newcomer cannot read it in one sitting (issue 17). Split along a real seam, not by lines."""

from __future__ import annotations

from support.paths import REPO

LIMIT = 600


def test_no_module_over_the_limit() -> None:
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in (REPO / "llmbench_tui").rglob("*.py")
    }
    assert len(sizes) > 50  # the walk found the package
    over = {name: n for name, n in sizes.items() if n > LIMIT}
    assert not over, f"modules over {LIMIT} lines: {over}"
