"""The ``store = "..."`` line of config.toml: read by every command, kept when the dashboard
rewrites the file (theme, recent prompts)."""

from __future__ import annotations

from llmbench_tui import config
from llmbench_tui.ui.settings import Settings


def test_the_dashboard_keeps_the_store_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMBENCH_CONFIG_DIR", str(tmp_path))
    url = "postgresql://bench@db.example/llmbench"
    (tmp_path / "config.toml").write_text(f'store = "{url}"\ntheme = "nord"\n')
    settings = Settings.load()
    settings.remember_prompt("Why is the sky blue?")
    settings.save()
    assert config.store_setting() == url
    assert Settings.load().recent_prompts == ["Why is the sky blue?"]


def test_a_bad_store_line_is_one_sentence(tmp_path, monkeypatch) -> None:
    import pytest

    monkeypatch.setenv("LLMBENCH_CONFIG_DIR", str(tmp_path))
    (tmp_path / "config.toml").write_text("store = 5\n")
    with pytest.raises(ValueError, match="store must be a string"):
        config.store_setting()
