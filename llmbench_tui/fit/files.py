"""Where GGUF files usually live, and every ``.gguf`` below a set of folders.

The usual places: LM Studio (``~/.lmstudio/models``, older ``~/.cache/lm-studio/models``),
llama.cpp's download cache (``~/.cache/llama.cpp``, ``LLAMA_CACHE``) and the Hugging Face hub cache
(``~/.cache/huggingface/hub``, ``HF_HOME``/``HF_HUB_CACHE``). The hub stores files as symlinks into
``blobs/``: each file is listed once, under its readable snapshot name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MAX_FILES = 2000  # a folder with more is not a model folder: stop listing there


def usual_dirs() -> list[Path]:
    """The usual model folders that exist on this machine."""
    home = Path.home()
    hf = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None
    )
    candidates = [
        home / ".lmstudio" / "models",
        home / ".cache" / "lm-studio" / "models",
        Path(os.environ.get("LLAMA_CACHE") or home / ".cache" / "llama.cpp"),
        Path(hf) if hf else home / ".cache" / "huggingface" / "hub",
    ]
    return [d for d in candidates if d.is_dir()]


def gguf_files_in(folders: Iterable[Path]) -> list[Path]:
    """Every ``.gguf`` file below ``folders`` (symlinks followed, each file once), sorted."""
    seen: dict[Path, Path] = {}
    for folder in folders:
        folder = folder.expanduser()
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.gguf")):
            try:
                real = path.resolve()
                if not real.is_file():
                    continue
            except OSError:
                continue
            seen.setdefault(real, path.absolute())
            if len(seen) >= MAX_FILES:
                break
    return sorted(seen.values())
