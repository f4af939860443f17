"""Read what a GGUF file says about itself, with llama.cpp's own ``gguf`` package.

Listing models must be cheap: loading each file through llama.cpp (even ``vocab_only``) prints
to stderr and allocates, while the header holds everything the model picker and the fit estimate
need — architecture, name, quantization (``general.file_type``), context length, the attention
layout — and the tensor table gives the exact parameter count and the bytes of every tensor.
``gguf.GGUFReader`` is maintained with the format by the llama.cpp project, so new value types,
quantizations and file types need no code here.

The reader memory-maps the file and slices it; a slice past the end is silently short in numpy,
and a hostile count (an array of 2**64 zero-byte reads) would loop for ever. ``_BoundedReader``
therefore refuses every read that does not lie wholly inside the file, so a truncated or hostile
file is refused with one sentence and nothing past its end is ever read. Each accepted read
advances by at least one byte, which bounds the work by the file's size.

The reader also decodes every key/value into numpy parts, one element at a time: for a 128k-token
vocabulary with its merges that is 15 s on a busy machine. The ``tokenizer.ggml.*`` values are
never needed here, so ``_BoundedReader`` steps over them by their lengths instead (well under a
second), and decodes every other key as ``gguf`` does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, LlamaFileType, ReaderField

from .base import BackendError, ModelNotFound

MAGIC = b"GGUF"

# Values of these keys are never needed and can be huge (the vocabulary): not kept.
_SKIPPED_PREFIXES = ("tokenizer.ggml.",)


class _Truncated(Exception):
    """A read that would end past the end of the file (or start before its beginning)."""


class _BoundedReader(GGUFReader):
    """``GGUFReader`` whose every read is checked against the file's size (module docstring).

    ``_get`` is the reader's single read primitive (gguf 0.19, pinned in pyproject.toml): every
    header field, tensor info and tensor data view goes through it.
    """

    def __init__(self, path: Path) -> None:
        self.skipped_lengths: dict[str, int] = {}  # skipped arrays: key -> element count
        super().__init__(path)

    def _get(
        self,
        offset: int,
        dtype: Any,
        count: int = 1,
        override_order: Any = None,
    ) -> Any:
        count = int(count)
        end = int(offset) + np.dtype(dtype).itemsize * count
        if offset < 0 or count < 0 or end > len(self.data):
            raise _Truncated
        return super()._get(offset, dtype, count, override_order)

    def _build_fields(self, offs: int, count: int) -> int:
        """The key/values, as ``GGUFReader._build_fields`` reads them, skipped keys stepped over."""
        for _ in range(int(count)):
            orig_offs = offs
            key_len, key_data = self._get_str(offs)
            offs += int(key_len.nbytes + key_data.nbytes)
            raw_type = self._get(offs, np.uint32)
            offs += int(raw_type.nbytes)
            key = str(bytes(key_data), encoding="utf-8")
            if key.startswith(_SKIPPED_PREFIXES):
                if int(raw_type[0]) == GGUFValueType.ARRAY:
                    self.skipped_lengths[key] = self._u64(offs + 4)
                offs += self._skip(offs, int(raw_type[0]))
                continue
            size, parts, idxs, types = self._get_field_parts(offs, raw_type[0])
            head = [key_len, key_data, raw_type]
            field = ReaderField(orig_offs, key, head + parts, [i + len(head) for i in idxs], types)
            self._push_field(field, skip_sum=True)
            offs += size
        return offs

    def _u64(self, offs: int) -> int:
        if offs + 8 > len(self.data):
            raise _Truncated
        little = (self.byte_order == "I") == (sys.byteorder == "little")
        return int.from_bytes(self.data[offs : offs + 8].tobytes(), "little" if little else "big")

    def _skip(self, offs: int, raw_type: int) -> int:
        """Bytes taken by a value of ``raw_type`` at ``offs``, without decoding it."""
        gtype = GGUFValueType(raw_type)
        if gtype == GGUFValueType.STRING:
            size = 8 + self._u64(offs)
        elif (scalar := self.gguf_scalar_to_np.get(gtype)) is not None:
            size = np.dtype(scalar).itemsize
        elif gtype == GGUFValueType.ARRAY:
            item_type = int(self._get(offs, np.uint32)[0])
            count = self._u64(offs + 4)
            size = 12
            item = GGUFValueType(item_type)
            if (scalar := self.gguf_scalar_to_np.get(item)) is not None:
                size += count * np.dtype(scalar).itemsize
            elif item == GGUFValueType.STRING:
                for _ in range(count):  # each string is at least 8 bytes: bounded by the file
                    size += 8 + self._u64(offs + size)
            else:
                for _ in range(count):
                    size += self._skip(offs + size, item_type)
        else:
            raise ValueError(f"unknown GGUF value type {raw_type}")
        if offs + size > len(self.data):
            raise _Truncated
        return size


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor of the file: its name, shape (ggml order), element count and stored bytes."""

    name: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int


@dataclass(slots=True)
class GGUFHeader:
    """The key/values of a GGUF file (large vocabulary arrays left out) and its tensor table."""

    path: Path
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    parameter_count: int = 0
    tensors: list[TensorInfo] = field(default_factory=list)
    # Element counts of the arrays not decoded (``tokenizer.ggml.tokens``, ``...merges``).
    array_lengths: dict[str, int] = field(default_factory=dict)

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
        return _ftype_name(file_type) if isinstance(file_type, int) else None

    @property
    def size_label(self) -> str | None:
        """``general.size_label`` (``135M``), else the parameter count rounded the same way."""
        label = self.metadata.get("general.size_label")
        if label:
            return str(label)
        count = self.parameter_count
        for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if count >= scale:
                return f"{count / scale:.3g}{unit}"
        return str(count) if count else None

    @property
    def weight_bytes(self) -> int:
        """Bytes of every tensor as stored: what llama.cpp loads (mmaps) for the weights."""
        return sum(t.n_bytes for t in self.tensors)


def _ftype_name(value: int) -> str | None:
    """llama.cpp's ``LLAMA_FTYPE_*`` name of a file type, as the ``gguf`` package lists them."""
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def read_header(path: Path) -> GGUFHeader:
    """Parse ``path``; ``ModelNotFound`` if missing, ``BackendError`` if not (readable) GGUF."""
    if not path.is_file():
        raise ModelNotFound(f"GGUF file not found: {path}")
    try:
        with path.open("rb") as fh:
            if fh.read(4) != MAGIC:
                raise BackendError(f"{path} is not a GGUF model file (it does not start with GGUF)")
        # Only plain Python values leave _header: the memory map goes with the reader.
        return _header(path, _BoundedReader(path))
    except BackendError:
        raise
    except OSError as exc:
        raise BackendError(f"cannot read GGUF file {path}: {exc.strerror or exc}") from exc
    except _Truncated as exc:
        raise BackendError(
            f"{path} is not a readable GGUF model file: it is truncated or its header is damaged"
        ) from exc
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise BackendError(
            f"{path} is not a readable GGUF model file: its header is damaged ({exc})"
        ) from exc


def _header(path: Path, reader: _BoundedReader) -> GGUFHeader:
    version_field = reader.get_field("GGUF.version")
    version = int(version_field.contents()) if version_field is not None else 0
    header = GGUFHeader(path=path, version=version, array_lengths=dict(reader.skipped_lengths))
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or key.startswith(_SKIPPED_PREFIXES):
            continue
        header.metadata[key] = _value(fld)
    for tensor in reader.tensors:
        shape = tuple(int(d) for d in tensor.shape)
        header.tensors.append(
            TensorInfo(tensor.name, shape, int(tensor.n_elements), int(tensor.n_bytes))
        )
        header.parameter_count += int(tensor.n_elements)
    return header


def _value(fld: Any) -> Any:
    """A field's value as plain Python (numbers, strings, lists of them)."""
    value = fld.contents()
    if fld.types and fld.types[0] == GGUFValueType.BOOL and not isinstance(value, list):
        return bool(value)
    return value
