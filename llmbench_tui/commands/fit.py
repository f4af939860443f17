"""``llmbench fit [SPEC...] [--ctx N] [--json]``: will these models fit this machine, and how fast
could they decode — before downloading or loading anything (``llmbench_tui.fit``, docs/fit.md).

Without a spec it sizes every model the dashboard would list (Ollama at the default host, GGUF
files from ``LLMBENCH_GGUF_PATHS`` and ``--models-dir``, the embedded model). ``--given`` sizes a
model that is not downloaded from numbers typed by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from llmbench_tui import config
from llmbench_tui.backends import BackendPool
from llmbench_tui.backends.base import BackendError
from llmbench_tui.commands.common import add_data_dir, fail, json_text, table
from llmbench_tui.fit.estimate import FitEstimate, estimate
from llmbench_tui.fit.machine import Machine, in_process_offload, this_machine, without_gpus
from llmbench_tui.fit.memory import CACHE_TYPES, MIB, CacheConfig
from llmbench_tui.fit.shape import ShapeError
from llmbench_tui.fit.sources import Sized, default_ctx, given_shape, shape_for
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import ModelSpec

PROG = "llmbench fit"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Predict whether models fit this machine (GPU, partly, CPU or not at all), "
        "the largest context that fits, and a decode-rate ceiling. Nothing is loaded.",
    )
    p.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="ollama:NAME[@HOST], openai:NAME@BASE_URL, gguf:PATH or embedded "
        "(default: every model found)",
    )
    p.add_argument(
        "--ctx",
        type=int,
        metavar="N",
        help="context size in tokens (default: what the backend would use)",
    )
    p.add_argument("--cache-type-k", default="f16", choices=sorted(CACHE_TYPES))
    p.add_argument("--cache-type-v", default="f16", choices=sorted(CACHE_TYPES))
    p.add_argument("--flash-attn", action="store_true", help="size for flash attention")
    p.add_argument(
        "--swa-small",
        action="store_true",
        help="sliding-window layers keep only their window (llama.cpp --swa-full off)",
    )
    p.add_argument(
        "--given",
        metavar="K=V,...",
        help="a model not downloaded: arch=,layers=,embd=,heads=,kv_heads=,size= "
        "[head_dim=,vocab=,ctx=,swa=]; sizes the first SPEC (or 'given')",
    )
    p.add_argument(
        "--models-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also size every .gguf under DIR (repeatable)",
    )
    p.add_argument("--ollama-host", help="Ollama host for the default listing")
    p.add_argument("--json", action="store_true", help="print the estimates as JSON")
    add_data_dir(p)
    return p


def main(args: argparse.Namespace) -> int:
    if args.ctx is not None and args.ctx < 1:
        return fail(PROG, f"--ctx must be a positive number of tokens, not {args.ctx}", 2)
    try:
        specs = [ModelSpec.parse(text) for text in args.specs]
    except ValueError as exc:
        return fail(PROG, str(exc), 2)
    cfg = CacheConfig(
        type_k=args.cache_type_k,
        type_v=args.cache_type_v,
        flash_attn=args.flash_attn,
        swa_full=not args.swa_small,
    )
    try:
        data_dir: Path | None = config.data_dir(args.data_dir)
    except OSError:
        data_dir = None
    machine = this_machine(data_dir)
    try:
        results = asyncio.run(_estimates(args, specs, machine, cfg))
    except (ShapeError, BackendError, ValueError) as exc:
        return fail(PROG, str(exc))
    if args.json:
        doc = {"machine": machine.describe(), "models": [_json(r) for r in results]}
        sys.stdout.write(json_text(doc))
        return 0 if all(isinstance(r, FitEstimate) for r in results) else 1
    sys.stdout.write(_report(machine, results))
    return 0 if all(isinstance(r, FitEstimate) for r in results) else 1


def _json(result: FitEstimate | tuple[str, str]) -> dict[str, Any]:
    if isinstance(result, FitEstimate):
        return result.to_json()
    return {"model": result[0], "error": result[1]}


async def _estimates(
    args: argparse.Namespace, specs: list[ModelSpec], machine: Machine, cfg: CacheConfig
) -> list[FitEstimate | tuple[str, str]]:
    if args.given:
        name = specs[0].label if specs else "given"
        shape = given_shape(args.given, name)
        return [estimate(shape, machine, args.ctx or shape.n_ctx_train or 4096, cfg)]
    pool = BackendPool(ollama_host=args.ollama_host)
    try:
        if not specs:
            specs = await _discover(pool, args)
        out: list[FitEstimate | tuple[str, str]] = []
        for spec in specs:
            try:
                backend = pool.for_spec(spec) if spec.backend == "ollama" else None
                sized: Sized = await shape_for(spec, backend)
            except (ShapeError, BackendError) as exc:
                if len(specs) == 1:
                    raise
                out.append((spec.label, str(exc)))
                continue
            where = machine
            if spec.backend == "gguf" and machine.gpus and not in_process_offload():
                where = without_gpus(machine)  # this llama-cpp-python build runs on the CPU
            out.append(estimate(sized.shape, where, args.ctx or default_ctx(spec, sized), cfg))
        return out
    finally:
        await pool.aclose()


async def _discover(pool: BackendPool, args: argparse.Namespace) -> list[ModelSpec]:
    """Every model the dashboard would list: embedded, GGUF files, the default Ollama's."""
    from llmbench_tui.fit.files import gguf_files_in

    specs = [ModelSpec.parse("embedded")]
    for path in [*config.gguf_files(), *gguf_files_in([Path(d) for d in args.models_dir])]:
        specs.append(ModelSpec(backend="gguf", name=str(path)))
    with contextlib.suppress(BackendError):
        backend = pool.for_spec(ModelSpec(backend="ollama", name="x", host=args.ollama_host))
        specs += [info.spec for info in await backend.list_models()]
    return list(dict.fromkeys(specs))


def _report(machine: Machine, results: list[FitEstimate | tuple[str, str]]) -> str:
    gpus = ", ".join(
        f"GPU{g.index} {g.name or ''} {g.free_bytes / MIB:,.0f} MiB free" for g in machine.gpus
    )
    bw = (
        f"{machine.cpu_gb_s:.1f} GB/s ({machine.cpu_gb_s_source})"
        if machine.cpu_gb_s
        else "unknown (llmbench calibrate)"
    )
    lines = [
        f"this machine: RAM {machine.ram_free_bytes / MIB:,.0f} MiB free; "
        f"{gpus or 'no GPU (NVML)'}; CPU bandwidth {bw}",
        "",
    ]
    rows = [["model", "fit", "ctx", "max ctx", "weights", "KV", "compute", "decode ≤ (est.)"]]
    for r in results:
        if not isinstance(r, FitEstimate):
            rows.append([one_line(r[0]), "?", "", "", "", "", "", one_line(r[1])])
            continue
        best = r.max_ctx.get(r.verdict if r.verdict != "none" else "cpu")
        rows.append(
            [
                one_line(r.model),
                r.cell(),
                f"{r.n_ctx:,}",
                f"{best:,}" if best else "-",
                f"{r.weights_bytes / MIB:,.0f} MiB",
                f"{r.kv_bytes / MIB:,.1f} MiB",
                f"{r.compute_bytes / MIB:,.0f} MiB",
                f"{r.decode_ceiling_tok_s:,.0f} tok/s" if r.decode_ceiling_tok_s else "-",
            ]
        )
    lines.append(table(rows).rstrip("\n"))
    for r in results:
        if isinstance(r, FitEstimate):
            lines.append(f"{one_line(r.model)}: {r.sentence()}")
    return "\n".join(lines) + "\n"
