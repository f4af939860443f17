"""The one sentence a user gets for a file that cannot be read, whoever reads it (suite,
schema, rubric, fixture, settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench_tui.quality.checks import read_rubric
from llmbench_tui.suite import SuiteError, load_suite
from llmbench_tui.ui.settings import Settings, SettingsError
from llmbench_tui.user_files import UserFileError, read_user_file


def test_each_reason_is_one_sentence_naming_the_file(tmp_path: Path) -> None:
    ok = tmp_path / "ok.txt"
    ok.write_text("héllo", encoding="utf-8")
    assert read_user_file(ok, "suite file") == "héllo"
    missing = tmp_path / "nope.toml"
    with pytest.raises(UserFileError, match=f"^suite file not found: {missing}$"):
        read_user_file(missing, "suite file")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9")
    with pytest.raises(UserFileError, match=f"^rubric file {latin} is not UTF-8 text$"):
        read_user_file(latin, "rubric file")
    with pytest.raises(UserFileError, match=f"^rubric file {ok} is 6 bytes, over 5$"):
        read_user_file(ok, "rubric file", max_bytes=5)
    with pytest.raises(UserFileError, match=f"^cannot read schema file {tmp_path}: "):
        read_user_file(tmp_path, "schema file")  # a folder: IsADirectoryError


def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    """Any other OS error is named by its own words (a name too long for the file system: it
    fails for root too, where a mode-0 file would not)."""
    too_long = tmp_path / ("x" * 300 + ".toml")
    with pytest.raises(UserFileError, match=r"^cannot read suite file .*: File name too long$"):
        read_user_file(too_long, "suite file")


def test_the_callers_keep_their_own_error_types(tmp_path: Path) -> None:
    latin = tmp_path / "s.toml"
    latin.write_bytes(b"name = \"caf\xe9\"")
    with pytest.raises(SuiteError, match=f"^suite file {latin} is not UTF-8 text$"):
        load_suite(latin)
    with pytest.raises(ValueError, match=f"^rubric file not found: {tmp_path / 'r.md'}$"):
        read_rubric(tmp_path / "r.md")
    with pytest.raises(SettingsError, match=f"^the settings file {latin} is not UTF-8 text$"):
        Settings.load(latin)
    bad = tmp_path / "config.toml"
    bad.write_text("keys = [")
    with pytest.raises(SettingsError, match=f"^the settings file {bad} is not valid TOML: "):
        Settings.load(bad)
