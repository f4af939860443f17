"""Getting models in the dashboard, driven with Pilot against the Ollama-protocol test server:
pull with a progress bar, the model appears with its fit, delete it; failed pulls say why and
list nothing; the GGUF file dialog lists files with their fit."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.ollama_server import FakeModel, OllamaTestServer, Pullable
from textual.widgets import DataTable, Input, ProgressBar, SelectionList, Static

from llmbench_tui.fit.estimate import FitEstimate
from llmbench_tui.ui.app import LLMBenchApp, build_app
from llmbench_tui.ui.dashboard import Dashboard
from llmbench_tui.ui.widgets.model_dialogs import ConfirmDelete, GGUFFiles, PullDialog
from llmbench_tui.ui.widgets.model_picker import ModelPicker

pytestmark = pytest.mark.slow

SIZE = (130, 40)


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str):
    monkeypatch.setenv("LLMBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("OLLAMA_HOST", dead_url)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no usual model folders but ours
    for name in ("LLMBENCH_OLLAMA_HOSTS", "LLMBENCH_OPENAI_URLS", "LLMBENCH_GGUF_PATHS"):
        monkeypatch.delenv(name, raising=False)

    def make(ollama_host: str, models_dir: list[str] | None = None) -> LLMBenchApp:
        args = SimpleNamespace(
            data_dir=str(tmp_path / "data"), ollama_host=ollama_host, models=[], theme=None,
            no_mouse=True, sample_interval=0.25, start="dashboard", models_dir=models_dir or [],
        )  # fmt: skip
        app = build_app(args)
        app.hub = None
        return app

    return make


async def wait_for(pilot, predicate, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for the app")
        await pilot.pause(0.02)


def picker(app: LLMBenchApp) -> ModelPicker:
    screen = app.screen_stack[1] if len(app.screen_stack) > 1 else app.screen
    assert isinstance(screen, Dashboard)
    return screen.query_one(ModelPicker)


def listed(app: LLMBenchApp) -> list[str]:
    return [info.spec.name for info in picker(app).infos() if info.spec.backend == "ollama"]


def fit_of(app: LLMBenchApp, name: str):
    labels = {info.spec.name: info.spec.label for info in picker(app).infos()}
    return picker(app).fits.get(labels.get(name, ""))


def rows(app: LLMBenchApp) -> list[str]:
    listing = picker(app).query_one(SelectionList)
    return [listing.get_option_at_index(i).prompt.plain for i in range(listing.option_count)]


async def pull_in_dialog(pilot, name: str) -> PullDialog:
    await pilot.press("f8")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PullDialog))
    dialog = pilot.app.screen
    dialog.query_one("#pull-name", Input).value = name
    dialog.query_one("#pull-name", Input).focus()
    await pilot.press("enter")
    return dialog


async def test_pull_shows_progress_lists_the_model_with_its_fit_then_delete(make_app) -> None:
    with OllamaTestServer([FakeModel("smollm-fake:135m")]) as server:
        hold = threading.Event()
        server.offer(Pullable(FakeModel("tiny:1b"), steps=5, step_delay_s=0.05, hold=hold))
        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "smollm-fake:135m" in listed(app))
            await wait_for(pilot, lambda: picker(app).fits)
            assert isinstance(fit_of(app, "smollm-fake:135m"), FitEstimate)
            assert "tiny:1b" not in listed(app)

            dialog = await pull_in_dialog(pilot, "tiny:1b")
            bar = dialog.query_one(ProgressBar)
            await wait_for(
                pilot,
                lambda: (
                    "pulling manifest" in str(dialog.query_one("#pull-status", Static).render())
                ),
            )
            assert bar.progress == 0
            hold.set()
            seen: set[float] = set()
            while isinstance(app.screen, PullDialog):
                seen.add(round(bar.progress, 1))
                await pilot.pause(0.01)
            assert len([p for p in seen if 0 < p < 100]) >= 3  # the bar advanced step by step

            await wait_for(pilot, lambda: "tiny:1b" in listed(app))
            await wait_for(pilot, lambda: isinstance(fit_of(app, "tiny:1b"), FitEstimate))
            tiny_row = next(r for r in rows(app) if "tiny:1b" in r)
            assert tiny_row.split()[1] in ("CPU", "GPU", "part", "no")  # the fit column

            # Highlight it: the line under the list explains the estimate; then delete it.
            listing = picker(app).query_one(SelectionList)
            listing.focus()
            listing.highlighted = next(
                i
                for i in range(listing.option_count)
                if listing.get_option_at_index(i).value.startswith("ollama:tiny:1b@")
            )
            await pilot.pause(0.05)
            detail = str(picker(app).query_one("#fit-detail", Static).render())
            assert detail.startswith("fit (estimate): ") and "KV" in detail
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete))
            await pilot.press("y")
            await wait_for(pilot, lambda: "tiny:1b" not in listed(app))
            assert "tiny:1b:latest" not in server.models and "tiny:1b" not in server.models
            assert "smollm-fake:135m" in listed(app)


@pytest.mark.parametrize(
    ("pullable", "message"),
    [
        (None, "found no model 'ghost:1b' to pull"),
        (Pullable(FakeModel("ghost:1b"), cut_after=4, step_delay_s=0.02),
         "closed while pulling 'ghost:1b'"),
    ],
)  # fmt: skip
async def test_a_failed_pull_says_why_and_lists_nothing(
    make_app, pullable: Pullable | None, message: str
) -> None:
    with OllamaTestServer([FakeModel("smollm-fake:135m")]) as server:
        if pullable is not None:
            server.offer(pullable)
        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "smollm-fake:135m" in listed(app))
            dialog = await pull_in_dialog(pilot, "ghost:1b")
            await wait_for(pilot, lambda: dialog.error is not None)
            shown = str(dialog.query_one("#pull-status", Static).render())
            assert message in shown and shown.startswith("✗ ")
            assert isinstance(app.screen, PullDialog)  # the sentence stays on screen
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, PullDialog))
            await pilot.press("R")  # refresh: still not listed, not even half
            await wait_for(pilot, lambda: picker(app).fits)
            assert listed(app) == ["smollm-fake:135m"]
            assert not any("ghost" in r for r in rows(app))


async def test_escape_stops_a_pull_midway(make_app) -> None:
    with OllamaTestServer([FakeModel("smollm-fake:135m")]) as server:
        hold = threading.Event()
        server.offer(Pullable(FakeModel("big:1b"), hold=hold))
        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "smollm-fake:135m" in listed(app))
            await pull_in_dialog(pilot, "big:1b")
            await wait_for(pilot, lambda: any(r.path == "/api/pull" for r in server.requests))
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, PullDialog))
            pull = next(r for r in server.requests if r.path == "/api/pull")
            await wait_for(pilot, lambda: pull.outcome == "disconnected", 10)
            assert "big:1b:latest" not in server.models


async def test_gguf_file_dialog_lists_files_with_their_fit(
    make_app, tmp_path: Path, smollm_path: Path
) -> None:
    folder = tmp_path / "models" / "sub"
    folder.mkdir(parents=True)
    shutil.copy(smollm_path, folder / "copy.gguf")
    (folder / "broken.gguf").write_bytes(b"GGUF\x03\x00")
    with OllamaTestServer([]) as server:
        app = make_app(server.url, [str(tmp_path / "models")])
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: picker(app).sources)
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, GGUFFiles))
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: table.row_count == 2)
            cells = {str(table.get_row_at(i)[1]): table.get_row_at(i) for i in range(2)}
            assert str(cells["copy.gguf"][0]) in ("CPU", "GPU")
            assert str(cells["broken.gguf"][0]) == "?"
            assert "truncated" in str(cells["broken.gguf"][4])
            table.focus()
            table.move_cursor(
                row=[str(table.get_row_at(i)[1]) for i in range(2)].index("copy.gguf")
            )
            await pilot.press("enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, GGUFFiles))
            assert f"gguf:{folder / 'copy.gguf'}" in picker(app).chosen
