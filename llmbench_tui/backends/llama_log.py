"""llama.cpp's own account of the buffers it allocates, read from its log while a model loads.

llama.cpp has no call that returns the size of its KV cache or compute buffers; it logs them
(``llama_kv_cache: size = 90.00 MiB (4096 cells, 30 layers, 1/1 seqs), K (f16): ...``,
``CPU compute buffer size = ...``, ``CPU_Mapped model buffer size = ...``). This module installs
one log callback for the process (``llama_log_set``) that keeps the lines while a ``capture()``
is open and otherwise behaves as llama-cpp-python does for ``verbose=False``: errors to stderr,
the rest dropped. The figures are MiB with two decimals, so a measured byte count is exact to
±5 KiB; ``kv_cells`` and ``kv_layers`` are exact.
"""

from __future__ import annotations

import ctypes
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp

GGML_LOG_LEVEL_ERROR = 4
MIB = 1024 * 1024

_lock = threading.Lock()
_capture: list[str] | None = None
_installed = False

_KV = re.compile(
    r"llama_kv_cache[^:]*: size = +(?P<mib>[\d.]+) MiB \( *(?P<cells>\d+) cells, +(?P<layers>\d+)"
    r" layers.*?K \((?P<tk>\w+)\): +(?P<k>[\d.]+) MiB, V \((?P<tv>\w+)\): +(?P<v>[\d.]+) MiB"
)
_BUFFER = re.compile(r"(?P<dev>\S+) +(?P<what>compute|output|model) buffer size = +(?P<mib>[\d.]+)")


@llama_cpp.llama_log_callback
def _log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    if _capture is not None:
        _capture.append(text.decode("utf-8", "replace"))
    elif level == GGML_LOG_LEVEL_ERROR:
        sys.stderr.write(text.decode("utf-8", "replace"))


@contextmanager
def capture() -> Iterator[list[str]]:
    """Collect llama.cpp's log lines for the duration (one capture at a time)."""
    global _capture, _installed
    with _lock:
        if not _installed:
            llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
            _installed = True
        lines: list[str] = []
        _capture = lines
        try:
            yield lines
        finally:
            _capture = None


def buffers(log: str) -> dict[str, Any]:
    """The buffer sizes a load logged: ``kv_bytes`` (all caches: sliding-window models have two),
    ``kv_cells``, ``kv_layers``, ``kv_mib`` (as logged), and ``compute_bytes``/``output_bytes``/
    ``model_bytes`` summed over devices."""
    out: dict[str, Any] = {}
    caches = list(_KV.finditer(log))
    if caches:
        out["kv_mib"] = [m["mib"] for m in caches]
        out["kv_bytes"] = round(sum(float(m["mib"]) for m in caches) * MIB)
        out["kv_cells"] = [int(m["cells"]) for m in caches]
        out["kv_layers"] = [int(m["layers"]) for m in caches]
        out["kv_types"] = [m["tk"] + "/" + m["tv"] for m in caches]
    for m in _BUFFER.finditer(log):
        key = f"{m['what']}_bytes"
        out[key] = out.get(key, 0) + round(float(m["mib"]) * MIB)
    return out
