"""Where things live: the data directory and settings from the environment.

Precedence for every setting is: command-line option, then ``LLMBENCH_*`` environment variable,
then the platform default — the same order a user expects from other command-line tools.
"""

from __future__ import annotations

import os
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
