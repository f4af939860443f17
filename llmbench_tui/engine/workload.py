"""Controlled workloads: llama-bench-style size grids, synthetic prompts of exact sizes, sweeps.

A **grid** is ``pp × tg × depth`` (``--pp 64,512 --tg 128 --depth 0,4096``). Each **cell** sends a
synthetic prompt of exactly ``pp`` tokens after ``depth`` tokens of earlier context, as a raw
completion (no chat template, like llama-bench), and asks for ``tg`` tokens, ignoring
end-of-sequence where the backend can. One run of a cell gives three llama-bench figures
(``engine.report.llamabench_rows``): ``pp{pp} @ d{depth}`` (prefill rate), ``tg{tg} @
d{depth+pp}`` (decode rate; llama-bench's ``tg`` at that depth) and ``pp{pp}+tg{tg} @ d{depth}``
(both, over the end-to-end time).

How a prompt gets its exact size, without any tokenizer download:

- a backend with a tokenizer (the in-process engine: the GGUF's own vocabulary; llama.cpp's
  ``/tokenize``; ``llama_cpp.server``'s ``/extras/tokenize``) counts candidate texts and the text
  is fitted to the exact count (``fit_exact``); the in-process engine then evaluates exactly those
  token ids;
- a backend without one (Ollama, other OpenAI servers) is **calibrated** (``calibrate``): a text
  of random words meant to fall short is sent for one output token, the prompt count the server
  reports is read, and short one-token words are appended for the tokens still missing (their
  real size learnt from the previous probe), at most ``MAX_PROBES`` probes per (model, size).
  Each run then sends the calibrated words in a fresh random order (the first word kept in
  place): the count is unchanged for any tokenizer that splits at spaces, and no two prompts
  share more than that first word. The count stored is always the server's, never an estimate.

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

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..schema import ModelSpec, Options, PromptSpec, WorkloadSpec
from ..workload_syntax import Cell, WorkloadError, check_api, parse_levels, parse_slo, parse_values

MAX_PROBES = 3
MIN_GRID_CTX = 2048
# The tolerance the calibration aims for; a prompt off by more is flagged (never hidden).
CALIBRATION_TOLERANCE = 2


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
    api: str = "completions"  # or "chat": each cell's text as a chat request's user message

    @property
    def sweep(self) -> bool:
        return len(self.levels) > 1

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
    api: str | None = None,
) -> tuple[Workload | None, int]:
    """The workload of a session from a suite's ``[workload]`` overlaid with command-line values
    (any given here wins), and the plan's plain concurrency. ``None`` for an ordinary session
    (no grid, one level, no SLO). Raises ``WorkloadError`` naming a bad value."""
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


# ----------------------------------------------------------------------------------- text

# Short, common English words: one token each with a leading space in the usual BPE vocabularies
# (and one to three tokens under the Ollama test server's documented tokenizer).
_WORDS_TEXT = """
    the of and to in is was for on that with as by at from his her they this have are not but
    had one all were when we there can an your which their said if will each about how up out
    them then she many some so these would other into has more two like him see time could no
    make than first been its who now people my made over did down only way find use may water
    long little very after words called just where most know get through back much before go
    good new write our used me man too any day same right look think also around another came
    come work three word must because does part even place well such here take why things help
    put years different away again off went old number great tell men say small every found
    still between name should home big give air line set own under read last never us left end
    along while might next sound below saw something thought both few those always looked show
    large often together asked house world going want school important until form food keep
    children feet land side without boy once animals life enough took sometimes four head above
    kind began almost live page got earth need far hand high year mother light parts country
    father let night following picture being study second eyes soon times story boys since white
    days ever paper hard near sentence better best across during today others however sure means
    knew together family river open seemed city tree open began window garden market music paper
    """
WORDS = tuple(dict.fromkeys(_WORDS_TEXT.split()))  # each word once, in a stable order


class WordStream:
    """Random words, drawn as needed from ``WORDS`` with a private generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words: list[str] = []

    def first(self, n: int) -> list[str]:
        while len(self.words) < n:
            self.words.append(self.rng.choice(WORDS))
        return self.words[:n]


def join(words: Sequence[str]) -> str:
    return " ".join(words)


@dataclass(slots=True)
class Fit:
    """A word list and the token count of the text it makes (``count`` is ``None`` if unknown)."""

    words: list[str]
    count: int | None
    probes: int
    exact: bool


Counter = Callable[[str], Awaitable[int | None]]


async def fit_exact(
    count: Counter, target: int, stream: WordStream, prefix: Sequence[str] = (), tries: int = 40
) -> Fit:
    """Words (``prefix`` + words from ``stream``) whose text the tokenizer counts as ``target``.

    A tokenizer is cheap to ask, so this steps the word count until it lands, then — when one word
    more overshoots — tries other last words (a two-token word for a one-token one). The result
    is the closest text found, ``exact`` says whether it is exact.
    """
    prefix = list(prefix)
    base = await _count(count, join(prefix)) if prefix else 1  # the prefix, or a BOS
    n = max(1, target - base)
    best: Fit | None = None
    seen: dict[int, int] = {}
    probes = 0
    for _ in range(tries):
        words = prefix + stream.first(n)
        c = await _count(count, join(words))
        probes += 1
        seen[n] = c
        if best is None or abs(c - target) < abs((best.count or 0) - target):
            best = Fit(words, c, probes, c == target)
        if c == target:
            return Fit(words, c, probes, True)
        per_word = max((c - base) / n, 0.2)
        nxt = max(1, n + (round((target - c) / per_word) or (1 if c < target else -1)))
        if nxt in seen:  # close: walk one word at a time, until n and n+1 straddle the target
            nxt = n + (1 if c < target else -1)
            if nxt in seen or nxt < 1:
                break
        n = nxt
    # n words undershoot by a little: append candidates one at a time until one lands exactly.
    under = max((k for k, c in seen.items() if c < target), default=None)
    if under is not None:
        base = prefix + stream.first(under)
        gap = target - seen[under]
        candidates = list(WORDS)
        stream.rng.shuffle(candidates)
        for extra in candidates[: tries]:
            filler = [extra] * gap if gap <= 3 else [extra]
            words = base + filler
            c = await _count(count, join(words))
            probes += 1
            if c == target:
                return Fit(words, c, probes, True)
            if best is None or abs(c - target) < abs((best.count or 0) - target):
                best = Fit(words, c, probes, False)
    assert best is not None
    best.probes = probes
    return best


# Short, very common words: one token each (with a leading space) in the usual BPE vocabularies
# and under the Ollama test server's rule. Calibration fills the last part of a prompt with them.
_UNIT_TEXT = """
the and of to in is it on as at by or an be do go if my no so up we he me us all one two can had
her was for not but you his has see now way who did get may day use man new old any few say she
our out
"""
UNIT_WORDS = tuple(_UNIT_TEXT.split())
BODY_SHARE = 0.6  # the first probe's random words aim at 60 % of the tokens, so it falls short


async def calibrate(
    probe: Counter,
    target: int,
    stream: WordStream,
    prefix: Sequence[str] = (),
    prefix_count: int | None = None,
    max_probes: int = MAX_PROBES,
) -> Fit:
    """Words whose text the server reports as ``target`` prompt tokens, in ``max_probes`` probes.

    Probe 1 sends random words (``stream``) meant to fall short of the target (``BODY_SHARE``);
    the server's count of that text is then known exactly, and each next probe appends (or
    drops) short one-token words (``UNIT_WORDS``) for the tokens still missing, learning how many
    tokens such a word really is from the previous probe. With a tokenizer that splits at spaces,
    the count of a word list does not depend on its order, which is what lets every run send a
    fresh shuffle of the result. The closest probe is kept.
    """
    prefix = list(prefix)
    base = prefix_count or 0
    n_body = max(1, int((target - base) * BODY_SHARE))
    body = prefix + stream.first(n_body)
    tail: list[str] = []
    per_unit = 1.0
    best: Fit | None = None
    probes = 0
    body_count: int | None = None
    while probes < max_probes:
        words = body + tail
        c = await _count(probe, join(words))
        probes += 1
        if best is None or abs(c - target) < abs((best.count or 0) - target):
            best = Fit(words, c, probes, c == target)
        if c == target:
            break
        if body_count is None:
            body_count = c
            if c > target:  # the random words alone overshoot: keep fewer of them
                share = (target - base) / max(c - base, 1)
                body = prefix + body[len(prefix) :][: max(1, int(n_body * share * BODY_SHARE))]
                body_count = None
                continue
        elif tail:
            per_unit = max((c - body_count) / len(tail), 0.5)
        missing = round((target - body_count) / per_unit)
        if missing < 0:
            break
        tail = [stream.rng.choice(UNIT_WORDS) for _ in range(missing)]
    assert best is not None
    best.probes = probes
    return best


async def _count(counter: Counter, text: str) -> int:
    value = await counter(text)
    if value is None:
        raise WorkloadError("the backend reported no prompt token count")
    return value


# ----------------------------------------------------------------------------------- prompts


@dataclass(slots=True)
class Built:
    """A synthetic prompt ready to send and what the record should say about how it was made."""

    raw: Any  # backends.base.RawPrompt
    meta: dict[str, Any]


class PromptBuilder:
    """Builds each run's synthetic prompt for its backend; keeps calibrations per model and size.

    ``rng`` seeds the word streams (a fresh ``random.Random()`` per builder by default, so two
    sessions never send the same prompts).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self._calibrated: dict[tuple, tuple[Fit, Fit | None]] = {}
        self._tokenizer: dict[str, bool] = {}
        self._lock = asyncio.Lock()

    async def build(
        self, backend: Any, spec: ModelSpec, cell: Cell, options: Options, *, repeat_of: Any = None
    ) -> Built:
        """The prompt of one run of ``cell`` (``repeat_of``: the same prompt again, on purpose)."""
        from ..backends.base import RawPrompt

        if repeat_of is not None:
            raw = RawPrompt(
                text=repeat_of.raw.text,
                max_tokens=cell.tg,
                context=repeat_of.raw.context,
                token_ids=repeat_of.raw.token_ids,
                context_ids=repeat_of.raw.context_ids,
                reuse_cache=True,
            )
            return Built(raw, {**repeat_of.meta, "cache_role": "repeat"})
        async with self._lock:  # calibrations of one model happen once, never during a round
            tokenizes = await self._has_tokenizer(backend, spec, options)
            if tokenizes:
                return await self._exact(backend, spec, cell, options)
            return await self._calibrated_prompt(backend, spec, cell, options)

    async def _has_tokenizer(self, backend: Any, spec: ModelSpec, options: Options) -> bool:
        key = spec.label
        if key not in self._tokenizer:
            self._tokenizer[key] = await backend.tokenize(spec, "hello", options) is not None
        return self._tokenizer[key]

    async def _exact(self, backend: Any, spec: ModelSpec, cell: Cell, options: Options) -> Built:
        from ..backends.base import RawPrompt

        async def count(text: str) -> int | None:
            ids = await backend.tokenize(spec, text, options)
            return None if ids is None else len(ids)

        stream = WordStream(random.Random(self.rng.getrandbits(64)))
        probes = 0
        ctx_words: list[str] = []
        ctx_fit = None
        if cell.depth:
            ctx_fit = await fit_exact(count, cell.depth, stream)
            ctx_words, probes = ctx_fit.words, ctx_fit.probes
        total = cell.depth + cell.pp
        rest = WordStream(random.Random(self.rng.getrandbits(64)))
        fit = await fit_exact(count, total, rest, prefix=ctx_words)
        probes += fit.probes
        text, context = join(fit.words), join(ctx_words)
        ids = await backend.tokenize(spec, text, options)
        ctx_ids = await backend.tokenize(spec, context, options) if context else None
        if ctx_ids is not None and ids is not None and ids[: len(ctx_ids)] != ctx_ids:
            ctx_ids = None  # the boundary tokenized differently: let the backend prime by text
        exact = fit.exact and (ctx_fit is None or ctx_fit.exact)
        raw = RawPrompt(
            text=text,
            max_tokens=cell.tg,
            context=context,
            token_ids=ids if backend.kind == "gguf" else None,
            context_ids=ctx_ids if backend.kind == "gguf" else None,
        )
        meta = {
            "count_method": "tokenizer",
            "prompt_tokens_fitted": len(ids) if ids is not None else fit.count,
            "context_tokens_fitted": len(ctx_ids) if ctx_ids is not None else None,
            "calibration_probes": None,
            "tokenizer_calls": probes,
            "exact_prompt": exact,
        }
        return Built(raw, meta)

    async def _calibrated_prompt(
        self, backend: Any, spec: ModelSpec, cell: Cell, options: Options
    ) -> Built:
        from ..backends.base import RawPrompt

        key = (spec.label, cell.depth, cell.pp, options.num_ctx)
        probes_now = 0
        if key not in self._calibrated:

            async def probe(text: str) -> int | None:
                return await backend.probe_prompt_tokens(spec, text, options)

            stream = WordStream(random.Random(self.rng.getrandbits(64)))
            ctx_fit = None
            prefix: list[str] = []
            if cell.depth:
                ctx_fit = await calibrate(probe, cell.depth, stream)
                prefix = ctx_fit.words
                probes_now += ctx_fit.probes
            rest = WordStream(random.Random(self.rng.getrandbits(64)))
            fit = await calibrate(
                probe,
                cell.depth + cell.pp,
                rest,
                prefix=prefix,
                prefix_count=ctx_fit.count if ctx_fit else None,
            )
            probes_now += fit.probes
            self._calibrated[key] = (fit, ctx_fit)
        fit, ctx_fit = self._calibrated[key]
        # A fresh order of the same words every run: same count, no shared prefix beyond the
        # first word (kept in place: without a leading space it may tokenize differently).
        n_ctx = len(ctx_fit.words) if ctx_fit else 0
        words = list(fit.words)
        ctx_words, rest_words = words[1:n_ctx], words[max(n_ctx, 1) :]
        self.rng.shuffle(ctx_words)
        self.rng.shuffle(rest_words)
        if n_ctx:
            ctx_words = words[:1] + ctx_words
        else:
            rest_words = words[:1] + rest_words
        context = join(ctx_words)
        text = join(ctx_words + rest_words)
        exact = fit.count == cell.depth + cell.pp and (
            ctx_fit is None or ctx_fit.count == cell.depth
        )
        raw = RawPrompt(text=text, max_tokens=cell.tg, context=context)
        meta = {
            "count_method": "calibrated",
            "prompt_tokens_fitted": fit.count,
            "context_tokens_fitted": ctx_fit.count if ctx_fit else None,
            "calibration_probes": (fit.probes + (ctx_fit.probes if ctx_fit else 0)),
            "calibration_probes_this_run": probes_now,
            "exact_prompt": exact,
        }
        return Built(raw, meta)


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
