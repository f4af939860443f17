"""A hardware score computed with Mozilla LocalScore's formula, over LocalScore's nine shapes.

LocalScore (Mozilla Builders, ``llamafile/localscore``) runs nine prompt/generation shapes,
averages over them the prompt rate, the generation rate and the time to first token, and scores

    score = 10 × (avg prompt tok/s × avg generation tok/s × 1000 / avg TTFT ms) ^ (1/3)

(the geometric mean of the three, × 10). ``llmbench --batch --localscore`` runs the same shapes as
a grid and applies the same formula; the result is labelled "LocalScore formula", because the
figures come from this tool's measurement (below), not from the LocalScore binary:

- prompt rate: the backend's own prefill rate (``server.prompt_tok_s``: llama.cpp's perf counters
  in-process, Ollama's ``prompt_eval``, llama.cpp server ``timings``), else ``pp / TTFT``;
- generation rate: ``server.decode_tok_s`` where reported, else the client decode rate;
- TTFT: the client's ``timings.ttft_s``.

A shape that does not fit the model's context is skipped and named; a score over fewer than nine
shapes says so and is not comparable with LocalScore's. Where energy is measured,
``tokens_per_j`` = output tokens / joules over the same runs is given beside the score.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from ..schema import get_path
from ..workload_syntax import Cell
from .stats import counts_in_figures

# LocalScore's get_baseline_test_configs(): (prompt tokens, generated tokens) and what each models.
SHAPES: tuple[tuple[int, int, str], ...] = (
    (1024, 16, "title generation"),
    (4096, 256, "content summarization"),
    (2048, 256, "lots of code to fix"),
    (2048, 768, "standard code chat"),
    (1024, 1024, "code back and forth"),
    (1280, 3072, "reasoning over code"),
    (384, 1152, "code gen with back and forth"),
    (64, 1024, "code gen/ideation"),
    (16, 1536, "QA, storytelling, reasoning"),
)
FORMULA = "LocalScore formula: 10 × cbrt(avg prompt tok/s × avg gen tok/s × 1000 / avg TTFT ms)"


def shapes(context_length: int | None) -> tuple[list[Cell], list[str]]:
    """The cells that fit ``context_length`` (all when unknown) and a sentence per skipped one."""
    cells, skipped = [], []
    for pp, tg, _what in SHAPES:
        if context_length and pp + tg > context_length:
            skipped.append(
                f"pp{pp}+tg{tg} skipped: needs {pp + tg} tokens of context, the model has "
                f"{context_length}"
            )
        else:
            cells.append(Cell(pp, tg, 0))
    return cells, skipped


def _shape_figures(recs: list[dict[str, Any]]) -> dict[str, float | None]:
    prompt, gen, ttft = [], [], []
    for r in recs:
        pp = get_path(r, "workload.pp")
        p = get_path(r, "server.prompt_tok_s")
        t = get_path(r, "timings.ttft_s")
        if not isinstance(p, int | float) and isinstance(t, int | float) and t > 0 and pp:
            p = pp / t
        g = get_path(r, "server.decode_tok_s")
        if not isinstance(g, int | float):
            g = get_path(r, "timings.decode_tok_s")
        if isinstance(p, int | float):
            prompt.append(float(p))
        if isinstance(g, int | float):
            gen.append(float(g))
        if isinstance(t, int | float):
            ttft.append(float(t) * 1000.0)
    mean = statistics.fmean
    return {
        "prompt_tok_s": mean(prompt) if prompt else None,
        "gen_tok_s": mean(gen) if gen else None,
        "ttft_ms": mean(ttft) if ttft else None,
    }


@dataclass(slots=True, kw_only=True)
class Result:
    """One model's LocalScore-formula figures; the fields in the order of its JSON form."""

    model: str
    formula: str = FORMULA
    score: float | None = None
    prompt_tok_s: float | None = None
    gen_tok_s: float | None = None
    ttft_ms: float | None = None
    tokens_per_j: float | None = None
    shapes_run: list[str]
    shapes_skipped: list[str] = field(default_factory=list)
    comparable: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        if self.score is None:
            return f"{self.model}: no LocalScore-formula score (no successful shape)"
        text = (
            f"{self.model}: {self.score:.0f} ({FORMULA}; prompt {self.prompt_tok_s:.1f} tok/s, "
            f"generation {self.gen_tok_s:.1f} tok/s, TTFT {self.ttft_ms:.1f} ms; "
            f"{len(self.shapes_run)} of {len(SHAPES)} shapes"
        )
        if self.tokens_per_j is not None:
            text += f"; {self.tokens_per_j:.2f} tokens/J"
        text += ")"
        if not self.comparable:
            text += " — not comparable with LocalScore's published scores: not all nine shapes ran"
        return text


def score(records: list[dict[str, Any]], skipped: list[str] | None = None) -> list[Result]:
    """One ``Result`` per model over its LocalScore-shaped runs (``workload.localscore``)."""
    by_model: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        if not get_path(r, "workload.localscore") or not counts_in_figures(r):
            continue
        model = r.get("model_spec") or r.get("model") or "?"
        by_model.setdefault(model, {}).setdefault(get_path(r, "workload.test"), []).append(r)
    results = []
    for model, tests in by_model.items():
        per_shape = [_shape_figures(recs) for recs in tests.values()]
        res = Result(model=model, shapes_run=sorted(tests), shapes_skipped=list(skipped or []))
        vals = {
            k: [s[k] for s in per_shape if s[k] is not None]
            for k in ("prompt_tok_s", "gen_tok_s", "ttft_ms")
        }
        if all(vals.values()):
            res.prompt_tok_s = statistics.fmean(vals["prompt_tok_s"])  # type: ignore[arg-type]
            res.gen_tok_s = statistics.fmean(vals["gen_tok_s"])  # type: ignore[arg-type]
            res.ttft_ms = statistics.fmean(vals["ttft_ms"])  # type: ignore[arg-type]
            if res.ttft_ms > 0:
                res.score = (res.prompt_tok_s * res.gen_tok_s * (1000.0 / res.ttft_ms)) ** (
                    1 / 3
                ) * 10
        runs = [r for recs in tests.values() for r in recs]
        energy = [get_path(r, "efficiency.energy_j") for r in runs]
        if runs and all(isinstance(e, int | float) and e > 0 for e in energy):
            tokens = sum(get_path(r, "tokens.output") or 0 for r in runs)
            res.tokens_per_j = tokens / sum(energy)
        res.comparable = len(tests) == len(SHAPES)
        results.append(res)
    return results


def summary_lines(records: list[dict[str, Any]], skipped: list[str] | None = None) -> list[str]:
    """The lines a LocalScore session ends with, in ``--batch`` and on the dashboard: each
    model's score (labelled as computed with LocalScore's formula), then the shapes left out."""
    lines = [f"LocalScore-formula score: {r.sentence()}" for r in score(records, skipped)]
    return lines + [f"LocalScore: {s}" for s in skipped or []]
