"""Fixtures of the UI tests: the dashboard app built as ``run_app`` builds it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llmbench_tui.ui.app import LLMBenchApp, build_app


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str):
    """Build the app exactly as ``run_app`` does, with config and data in ``tmp_path``."""
    monkeypatch.setenv("LLMBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("OLLAMA_HOST", dead_url)
    for name in ("LLMBENCH_OLLAMA_HOSTS", "LLMBENCH_OPENAI_URLS", "LLMBENCH_GGUF_PATHS"):
        monkeypatch.delenv(name, raising=False)

    def make(models: list[str] | None = None, *, ollama_host: str | None = None,
             theme: str | None = None,
             hub: bool = False) -> LLMBenchApp:
        args = SimpleNamespace(
            data_dir=str(tmp_path / "data"), ollama_host=ollama_host, models=models or [],
            theme=theme, no_mouse=True, sample_interval=0.25, start="dashboard",
        )
        app = build_app(args)
        if not hub:
            app.hub = None  # the meters tests start the real sampler themselves
        return app

    return make
