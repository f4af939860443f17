"""The history screen's "judge these runs" (``J``): ask for a judge spec, grade the marked runs
(or the current one) with ``engine.judge_runs.judge_stored``, tell the progress as toasts.

The grading runs as a worker of the *app*, not of the history screen: the screen cancels its own
workers when it is left (opening a run's detail does), and a judge may take minutes. Progress and
the outcome are toasts through the app; the table reloads when the history is still open. Every
toast is inert: it names models and carries judges' sentences.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ..safe_text import notify_inert, one_line

DEFAULT_JUDGE = "embedded"
WORKER_GROUP = "history-judge"


class JudgeSpecScreen(ModalScreen[tuple[str, int] | None]):
    """Which model judges, and how many verdicts per answer; Enter grades, Escape backs out."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    JudgeSpecScreen { align: center middle; }
    JudgeSpecScreen > Vertical { width: 70; height: auto; border: thick $primary; padding: 1 2;
                                 background: $surface; }
    JudgeSpecScreen Label { width: 1fr; }
    JudgeSpecScreen #judge-error { color: $error; height: auto; }
    """

    def __init__(self, what: str, default: str = DEFAULT_JUDGE, repeats: int = 1) -> None:
        super().__init__()
        self.what = what
        self.default = default
        self.repeats = repeats

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Judge {one_line(self.what)} with (a model spec):"))
            yield Input(self.default, id="judge-spec")
            yield Label(Text("verdicts per answer (1-20):"))
            yield Input(str(self.repeats), id="judge-repeats", type="integer")
            yield Label(Text("Enter grades, Escape backs out. A judge is one model's opinion.",
                             style="dim"))
            yield Label("", id="judge-error")

    def on_mount(self) -> None:
        self.query_one("#judge-spec", Input).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        from ..schema import ModelSpec

        spec = self.query_one("#judge-spec", Input).value.strip()
        raw = self.query_one("#judge-repeats", Input).value.strip() or "1"
        error = self.query_one("#judge-error", Label)
        try:
            ModelSpec.parse(spec)
        except ValueError as exc:
            error.update(Text(one_line(str(exc), 200)))
            return
        if not raw.isdigit() or not 1 <= int(raw) <= 20:
            error.update(Text("verdicts per answer: a whole number from 1 to 20"))
            return
        self.dismiss((spec, int(raw)))

    def action_cancel(self) -> None:
        self.dismiss(None)


def ask_and_judge(screen: Any) -> None:
    """``J`` on the history screen: the marked runs, else the run under the cursor."""
    app = screen.app
    if any(w.group == WORKER_GROUP and w.is_running for w in app.workers):
        screen.notify("a judge is already grading runs: wait for it to finish", severity="warning")
        return
    ids = list(screen.marked) or [r["id"] for r in [screen.current_record()] if r]
    if not ids:
        screen.notify("no run to judge: mark runs with space, or move to one", severity="warning")
        return
    what = f"{len(ids)} marked runs" if len(ids) > 1 else f"run {ids[0]}"
    default = getattr(app, "last_judge_spec", None) or DEFAULT_JUDGE

    def chosen(answer: tuple[str, int] | None) -> None:
        if answer is None:
            return
        spec, repeats = answer
        app.last_judge_spec = spec  # remembered for this app's next J
        notify_inert(app, f"judging {what} with {spec}…", timeout=4)
        app.run_worker(judge_runs(app, screen, ids, spec, repeats), group=WORKER_GROUP,
                       exit_on_error=False)

    app.push_screen(JudgeSpecScreen(what, default), chosen)


async def judge_runs(app: App, screen: Any, ids: list[str], spec_text: str, repeats: int) -> Any:
    """Grade ``ids`` with ``judge_stored``; toasts for each run and for the outcome."""
    from ..backends import BackendPool
    from ..engine.judge_runs import JudgeConfig, judge_stored
    from ..schema import ModelSpec
    from .turns import judge_figure

    def judged(run: dict[str, Any], graded: Any, i: int, total: int) -> None:
        figure = judge_figure(run.get("quality")) or "no verdict"
        notify_inert(app, f"judged {i}/{total}: {one_line(run.get('model'), 30)} "
                          f"{one_line(run.get('prompt_id'), 30)}: {figure}", timeout=4)
        if run["id"] in screen.marked:
            screen.marked[run["id"]] = run

    pool = BackendPool()
    config = JudgeConfig(spec=ModelSpec.parse(spec_text), repeats=repeats)
    try:
        outcome = await judge_stored(screen.store, ids, config, pool=pool, on_judged=judged)
    except Exception as exc:  # the store or the judge failed: say so, keep the app
        notify_inert(app, f"judging failed: {exc}", severity="error", timeout=10)
        return None
    finally:
        await pool.aclose()
    scored = sum(1 for r in outcome.judged
                 if isinstance(((r.get("quality") or {}).get("judge") or {}).get("mean"),
                               int | float))
    text = f"judged {len(outcome.judged)} run{'s' if len(outcome.judged) != 1 else ''} " \
           f"with {spec_text}: {scored} with a verdict"
    if outcome.left_alone:
        text += f"; {outcome.left_alone} left alone (not ok, warm-up or gone)"
    for warning in outcome.warnings:
        text += f"\n{warning}"
    notify_inert(app, text, severity="information" if scored else "warning", timeout=10)
    if screen.is_open:
        screen.reload()
    return outcome
