"""Synthetic prompts of an exact token count, for the size grids of ``engine.workload``.

How a prompt gets its exact size, without any tokenizer download:

- a backend with a tokenizer (the in-process engine: the GGUF's own vocabulary; llama.cpp's
  ``/tokenize``; ``llama_cpp.server``'s ``/extras/tokenize``) counts candidate texts and the text
  is fitted to the exact count (``fit_exact``); the in-process engine then evaluates exactly those
  token ids;
- a backend without one (Ollama, other OpenAI servers) is **calibrated** (``calibrate``): a text
  of random words meant to fall short is sent for one output token, the prompt count the server
  reports is read, and short one-token words are appended for the tokens still missing (their
  real size learnt from the previous probe), at most ``MAX_PROBES`` probes per (model, size).

Each run then sends the calibrated words in a fresh random order (the first word kept in place),
built from a fresh random word stream (``PromptBuilder``), so no server can reuse a cached
prefix by accident.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..schema import ModelSpec, Options
from ..workload_syntax import Cell, WorkloadError

MAX_PROBES = 3
# The tolerance the calibration aims for; a prompt off by more is flagged (never hidden).
CALIBRATION_TOLERANCE = 2


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
        stem = prefix + stream.first(under)
        gap = target - seen[under]
        candidates = list(WORDS)
        stream.rng.shuffle(candidates)
        for extra in candidates[: tries]:
            filler = [extra] * gap if gap <= 3 else [extra]
            words = stem + filler
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
