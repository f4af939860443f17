"""Will a model fit this machine, with how much context, and how fast could it decode?

``shape`` reads a model's architecture from any source, ``memory`` sizes its weights, KV cache and
compute buffers as llama.cpp allocates them, ``machine`` takes this machine's free RAM, GPU memory
and bandwidths, ``estimate`` puts them together, ``sources`` finds the shape of a model spec and
``check`` sets the prediction next to what a run measured. docs/fit.md explains the method.
Engine-side code: no Textual imports.
"""

from __future__ import annotations

from ..schema import ModelSpec
from .estimate import FitEstimate, estimate
from .machine import Machine, this_machine
from .memory import CacheConfig
from .shape import ModelShape, ShapeError
from .sources import Sized, shape_for

DEFAULT_N_CTX = 4096  # what the GGUF backend and Ollama use when no context size is asked for


def default_ctx(spec: ModelSpec, sized: Sized) -> int:
    """The context a run of ``spec`` gets when none is asked for (as each backend decides)."""
    if sized.n_ctx:
        return sized.n_ctx
    trained = sized.shape.n_ctx_train
    if spec.backend == "gguf" and trained:
        return min(DEFAULT_N_CTX, trained)
    return DEFAULT_N_CTX


__all__ = [
    "CacheConfig",
    "FitEstimate",
    "Machine",
    "ModelShape",
    "ShapeError",
    "Sized",
    "default_ctx",
    "estimate",
    "shape_for",
    "this_machine",
]
