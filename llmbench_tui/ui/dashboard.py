"""The main screen: choose models, type a prompt, run, watch the streams and the meters.

The engine runs inside the app's event loop as a worker; its ``on_event`` callback only copies
figures and appends text to per-pane buffers (``PaneState``). A timer at ``FLUSH_HZ`` moves the
buffered text onto the screen, so the cost of drawing does not grow with the token rate — on a
2-core machine drawing each token as it arrives would steal the CPU the model is measured on.
Every figure shown comes from the engine's events and records, never from the widget's clock.

Before a session starts, the telemetry hub says how busy the machine was with other work over the
sampler's last second (``TelemetryHub.recent_busy``, no waiting): when it is not idle a warning
toast says so, and the measurement is handed to the hub (``pre_session``) so the session's
environment records it, exactly as ``--batch`` does with its own measurement.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Button, Footer, Static, TabbedContent, TabPane

from ..backends.base import BackendError
from ..backends.ollama_models import delete as delete_model
from ..engine.events import (
    ChunkReceived,
    Event,
    RunFinished,
    RunJudged,
    RunStarted,
    SessionFinished,
    SessionStarted,
)
from ..engine.runner import Engine, Plan
from ..fit.files import usual_dirs
from ..fit.listing import fits_for, machine_now
from ..safe_text import notify_inert, strip_controls
from ..schema import ModelSpec, PromptSpec
from .discovery import discover
from .turns import conversation_totals, judge_figure
from .widgets.dialogs import KeyHelp, RecentPrompts, SuitePath
from .widgets.meters import MeterBar
from .widgets.model_dialogs import ConfirmDelete, GGUFFiles, PullDialog
from .widgets.model_picker import ModelPicker
from .widgets.options_form import OptionsError, OptionsForm
from .widgets.prompt_pane import PromptPane
from .widgets.results import ResultStrip
from .widgets.session_extras import SessionExtras
from .widgets.stream_pane import PaneState, StreamPane

FLUSH_HZ = 4
SIDE_BY_SIDE_MIN = 32  # columns each pane needs before panes go side by side instead of tabs
IDLE_HINT = (
    "Tick models (space), then p (or alt+p) to type a prompt, F5 to run; Esc cancels.\n"
    "Tab moves between panes.  F1 lists every key.  F2 opens the history.\n"
    "F8 pulls an Ollama model, d deletes one, f lists GGUF files with their fit."
)


class Dashboard(Screen):
    """Prompt, model picker, options, output panes, meters and the result strip."""

    BINDINGS = [
        Binding("f5,r", "run", "Run", id="run"),
        Binding("escape", "cancel", "Cancel", id="cancel", priority=True),
        Binding("f1,question_mark", "help", "Keys", id="help"),
        Binding("f2,h", "history", "History", id="history"),
        Binding("f3,e", "recent", "Recent", id="recent"),
        Binding("f4,l", "load_suite", "Suite", id="load_suite"),
        Binding("f6,R", "refresh_models", "Refresh", id="refresh_models"),
        Binding("f7,z", "zoom", "Zoom", id="zoom"),
        Binding("f8,g", "pull_model", "Pull Ollama model", show=False, id="pull_model"),
        Binding("d", "delete_model", "Delete Ollama model", show=False, id="delete_model"),
        Binding("f", "gguf_files", "GGUF files", show=False, id="gguf_files"),
        Binding("slash", "focus('model-filter')", "Filter", show=False, id="filter"),
        Binding("p,alt+p", "focus('prompt')", "Prompt", show=False, id="focus_prompt"),
        Binding("m,alt+m", "focus('model-list')", "Models", show=False, id="focus_models"),
        Binding("o,alt+o", "focus('opt-temperature')", "Options", show=False, id="focus_options"),
        Binding("f10,q", "app.quit", "Quit", id="quit"),
    ]

    def __init__(self, preselected: list[str] | None = None) -> None:
        super().__init__()
        self.preselected = list(preselected or [])
        self.engine: Engine | None = None
        self.states: dict[str, PaneState] = {}
        self._by_run: dict[str, PaneState | None] = {}
        self._panes: dict[str, StreamPane] = {}
        self._runs_per_model = 0
        self._layout = ""
        self._progress = ""
        self._status_shown: tuple[str, bool] | None = None
        self.last_finished: SessionFinished | None = None
        self._plan: Plan | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(Text("llmbench", style="bold"), id="status-line")
        yield MeterBar(id="meters")
        with Horizontal(id="main"):
            with VerticalScroll(id="setup"):
                yield ModelPicker(self.preselected, id="picker")
                yield PromptPane(id="prompt-pane")
                yield OptionsForm(id="options")
                with Horizontal(id="buttons"):
                    yield Button("Run  F5", id="run-button", variant="primary", compact=True)
                    yield Button(
                        "Cancel  Esc",
                        id="cancel-button",
                        variant="error",
                        compact=True,
                        disabled=True,
                    )
            with Vertical(id="output"):
                with Vertical(id="panes"):
                    yield Static(IDLE_HINT, id="idle-hint")
                yield ResultStrip(id="results")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1 / FLUSH_HZ, self._flush)
        interval = getattr(self.app, "sample_interval", 0.5)
        self.set_interval(max(0.25, interval), self._tick_meters)
        # Models first: a user picks what to run, then types; single-letter keys (p, o, r, h…)
        # work from the list, and alt+p / alt+m / alt+o jump from inside any text field.
        self.query_one("#model-list").focus()
        self._update_status()
        self.action_refresh_models()

    @property
    def running(self) -> bool:
        return self.engine is not None

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel":
            return self.running
        if action == "run":
            return True if not self.running else None  # shown dimmed while running
        return True

    # ------------------------------------------------------------------ actions

    def action_refresh_models(self) -> None:
        self.query_one(ModelPicker).set_loading_text()
        self._discover()

    @work(exclusive=True, group="discovery")
    async def _discover(self) -> None:
        picker = self.query_one(ModelPicker)
        sources = await discover(self.app.pool, self.app.ollama_host)
        picker.set_sources(sources)
        machine = await machine_now(getattr(self.app, "data_dir", None))
        picker.set_fits(await fits_for(picker.infos(), self.app.pool, machine))

    # ------------------------------------------------------------------ getting models

    def _ollama_where(self) -> str:
        from ..backends.ollama import resolve_host

        return resolve_host(self.app.ollama_host)

    def action_pull_model(self) -> None:
        self.app.push_screen(PullDialog(self.app.ollama_host, self._ollama_where()), self._pulled)

    def _pulled(self, name: str | None) -> None:
        if name:
            notify_inert(self, f"pulled {name}")
            self.action_refresh_models()

    def action_delete_model(self) -> None:
        label = self.query_one(ModelPicker).highlighted_label()
        spec = ModelSpec.parse(label) if label else None
        if spec is None or spec.backend != "ollama":
            self.notify("Highlight an Ollama model to delete it.", severity="warning")
            return
        where = spec.host or self._ollama_where()

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(spec, label)

        self.app.push_screen(ConfirmDelete(spec.name, where), confirmed)

    @work(group="delete-model")
    async def _delete(self, spec: ModelSpec, label: str) -> None:
        try:
            await delete_model(spec.name, spec.host or self.app.ollama_host)
        except BackendError as exc:
            notify_inert(self, str(exc), severity="error")
            return
        picker = self.query_one(ModelPicker)
        if label in picker.chosen:
            picker.chosen.remove(label)
        notify_inert(self, f"deleted {spec.name}")
        self.action_refresh_models()

    def action_gguf_files(self) -> None:
        folders = [Path(d).expanduser() for d in getattr(self.app, "models_dirs", [])]
        folders += [d for d in usual_dirs() if d not in folders]
        dialog = GGUFFiles(folders, getattr(self.app, "data_dir", None))
        self.app.push_screen(dialog, self._gguf_picked)

    def _gguf_picked(self, path: str | None) -> None:
        if path:
            picker = self.query_one(ModelPicker)
            label = ModelSpec(backend="gguf", name=path).label
            picker.choose([*[c for c in picker.chosen if c != label], label])

    def action_focus(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    def action_zoom(self) -> None:
        self.toggle_class("-zoom")
        if self.states:
            self.call_after_refresh(self._relayout)

    def action_help(self) -> None:
        self.app.push_screen(KeyHelp(self.app.binding_rows()))

    def action_recent(self) -> None:
        prompts = self.app.settings.recent_prompts
        if not prompts:
            self.notify("no recent prompts yet: prompts are remembered when you run them")
            return

        def fill(prompt: str | None) -> None:
            if prompt is not None:
                self.query_one(PromptPane).fill(prompt, self.query_one(PromptPane).system)

        self.app.push_screen(RecentPrompts(prompts), callback=fill)

    def action_history(self) -> None:
        # Imported on first use: the history's views bring the chart library, which the
        # dashboard need not load before it can start.
        from .history import HistoryScreen

        self.app.push_screen(HistoryScreen(self.app.store), callback=self.apply_rerun)

    def apply_rerun(self, request) -> None:
        """Fill the form from a ``RerunRequest`` the history screen dismissed with."""
        if request is None:
            return
        self.query_one(ModelPicker).choose([request.model_spec])
        self.query_one(PromptPane).fill(request.prompt, request.system)
        self.query_one(OptionsForm).fill(request.options or {})
        notify_inert(self, f"loaded {request.model_spec}: press F5 to run it again")

    def action_load_suite(self) -> None:
        from ..suite import SuiteError, load_suite

        def run_suite(path: str | None) -> None:
            if not path:
                return
            if self.running:
                self.notify("a session is already running: Esc cancels it", severity="warning")
                return
            try:
                plan = Plan.from_suite(load_suite(path))
            except (SuiteError, ValueError) as exc:
                notify_inert(self, str(exc), severity="error", timeout=8)
                return
            if not plan.models:
                plan.models = self._chosen_specs()
            if not plan.models:
                return
            if plan.workload is not None and plan.workload.cells:
                self.run_worker(self._fit_and_start(plan), exclusive=True, group="suite-fit")
            else:
                self.start(plan)

        self.app.push_screen(SuitePath(), callback=run_suite)

    async def _fit_and_start(self, plan: Plan) -> None:
        """A size grid, sweep or LocalScore suite is fitted to the models' contexts before it
        runs, as ``--batch`` does: LocalScore keeps the shapes that fit, a cell larger than a
        model's context is refused naming it, and the context size is set to fit."""
        from ..engine.workload import WorkloadError, fit_to_models, model_contexts

        self._progress = "asking the models for their context sizes…"
        self._update_status()
        try:
            fit_to_models(plan, await model_contexts(self.app.pool, plan.models))
        except WorkloadError as exc:
            self._progress = ""
            self._update_status()
            notify_inert(self, str(exc), severity="error", timeout=10)
            return
        if not self.running:
            self.start(plan)

    def action_run(self) -> None:
        if self.running:
            self.notify("a session is already running: Esc cancels it", severity="warning")
            return
        plan = self._plan_from_form()
        if plan is not None:
            self.app.settings.remember_prompt(plan.prompts[0].text)
            self.app.settings.save()
            self.start(plan)

    def action_cancel(self) -> None:
        if self.engine is not None:
            self.engine.cancel()
            self._progress = "cancelling…"
            self._update_status()

    @on(Button.Pressed, "#run-button")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#cancel-button")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def _chosen_specs(self) -> list[ModelSpec]:
        chosen = self.query_one(ModelPicker).chosen
        if not chosen:
            self.notify(
                "select at least one model: space ticks a model in the list", severity="error"
            )
            return []
        try:
            return [ModelSpec.parse(label) for label in chosen]
        except ValueError as exc:
            notify_inert(self, str(exc), severity="error")
            return []

    def _plan_from_form(self) -> Plan | None:
        specs = self._chosen_specs()
        if not specs:
            return None
        pane = self.query_one(PromptPane)
        if not pane.prompt.strip():
            self.notify("the prompt is empty: type what to send to the models", severity="error")
            return None
        try:
            options, settings = self.query_one(OptionsForm).read()
        except OptionsError as exc:
            notify_inert(self, str(exc), severity="error")
            return None
        prompt = PromptSpec(id="prompt", text=pane.prompt, system=pane.system)
        return Plan(models=specs, prompts=[prompt], options=options, **settings)

    # ------------------------------------------------------------------ session

    def start(self, plan: Plan) -> None:
        """Create the panes and run ``plan`` through the same engine and store as ``--batch``."""
        self.warn_if_busy()
        self.prepare_panes([spec.label for spec in plan.models], plan.runs_per_model())
        self._plan = plan
        for state in self.states.values():  # a turn's separator names its conversation
            state.turn_totals = conversation_totals(plan)
        self.engine = Engine(
            plan,
            pool=self.app.pool,
            store=self.app.store,
            telemetry=self.app.hub,
            on_event=self.on_engine_event,
        )
        self._progress = "starting…"
        self._set_running(True)
        self.run_worker(self._run_engine(self.engine), exclusive=True, group="engine")

    def warn_if_busy(self) -> Any:
        """How busy the machine is with other work right now (the sampler's last second): warn
        when it is not idle, and hand the measurement to the hub for the session's environment.
        Returns the measurement (``conditions.Busy``), or ``None`` without a hub or samples."""
        hub = self.app.hub
        if hub is None:
            return None
        try:
            busy = hub.recent_busy()
        except Exception:  # a sampler problem must never keep a session from starting
            return None
        if busy is None:
            return None
        hub.pre_session = busy
        if not busy.idle:
            # The sentence may name other processes: shown inert.
            notify_inert(
                self,
                f"{busy.sentence()}: figures measured now may not be comparable",
                title="machine busy",
                severity="warning",
                timeout=10,
            )
        return busy

    def prepare_panes(self, labels: list[str], runs_per_model: int) -> None:
        """One empty pane per model; engine events for those labels fill them."""
        self.states = {label: PaneState(label) for label in labels}
        self._runs_per_model = runs_per_model
        self._by_run = {}
        self._layout = ""
        self.last_finished = None
        self.query_one(ResultStrip).remove_class("-shown")
        self._relayout()

    async def _run_engine(self, engine: Engine) -> None:
        try:
            await engine.run()
        except Exception as exc:  # the engine should never raise; say so if it does
            notify_inert(self, f"the session stopped: {exc}", severity="error", timeout=10)
        finally:
            self.engine = None
            # The app may be closing: its widgets can be gone by the time the engine returns.
            with contextlib.suppress(NoMatches):
                self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.query_one("#run-button", Button).disabled = running
        self.query_one("#cancel-button", Button).disabled = not running
        self.refresh_bindings()
        self._update_status()

    def on_engine_event(self, event: Event) -> None:
        """The engine's callback: cheap bookkeeping only, no drawing."""
        if type(event) is ChunkReceived:
            state = self._by_run.get(event.run_id)
            if state is not None:
                state.chunk(event)
        elif type(event) is RunStarted:
            state = self.states.get(event.model)
            # With several streams per round only stream 0 is drawn: interleaved text is noise.
            self._by_run[event.run_id] = state if event.stream == 0 else None
            if state is not None and event.stream == 0:
                state.run_started(event, self._runs_per_model)
            self._progress = f"run {event.index}/{event.total_runs}: {event.model}"
        elif type(event) is RunFinished:
            self._run_finished(event)
        elif type(event) is RunJudged:
            self._run_judged(event)
        elif type(event) is SessionStarted:
            self._progress = f"session {event.session_id[:8]}: {event.total_runs} runs"
        elif type(event) is SessionFinished:
            self._session_finished(event)

    def _run_finished(self, event: RunFinished) -> None:
        record = event.record
        state = self.states.get(record.model_spec or "")
        if state is not None and self._by_run.get(record.id, state) is state:
            state.finished(record)
        if record.status in ("error", "timeout"):
            notify_inert(self, f"{record.model_spec}: {record.error}", severity="error", timeout=8)

    def _run_judged(self, event: RunJudged) -> None:
        """A judge graded a run (after the last measured run): progress, and the judge's
        mean ± stdev in the run's pane header."""
        record = event.record
        self._progress = f"judging {event.index}/{event.total}: {record.model_spec}"
        state = self.states.get(record.model_spec or "")
        if state is not None:
            state.judge = judge_figure(record.quality)
            state.dirty = True

    def _session_finished(self, event: SessionFinished) -> None:
        self._flush(final=True)
        self.last_finished = event
        if event.groups:
            self.query_one(ResultStrip).show(event.groups, event.records)
            self.query_one(SessionExtras).show(event.records, self._plan)
        ok = sum(r.status == "ok" for r in event.records)
        where = "stored" if event.stored else "NOT stored (see the log)"
        verb = "cancelled" if event.cancelled else "finished"
        self._progress = f"session {verb}: {ok}/{len(event.records)} runs ok, {where}"
        severity = "warning" if event.cancelled else "information"
        notify_inert(self, self._progress, severity=severity)

    # ------------------------------------------------------------------ drawing

    def _flush(self, final: bool = False) -> None:
        """Move buffered text onto the panes; the status line follows in a frame of its own.

        Textual repaints one crop per frame: the box around every dirty region, and every
        widget in that box re-renders. A status line (top row) or meter (second row) changing
        in the same frame as a stream pane widens the box to the whole screen, setup column
        included; so those are updated after the pane's frame (``call_after_refresh``).
        """
        for pane in self._panes.values():
            pane.flush(final)
        if (self._progress, self.running) != self._status_shown:
            self.call_after_refresh(self._update_status)

    def _update_status(self) -> None:
        key = (self._progress, self.running)
        if key == self._status_shown:
            return
        self._status_shown = key
        line = Text("llmbench", style="bold")
        if self._progress:
            # The progress names the model running (a label from the user, a server or a file).
            style = "bold" if self.running else "dim"
            line.append("  " + strip_controls(self._progress), style=style)
        self.query_one("#status-line", Static).update(line, layout=False)

    def _tick_meters(self) -> None:
        hub = self.app.hub
        if hub is not None:
            self.call_after_refresh(self._update_meters, hub.sampler.latest())

    def _update_meters(self, sample) -> None:
        self.query_one(MeterBar).update_from(sample)

    def on_resize(self) -> None:
        if self.states:
            self.call_after_refresh(self._relayout)

    def _wanted_layout(self) -> str:
        width = self.query_one("#output").size.width or self.size.width
        fits = width // max(1, len(self.states)) >= SIDE_BY_SIDE_MIN
        return "side" if len(self.states) == 1 or fits else "tabs"

    def _relayout(self) -> None:
        """(Re)build the panes for the current width; state survives, widgets are replaced."""
        wanted = self._wanted_layout()
        if wanted == self._layout:
            return
        self._layout = wanted
        holder = self.query_one("#panes")
        holder.remove_children()
        # No fixed ids: remove_children() completes after this returns, so the old widgets
        # still exist while the new ones mount (a second session would hit DuplicateIds).
        self._panes = {label: StreamPane(state) for label, state in self.states.items()}
        if wanted == "side":
            holder.mount(Horizontal(*self._panes.values(), classes="side-by-side"))
        else:
            tabs = TabbedContent(classes="pane-tabs")
            for label, pane in self._panes.items():
                tabs.compose_add_child(TabPane(Content(strip_controls(label)), pane))
            holder.mount(tabs)
