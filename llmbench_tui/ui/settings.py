"""The dashboard's settings file (``config.toml`` in ``config.config_dir()``) and shipped themes.

``config.toml`` holds what a user chooses and the app remembers::

    theme = "llmbench-256"
    recent_prompts = ["Why is the sky blue?", ...]   # newest first, kept by the app

    [keys]            # binding id -> keys, applied with App.set_keymap (see the F1 help screen)
    run = "f5,ctrl+r"
    history = "f2"

Themes are TOML files (``themes/*.toml`` shipped with the project, plus ``themes/`` inside the
config directory for a user's own); every key of ``textual.theme.Theme`` may be given.

The file is small and flat, so it is written with a tiny TOML writer (JSON string escapes are
valid TOML basic-string escapes) instead of adding a dependency.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from dataclasses import dataclass, field, fields
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from textual.theme import Theme

from ..config import config_dir
from ..user_files import UserFileError, read_user_file

log = logging.getLogger(__name__)

MAX_RECENT = 20


def _shipped_themes() -> Traversable:
    """The repository's ``themes/`` folder, which installs as the ``llmbench_tui.themes``
    package (see pyproject.toml); a plain source checkout without installing finds it beside
    the package.

    The package has no ``__init__.py``, so ``files()`` gives a ``MultiplexedPath`` (or a
    zip path): read it as a ``Traversable`` (``iterdir``, ``read_text``), never through
    ``str()`` or ``Path``.
    """
    try:
        return files("llmbench_tui.themes")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "themes"


SHIPPED_THEMES = _shipped_themes()
_THEME_FIELDS = {f.name for f in fields(Theme)}


class SettingsError(ValueError):
    """The config file cannot be read; ``str()`` names the file and the problem."""


@dataclass
class Settings:
    """What ``config.toml`` says; ``path`` is where it is saved back."""

    path: Path
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    recent_prompts: list[str] = field(default_factory=list)
    store: str | None = None  # where runs go (config.store_setting reads it); kept on save

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or config_dir() / "config.toml"
        if not path.exists():
            return cls(path)
        try:
            data = tomllib.loads(read_user_file(path, "the settings file"))
        except UserFileError as exc:
            raise SettingsError(str(exc)) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"the settings file {path} is not valid TOML: {exc}") from None
        keys = data.get("keys") or {}
        recent = data.get("recent_prompts") or []
        theme = data.get("theme")
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise SettingsError(f"{path}: [keys] must map binding ids to key strings")
        if not isinstance(recent, list) or not all(isinstance(v, str) for v in recent):
            raise SettingsError(f"{path}: recent_prompts must be a list of strings")
        if theme is not None and not isinstance(theme, str):
            raise SettingsError(f"{path}: theme must be a string")
        store = data.get("store")
        if store is not None and not isinstance(store, str):
            raise SettingsError(f"{path}: store must be a string (a path or a postgresql:// URL)")
        return cls(path, theme, dict(keys), list(recent), store)

    def remember_prompt(self, prompt: str) -> None:
        if not prompt.strip():
            return
        self.recent_prompts = [prompt, *(p for p in self.recent_prompts if p != prompt)]
        del self.recent_prompts[MAX_RECENT:]

    def save(self) -> None:
        """Write atomically; a failure is logged, never fatal (settings are a convenience)."""
        lines = [
            "# llmbench-tui settings; the app rewrites this file when the theme or the",
            "# recent prompts change ([keys] is kept as written).",
            "",
        ]
        if self.store:
            lines.append(f"store = {_toml_str(self.store)}")
        if self.theme:
            lines.append(f"theme = {_toml_str(self.theme)}")
        lines.append("recent_prompts = [")
        lines += [f"  {_toml_str(p)}," for p in self.recent_prompts]
        lines.append("]")
        if self.keys:
            lines += ["", "[keys]"]
            lines += [f"{_toml_key(k)} = {_toml_str(v)}" for k, v in sorted(self.keys.items())]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".toml.tmp")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save settings to %s: %s", self.path, exc)


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_str(key)


def theme_from_toml(path: Traversable) -> Theme:
    """One theme file (a ``Path`` or a package resource) -> ``Theme``; unknown keys or a
    missing ``primary`` name the file."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read the theme file {path}: {exc}") from None
    unknown = sorted(set(data) - _THEME_FIELDS)
    if unknown:
        raise SettingsError(f"{path}: unknown theme keys {', '.join(unknown)}")
    data.setdefault("name", path.name.removesuffix(".toml"))
    if "primary" not in data:
        raise SettingsError(f"{path}: a theme needs at least a 'primary' colour")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from None


def load_themes(*folders: Traversable) -> tuple[list[Theme], list[str]]:
    """Every theme in the folders (shipped first, then the user's); bad files become messages.

    A folder is a ``Path`` or a package resource (``importlib.resources.files``)."""
    themes, problems = [], []
    for folder in folders or (SHIPPED_THEMES, config_dir() / "themes"):
        if not folder.is_dir():
            continue
        entries = (e for e in folder.iterdir() if e.name.endswith(".toml") and e.is_file())
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                themes.append(theme_from_toml(entry))
            except SettingsError as exc:
                problems.append(str(exc))
    return themes, problems
