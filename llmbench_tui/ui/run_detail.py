"""The detail of one run: figures with their definitions, the response, charts, environment.

Client and server figures sit in one row per figure so the harness overhead (client vs server
decode rate) is visible. The definition of the highlighted figure is shown in full under the
table, so the "help" for a figure needs no mouse hover. The response and every
other model- or user-provided string pass through ``safe_text.strip_controls`` and are
shown as plain text in a read-only ``TextArea`` (scrollable, selectable, never parsed as markup).
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

from ..safe_text import inert, strip_controls
from ..schema import get_path
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
        Binding("y", "copy_id", "Copy id"),
        Binding("Y", "copy_response", "Copy response"),
    ]
    DEFAULT_CSS = """
    RunDetailScreen #detail-title { height: auto; max-height: 2; background: $boost; padding: 0 1; }
    RunDetailScreen TabbedContent { height: 1fr; }
    RunDetailScreen TabPane { padding: 0; }
    RunDetailScreen #figures { height: 1fr; }
    RunDetailScreen #definition { height: 3; padding: 0 1; color: $text-muted;
                                  border-top: solid $primary; }
    RunDetailScreen #response { height: 1fr; }
    RunDetailScreen .note { height: auto; padding: 0 1; color: $warning; }
    RunDetailScreen #charts Chart { height: 12; }
    """

    def __init__(self, record: dict[str, Any], series: dict[str, Any] | None) -> None:
        super().__init__()
        self.record = record
        self.series = series or {}

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
            with TabPane("4 Environment", id="tab-env"), VerticalScroll():
                yield Static(Text("prompt", style="bold"))
                yield Static(inert(r.get("prompt") or ""), id="env-prompt")
                if r.get("system"):
                    yield Static(inert(f"system: {r['system']}"))
                yield Static(Text("options", style="bold"))
                yield Static(_json_text(r.get("options") or {}), id="env-options")
                yield Static(Text("environment", style="bold"))
                yield Static(_json_text(r.get("environment") or {}), id="env-environment")
                yield Static(_json_text({"tags": r.get("tags"), "session_id": r.get("session_id"),
                                         "warmup": r.get("warmup"), "cold": r.get("cold"),
                                         "repetition": r.get("repetition")}))  # fmt: skip
            if (verdicts := verdicts_table(r.get("quality"))) is not None:
                with TabPane("j Judge", id="tab-judge"), VerticalScroll(id="judge"):
                    yield Static(verdicts, id="judge-verdicts")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#figures", DataTable)
        table.add_columns("figure", "client", "server")
        for label, client, server, fmt, _ in FIGURES:
            c, s = figure(self.record, client, fmt), figure(self.record, server, fmt)
            if c in ("", "-") and s in ("", "-"):
                continue
            table.add_row(label, Text(c, justify="right"), Text(s, justify="right"), key=label)
        gap = overhead(self.record)
        if gap is not None:
            table.add_row("client vs server", Text(gap, justify="right"), "", key="overhead")
        table.focus()
        self._define(table)

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
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        # Text, not str: Static would parse a str as markup; a definition is plain prose.
        self.query_one("#definition", Static).update(Text(self._DEFINITIONS.get(key or "", "")))

    @on(DataTable.RowHighlighted, "#figures")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._define(event.data_table)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_judge_tab(self) -> None:
        if self.query("#tab-judge"):
            self.action_tab("tab-judge")
        else:
            self.notify("this run was not judged: J on the history screen grades runs")

    def action_copy_id(self) -> None:
        copy_text(self.app, str(self.record.get("id")), "run id")

    def action_copy_response(self) -> None:
        copy_text(self.app, self.record.get("response") or "", "response")
