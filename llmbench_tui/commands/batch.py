"""``llmbench --batch``: the engine with no UI, for scripts and CI.

Progress goes to stderr (a live line on a terminal, one plain line per run otherwise), the summary
table to stdout, run records into the database and optionally to files. Exit codes scripts can
trust: 0 every run ok, 1 a run failed or timed out, 2 bad usage or suite, 3 regression gate
crossed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import BackendPool
from ..config import DEFAULT_MAX_TOKENS, DEFAULT_PROMPT, data_dir
from ..engine.conversation import conversation_tables
from ..engine.events import (
    ChunkReceived,
    Event,
    RunFinished,
    RunJudged,
    RunStarted,
    SessionFinished,
)
from ..engine.judge_runs import judge_rows, judged_line
from ..engine.report import footnotes, render_markdown, render_text, summary_table
from ..engine.runner import Engine, Plan
from ..engine.workload import Workload, WorkloadError, cell_prompt
from ..quality.verdicts import JUDGE_TITLE
from ..safe_text import strip_controls
from ..schema import ModelSpec, Options, PromptSpec, Suite
from ..suite import SuiteError, load_suite
from .conditions import check_idle, telemetry_urls
from .judge import judge_config_from_args
from .openloop import open_loop_values

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REGRESSION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_OPTION_FLAGS = (
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "max_tokens",
    "num_ctx",
    "keep_alive",
    "think",
    "system",
)

if TYPE_CHECKING:
    pass


class UsageError(Exception):
    """Bad command line or suite: exit 2 with this message."""


def build_plan(args: argparse.Namespace) -> Plan:
    """The suite (if any) overlaid with every command-line flag that was given."""
    suite = load_suite(args.suite) if args.suite else Suite(name="adhoc")
    try:
        models = [ModelSpec.parse(m) for m in (args.model or suite.models)] or [
            ModelSpec.parse("embedded")
        ]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    prompts = suite.prompts
    if args.prompt:
        prompts = [
            PromptSpec(id=f"p{i + 1}" if len(args.prompt) > 1 else "prompt", text=t)
            for i, t in enumerate(args.prompt)
            if t.strip()
        ]
        if not prompts:
            raise UsageError("--prompt is empty: give the text to send to the model")
    if not prompts and not suite.conversations:
        prompts = [PromptSpec(id="default", text=DEFAULT_PROMPT)]
    given = {k: getattr(args, k) for k in _OPTION_FLAGS if getattr(args, k, None) is not None}
    try:
        options = suite.options.merged(Options(**given))
    except ValueError as exc:
        raise UsageError(f"bad option: {exc}") from None
    if options.max_tokens is None:
        options = options.merged(Options(max_tokens=DEFAULT_MAX_TOKENS))
    ttft = args.ttft_timeout or args.timeout or suite.ttft_timeout_s
    stall = args.stall_timeout or args.timeout or suite.stall_timeout_s
    workload, concurrency = build_workload(args, suite)
    if workload is not None and workload.cells:
        prompts = [cell_prompt(c) for c in workload.cells]
    return Plan(
        models=models,
        prompts=prompts,
        options=options,
        repetitions=args.repetitions or (suite.repetitions if args.suite else 3),
        warmup=args.warmup if args.warmup is not None else suite.warmup,
        cold=args.cold if args.cold is not None else suite.cold,
        concurrency=concurrency,
        ttft_timeout_s=ttft,
        stall_timeout_s=stall,
        tags=sorted({*suite.tags, *args.tag}),
        name=suite.name,
        allow_code_exec=bool(getattr(args, "allow_code_exec", False) or suite.allow_code_exec),
        conversations=list(suite.conversations),
        judge=judge_config_from_args(args, suite),
        workload=workload,
    )


def build_workload(args: argparse.Namespace, suite: Suite) -> tuple[Workload | None, int]:
    """The size grid, sweep levels and SLOs from the flags over the suite's ``[workload]``, and
    the plan's plain concurrency (``engine.workload.build_workload``)."""
    from ..engine.workload import build_workload as build

    try:
        return build(
            suite.workload,
            pp=args.pp,
            tg=args.tg,
            depth=args.depth,
            concurrency=args.concurrency,
            slos=args.slo,
            localscore=args.localscore,
            prefix_cache=args.prefix_cache,
            default_concurrency=suite.concurrency,
            load=open_loop_values(args),
            api=getattr(args, "api", None),
        )
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None


def check_workload(plan: Plan, ollama_host: str | None) -> None:
    """Before anything runs: the models' context lengths decide which LocalScore shapes run and
    refuse cells that cannot fit (``engine.workload.fit_to_models``)."""
    from ..engine.workload import fit_to_models, model_contexts

    if plan.workload is None or not plan.workload.cells:
        return

    async def contexts() -> dict[str, int | None]:
        pool = BackendPool(ollama_host=ollama_host)
        try:
            return await model_contexts(pool, plan.models)
        finally:
            await pool.aclose()

    try:
        fit_to_models(plan, asyncio.run(contexts()))
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None


class Progress:
    """Progress on stderr: a redrawn line on a terminal, plain lines for logs."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._current: dict[str, RunStarted] = {}
        self._chunks: dict[str, int] = {}
        self._last_draw = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._current[event.run_id] = event
            self._chunks[event.run_id] = 0
            self._draw(force=True)
        elif isinstance(event, ChunkReceived):
            self._chunks[event.run_id] = event.chunks
            if self.tty:
                self._draw()
        elif isinstance(event, RunFinished):
            self._current.pop(event.record.id, None)
            self._chunks.pop(event.record.id, None)
            self._line(event)
        elif isinstance(event, RunJudged):
            if self.tty:
                self.stream.write("\r\x1b[2K")
            self.stream.write(judged_line(event) + "\n")
            self.stream.flush()
        elif isinstance(event, SessionFinished) and self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        if not self.tty or not self._current:
            return
        import time

        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        ev = next(iter(self._current.values()))
        done = ev.index - 1
        width = 20
        filled = int(width * done / max(ev.total_runs, 1))
        bar = "█" * filled + "░" * (width - filled)
        kind = "warm-up" if ev.warmup else "cold" if ev.cold else f"rep {ev.repetition + 1}"
        chunks = sum(self._chunks.values())
        text = (
            f"[{bar}] {done}/{ev.total_runs} {strip_controls(ev.model)} "
            f"{strip_controls(ev.prompt_id)} {kind}: "
            f"{chunks} chunks"
        )
        self.stream.write("\r\x1b[2K" + text[:200])
        self.stream.flush()

    def _line(self, event: RunFinished) -> None:
        r = event.record
        kind = "warm-up" if r.warmup else "cold" if r.cold else f"rep {r.repetition + 1}"
        figures = ""
        if r.timings.ttft_s is not None:
            figures += f" ttft {r.timings.ttft_s:.3f}s"
        if r.timings.decode_tok_s is not None:
            figures += f" {r.timings.decode_tok_s:.1f} tok/s"
        if r.tokens.output is not None:
            figures += f" {r.tokens.output} tokens"
        if r.quality is not None and r.quality.score is not None:
            figures += f" score {r.quality.score:.1f}"
        err = f": {strip_controls(r.error)}" if r.error else ""
        line = (
            f"[{event.index}/{event.total_runs}] {strip_controls(r.model_spec or r.model)} "
            f"{strip_controls(r.prompt_id or '')} {kind} {r.status}{figures}{err}"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(line + "\n")
        self.stream.flush()
        self._draw(force=True)


def _open_store(args: argparse.Namespace) -> Any:
    if args.no_store:
        return None
    from ..store import open_store

    # A database away at the start is a session that spools, like one that goes away later.
    return open_store(args.store, args.data_dir, spool_when_away=True)


def _start_telemetry(args: argparse.Namespace) -> Any:
    try:
        from ..telemetry.telemetry import TelemetryHub
    except ImportError:
        return None
    hub = TelemetryHub(
        interval_s=args.sample_interval, data_dir=data_dir(args.data_dir), server=args.server_pid,
        telemetry_urls=telemetry_urls(args),
    )  # fmt: skip
    hub.start()
    return hub


async def _run(engine: Engine) -> SessionFinished:
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print(
                "\ninterrupted: stopping the current runs (Ctrl+C again to quit at once)",
                file=sys.stderr,
            )
            engine.cancel()
        else:
            raise SystemExit(EXIT_INTERRUPTED)

    # Not in the main thread, or no signals on this platform: Ctrl+C then just ends the process.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await engine.run()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


def chat_note(records: list[dict[str, Any]]) -> str:
    """What pp means in a chat grid, with the prompt sizes the server counted."""
    counted: dict[int, set[int]] = {}
    for r in records:
        w = r.get("workload") or {}
        if isinstance(w.get("prompt_tokens_reported"), int) and not r.get("warmup"):
            counted.setdefault(w["pp"], set()).add(w["prompt_tokens_reported"])
    sizes = "; ".join(f"pp{pp}: {min(c)}" + (f"–{max(c)}" if max(c) != min(c) else "")
                      for pp, c in sorted(counted.items()))  # fmt: skip
    return ("--api chat: pp is the user message's tokens; the server counted the whole prompt "
            "with its chat template (workload.prompt_tokens_reported)"
            + (f": {sizes} tokens" if sizes else ""))  # fmt: skip


def workload_report(plan: Plan, finished: SessionFinished) -> tuple[list[str], list[str]]:
    """Text and Markdown blocks for a grid/sweep/LocalScore session (empty lists otherwise):
    the llama-bench-shaped table, the sweep levels with goodput and the knee, the score."""
    workload = plan.workload
    if workload is None:
        return [], []
    from ..engine import goodput, localscore
    from ..engine.report import llamabench_rows, workload_notes

    records = [r.to_json() for r in finished.records]
    text: list[str] = []
    md: list[str] = []
    bench = [[strip_controls(c) for c in row] for row in llamabench_rows(records)]
    if len(bench) > 1:
        text += ["", render_text(bench)]
        md += ["", render_markdown(bench)]
        text.append(
            "t/s: the backend's own figure (llama.cpp perf counters, Ollama durations, llama.cpp "
            "server timings); client t/s: measured from the stream. tgN @ dD: decoding after D "
            "tokens of context."
        )
        if workload.api == "chat":
            text.append(chat_note(records))
            md.append(chat_note(records))
    if workload.load is not None:
        from .openloop import open_loop_report

        more_text, more_md = open_loop_report(workload, records)
        text += more_text
        md += more_md
    elif workload.sweep or workload.slos:
        levels = goodput.levels(records, workload.slos)
        rows = [[strip_controls(c) for c in row] for row in goodput.sweep_table(levels,
                                                                             workload.slos)]
        knees = []
        if workload.sweep:
            for (model, _host, prompt), sweep in goodput.sweeps(levels).items():
                knees.append(f"{model} {prompt}: {goodput.knee(sweep).sentence}")
        slo_line = ("SLOs: " + ", ".join(s.text for s in workload.slos)
                    + " (goodput: output tok/s of the runs meeting every SLO)"
                    if workload.slos else "")  # fmt: skip
        text += ["", render_text(rows), *([slo_line] if slo_line else []), *knees]
        md += ["", render_markdown(rows), *(["", slo_line] if slo_line else []),
               *(f"- {k}" for k in knees)]  # fmt: skip
    if workload.localscore:
        lines = localscore.summary_lines(records, workload.skipped)
        text += ["", *lines]
        md += ["", *(f"- {line}" for line in lines)]
    notes = workload_notes(records)
    if notes:
        text += [""] + [f"note: {n}" for n in notes]
        md += [""] + [f"- note: {n}" for n in notes]
    return [strip_controls(t) for t in text], [strip_controls(m) for m in md]


def _write_outputs(
    args: argparse.Namespace,
    finished: SessionFinished,
    rows: list,
    env: dict | None = None,
    extra_md: Sequence[str] = (),
) -> None:
    records = [r.to_json() for r in finished.records]
    if env:  # self-contained, like `llmbench export`: the machine and the session travel along
        from ..telemetry.environment import machine_block

        machine, session = machine_block(env), {"id": finished.session_id, "environment": env}
        records = [{**r, "machine": machine, "session": session} for r in records]
    if args.json:
        Path(args.json).write_text(
            json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if args.csv:
        from ..exporting import write_export

        write_export(records, "csv", args.csv)
    if args.markdown:
        notes = [strip_controls(n) for n in footnotes(finished.groups)]
        text = render_markdown(rows) + "\n"
        if notes:
            text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        for title, table in extra_tables(finished.records):
            text += f"\n**{title}**\n\n{render_markdown(table)}\n"
        if extra_md:
            text += "\n".join(extra_md) + "\n"
        Path(args.markdown).write_text(text, encoding="utf-8")


def extra_tables(records: list) -> list[tuple[str, list[list[str]]]]:
    """Under the summary: each conversation by turn, then the judge's scores (inert cells)."""
    tables = conversation_tables(records)
    judged = judge_rows(records)
    if judged:
        tables.append((JUDGE_TITLE, judged))
    return [
        (strip_controls(title), [[strip_controls(c) for c in row] for row in rows])
        for title, rows in tables
    ]


def _gate(args: argparse.Namespace, finished: SessionFinished, store: Any) -> int:
    """The CI regression gate: exit 3 when a --fail-if rule is crossed (against --baseline, or
    an absolute threshold)."""
    from ..compare import evaluate_gate, load_baseline, parse_rule, ungated, unjudged_absolute

    rules = [parse_rule(r) for r in args.fail_if]
    current = [r.to_json() for r in finished.records]
    nothing = unjudged_absolute(current, rules)
    if nothing:
        raise LookupError(f"no successful run of this session has the figure of "
                          f"{', '.join(nothing)}: the gate would judge nothing")
    baseline = load_baseline(args.baseline, store) if args.baseline else []
    relative = any(not rule.absolute for rule in rules)  # and then run_batch saw a baseline
    unjudged = ungated(current, baseline) if relative else []
    if unjudged and len(unjudged) == len(ungated(current, [])):
        # Nothing in common with the baseline: a gate that judged nothing must not pass.
        raise LookupError(f"the baseline {args.baseline} has no runs of the same model, prompt "
                          f"and host as this session ({strip_controls('; '.join(unjudged))})")
    for label in unjudged:
        print(f"llmbench: warning: not in the baseline, not gated: {strip_controls(label)}",
              file=sys.stderr)
    from ..compare import condition_notes, machine_notes, record_machines

    names = ("the baseline", "this session")
    notes = machine_notes(record_machines(baseline, store), record_machines(current, store), names)
    for note in notes + condition_notes(baseline, current, names):
        print(f"llmbench: note: {strip_controls(note)}", file=sys.stderr)
    violations = evaluate_gate(current, baseline, rules)
    for v in violations:
        print(f"REGRESSION: {strip_controls(v.sentence)}", file=sys.stderr)
    from ..report.gate import gate_report

    for line in gate_report(args.report_html, args.baseline, finished.session_id, current,
                            baseline, failed=bool(violations), store=store):  # fmt: skip
        print(f"llmbench: {line}", file=sys.stderr)
    if not violations:
        against = f" against {args.baseline}" if args.baseline else ""
        print(
            f"regression gate passed{against} "
            f"({len(rules)} rule{'s' if len(rules) != 1 else ''})",
            file=sys.stderr,
        )
    return EXIT_REGRESSION if violations else EXIT_OK


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse unwritable --json/--csv/--markdown paths before running, not after: with
    --no-store those files are the only copy of the results."""
    for flag in ("json", "csv", "markdown"):
        raw = getattr(args, flag)
        if not raw:
            continue
        path = Path(raw)
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UsageError(f"--{flag} {raw}: is a folder, not a file")
        if not parent.is_dir():
            raise UsageError(f"--{flag} {raw}: the folder {parent} does not exist")
        if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"--{flag} {raw}: not writable")


def run_batch(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="llmbench: %(message)s")
    try:
        check_output_paths(args)
        plan = build_plan(args)
        check_workload(plan, args.ollama_host)
        if args.fail_if:
            from ..compare import parse_rule

            for rule in args.fail_if:
                if not parse_rule(rule).absolute and not args.baseline:
                    raise UsageError(f"--fail-if needs --baseline SESSION_OR_FILE for {rule!r} "
                                     '(an absolute rule such as "score<7" does not)')
    except (SuiteError, UsageError, ValueError) as exc:
        print(f"llmbench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        busy = check_idle(args, plan)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    try:
        store = _open_store(args)
    except Exception as exc:  # StoreError: corrupt or newer file, unreadable dir
        print(f"llmbench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    hub = _start_telemetry(args)
    if hub is not None:
        hub.pre_session = busy
    engine = Engine(
        plan,
        pool=BackendPool(ollama_host=args.ollama_host),
        store=store,
        telemetry=hub,
        on_event=Progress(),
    )
    try:
        finished = asyncio.run(_run(engine))
    finally:
        if hub is not None:
            hub.stop()
        spooled = store.spooled if store is not None else 0
        if store is not None:
            store.close()  # folds the journal into history.json; sends a spool if it can
    rows = [[strip_controls(c) for c in row] for row in summary_table(finished.groups)]
    print(render_text(rows))
    for note in footnotes(finished.groups):
        print(strip_controls(note))
    for title, table in extra_tables(finished.records):
        print(f"\n{title}\n{render_text(table)}")
    extra_text, extra_md = workload_report(plan, finished)
    for line in extra_text:
        print(line)
    print(
        f"session {finished.session_id}"
        + ("" if store is None else f" stored in {store.location}" if not spooled
           else " kept in the local spool (see below)")
    )
    if spooled:
        print(
            f"llmbench: warning: {spooled} run(s) were kept in the local spool while "
            f"{store.location} was away; they are sent when it is back (at the next command, "
            "or `llmbench store sync`)",
            file=sys.stderr,
        )
    if not finished.stored:
        print(
            "llmbench: some runs could not be stored in the database (see messages above); "
            "use --json to keep them",
            file=sys.stderr,
        )
    try:
        _write_outputs(
            args, finished, rows, hub.last_environment if hub is not None else None, extra_md
        )
    except OSError as exc:
        print(f"llmbench: could not write the results file: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if finished.cancelled:
        return EXIT_INTERRUPTED
    code = EXIT_OK if all(r.status == "ok" for r in finished.records) else EXIT_FAILED
    if args.fail_if:
        try:
            gate = _gate(args, finished, store)
        except (ValueError, LookupError, OSError) as exc:
            print(f"llmbench: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if gate:
            return gate
    return code
