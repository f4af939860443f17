"""Read what a GGUF file says about itself, from its header alone.

Listing models must be cheap: loading each file through llama.cpp (even ``vocab_only``) reads the
whole vocabulary and prints to stderr, while the header holds everything the model picker shows —
architecture, name, quantization (``general.file_type``), context length — and the tensor table
gives the exact parameter count. The layout follows the GGUF specification (ggml
``docs/gguf.md``): magic, version, tensor count, key/value count, key/values, tensor infos.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .base import BackendError, ModelNotFound

MAGIC = b"GGUF"

# GGUF value types -> struct format of the fixed-size ones (8 = string, 9 = array).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALARS |= {11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# Values of these keys are never needed and can be huge (the vocabulary): skipped, not decoded.
_SKIPPED_PREFIXES = ("tokenizer.ggml.",)


@dataclass(slots=True)
class GGUFHeader:
    """The key/values of a GGUF file (large vocabulary arrays left out) and its tensor table."""

    path: Path
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    parameter_count: int = 0

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")

    @property
    def context_length(self) -> int | None:
        return self.metadata.get(f"{self.architecture}.context_length")

    @property
    def quantization(self) -> str | None:
        """``general.file_type`` named as llama.cpp names it (``Q4_1``, ``Q4_K_M``, ``F16``)."""
        file_type = self.metadata.get("general.file_type")
        return _ftype_names().get(file_type) if file_type is not None else None

    @property
    def size_label(self) -> str | None:
        """``general.size_label`` (``135M``), else the parameter count rounded the same way."""
        label = self.metadata.get("general.size_label")
        if label:
            return label
        count = self.parameter_count
        for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if count >= scale:
                return f"{count / scale:.3g}{unit}"
        return str(count) if count else None


def _ftype_names() -> dict[int, str]:
    """llama.cpp's own ``LLAMA_FTYPE_*`` constants, so new quantizations need no code here."""
    import llama_cpp

    names: dict[int, str] = {}
    for name, value in vars(llama_cpp).items():
        if (
            name.startswith("LLAMA_FTYPE_")
            and isinstance(value, int)
            and name != "LLAMA_FTYPE_GUESSED"
        ):
            names[value] = name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_")
    return names


def read_header(path: Path) -> GGUFHeader:
    """Parse the header of ``path``; ``ModelNotFound`` if missing, ``BackendError`` if not GGUF."""
    if not path.is_file():
        raise ModelNotFound(f"GGUF file not found: {path}")
    try:
        with path.open("rb") as fh:
            if fh.read(4) != MAGIC:
                raise BackendError(f"{path} is not a GGUF model file (it does not start with GGUF)")
            version, n_tensors, n_kv = struct.unpack("<IQQ", _exact(fh, 20))
            header = GGUFHeader(path=path, version=version)
            for _ in range(n_kv):
                key = _string(fh)
                value_type = _u32(fh)
                if key.startswith(_SKIPPED_PREFIXES):
                    _skip(fh, value_type)
                else:
                    header.metadata[key] = _value(fh, value_type)
            for _ in range(n_tensors):
                _string(fh)  # tensor name
                n_dims = _u32(fh)
                dims = struct.unpack(f"<{n_dims}Q", _exact(fh, 8 * n_dims))
                fh.seek(4 + 8, 1)  # ggml type, data offset
                count = 1
                for dim in dims:
                    count *= dim
                header.parameter_count += count
            return header
    except (struct.error, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise BackendError(
            f"{path} is not a readable GGUF model file: its header is damaged"
        ) from exc
    except OSError as exc:
        raise BackendError(f"cannot read GGUF file {path}: {exc.strerror or exc}") from exc


def _exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _u32(fh: BinaryIO) -> int:
    return struct.unpack("<I", _exact(fh, 4))[0]


def _string(fh: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _exact(fh, 8))
    return _exact(fh, length).decode("utf-8")


def _value(fh: BinaryIO, value_type: int) -> Any:
    if value_type in _SCALARS:
        fmt = _SCALARS[value_type]
        return struct.unpack(fmt, _exact(fh, struct.calcsize(fmt)))[0]
    if value_type == _STRING:
        return _string(fh)
    if value_type == _ARRAY:
        item_type = _u32(fh)
        (count,) = struct.unpack("<Q", _exact(fh, 8))
        return [_value(fh, item_type) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {value_type}")


def _skip(fh: BinaryIO, value_type: int) -> None:
    if value_type in _SCALARS:
        fh.seek(struct.calcsize(_SCALARS[value_type]), 1)
    elif value_type == _STRING:
        (length,) = struct.unpack("<Q", _exact(fh, 8))
        fh.seek(length, 1)
    elif value_type == _ARRAY:
        item_type = _u32(fh)
        (count,) = struct.unpack("<Q", _exact(fh, 8))
        if item_type in _SCALARS:
            fh.seek(count * struct.calcsize(_SCALARS[item_type]), 1)
        else:
            for _ in range(count):
                _skip(fh, item_type)
    else:
        raise ValueError(f"unknown GGUF value type {value_type}")
