"""Fit estimates for a whole model listing (the dashboard's picker, the GGUF file dialog).

Each model's shape is read off the event loop (GGUF headers are files; Ollama's ``/api/show`` is
one request per model) and one snapshot of the machine serves the whole listing, so the
estimates compare like with like. A model whose shape cannot be read gets the sentence saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from ..backends.base import BackendError, ModelInfo
from ..schema import ModelSpec
from .estimate import FitEstimate, estimate
from .machine import Machine, in_process_offload, this_machine, without_gpus
from .memory import CacheConfig
from .shape import ShapeError
from .sources import Sized, default_ctx, from_gguf, shape_for

SHOW_TIMEOUT_S = 10.0


async def machine_now(data_dir: Path | None) -> Machine:
    return await asyncio.to_thread(this_machine, data_dir)


async def fit_one(
    spec: ModelSpec, backend: object, machine: Machine, n_ctx: int | None = None
) -> FitEstimate | str:
    """The estimate for one spec, or one sentence saying why there is none."""
    try:
        if spec.backend == "gguf":
            sized = Sized(await asyncio.to_thread(from_gguf, spec))
            if machine.gpus and not await asyncio.to_thread(in_process_offload):
                machine = without_gpus(machine)
        else:
            async with asyncio.timeout(SHOW_TIMEOUT_S):
                sized = await shape_for(spec, backend)
        return estimate(sized.shape, machine, n_ctx or default_ctx(spec, sized), CacheConfig())
    except TimeoutError:
        return f"no answer within {SHOW_TIMEOUT_S:g} s"
    except (ShapeError, BackendError, ValueError, OSError) as exc:
        return str(exc)


async def fits_for(
    infos: Iterable[ModelInfo], pool: object, machine: Machine, n_ctx: int | None = None
) -> dict[str, FitEstimate | str]:
    """Estimates keyed by spec label; ``pool`` hands out the backend of each spec."""
    out: dict[str, FitEstimate | str] = {}
    for info in infos:
        spec = info.spec
        backend = None if spec.backend == "gguf" else pool.for_spec(spec)  # type: ignore[attr-defined]
        out[spec.label] = await fit_one(spec, backend, machine, n_ctx)
    return out
