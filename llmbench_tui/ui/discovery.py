"""Find the models the dashboard can offer, from every configured source at once.

Sources: the embedded SmolLM2 (in-process), each Ollama host (``--ollama-host`` / ``OLLAMA_HOST``
/ the default, plus ``LLMBENCH_OLLAMA_HOSTS``), each OpenAI-compatible URL
(``LLMBENCH_OPENAI_URLS``) and each GGUF file or folder (``LLMBENCH_GGUF_PATHS``). Every source is
asked concurrently with a time limit; one that cannot answer becomes a ``Source`` with the
backend's own sentence in ``error`` — the picker shows *why* a source is empty.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..backends import BackendPool
from ..backends.base import ModelInfo
from ..schema import ModelSpec

LIST_TIMEOUT_S = 5.0


@dataclass
class Source:
    """One place models come from, and what it answered."""

    kind: str  # "gguf" | "ollama" | "openai"
    where: str  # host, URL or "in-process"
    models: list[ModelInfo] = field(default_factory=list)
    error: str | None = None



def source_specs(ollama_host: str | None) -> list[tuple[str, str, ModelSpec]]:
    """(kind, where, probe spec) for every configured source; the probe picks the backend."""
    out: list[tuple[str, str, ModelSpec]] = [
        ("gguf", "in-process", ModelSpec.parse("embedded")),
    ]
    for host in config.ollama_hosts(ollama_host):
        out.append(
            ("ollama", host or "default host", ModelSpec(backend="ollama", name="*", host=host))
        )
    for url in config.openai_urls():
        out.append(("openai", url, ModelSpec(backend="openai", name="*", host=url)))
    return out


async def _ask(pool: BackendPool, kind: str, where: str, probe: ModelSpec) -> Source:
    source = Source(kind, where)
    try:
        backend = pool.for_spec(probe)
        if kind == "ollama":
            source.where = backend.host or where
        async with asyncio.timeout(LIST_TIMEOUT_S):
            source.models = list(await backend.list_models())
    except TimeoutError:
        source.error = f"no answer from {source.where} within {LIST_TIMEOUT_S:g} s"
    except Exception as exc:  # each backend's sentence, shown in the picker
        source.error = str(exc) or exc.__class__.__name__
    return source


async def _gguf_source(pool: BackendPool, files: list[Path]) -> Source:
    """The files from ``LLMBENCH_GGUF_PATHS``, described from their headers."""
    source = Source("gguf", "LLMBENCH_GGUF_PATHS")
    errors = []
    for path in files:
        spec = ModelSpec(backend="gguf", name=str(path))
        try:
            source.models.append(await pool.for_spec(spec).describe(spec))
        except Exception as exc:
            errors.append(str(exc))
    if errors:
        source.error = "; ".join(errors)
    return source


async def discover(pool: BackendPool, ollama_host: str | None = None) -> list[Source]:
    """Ask every source at once; never raises for a source that fails."""
    tasks = [_ask(pool, kind, where, probe) for kind, where, probe in source_specs(ollama_host)]
    files = config.gguf_files()
    if files:
        tasks.append(_gguf_source(pool, files))
    sources = list(await asyncio.gather(*tasks))
    seen: set[str] = set()
    for source in sources:  # the in-process backend may list the configured files itself
        unique = []
        for info in source.models:
            if info.spec.label not in seen:
                seen.add(info.spec.label)
                unique.append(info)
        source.models = unique
    return sources


def human_size(n: int | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return "-"
