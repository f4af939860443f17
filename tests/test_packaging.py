"""What a user who installs normally gets: the wheel, installed into a fresh virtual environment.

CI runs the suite from an editable install, where package data can be found by accident (a
path beside the source tree). Here the project is built into a wheel, the wheel is installed
(not editable) into a new virtual environment, and a script run from an unrelated folder checks
that every shipped data file is found from there: the themes load and ``--theme`` accepts them,
every stylesheet (``CSS_PATH``) the UI names exists inside the installed package, and the
example suites the README and ``--help`` point to load.

The dependencies are not reinstalled: the new environment sees this environment's
site-packages through a ``.pth`` file placed *after* its own, so the installed wheel, never the
checkout, provides ``llmbench_tui``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from support.paths import REPO

pytestmark = pytest.mark.slow

PACKAGE = REPO / "llmbench_tui"
THEMES = REPO / "themes"  # installs as llmbench_tui.themes (see pyproject.toml)

# What the build must not see from a working copy: environments, caches, earlier build output
# (setuptools reuses build/ and would pack files that no longer exist).
_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
)

# Runs inside the new environment, from a folder that holds no checkout.
_CHECK = r"""
import argparse, inspect, json, pkgutil, sys
from pathlib import Path

import llmbench_tui
from llmbench_tui.suite import load_suite
from llmbench_tui.ui.app import build_app
from llmbench_tui.ui.settings import load_themes

args = json.loads(sys.argv[1])
package = Path(llmbench_tui.__file__).resolve().parent
out = {"package": str(package)}

themes, problems = load_themes()
out["themes"] = sorted(t.name for t in themes)
out["theme_problems"] = problems

app = None
try:
    app = build_app(argparse.Namespace(theme="llmbench-light", data_dir=args["data_dir"]))
    out["build_app"] = "ok"
    out["app_css"] = [str(p) for p in app.css_path]
except ValueError as exc:
    out["build_app"] = str(exc)
finally:
    if app is not None:
        app.store.close()

# Every class in the UI that names a stylesheet, resolved as Textual resolves CSS_PATH:
# relative to the file that defines the class.
import llmbench_tui.ui as ui

stylesheets = []
for info in pkgutil.walk_packages(ui.__path__, "llmbench_tui.ui."):
    module = __import__(info.name, fromlist=["_"])
    for cls in vars(module).values():
        if not (inspect.isclass(cls) and cls.__module__ == info.name):
            continue
        css = cls.__dict__.get("CSS_PATH")
        for name in [css] if isinstance(css, str) else list(css or []):
            path = (Path(inspect.getfile(cls)).parent / name).resolve()
            stylesheets.append({"cls": f"{info.name}.{cls.__name__}", "path": str(path),
                                "exists": path.is_file()})
out["stylesheets"] = stylesheets
out["tcss"] = sorted(str(p.relative_to(package)) for p in package.rglob("*.tcss"))

suites = {}
for path in args["suites"]:
    try:
        suites[path] = load_suite(path).name or "ok"
    except Exception as exc:
        suites[path] = f"error: {exc}"
out["suites"] = suites

from llmbench_tui.quality.judge_prompt import default_rubric

out["rubric"] = default_rubric().text
print(json.dumps(out))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 240)
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def _build_options() -> list[str]:
    """Build with this environment's setuptools when it can build a wheel of this project
    (setuptools >= 70.1, or >= 68 with ``wheel``); otherwise let pip isolate the build, as
    ``pip install`` does."""
    try:
        from importlib.metadata import version

        major_minor = tuple(int(x) for x in version("setuptools").split(".")[:2])
    except Exception:
        return []
    has_wheel = importlib.util.find_spec("wheel") is not None
    if major_minor >= (70, 1) or (major_minor >= (68, 0) and has_wheel):
        return ["--no-build-isolation"]
    return []


def _venv_purelib(python: Path) -> Path:
    done = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["LLMBENCH_CONFIG_DIR"] = str(tmp / "config")  # no user themes, no user settings
    env["LLMBENCH_DATA_DIR"] = str(tmp / "data")
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _suites_referred_to() -> list[Path]:
    """Example suites named in the README and in ``llmbench --help`` (which says "see
    examples/": every suite in that folder)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = {REPO / m for m in re.findall(r"\bexamples/[\w.-]+\.toml\b", readme)}
    help_text = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    if "examples/" in help_text:
        named |= set((REPO / "examples").glob("*.toml"))
    return sorted(named)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    source, wheels, work = tmp / "source", tmp / "wheels", tmp / "work"
    shutil.copytree(REPO, source, ignore=_NOT_COPIED)
    work.mkdir()
    env = _clean_env(tmp)

    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *_build_options(), "-q",
         "-w", str(wheels), str(source)],
        cwd=work,
    )
    assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = wheels.glob("llmbench_tui-*.whl")

    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    assert made.returncode == 0, made.stderr
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = venv / bindir / ("python.exe" if os.name == "nt" else "python")
    # The dependencies, already installed here, without this environment's own llmbench_tui:
    # plain path lines, so this environment's .pth files (the editable finder) are not run.
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (_venv_purelib(python) / "zz_llmbench_test_deps.pth").write_text(
        "".join(f"{p}\n" for p in sorted(ours) if Path(p).is_dir()), encoding="utf-8"
    )
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        cwd=work,
        env=env,
    )
    assert done.returncode == 0, f"installing the wheel failed:\n{done.stdout}\n{done.stderr}"

    suites = _suites_referred_to()
    checked = _run(
        [str(python), "-c", _CHECK,
         json.dumps({"data_dir": str(tmp / "data"), "suites": [str(p) for p in suites]})],
        cwd=work,
        env=env,
    )
    assert checked.returncode == 0, f"the check script failed:\n{checked.stderr}"
    report = json.loads(checked.stdout.strip().splitlines()[-1])

    cli = _run([str(venv / bindir / "llmbench"), "--theme", "no-such-theme"], cwd=work, env=env)
    return {"venv": venv, "wheel": wheel, "report": report, "cli": cli, "suites": suites}


def _shipped_themes() -> set[str]:
    return {p.stem for p in THEMES.glob("*.toml")}


def test_the_wheel_holds_every_data_file(installed: dict) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    expected = {
        p.relative_to(REPO).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    expected |= {f"llmbench_tui/themes/{p.name}" for p in THEMES.glob("*.toml")}
    assert expected, "no data files found in the source tree"
    assert sorted(expected - names) == []


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: dict) -> None:
    package = Path(installed["report"]["package"])
    assert package.is_relative_to(installed["venv"].resolve()), package


def test_every_shipped_theme_loads_when_installed(installed: dict) -> None:
    report = installed["report"]
    assert {"llmbench-dark", "llmbench-light", "llmbench-256"} <= _shipped_themes()
    assert report["theme_problems"] == []
    assert _shipped_themes() <= set(report["themes"]), report["themes"]


def test_the_installed_app_accepts_a_shipped_theme(installed: dict) -> None:
    assert installed["report"]["build_app"] == "ok"


def test_an_unknown_theme_offers_the_shipped_ones(installed: dict) -> None:
    cli = installed["cli"]
    assert cli.returncode == 2, (cli.stdout, cli.stderr)
    assert "unknown theme 'no-such-theme'" in cli.stderr
    for name in sorted(_shipped_themes()):
        assert name in cli.stderr, cli.stderr


def test_every_stylesheet_is_found_when_installed(installed: dict) -> None:
    report = installed["report"]
    package = Path(report["package"])
    sheets = report["stylesheets"]
    assert sheets, "no class in llmbench_tui.ui names a CSS_PATH"
    missing = [s for s in sheets if not s["exists"] or not Path(s["path"]).is_relative_to(package)]
    assert missing == []
    if report["build_app"] == "ok":  # the app's own resolution of its CSS_PATH
        assert report["app_css"] and all(Path(p).is_file() for p in report["app_css"])
    source = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.tcss"))
    assert report["tcss"] == source


def test_the_example_suites_referred_to_load(installed: dict) -> None:
    suites = installed["suites"]
    assert REPO / "examples" / "quick.toml" in suites
    for path in suites:
        assert path.is_file(), path
    results = installed["report"]["suites"]
    assert {p: r for p, r in results.items() if r.startswith("error:")} == {}
    assert set(results) == {str(p) for p in suites}


def test_the_default_rubric_is_found_when_installed(installed: dict) -> None:
    shipped = (PACKAGE / "quality" / "rubrics" / "default.md").read_text(encoding="utf-8")
    assert installed["report"]["rubric"] == shipped
