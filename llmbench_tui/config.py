"""Where things live: the data directory, the model sources and settings from the environment.

Precedence for every setting is: command-line option, then ``LLMBENCH_*`` environment variable,
then the platform default — the same order a user expects from other command-line tools.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from platformdirs import user_config_dir, user_data_dir

APP_NAME = "llmbench-tui"

# What runs when the user gives no prompt / no token cap, in --batch and the dashboard alike:
# a fixed cap makes runs of one model do comparable work instead of "until the model stops".
DEFAULT_PROMPT = "Explain in three sentences why the sky is blue."
DEFAULT_MAX_TOKENS = 128


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory (created if needed): ``--data-dir``, ``LLMBENCH_DATA_DIR``, platform."""
    raw = explicit or os.environ.get("LLMBENCH_DATA_DIR") or user_data_dir(APP_NAME)
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path(explicit_dir: str | os.PathLike[str] | None = None) -> Path:
    """The TinyDB file holding every run."""
    return data_dir(explicit_dir) / "history.json"


def config_dir() -> Path:
    """Where ``config.toml`` (themes, keys) is read from: ``LLMBENCH_CONFIG_DIR`` or platform."""
    raw = os.environ.get("LLMBENCH_CONFIG_DIR") or user_config_dir(APP_NAME)
    return Path(raw).expanduser()


def _env_list(name: str, *, paths: bool = False) -> list[str]:
    """A comma list from the environment; path lists may also use the OS path separator."""
    seps = "," + (os.pathsep if paths else "")
    parts = re.split(f"[{re.escape(seps)}]", os.environ.get(name, ""))
    return [p.strip() for p in parts if p.strip()]


def ollama_hosts(explicit: str | None = None) -> list[str | None]:
    """Ollama hosts to offer models from: ``--ollama-host`` or ``OLLAMA_HOST`` (``None``: the
    client's default), then each of ``LLMBENCH_OLLAMA_HOSTS`` not already named."""
    hosts: list[str | None] = [explicit or os.environ.get("OLLAMA_HOST") or None]
    hosts += [h for h in _env_list("LLMBENCH_OLLAMA_HOSTS") if h not in hosts]
    return hosts


def openai_urls() -> list[str]:
    """OpenAI-compatible base URLs to offer models from: ``LLMBENCH_OPENAI_URLS``."""
    return _env_list("LLMBENCH_OPENAI_URLS")


def gguf_files() -> list[Path]:
    """GGUF files to offer, from ``LLMBENCH_GGUF_PATHS`` (commas or the OS path separator).

    A folder contributes every ``.gguf`` below it; a named file is kept even when it is missing,
    so the dashboard can say why it is not offered instead of silently dropping it.
    """
    found: list[Path] = []
    for entry in _env_list("LLMBENCH_GGUF_PATHS", paths=True):
        path = Path(entry).expanduser().resolve()
        if path.is_dir():
            found.extend(sorted(p.resolve() for p in path.rglob("*.gguf") if p.is_file()))
        else:
            found.append(path)
    return found


def store_setting() -> str | None:
    """The ``store = "..."`` line of ``config.toml`` (a path or a ``postgresql://`` URL), if any.

    Read here rather than through the dashboard's settings so that headless commands, which
    never import the UI, honour it too. ``ValueError`` (one sentence) when the file is not TOML.
    """
    path = config_dir() / "config.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        value = tomllib.loads(text).get("store")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc})") from None
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{path}: store must be a string (a path or a postgresql:// URL)")
    return value or None
