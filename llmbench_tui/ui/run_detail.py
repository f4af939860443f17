"""The detail of one run: figures with their definitions, the response, charts, environment and
the answer's quality checks.

Client and server figures sit in one row per figure so the harness overhead (client vs server
decode rate) is visible. The definition of the highlighted figure is shown in
full under the table, so the "help" for a figure needs no mouse hover. A figure the engine found
physically impossible (``efficiency.implausible``: a decode rate above the bandwidth ceiling) is
marked ``!`` and its definition says so; it is never shown as if it were true.

The Environment tab names the machine (the run's ``machine`` block, else its session's), the run's
conditions (how busy the machine was with other work, threads, shared streams), the record's
warnings, and the session's environment (without the per-model part, which is the run's own
``environment``). The Checks tab lists each quality check with its verdict, score and detail.

The response and every other model-, user- or machine-provided string (check details, host names
from imported files) pass through ``safe_text.strip_controls`` and are shown as plain
text: ``Text`` objects or a read-only ``TextArea``, never parsed as markup.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane, TextArea

from ..formatting import fmt_num, local_time
from ..safe_text import inert, one_line, strip_controls
from ..schema import get_path
from ..telemetry.environment import machine_line
from .charts import TokensChart, telemetry_charts
from .clipboard import copy_text
from .turn_chart import TurnChartPanel
from .turns import verdicts_table

# (label, client path, server path, format, definition) - definitions follow README Metrics.
FIGURES: tuple[tuple[str, str | None, str | None, str, str], ...] = (
    ("TTFT s", "timings.ttft_s", None, "{:.4f}",
     "Time to first token: t_first - t_send, where t_first is the first chunk carrying generated "
     "text (content or thinking); role-only or empty chunks do not count."),
    ("TTFC s", "timings.ttfc_s", None, "{:.4f}",
     "Time to first content: first chunk carrying answer content - t_send (thinking models)."),
    ("decode tok/s", "timings.decode_tok_s", "server.decode_tok_s", "{:.2f}",
     "Client: (output_tokens - 1) / (t_last - t_first). Server: eval_count / eval_duration. "
     "The gap between them is harness and network overhead."),
    ("prompt tok/s", None, "server.prompt_tok_s", "{:.1f}",
     "Server only: prompt_eval_count / prompt_eval_duration (prompt processing rate)."),
    ("TPOT s", "timings.tpot_s", None, "{:.5f}",
     "Time per output token: (t_last - t_first) / (output_tokens - 1); empty under 2 tokens."),
    ("end-to-end s", "timings.e2e_s", "server.total_s", "{:.3f}",
     "Client: t_last - t_send. Server: total_duration reported by the backend."),
    ("ITL p50 s", "timings.itl_p50_s", None, "{:.5f}",
     "Inter-token latency median: gaps t_i - t_(i-1) for i >= 1 (TTFT excluded); per chunk "
     "unless the backend says how many tokens a chunk holds."),
    ("ITL p90 s", "timings.itl_p90_s", None, "{:.5f}", "Inter-token latency, 90th percentile."),
    ("ITL p99 s", "timings.itl_p99_s", None, "{:.5f}", "Inter-token latency, 99th percentile."),
    ("ITL max s", "timings.itl_max_s", None, "{:.5f}",
     "Longest gap between two tokens: a stall shows here and as a flat step in the chart."),
    ("load s", None, "server.load_s", "{:.3f}",
     "Server only: load_duration, time the server spent loading the model for this request."),
    ("prompt eval s", None, "server.prompt_eval_s", "{:.3f}", "Server only: prompt_eval_duration."),
    ("eval s", None, "server.eval_s", "{:.3f}", "Server only: eval_duration (decoding time)."),
    ("output tokens", "tokens.output", "server.eval_count", "{:.0f}",
     "The server's count of generated tokens when given (tokens.source says server or client); "
     "otherwise the number of chunks. Never re-tokenized."),
    ("prompt tokens", "tokens.prompt", "server.prompt_eval_count", "{:.0f}",
     "Prompt tokens as counted by the server."),
    ("chunks", "timings.chunks", None, "{:.0f}", "Number of text-bearing chunks received."),
    ("output chars", "timings.output_chars", None, "{:.0f}", "Length of the answer in characters."),
    ("bytes/s", "timings.bytes_per_s", None, "{:.1f}", "UTF-8 bytes of the answer / e2e_s."),
    ("CPU % mean", "telemetry.cpu_pct.mean", None, "{:.1f}",
     "System CPU utilisation (psutil), mean of samples taken during the run."),
    ("CPU % max", "telemetry.cpu_pct.max", None, "{:.1f}", "System CPU utilisation, peak sample."),
    ("RAM MB mean", "telemetry.ram_used_mb.mean", None, "{:.0f}", "System RAM used, mean."),
    ("proc CPU % mean", "telemetry.proc_cpu_pct.mean", None, "{:.1f}",
     "CPU of the serving process(es) (can exceed 100 % on several cores), mean."),
    ("proc RSS MB max", "telemetry.proc_rss_mb.max", None, "{:.0f}",
     "Resident memory of the serving process(es), peak."),
    ("GPU util % mean", "telemetry.gpus.0.util_pct.mean", None, "{:.1f}",
     "NVML utilisation of GPU 0, mean over the run."),
    ("GPU power W mean", "telemetry.gpus.0.power_w.mean", None, "{:.1f}",
     "NVML power draw of GPU 0, mean over the run."),
    ("GPU energy J", "telemetry.gpus.0.energy_j", None, "{:.1f}",
     "GPU 0 energy counter at the end minus at the start of the run."),
    ("J/token", "efficiency.j_per_token", None, "{:.3f}", "energy_j / output_tokens."),
    ("achieved GB/s", "efficiency.achieved_gb_s", None, "{:.1f}",
     "model_bytes x decode_tok_s / 1e9: memory bandwidth the decoding needed."),
    ("MBU", "efficiency.mbu", None, "{:.2f}",
     "Model bandwidth utilisation: achieved_gb_s / peak_gb_s of the device."),
    ("ceiling tok/s", "efficiency.ceiling_tok_s", None, "{:.1f}",
     "The physical ceiling of the decode rate: peak_gb_s / model bytes (each token reads the "
     "whole model once); a measured rate above it is impossible."),
    ("score", "quality.score", None, "{:.1f}", "Quality score 0-10 from the prompt's checks."),
)  # fmt: skip


def figure(record: dict[str, Any], path: str | None, fmt: str) -> str:
    """A figure formatted, or ``-``; list indices (``gpus.0``) are followed too."""
    if path is None:
        return ""
    node: Any = record
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return "-"
    if isinstance(node, bool) or not isinstance(node, int | float):
        return "-"
    return fmt.format(node)


IMPOSSIBLE = (
    "physically impossible: above the bandwidth ceiling. The peak bandwidth or the model's size "
    "is wrong (run `llmbench calibrate` again), so this figure is not meaningful. "
)
VERDICT = {True: ("✓", "green"), False: ("✗", "bold red"), None: ("not run", "dim")}
DETAIL_WIDTH = 60  # a check's detail in the table; the highlighted one is shown in full below


def implausible_paths(record: dict[str, Any]) -> set[str]:
    """The figure paths the engine flagged as physically impossible (``efficiency.implausible``)."""
    flagged = get_path(record, "efficiency.implausible")
    return {p for p in flagged if isinstance(p, str)} if isinstance(flagged, list) else set()


def record_warnings(record: dict[str, Any]) -> list[str]:
    warnings = record.get("warnings")
    return [str(w) for w in warnings if w] if isinstance(warnings, list) else []


def _pct(value: Any) -> str:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:.0f} %" if number else "-"


def condition_lines(record: dict[str, Any]) -> list[str]:
    """The run's conditions (``efficiency.conditions``) as sentences; empty when none were kept."""
    from ..telemetry.efficiency import BUSY_OTHER_CPU_PCT

    cond = get_path(record, "efficiency.conditions")
    if not isinstance(cond, dict):
        return []
    lines = []
    mean, peak = cond.get("other_cpu_pct"), cond.get("other_cpu_pct_max")
    if mean is not None or "busy" in cond:
        line = f"other processes' CPU: {_pct(mean)} of the machine (peak {_pct(peak)})"
        if cond.get("busy"):
            line += (f": busy, above {BUSY_OTHER_CPU_PCT:.0f} %, so this run's figures are not "
                     "comparable")  # fmt: skip
        elif mean is not None:
            line += f": quiet (busy above {BUSY_OTHER_CPU_PCT:.0f} %)"
        lines.append(line)
    if cond.get("threads"):
        lines.append(f"threads: {one_line(cond['threads'])} (the in-process engine's)")
    if cond.get("cpu_shared_streams"):
        lines.append(f"shared: {one_line(cond['cpu_shared_streams'])} in-process streams shared "
                     "one model instance and its threads")  # fmt: skip
    if cond.get("context_length"):
        lines.append(f"context allocated: {one_line(cond['context_length'])} tokens")
    return lines


def session_condition_line(session: dict[str, Any] | None) -> str | None:
    """How busy the machine was as the session began (``environment.conditions``)."""
    env = session.get("environment") if isinstance(session, dict) else None
    cond = env.get("conditions") if isinstance(env, dict) else None
    if not isinstance(cond, dict):
        return None
    state = "idle" if cond.get("idle") else "not idle" if cond.get("idle") is False else "?"
    line = f"as the session began: {state}, other processes used {_pct(cond.get('other_cpu_pct'))}"
    top = [t for t in cond.get("top") or [] if isinstance(t, dict)]
    if top and cond.get("idle") is False:
        line += " (" + ", ".join(
            f"{one_line(t.get('name'), 24)} {_pct(t.get('cpu_pct'))}" for t in top
        ) + ")"
    load = cond.get("load_avg")
    if isinstance(load, list) and load:
        line += f"; load average {fmt_num(load[0])} on {one_line(cond.get('cpus'))} CPUs"
    return line


def machine_lines(machine: dict[str, Any]) -> list[str]:
    """The machine block, one field a line, for people."""
    ram = machine.get("ram_mb")
    gib = f"{ram / 1024:.1f} GiB" if isinstance(ram, int | float) else None
    cores = " / ".join(
        f"{machine[k]} {label}" for k, label in (("cores", "cores"), ("threads", "threads"))
        if machine.get(k)
    )  # fmt: skip
    fields = (
        ("host", machine.get("hostname")), ("OS", machine.get("os")),
        ("kernel", machine.get("kernel")), ("arch", machine.get("arch")),
        ("CPU", machine.get("cpu")), ("CPUs", cores or None), ("RAM", gib),
        ("GPU", machine.get("gpu") or "none"), ("GPU driver", machine.get("gpu_driver")),
        ("machine id", machine.get("machine_id")),
    )  # fmt: skip
    return [f"{label}: {one_line(value)}" for label, value in fields if value not in (None, "")]


def check_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    quality = record.get("quality")
    checks = quality.get("checks") if isinstance(quality, dict) else None
    return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []


def quality_summary(record: dict[str, Any]) -> str:
    """``score 6.7/10 · 3 checks: 2 passed, 1 failed · scored 2025-...``, or why there is none."""
    quality = record.get("quality")
    if not isinstance(quality, dict):
        if record.get("status") != "ok":
            return "Not scored: only answers of successful runs are scored."
        return "Not scored: the prompt has no checks (add [[prompts.checks]] to the suite)."
    score = quality.get("score")
    shown = f"score {score:.1f}/10" if isinstance(score, int | float) else "no score (no check ran)"
    checks = check_rows(record)
    counts = {True: 0, False: 0, None: 0}
    for check in checks:
        passed = check.get("passed")
        counts[passed if isinstance(passed, bool) else None] += 1
    parts = [f"{counts[True]} passed", f"{counts[False]} failed"]
    if counts[None]:
        parts.append(f"{counts[None]} not run (left out of the score)")
    line = f"{shown} · {len(checks)} checks: {', '.join(parts)}"
    if quality.get("scored_at"):
        line += f" · scored {local_time(quality.get('scored_at'))}"
    for old in record.get("quality_history") or []:
        if isinstance(old, dict):
            line += (f"\nearlier: {one_line(fmt_num(old.get('score'), 3))}/10 scored "
                     f"{local_time(old.get('scored_at'))}")  # fmt: skip
    return line


def overhead(record: dict[str, Any]) -> str | None:
    """Client vs server decode rate, in % of the server's (the harness/network share)."""
    client = get_path(record, "timings.decode_tok_s")
    server = get_path(record, "server.decode_tok_s")
    if not isinstance(client, int | float) or not isinstance(server, int | float) or not server:
        return None
    return f"{(client - server) / server * 100:+.1f} %"


def _json_text(data: Any) -> Text:
    raw = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str)
    return inert(raw.decode())


class RunDetailScreen(Screen):
    """Everything stored about one run; Escape goes back to the list."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("1", "tab('tab-figures')", "Figures"),
        Binding("2", "tab('tab-response')", "Response"),
        Binding("3", "tab('tab-charts')", "Charts"),
        Binding("4", "tab('tab-env')", "Env"),
        Binding("j", "judge_tab", "Judge", show=False),
        Binding("5", "tab('tab-checks')", "Checks"),
        Binding("y", "copy_id", "Copy id"),
        Binding("Y", "copy_response", "Copy response"),
    ]
    DEFAULT_CSS = """
    RunDetailScreen #detail-title { height: auto; max-height: 2; background: $boost; padding: 0 1; }
    RunDetailScreen TabbedContent { height: 1fr; }
    RunDetailScreen TabPane { padding: 0; }
    RunDetailScreen #figures { height: 1fr; }
    RunDetailScreen #definition { height: auto; min-height: 3; max-height: 7; padding: 0 1;
                                  color: $text-muted; border-top: solid $primary; }
    RunDetailScreen #response { height: 1fr; }
    RunDetailScreen .note { height: auto; padding: 0 1; color: $warning; }
    RunDetailScreen .heading { text-style: bold; margin-top: 1; }
    RunDetailScreen #checks { height: auto; max-height: 1fr; }
    RunDetailScreen #checks-summary { height: auto; padding: 0 1; background: $boost; }
    RunDetailScreen #check-detail { height: auto; min-height: 3; padding: 0 1;
                                    border-top: solid $primary; }
    RunDetailScreen #charts Chart { height: 12; }
    """

    def __init__(
        self,
        record: dict[str, Any],
        series: dict[str, Any] | None,
        *,
        session: dict[str, Any] | None = None,
        machine: dict[str, Any] | None = None,
    ) -> None:
        """``session``: the run's session (its environment is shown); ``machine``: the machine
        block when the record has none of its own (``Store.machine_of``)."""
        super().__init__()
        self.record = record
        self.series = series or {}
        self.session = session
        own = record.get("machine")
        self.machine = own if isinstance(own, dict) else machine
        self.implausible = implausible_paths(record)
        self.checks = check_rows(record)

    def compose(self) -> ComposeResult:
        r = self.record
        title = Text.assemble(
            (strip_controls(str(r.get("model"))), "bold"), "  ",
            strip_controls(f"{r.get('backend')}@{r.get('host') or 'local'}"), "  ",
            (strip_controls(str(r.get("status"))), "green" if r.get("status") == "ok" else "red"),
            "  ", strip_controls(str(r.get("started_at"))), "  ",
            (strip_controls(str(r.get("id"))), "dim"),
        )  # fmt: skip
        yield Static(title, id="detail-title")
        with TabbedContent(id="detail-tabs"):
            with TabPane("1 Figures", id="tab-figures"):
                warnings = record_warnings(r)
                if warnings:
                    more = f" (+{len(warnings) - 1} more in 4 Environment)"
                    more = more if len(warnings) > 1 else ""
                    yield Static(inert(f"! {one_line(warnings[0])}{more}"), classes="note",
                                 id="figures-warning")  # fmt: skip
                yield DataTable(id="figures", cursor_type="row", zebra_stripes=True)
                yield Static("", id="definition")
            with TabPane("2 Response", id="tab-response"):
                for label, key in (("error", "error"), ("thinking", "thinking")):
                    if r.get(key):
                        yield Static(inert(f"{label}: {r[key]}"), classes="note")
                yield TextArea(
                    strip_controls(r.get("response") or ""),
                    read_only=True, soft_wrap=True, show_line_numbers=False, id="response",
                )  # fmt: skip
            with TabPane("3 Charts", id="tab-charts"), VerticalScroll(id="charts"):
                if isinstance(r.get("turn"), int) and r.get("conversation_id"):
                    yield TurnChartPanel(r)
                yield TokensChart(self.series.get("arrivals_s"), id="chart-tokens")
                yield from telemetry_charts(self.series.get("telemetry"))
            with TabPane("4 Environment", id="tab-env"), VerticalScroll(id="env"):
                yield from self._conditions()
                yield Static(Text("prompt", style="bold"), classes="heading")
                yield Static(inert(r.get("prompt") or ""), id="env-prompt")
                if r.get("system"):
                    yield Static(inert(f"system: {r['system']}"))
                yield Static(Text("options", style="bold"))
                yield Static(_json_text(r.get("options") or {}), id="env-options")
                yield Static(Text("environment (the model)", style="bold"))
                yield Static(_json_text(r.get("environment") or {}), id="env-environment")
                env = self.session.get("environment") if isinstance(self.session, dict) else None
                if isinstance(env, dict) and env:
                    # Every model of the session is in its environment; this run's is above.
                    yield Static(Text("session environment", style="bold"))
                    shown = {k: v for k, v in env.items() if k != "models"}
                    yield Static(_json_text(shown), id="env-session")
                yield Static(_json_text({"tags": r.get("tags"), "session_id": r.get("session_id"),
                                         "warmup": r.get("warmup"), "cold": r.get("cold"),
                                         "repetition": r.get("repetition")}))  # fmt: skip
            with TabPane("5 Checks", id="tab-checks"):
                yield Static(inert(quality_summary(r)), id="checks-summary")
                if self.checks:
                    yield DataTable(id="checks", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="check-detail")
            if (verdicts := verdicts_table(r.get("quality"))) is not None:
                with TabPane("j Judge", id="tab-judge"), VerticalScroll(id="judge"):
                    yield Static(verdicts, id="judge-verdicts")
        yield Footer()

    def _conditions(self) -> ComposeResult:
        """Warnings, the machine and the run conditions: what the figures were measured under."""
        warnings = record_warnings(self.record)
        if warnings:
            yield Static(Text("warnings", style="bold"))
            text = Text()
            for i, warning in enumerate(warnings):
                text.append("\n" if i else "")
                text.append("! ", style="bold")
                text.append(strip_controls(warning))
            yield Static(text, classes="note", id="env-warnings")
        yield Static(Text("machine", style="bold"), classes="heading" if warnings else "")
        if self.machine:
            yield Static(inert(one_line(machine_line(self.machine))), id="env-machine-line")
            yield Static(inert("\n".join(machine_lines(self.machine))), id="env-machine")
        else:
            yield Static(Text("unknown: the run has no machine block and its session is not stored",
                              style="dim"), id="env-machine-line")  # fmt: skip
        lines = condition_lines(self.record)
        began = session_condition_line(self.session)
        if began:
            lines.append(began)
        if lines:
            yield Static(Text("run conditions", style="bold"), classes="heading")
            busy = bool(get_path(self.record, "efficiency.conditions.busy"))
            yield Static(inert("\n".join(lines), style="bold" if busy else ""),
                         id="env-conditions")  # fmt: skip

    def on_mount(self) -> None:
        table = self.query_one("#figures", DataTable)
        table.add_columns("figure", "client", "server")
        for label, client, server, fmt, _ in FIGURES:
            c, s = figure(self.record, client, fmt), figure(self.record, server, fmt)
            if c in ("", "-") and s in ("", "-"):
                continue
            cells = [self._figure_cell(c, client), self._figure_cell(s, server)]
            if {client, server} & self.implausible:
                label = f"! {label}"
            table.add_row(label, *cells, key=label)
        gap = overhead(self.record)
        if gap is not None:
            table.add_row("client vs server", Text(gap, justify="right"), "", key="overhead")
        self._fill_checks()
        table.focus()
        self._define(table)

    def _figure_cell(self, text: str, path: str | None) -> Text:
        if path is not None and path in self.implausible and text not in ("", "-"):
            return Text(f"! {text}", style="bold red", justify="right")
        return Text(text, justify="right")

    def _fill_checks(self) -> None:
        if not self.checks:
            return
        table = self.query_one("#checks", DataTable)
        table.add_columns("passed", "score", "check", "kind", "detail")
        for i, check in enumerate(self.checks):
            passed = check.get("passed")
            mark, style = VERDICT.get(passed if isinstance(passed, bool) else None, VERDICT[None])
            score = check.get("score")
            shown = f"{score:.2f}" if isinstance(score, int | float) else "-"
            # Names come from suite files, details from the model's answer: inert Text only.
            table.add_row(
                Text(mark, style=style), Text(shown, justify="right"),
                inert(one_line(check.get("name"), 40)), inert(one_line(check.get("kind"), 16)),
                inert(one_line(check.get("detail"), DETAIL_WIDTH)), key=str(i),
            )  # fmt: skip
        self._show_check(0)

    def _show_check(self, index: int) -> None:
        if not 0 <= index < len(self.checks):
            return
        check = self.checks[index]
        passed = check.get("passed")
        verdict = {True: "passed", False: "failed"}.get(passed, "not run") if isinstance(
            passed, bool | None) else "?"  # fmt: skip
        head = f"{one_line(check.get('name'))} ({one_line(check.get('kind'))}): {verdict}"
        detail = strip_controls(str(check.get("detail") or "no detail"))
        self.query_one("#check-detail", Static).update(Text(f"{head}\n{detail}"))

    @on(DataTable.RowHighlighted, "#checks")
    def _check_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_check(event.cursor_row)

    _DEFINITIONS = {f[0]: f[4] for f in FIGURES} | {
        "overhead": "(client decode tok/s - server decode tok/s) / server: the harness and "
        "network overhead the client measurement includes."
    }

    def _define(self, table: DataTable) -> None:
        if not table.row_count:
            self.query_one("#definition", Static).update(
                Text("No figures were recorded for this run.")
            )
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        label = key.removeprefix("! ")
        definition = self._DEFINITIONS.get(label, "")
        if key != label:
            definition = "! " + IMPOSSIBLE + definition
        # Text, not str: Static would parse a str as markup; a definition is plain prose.
        self.query_one("#definition", Static).update(Text(definition))

    @on(DataTable.RowHighlighted, "#figures")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._define(event.data_table)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "tab-checks" and self.checks:
            self.query_one("#checks", DataTable).focus()
        elif tab == "tab-figures":
            self.query_one("#figures", DataTable).focus()
        elif tab == "tab-env":
            self.query_one("#env").focus()  # arrows and PageDown scroll it

    def action_judge_tab(self) -> None:
        if self.query("#tab-judge"):
            self.action_tab("tab-judge")
        else:
            self.notify("this run was not judged: J on the history screen grades runs")

    def action_copy_id(self) -> None:
        copy_text(self.app, str(self.record.get("id")), "run id")

    def action_copy_response(self) -> None:
        copy_text(self.app, self.record.get("response") or "", "response")
