"""One model's output pane: a two-line header of live figures above a ``StreamLog``.

Once a run has finished, its header carries what its record says beyond the timings: the answer's
quality score (``score 7.5/10``, when its prompt has checks), a ``! warning`` marker when the
record holds warnings (the sentences themselves go into the pane's text, inert like the answer),
and the thread count of an in-process run (``efficiency.conditions.threads``).

The pane's state (text, figures, status) lives in ``PaneState``, not in the widgets, so the
dashboard can rebuild the panes when the layout switches between side by side and tabbed without
losing what was streamed. Every figure comes from engine events (which carry the backend's own
arrival instants); the widget never times anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ...engine.events import ChunkReceived, RunStarted
from ...safe_text import StreamSanitizer, strip_controls
from ...schema import RunRecord
from ..turns import turn_label
from .stream_log import StreamLog

_STATUS_STYLE = {
    "idle": "dim",
    "waiting": "yellow",
    "streaming": "bold green",
    "ok": "green",
    "error": "bold red",
    "timeout": "bold red",
    "cancelled": "bold yellow",
    "skipped": "dim yellow",
}


@dataclass
class PaneState:
    """Everything one pane shows; text is kept inert (sanitized) and buffered between flushes."""

    label: str
    status: str = "idle"
    run_no: int = 0
    runs: int = 0
    ttft_s: float | None = None
    tok_s: float | None = None
    tokens: int = 0
    elapsed_s: float = 0.0
    error: str | None = None
    text: list[str] = field(default_factory=list)  # flushed, inert chunks
    pending: list[str] = field(default_factory=list)  # raw chunks since the last flush
    sanitizer: StreamSanitizer = field(default_factory=StreamSanitizer)
    in_thinking: bool = False
    dirty: bool = True
    turn_totals: dict[str, int] = field(default_factory=dict)  # conversation id -> its turns
    judge: str | None = None  # "judge 7.0 ± 0.5" once a run of this pane was judged
    score: float | None = None  # the finished run's quality score (0-10)
    warnings: int = 0  # how many warnings the finished run's record holds
    threads: int | None = None  # llama.cpp threads of an in-process run
    shared: int | None = None  # in-process streams sharing one model instance

    def run_started(self, event: RunStarted, runs: int) -> None:
        self.run_no += 1
        self.runs = runs
        self.status = "waiting"
        self.ttft_s = self.tok_s = None
        self.tokens, self.elapsed_s, self.error = 0, 0.0, None
        self.score, self.warnings, self.threads, self.shared = None, 0, None, None
        self.in_thinking = False
        kind = " (warm-up)" if event.warmup else " (cold)" if event.cold else ""
        sep = "\n\n" if self.text or self.pending else ""
        what = turn_label(event.prompt_id, self.turn_totals) or f"run {self.run_no}/{runs}"
        self.pending.append(f"{sep}── {what}{kind} ──\n")
        self.dirty = True

    def chunk(self, event: ChunkReceived) -> None:
        """Called once per chunk: append to the buffer and copy figures; no widget work."""
        if event.thinking:
            if not self.in_thinking:
                self.pending.append("(thinking) ")
                self.in_thinking = True
            self.pending.append(event.thinking)
        if event.text:
            if self.in_thinking:
                self.pending.append("\n(answer) ")
                self.in_thinking = False
            self.pending.append(event.text)
        self.status = "streaming"
        self.tokens = event.chunks
        self.elapsed_s = event.elapsed_s
        self.ttft_s = event.ttft_s
        if event.ttft_s is not None and event.chunks > 1 and event.elapsed_s > event.ttft_s:
            self.tok_s = (event.chunks - 1) / (event.elapsed_s - event.ttft_s)
        self.dirty = True

    def finished(self, record: RunRecord) -> None:
        """Replace the live figures by the record's own (the stored, authoritative ones)."""
        t = record.timings
        self.status = record.status
        self.ttft_s = t.ttft_s
        self.tok_s = t.decode_tok_s
        self.tokens = record.tokens.output or t.chunks
        self.elapsed_s = t.e2e_s or self.elapsed_s
        self.error = record.error
        if record.status == "skipped":  # never started: it gets its separator here
            self.run_no += 1
            sep = "\n\n" if self.text or self.pending else ""
            what = turn_label(record.prompt_id, self.turn_totals) or "run"
            self.pending.append(f"{sep}── {what} · skipped ──")
        if record.status != "ok" and record.error:
            self.pending.append(f"\n[{record.status}] {record.error}\n")
        quality = record.quality
        self.score = quality.score if quality is not None else None
        conditions = _conditions(record)
        threads, shared = conditions.get("threads"), conditions.get("cpu_shared_streams")
        self.threads = threads if isinstance(threads, int) and threads > 0 else None
        self.shared = shared if isinstance(shared, int) and shared > 1 else None
        warnings = [str(w) for w in getattr(record, "warnings", None) or [] if w]
        self.warnings = len(warnings)
        if warnings:
            # Into the pane's text: sanitized on the way to the screen like the answer.
            sep = "\n" if self.text or self.pending else ""
            self.pending.append(sep + "".join(f"\n! warning: {w}" for w in warnings) + "\n")
        self.dirty = True

    def take_text(self, final: bool = False) -> str:
        """Sanitize and move the buffered chunks into ``text``; return what is new."""
        raw = "".join(self.pending)
        self.pending.clear()
        new = self.sanitizer.feed(raw)
        if final:
            new += self.sanitizer.flush()
        if new:
            self.text.append(new)
        return new

    def header(self) -> Text:
        """Two lines: model and status, then the live figures (Text parts: labels are
        untrusted too)."""
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(f"● {self.status}", style=_STATUS_STYLE.get(self.status, ""))
        if self.runs:
            out.append(f" {self.run_no}/{self.runs}", style="dim")
        if self.warnings:
            plural = f"{self.warnings} warnings" if self.warnings > 1 else "warning"
            out.append(f" ! {plural}", style="bold yellow")
        if self.judge:  # first line: narrow panes cut the second
            out.append(f"  {self.judge}", style="bold")
        out.append("  ")
        out.append(strip_controls(self.label), style="bold")
        if self.score is not None:
            out.append(f"  score {self.score:.1f}/10", style="bold")
        ttft = f"{self.ttft_s:.3f}s" if self.ttft_s is not None else "-"
        tok_s = f"{self.tok_s:.1f}" if self.tok_s is not None else "-"
        out.append(f"\nTTFT {ttft}  {tok_s} tok/s  {self.tokens} tok  {self.elapsed_s:.1f}s")
        if self.threads is not None:
            out.append(f"  {self.threads} threads", style="dim")
        if self.shared is not None:
            out.append(f"  shared x{self.shared}", style="yellow")
        return out


def _conditions(record: RunRecord) -> dict:
    """``efficiency.conditions`` of a record (an extra field of ``Efficiency``), or ``{}``."""
    efficiency = record.efficiency
    extra = (efficiency.model_extra or {}) if efficiency is not None else {}
    conditions = extra.get("conditions")
    return conditions if isinstance(conditions, dict) else {}


class StreamPane(Vertical):
    """Header + log for one model; ``flush`` moves buffered text onto the screen."""

    DEFAULT_CSS = """
    StreamPane { height: 1fr; min-width: 20; }
    StreamPane > .pane-header { height: 2; background: $panel; padding: 0 1; }
    StreamPane > StreamLog { height: 1fr; padding: 0 1; }
    """

    def __init__(self, state: PaneState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self._header = Static(state.header(), classes="pane-header")
        self._log = StreamLog()
        # A rebuilt pane (layout switch) starts with everything streamed so far.
        self._log.append("".join(state.text))

    def compose(self) -> ComposeResult:
        yield self._header
        yield self._log

    @property
    def log_widget(self) -> StreamLog:
        return self._log

    def flush(self, final: bool = False) -> None:
        state = self.state
        if not (state.dirty or state.pending):
            return
        new = state.take_text(final)
        if new:
            self._log.append(new)
        if final or state.status not in ("waiting", "streaming"):
            self._log.sync_scrollbar()  # a stream that ended shows its scrollbar exact
        self._header.update(state.header(), layout=False)  # fixed height: no re-layout
        state.dirty = False
