"""Pictures of every screen for the manual, taken by the app itself: ``docs/img/*.svg``.

Run it after a UI change and commit the pictures::

    python scripts/screenshots.py            # writes docs/img/*.svg
    python scripts/screenshots.py --out DIR  # somewhere else

Each picture is the real Textual app driven headless (``App.run_test``) with keys, exactly as the
UI tests do, and saved with ``App.save_screenshot`` (SVG). The data is seeded, so the pictures
change only when the UI does:

- the history screens show the deterministic database of ``tests/support/seed_history.py``
  (fixed RNG seed and start date; times in UTC);
- the finished dashboard session is replayed into the dashboard as the engine's own events
  (``RunStarted``, ``ChunkReceived``, ``RunFinished``, ``SessionFinished``) carrying fixed
  records, because figures from live inference are never the same twice;
- no telemetry sampler runs (the meters show ``-``) and the Ollama host is the discard port, so
  its row in the model list says the same sentence every time.

Nothing is written outside ``--out`` and a temporary folder (config and data directories).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DISCARD = "http://127.0.0.1:9"  # nothing listens there: the Ollama row fails the same way always
SEEDED_RUNS = 300
PROMPT = "Why is the sky blue? Answer in two sentences."

# The replayed session: model spec -> (answer, TTFT s, decode tok/s). Figures of the order the
# embedded SmolLM2 gives on a desktop CPU and a 7B model on a GPU server.
ANSWERS = {
    "embedded": (
        "Sunlight is scattered by the molecules of the air, and short blue wavelengths are "
        "scattered far more than long red ones. So blue light reaches our eyes from every "
        "direction of the sky.",
        0.048,
        96.0,
    ),
    "ollama:qwen2.5:7b@http://gpu-box:11434": (
        "The sky is blue because of Rayleigh scattering: air molecules scatter short "
        "wavelengths of sunlight much more strongly than long ones. Our eyes see that "
        "scattered blue light coming from all over the sky.",
        0.091,
        61.5,
    ),
}

Step = Callable[[Any], Awaitable[None]]


def seed_module() -> ModuleType:
    """``seed_history`` from the tests, wherever the tests keep it (they may move)."""
    found = sorted((ROOT / "tests").rglob("seed_history.py"))
    if not found:
        raise SystemExit("screenshots: tests/**/seed_history.py not found")
    spec = importlib.util.spec_from_file_location("seed_history", found[0])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def app_args(data: Path, start: str) -> SimpleNamespace:
    """What ``llmbench`` passes ``build_app``: the embedded model ticked, no mouse, no sampler."""
    return SimpleNamespace(
        data_dir=str(data), ollama_host=None, models=["embedded"], theme="llmbench-dark",
        no_mouse=True, sample_interval=0.25, start=start,
    )  # fmt: skip


async def settle(pilot: Any, pause: float = 0.0) -> None:
    """Let debounce timers fire and every query worker finish, then let the UI catch up."""
    if pause:
        await pilot.pause(pause)
    for _ in range(2):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def discovered(pilot: Any) -> None:
    """Wait until the model list has asked every source (the embedded model and Ollama)."""
    from llmbench_tui.ui.widgets.model_picker import ModelPicker

    picker = pilot.app.screen_stack[1].query_one(ModelPicker)
    for _ in range(400):
        if picker.sources:
            break
        await asyncio.sleep(0.05)
    await settle(pilot)


async def screen_named(pilot: Any, name: str) -> Any:
    """The active screen once it is of class ``name`` (a push can take a frame or two)."""
    for _ in range(200):
        if type(pilot.app.screen).__name__ == name:
            await settle(pilot)
            return pilot.app.screen
        await pilot.pause(0.02)
    raise SystemExit(f"screenshots: the {name} never appeared (got {pilot.app.screen})")


def replay_record(spec: str, rep: int, text: str, ttft: float, rate: float) -> Any:
    from llmbench_tui.schema import RunRecord, Timings, Tokens

    tokens = round(len(text.split()) * 1.3)
    return RunRecord(
        id=f"{spec}-{rep}", session_id="s1", started_at="2026-12-01T09:00:00Z", model=spec,
        model_spec=spec, backend="gguf" if spec == "embedded" else "ollama",
        prompt_id="prompt", prompt=PROMPT, status="ok", response=text, repetition=rep,
        tokens=Tokens(prompt=24, output=tokens, source="server"),
        timings=Timings(ttft_s=ttft, decode_tok_s=rate, e2e_s=ttft + (tokens - 1) / rate,
                        chunks=tokens),
    )  # fmt: skip


async def replay_session(pilot: Any) -> None:
    """Feed the dashboard the events of a finished two-model session, three runs each."""
    from llmbench_tui.engine.events import (
        ChunkReceived,
        RunFinished,
        RunStarted,
        SessionFinished,
        SessionStarted,
    )
    from llmbench_tui.engine.stats import summarize

    await discovered(pilot)
    dash = pilot.app.screen
    reps = 3
    total = reps * len(ANSWERS)
    dash.query_one("#prompt").text = PROMPT
    for field, value in (("temperature", "0"), ("seed", "42"), ("repetitions", str(reps))):
        dash.query_one(f"#opt-{field}").value = value  # what such a session was started with
    dash.prepare_panes(list(ANSWERS), runs_per_model=reps)
    await pilot.pause()
    dash.on_engine_event(SessionStarted(session_id="s1", total_runs=total, models=list(ANSWERS)))
    records, index = [], 0
    for spec, (text, ttft, rate) in ANSWERS.items():
        for rep in range(reps):
            index += 1
            wobble = 1 + 0.03 * (rep - 1)  # three runs a little apart, as real ones are
            record = replay_record(spec, rep, text, ttft * wobble, rate / wobble)
            dash.on_engine_event(RunStarted(
                run_id=record.id, session_id="s1", model=spec, prompt_id="prompt",
                repetition=rep, warmup=False, cold=False, stream=0, index=index,
                total_runs=total,
            ))  # fmt: skip
            for i, word in enumerate(text.split(" ")):
                dash.on_engine_event(ChunkReceived(
                    run_id=record.id, text=(" " if i else "") + word, thinking="", t_ns=0,
                    elapsed_s=ttft + i / rate, chunks=i + 1, ttft_s=ttft,
                ))  # fmt: skip
            dash.on_engine_event(RunFinished(record=record, index=index, total_runs=total))
            records.append(record)
    dash.on_engine_event(SessionFinished(
        session_id="s1", records=records, cancelled=False, stored=True,
        groups=summarize(records),
    ))  # fmt: skip
    await pilot.pause(0.5)
    pilot.app.clear_notifications()
    await pilot.pause()


async def open_history(pilot: Any) -> Any:
    await discovered(pilot)
    return await screen_named(pilot, "HistoryScreen")


def cursor_at(screen: Any, index: int) -> None:
    """Put the history table's cursor on the ``index``-th shown run."""
    from textual.widgets import DataTable

    screen.query_one("#runs", DataTable).move_cursor(row=index)


def cursor_to(screen: Any, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """Put the history table's cursor on the first shown run matching ``predicate``."""
    cursor_at(screen, next(i for i, r in enumerate(screen.rows) if predicate(r)))


async def history_grouped(pilot: Any) -> None:
    await open_history(pilot)
    await pilot.press("g", "g")  # session, then model
    await settle(pilot)


def run_detail(tab: str) -> Step:
    """Open the first run with figures and energy, then the detail tab ``tab``."""

    async def step(pilot: Any) -> None:
        screen = await open_history(pilot)
        cursor_to(screen, lambda r: r["status"] == "ok" and bool(r.get("efficiency")))
        await pilot.press("enter")
        await screen_named(pilot, "RunDetailScreen")
        await pilot.press(tab)
        await settle(pilot, 0.2)

    return step


async def compare(pilot: Any) -> None:
    """Mark the counted runs of the newest session that ran two models, then press c."""
    screen = await open_history(pilot)
    sessions: dict[str, set[str]] = {}
    for row in screen.rows:
        sessions.setdefault(row["session_id"], set()).add(row["model"])
    session = next(s for s, models in sessions.items() if len(models) >= 2)
    wanted = [i for i, r in enumerate(screen.rows) if r["session_id"] == session
              and r["status"] == "ok" and not r.get("warmup")]  # fmt: skip
    for index in wanted:
        cursor_at(screen, index)
        await pilot.press("space")
    await pilot.press("c")
    await screen_named(pilot, "CompareScreen")


async def trends(pilot: Any) -> None:
    screen = await open_history(pilot)
    cursor_to(screen, lambda r: r["status"] == "ok" and r["model"] == "llama3.1:8b")
    await pilot.press("t")
    await screen_named(pilot, "TrendsScreen")
    await settle(pilot, 0.3)


async def filters(pilot: Any) -> None:
    await open_history(pilot)
    await pilot.press("f")
    await screen_named(pilot, "FilterScreen")


async def keys(pilot: Any) -> None:
    await discovered(pilot)
    await pilot.press("f1")
    await screen_named(pilot, "KeyHelp")


async def themes(pilot: Any) -> None:
    from textual.widgets import Input

    await discovered(pilot)
    await pilot.press("f9")
    palette = await screen_named(pilot, "CommandPalette")
    for field in palette.query(Input):
        field.cursor_blink = False  # a blinking cursor would differ between two takes
    await settle(pilot, 0.3)


def shots() -> dict[str, tuple[str, str, tuple[int, int], Step]]:
    """name -> (what it shows, the screen the app starts on, terminal size, how to get there)."""
    return {
        "dashboard-idle": ("the dashboard before a run", "dashboard", (100, 30), discovered),
        "dashboard-finished": (
            "the dashboard after a two-model session", "dashboard", (140, 38), replay_session
        ),
        "keys": ("F1: every key and its binding id (remap in config.toml)", "dashboard",
                 (100, 30), keys),
        "themes": ("F9: the theme picker (the choice is kept in config.toml)", "dashboard",
                   (100, 30), themes),
        "history": ("the history screen", "history", (120, 32), open_history),
        "history-grouped": ("the history grouped by model", "history", (150, 14), history_grouped),
        "history-filters": ("the history's filter dialog", "history", (100, 32), filters),
        "run-detail": ("a run's figures", "history", (100, 36), run_detail("1")),
        "run-detail-charts": ("a run's charts", "history", (100, 36), run_detail("3")),
        "compare": ("marked runs compared", "history", (120, 30), compare),
        "trends": ("a model's decode rate and TTFT over time", "history", (120, 32), trends),
    }  # fmt: skip


async def take(name: str, start: str, size: tuple[int, int], step: Step, data: Path,
               out: Path) -> Path:  # fmt: skip
    from llmbench_tui.ui.app import build_app

    app = build_app(app_args(data, start))
    app.hub = None  # no sampler: the meters would differ in every picture
    async with app.run_test(size=size) as pilot:
        await step(pilot)
        path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
    return path


def prepare_environment(tmp: Path) -> Path:
    """A private config folder, no model source but the discard Ollama host, UTC times; a data
    folder seeded with the tests' deterministic history. Returns the data folder."""
    os.environ["LLMBENCH_CONFIG_DIR"] = str(tmp / "config")
    os.environ["OLLAMA_HOST"] = DISCARD
    for name in ("LLMBENCH_OLLAMA_HOSTS", "LLMBENCH_OPENAI_URLS", "LLMBENCH_GGUF_PATHS",
                 "LLMBENCH_DATA_DIR"):  # fmt: skip
        os.environ.pop(name, None)
    os.environ["TZ"] = "UTC"
    time.tzset()
    from llmbench_tui.config import db_path
    from llmbench_tui.store import Store

    data = tmp / "data"
    store = Store(db_path(data))
    try:
        seed_module().seed_store(store, SEEDED_RUNS)
    finally:
        store.close()
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--only", nargs="*", help="picture names to take (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmbench-shots-") as tmp:
        data = prepare_environment(Path(tmp))
        for name, (what, start, size, step) in shots().items():
            if args.only and name not in args.only:
                continue
            path = asyncio.run(take(name, start, size, step, data, args.out))
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
