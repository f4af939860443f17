"""Controlled workloads: llama-bench-style size grids, synthetic prompts of exact sizes, sweeps.

A **grid** is ``pp × tg × depth`` (``--pp 64,512 --tg 128 --depth 0,4096``). Each **cell** sends a
synthetic prompt of exactly ``pp`` tokens after ``depth`` tokens of earlier context, as a raw
completion (no chat template, like llama-bench), and asks for ``tg`` tokens, ignoring
end-of-sequence where the backend can. One run of a cell gives three llama-bench figures
(``engine.report.llamabench_rows``): ``pp{pp} @ d{depth}`` (prefill rate), ``tg{tg} @
d{depth+pp}`` (decode rate; llama-bench's ``tg`` at that depth) and ``pp{pp}+tg{tg} @ d{depth}``
(both, over the end-to-end time).

How a prompt gets its exact size, without any tokenizer download (fitted to a backend's own
tokenizer, else calibrated on the server's reported counts): ``engine.synthetic_prompts``.
Each run sends the calibrated words in a fresh random order (the first word kept in place):
the count is unchanged for any tokenizer that splits at spaces, and no two prompts share more
than that first word. The count stored is always the server's, never an estimate.

**Cache honesty**: every prompt is built from a fresh random word stream, so no server can reuse
a cached prefix by accident. Where the server says it did (``FinalChunk.cached_tokens``) the count
is stored and the prefill figure flagged. ``--prefix-cache`` measures reuse on purpose: each
prompt is sent twice, the second run (``cache_role: "repeat"``) is its own statistics group.

The record's ``workload`` object (see ``record_fields``)::

    test, pp, tg, depth, grid, prompt_tokens_requested, prompt_tokens_reported,
    prompt_tokens_fitted, count_method ("tokenizer"|"calibrated"), calibration_probes,
    exact_prompt, output_tokens_requested, exact_output, cached_tokens, context_prime_s,
    cache_role (null|"first"|"repeat"), localscore, flags [str]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..schema import ModelSpec, Options, PromptSpec, WorkloadSpec
from ..workload_syntax import (
    Cell,
    WorkloadError,
    check_api,
    parse_levels,
    parse_slo,
    parse_values,
)
from .arrivals import LoadSpec, load_from
from .synthetic_prompts import Built

MIN_GRID_CTX = 2048


def make_cells(pps: Sequence[int], tgs: Sequence[int], depths: Sequence[int]) -> list[Cell]:
    """Every combination, depth outermost (as llama-bench orders ``-d``)."""
    return [Cell(pp, tg, d) for d in depths for pp in pps for tg in tgs]


@dataclass
class Workload:
    """What a grid/sweep session runs besides the plan's usual fields."""

    cells: list[Cell]
    levels: list[int] = field(default_factory=lambda: [1])
    slos: list[Any] = field(default_factory=list)  # goodput.Slo
    prefix_cache: bool = False
    localscore: bool = False
    skipped: list[str] = field(default_factory=list)  # cells left out, with the reason
    load: LoadSpec | None = None  # open-loop arrivals instead of closed-loop levels
    api: str = "completions"  # or "chat": each cell's text as a chat request's user message

    @property
    def sweep(self) -> bool:
        return len(self.levels) > 1 or bool(self.load and self.load.sweep)

    @property
    def grid_id(self) -> str:
        """Stable id of this grid (same cells, levels, SLOs, mode → same id): the history groups
        the runs of one grid by it (with the session id)."""
        blob = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def context_needed(self) -> int:
        return max((c.context_needed for c in self.cells), default=0)

    def runs_per_round_set(self, n_prompts: int = 1) -> int:
        """Measured runs per repetition, over every cell (or prompt, without a grid) and level."""
        per_cell = sum(self.levels) * (2 if self.prefix_cache and self.cells else 1)
        return (len(self.cells) or n_prompts) * per_cell

    def describe(self) -> dict[str, Any]:
        return {
            "cells": [[c.pp, c.tg, c.depth] for c in self.cells],
            "levels": self.levels,
            "slos": [s.text for s in self.slos],
            "prefix_cache": self.prefix_cache,
            "localscore": self.localscore,
            "skipped": self.skipped,
            **({"load": self.load.describe()} if self.load else {}),
            **({"api": self.api} if self.api != "completions" else {}),
        }

    def check_context(self, model: str, context_length: int | None, num_ctx: int | None) -> None:
        """Refuse cells that cannot fit the model's context (before anything runs)."""
        limit = context_length
        if num_ctx and (limit is None or num_ctx < limit):
            limit = num_ctx
        if not limit:
            return
        for cell in self.cells:
            if cell.context_needed > limit:
                what = f"--depth {cell.depth}" if cell.depth else f"--pp {cell.pp}"
                if cell.depth and cell.depth < limit and cell.pp + cell.tg >= limit - cell.depth:
                    what = f"--depth {cell.depth} with --pp {cell.pp} --tg {cell.tg}"
                raise WorkloadError(
                    f"{what}: {cell.test} needs {cell.context_needed} tokens of context "
                    f"(depth {cell.depth} + pp {cell.pp} + tg {cell.tg}), more than {model}'s "
                    f"{'num_ctx' if limit == num_ctx else 'context length'} of {limit}"
                )


def cell_prompt(cell: Cell, *, repeat: bool = False, chat: bool = False) -> PromptSpec:
    """The PromptSpec runs of a cell carry: its id and a description (the synthetic text itself is
    random, long and different every run, so it is not stored). ``repeat``: the prefix-cache
    mode's second send of a prompt, a statistics group of its own (``…+cache``); ``chat``: sent
    as a chat request's user message (``--api chat``)."""
    if repeat:
        return PromptSpec(
            id=f"{cell.prompt_id}+cache",
            text=cell.describe() + "; the same prompt again, reusing the cache on purpose",
            tags=["synthetic", "prefix-cache"],
        )
    return PromptSpec(id=cell.prompt_id, text=cell.describe(chat), tags=["synthetic"])


def grid_options(options: Options, workload: Workload) -> Options:
    """The plan's options with a context size that fits the largest cell (Ollama would otherwise
    truncate a long prompt silently to its default context) when none is given: the cells' need
    rounded up to 256, and at least ``MIN_GRID_CTX`` (llama-cpp-python 0.3.36 crashes in
    ``llama_decode`` with a 256-token context)."""
    if options.num_ctx:
        return options
    needed = max(workload.context_needed(), MIN_GRID_CTX)
    return options.merged(Options(num_ctx=-(-needed // 256) * 256))


def build_workload(
    spec: WorkloadSpec | None,
    *,
    pp: Any = None,
    tg: Any = None,
    depth: Any = None,
    concurrency: Any = None,
    slos: Sequence[str] = (),
    localscore: bool = False,
    prefix_cache: bool = False,
    default_concurrency: int = 1,
    load: dict[str, Any] | None = None,
    api: str | None = None,
) -> tuple[Workload | None, int]:
    """The workload of a session from a suite's ``[workload]`` overlaid with command-line values
    (any given here wins), and the plan's plain concurrency. ``None`` for an ordinary session
    (no grid, one level, no SLO). ``load``: the open-loop values given on the command line
    (``rate``, ``arrival``, ``duration``, ``requests``, ``seed``, ``workers``; see
    ``engine.arrivals``). Raises ``WorkloadError`` naming a bad value."""
    from .localscore import SHAPES

    ws = spec or WorkloadSpec()
    sizes = {
        "pp": pp if pp is not None else ws.pp,
        "tg": tg if tg is not None else ws.tg,
        "depth": depth if depth is not None else ws.depth,
    }
    if concurrency is not None:
        levels = parse_levels(concurrency)
    elif ws.concurrency is not None:
        levels = parse_levels(ws.concurrency)
    else:
        levels = [default_concurrency]
    rules = [parse_slo(rule) for rule in (slos or ws.slo)]
    localscore = bool(localscore or ws.localscore)
    prefix_cache = bool(prefix_cache or ws.prefix_cache)
    cells: list[Cell] = []
    if localscore:
        if any(v is not None for v in sizes.values()):
            raise WorkloadError(
                "--localscore runs LocalScore's own nine shapes: leave out --pp/--tg/--depth"
            )
        cells = [Cell(p, t, 0) for p, t, _ in SHAPES]
    elif any(v is not None for v in sizes.values()):
        pps = parse_values(sizes["pp"] if sizes["pp"] is not None else 512, "--pp", minimum=1)
        tgs = parse_values(sizes["tg"] if sizes["tg"] is not None else 128, "--tg", minimum=1)
        deep = sizes["depth"] if sizes["depth"] is not None else 0
        cells = make_cells(pps, tgs, parse_values(deep, "--depth", minimum=0))
    if prefix_cache and not cells:
        raise WorkloadError("--prefix-cache needs a size grid (--pp) to send each prompt twice")
    if prefix_cache and (len(levels) > 1 or levels[0] > 1):
        raise WorkloadError("--prefix-cache sends one stream at a time: leave out -c")
    api = check_api(api or ws.api or "completions", cells, prefix_cache)
    capped = concurrency is not None or ws.concurrency is not None
    open_loop = load_from(ws, load or {}, levels, capped)
    if open_loop is not None:
        if prefix_cache:
            raise WorkloadError("--prefix-cache sends one stream at a time: leave out --rate")
        return Workload(cells, [1], rules, False, localscore, load=open_loop, api=api), levels[0]
    if not cells and len(levels) == 1 and not rules:
        return None, levels[0]
    return Workload(cells, levels, rules, prefix_cache, localscore, api=api), levels[0]



async def model_contexts(pool: Any, models: Sequence[ModelSpec]) -> dict[str, int | None]:
    """Each model's context length as its backend describes it; ``None`` when unknown or the
    backend cannot be asked now (the run itself will then say why)."""
    from ..backends.base import BackendError

    found: dict[str, int | None] = {}
    for spec in models:
        try:
            found[spec.label] = (await pool.for_spec(spec).describe(spec)).context_length
        except (BackendError, OSError):
            found[spec.label] = None
    return found


def fit_to_models(plan: Any, contexts: dict[str, int | None]) -> None:
    """Before anything runs: keep the LocalScore shapes that fit the smallest known context
    (naming the others), refuse cells beyond a model's context or ``num_ctx`` (``WorkloadError``
    naming the value), and give the plan a context size that fits the largest cell."""
    from .localscore import shapes

    workload = plan.workload
    if workload is None or not workload.cells:
        return
    if workload.localscore:
        known = [c for c in contexts.values() if c]
        workload.cells, workload.skipped = shapes(min(known) if known else None)
        if not workload.cells:
            raise WorkloadError("--localscore: none of LocalScore's shapes fits the context")
    plan.prompts = [cell_prompt(c) for c in workload.cells]
    for label, context in contexts.items():
        workload.check_context(label, context, plan.options.num_ctx)
    plan.options = grid_options(plan.options, workload)


# ----------------------------------------------------------------------------------- records


def record_fields(
    cell: Cell,
    built: Built,
    *,
    backend_kind: str,
    grid: str,
    prompt_reported: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
    context_prime_s: float | None,
    localscore: bool,
) -> dict[str, Any]:
    """The record's ``workload`` object, with flags for anything a reader must not miss."""
    meta = built.meta
    requested = cell.depth + cell.pp
    role = meta.get("cache_role")
    flags: list[str] = []
    fitted = meta.get("prompt_tokens_fitted")
    counted = prompt_reported if prompt_reported is not None else fitted
    chat = bool(getattr(built.raw, "chat", False))
    if chat:  # pp is the user message; the server's count has the chat template around it
        counted = fitted
    explained = role == "repeat" or (cached_tokens and counted == requested - cached_tokens)
    if counted is not None and counted != requested and not explained:
        flags.append(f"prompt is {counted} tokens, {requested} were requested")
    if prompt_reported is None:
        flags.append(
            "the server reported no prompt token count; the count is the tokenizer's"
            if meta.get("count_method") == "tokenizer"
            else "the server reported no prompt token count"
        )
    expected_cache = cell.depth if cell.depth else 0
    if role == "repeat":
        expected_cache = requested
    # Any two prompts share a BOS and maybe a first word: a few cached tokens inflate nothing.
    if cached_tokens and cached_tokens > expected_cache + max(4, requested // 100):
        flags.append(
            f"{cached_tokens} prompt tokens came from the server's cache: the prefill rate is "
            "inflated"
        )
    if cell.depth and backend_kind != "gguf" and not cached_tokens:
        flags.append(
            "the server did not report reusing the primed context: its prefill figure may cover "
            "depth + pp tokens"
        )
    exact_output = output_tokens == cell.tg
    if output_tokens is not None and output_tokens < cell.tg:
        why = (
            "Ollama has no ignore_eos"
            if backend_kind == "ollama"
            else "the server stopped early (no ignore_eos/min_tokens support?)"
        )
        flags.append(f"{output_tokens} of {cell.tg} tokens generated: {why}")
    return {
        "test": cell.test,
        "pp": cell.pp,
        "tg": cell.tg,
        "depth": cell.depth,
        "grid": grid,
        "prompt_tokens_requested": requested,
        "prompt_tokens_reported": prompt_reported,
        "prompt_tokens_fitted": fitted,
        "count_method": meta.get("count_method"),
        "calibration_probes": meta.get("calibration_probes"),
        "exact_prompt": counted == requested and bool(meta.get("exact_prompt")),
        "output_tokens_requested": cell.tg,
        "exact_output": exact_output,
        "cached_tokens": cached_tokens,
        "context_prime_s": context_prime_s,
        "cache_role": role,
        "localscore": localscore,
        "flags": flags,
        "api": "chat" if chat else "completions",
    }
