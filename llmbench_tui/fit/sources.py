"""Where a model's shape comes from: its GGUF file, Ollama's ``/api/show``, a llama.cpp server's
``/props``, or numbers typed by hand for a model that is not downloaded yet.

- GGUF files (and ``embedded``): the header and tensor table (``backends.gguf_meta``) — exact.
- Ollama: ``model_info`` of ``/api/show`` carries the GGUF key/values (no tensor table), the
  weights' bytes are the model's size from ``/api/tags``: layers are taken as equal in size.
- OpenAI-compatible servers: llama.cpp's ``llama-server`` answers ``GET /props`` with its
  ``model_path`` and context size; when that file is readable here, it is read like any GGUF.
  Other servers do not say what they run, and that is said.
- Given: ``arch=llama,layers=32,embd=4096,heads=32,kv_heads=8,size=4.9G[,head_dim=128,
  vocab=128256,ctx=8192,swa=4096]`` for a model not pulled yet (``llmbench fit --given``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..backends.base import BackendError
from ..backends.embedded import embedded_model_path
from ..backends.gguf_meta import GGUFHeader, read_header
from ..schema import ModelSpec
from .shape import ModelShape, ShapeError, from_metadata

PROPS_TIMEOUT_S = 5.0
DEFAULT_N_CTX = 4096  # what the GGUF backend and Ollama use when no context size is asked for
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "KIB": 1024, "MIB": 1024**2}
_UNITS |= {"GIB": 1024**3, "TIB": 1024**4, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


@dataclass(slots=True)
class Sized:
    """A shape and the context size its source runs it at, when the source says (server)."""

    shape: ModelShape
    n_ctx: int | None = None


def default_ctx(spec: ModelSpec, sized: Sized) -> int:
    """The context a run of ``spec`` gets when none is asked for (as each backend decides)."""
    if sized.n_ctx:
        return sized.n_ctx
    trained = sized.shape.n_ctx_train
    if spec.backend == "gguf" and trained:
        return min(DEFAULT_N_CTX, trained)
    return DEFAULT_N_CTX


def gguf_path(spec: ModelSpec) -> Path:
    return embedded_model_path() if spec.embedded else Path(spec.name).expanduser().resolve()


def from_header(header: GGUFHeader, name: str) -> ModelShape:
    tensors = [(t.name, t.shape, t.n_bytes) for t in header.tensors]
    lengths = header.array_lengths
    entries = lengths.get("tokenizer.ggml.tokens", 0) + lengths.get("tokenizer.ggml.merges", 0)
    return from_metadata(
        header.metadata,
        name=name,
        weight_bytes=header.weight_bytes,
        tensors=tensors,
        source="gguf",
        vocab_entries=entries,
    )


def from_gguf(spec: ModelSpec) -> ModelShape:
    path = gguf_path(spec)
    return from_header(read_header(path), spec.label if spec.embedded else path.name)


def from_ollama_show(model_info: dict[str, Any], size_bytes: int, name: str) -> ModelShape:
    return from_metadata(model_info, name=name, weight_bytes=size_bytes, source="ollama")


async def shape_for(spec: ModelSpec, backend: Any = None) -> Sized:
    """The shape of ``spec``; ``ShapeError``/``BackendError`` say in one sentence why not."""
    if spec.backend == "gguf":
        return Sized(from_gguf(spec))
    if spec.backend == "ollama":
        info = await backend.describe(spec)
        model_info = info.extra.get("model_info") or {}
        if not info.size_bytes:
            raise ShapeError(f"Ollama does not say the size of {spec.name}")
        return Sized(from_ollama_show(model_info, info.size_bytes, spec.name))
    return await _from_props(spec)


async def _from_props(spec: ModelSpec) -> Sized:
    base = (spec.host or "").rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=PROPS_TIMEOUT_S) as client:
            response = await client.get(f"{base}/props")
    except httpx.HTTPError as exc:
        raise BackendError(f"cannot ask {base} what it runs: {exc}") from exc
    if response.status_code != 200:
        raise ShapeError(
            f"{base} does not say what model it runs (no llama-server /props): "
            "give its GGUF file or --given"
        )
    try:
        props = response.json()
    except ValueError as exc:
        raise ShapeError(f"{base}/props is not JSON") from exc
    path = props.get("model_path") if isinstance(props, dict) else None
    if not path or not Path(path).is_file():
        raise ShapeError(f"{base} runs {path or 'a model'} which is not a file on this machine")
    settings = props.get("default_generation_settings") or {}
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    shape = from_header(read_header(Path(path)), spec.name)
    shape.source = "llama-server /props"
    return Sized(shape, int(n_ctx) if isinstance(n_ctx, int) else None)


def _number(text: str, what: str) -> float:
    raw = text.strip().upper().replace("_", "")
    digits = raw.rstrip("KMGTIB")
    unit = raw[len(digits) :]
    try:
        return float(digits) * _UNITS[unit]
    except (ValueError, KeyError):
        raise ShapeError(f"{what}={text!r} is not a number (e.g. 32, 4.9G, 8192)") from None


def given_shape(text: str, name: str) -> ModelShape:
    """A shape from ``key=value`` pairs (module docstring) for a model not downloaded."""
    pairs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ShapeError(f"--given wants key=value pairs separated by commas, not {part!r}")
        pairs[key.strip().lower()] = value.strip()
    missing = [k for k in ("arch", "layers", "embd", "heads", "size") if k not in pairs]
    if missing:
        raise ShapeError(f"--given needs {', '.join(missing)} (and kv_heads for GQA models)")
    arch = pairs.pop("arch")
    number = {k: _number(v, k) for k, v in pairs.items()}
    heads = int(number["heads"])
    meta: dict[str, Any] = {
        "general.architecture": arch,
        f"{arch}.block_count": int(number["layers"]),
        f"{arch}.embedding_length": int(number["embd"]),
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": int(number.get("kv_heads", heads)),
    }
    optional = {
        "head_dim": ("attention.key_length", "attention.value_length"),
        "vocab": ("vocab_size",),
        "ctx": ("context_length",),
        "swa": ("attention.sliding_window",),
        "ff": ("feed_forward_length",),
    }
    for key, targets in optional.items():
        if key in number:
            for target in targets:
                meta[f"{arch}.{target}"] = int(number[key])
    unknown = set(number) - set(optional) - {"layers", "embd", "heads", "kv_heads", "size"}
    if unknown:
        raise ShapeError(f"--given does not know {', '.join(sorted(unknown))}")
    return from_metadata(meta, name=name, weight_bytes=int(number["size"]), source="given")
