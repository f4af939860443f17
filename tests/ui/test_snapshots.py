"""SVG snapshots of the dashboard's layout at fixed sizes (Textual pinned in pyproject.toml).

Nothing that changes between runs may be in the picture: no sampler (the meters show "-"), no
clock, no blinking cursor, no reachable Ollama (the default host is the discard port, so its row
says the same sentence every time). The finished session is replayed into the dashboard as the
engine's own events carrying fixed records — live figures can never be identical twice; the
behaviour with real inference is covered by ``test_ui_dashboard.py``.

Update after an intended change: ``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from llmbench_tui.engine.events import (
    ChunkReceived,
    RunFinished,
    RunStarted,
    SessionFinished,
    SessionStarted,
)
from llmbench_tui.engine.stats import summarize
from llmbench_tui.schema import RunRecord, Timings, Tokens
from llmbench_tui.ui.app import build_app
from llmbench_tui.ui.widgets.model_picker import ModelPicker

DISCARD = "http://127.0.0.1:9"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("OLLAMA_HOST", DISCARD)
    for name in ("LLMBENCH_OLLAMA_HOSTS", "LLMBENCH_OPENAI_URLS", "LLMBENCH_GGUF_PATHS"):
        monkeypatch.delenv(name, raising=False)
    args = SimpleNamespace(data_dir=str(tmp_path / "data"), ollama_host=None,
                           models=["embedded"], theme="llmbench-dark", no_mouse=True,
                           sample_interval=0.25, start="dashboard")
    app = build_app(args)
    app.hub = None
    return app


async def _discovered(pilot) -> None:
    picker = pilot.app.screen.query_one(ModelPicker)
    while not picker.sources or not picker.fits:  # the fit column comes after the listing
        await asyncio.sleep(0.05)
    await pilot.pause()


def _record(spec: str, n: int, text: str, ttft: float, rate: float) -> RunRecord:
    return RunRecord(
        id=f"{spec}-{n}", session_id="s1", started_at="2025-01-01T00:00:00Z",
        model=spec, model_spec=spec, backend="ollama" if spec != "embedded" else "gguf",
        prompt_id="prompt", prompt="Why is the sky blue?", status="ok", response=text,
        repetition=n, tokens=Tokens(prompt=9, output=len(text.split()), source="server"),
        timings=Timings(ttft_s=ttft, decode_tok_s=rate, e2e_s=ttft + 1.0,
                        chunks=len(text.split())),
    )


ANSWERS = {
    "embedded": ("Rayleigh scattering: short blue wavelengths bounce off air molecules far "
                 "more than red ones, so blue light reaches us from every direction.", 0.12, 92.0),
    "ollama:smollm-fake:135m": ("The sky looks blue because air molecules scatter short blue "
                                "wavelengths of sunlight far more than red ones.", 0.31, 48.5),
}


async def _replay_session(pilot) -> None:
    """Feed the dashboard the events of a finished two-model session, then let it draw."""
    await _discovered(pilot)
    dash = pilot.app.screen
    dash.query_one("#prompt").text = "Why is the sky blue?"
    dash.prepare_panes(list(ANSWERS), runs_per_model=2)
    await pilot.pause()
    records = []
    index = 0
    dash.on_engine_event(SessionStarted(session_id="s1", total_runs=4, models=list(ANSWERS)))
    for spec, (text, ttft, rate) in ANSWERS.items():
        for rep in range(2):
            index += 1
            rec = _record(spec, rep, text, ttft + rep * 0.01, rate - rep)
            dash.on_engine_event(
                RunStarted(
                    run_id=rec.id,
                    session_id="s1",
                    model=spec,
                    prompt_id="prompt",
                    repetition=rep,
                    warmup=False,
                    cold=False,
                    stream=0,
                    index=index,
                    total_runs=4,
                )
            )
            words = text.split(" ")
            for i, word in enumerate(words):
                dash.on_engine_event(
                    ChunkReceived(
                        run_id=rec.id,
                        text=(" " if i else "") + word,
                        thinking="",
                        t_ns=0,
                        elapsed_s=ttft + i * 0.02,
                        chunks=i + 1,
                        ttft_s=ttft,
                    )
                )
            dash.on_engine_event(RunFinished(record=rec, index=index, total_runs=4))
            records.append(rec)
    dash.on_engine_event(
        SessionFinished(
            session_id="s1",
            records=records,
            cancelled=False,
            stored=True,
            groups=summarize(records),
        )
    )
    await pilot.pause(0.3)
    pilot.app.clear_notifications()
    await pilot.pause()


def test_idle_dashboard_100x30(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(100, 30), run_before=_discovered)


def test_idle_dashboard_80x24(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=_discovered)


def test_finished_session_120x36(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(120, 36), run_before=_replay_session)
