"""Model output shown on screen is inert: no markup parsed, no escape sequence kept."""

from __future__ import annotations

import pytest
from rich.text import Text

from llmbench_tui.safe_text import StreamSanitizer, inert, notify_inert, strip_controls
from llmbench_tui.ui.widgets.stream_log import wrap_line

HOSTILE = [
    ("\x1b[2Jcleared", "cleared"),  # erase display (CSI)
    ("\x1b[31mred\x1b[0m", "red"),  # SGR colours
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
    ("a\x1b]52;c;aGVsbG8=\x07b", "ab"),  # OSC 52 clipboard write, BEL-terminated
    ("\x1bP1$r0m\x1b\\x", "x"),  # DCS string
    ("\x9b2Jc1", "c1"),  # 8-bit CSI
    ("bell\x07", "bell"),
    ("back\x08space", "backspace"),
    ("over\rwrite", "overwrite"),  # a lone CR would overwrite the line on a terminal
    ("line\r\nnext", "line\nnext"),
    ("tab\there", "tab    here"),
    ("\x1bcreset", "reset"),  # RIS, a two-byte escape
    ("rtl\u202eevil\u202c", "rtlevil"),  # bidi override
    ("nul\x00del\x7f", "nuldel"),
    ("a\u200eb\u200fc", "abc"),  # LRM / RLM direction marks
    ("x\u061cy", "xy"),  # Arabic letter mark, the third bidi mark
    ("one\u2028two\u2029three", "one\ntwo\nthree"),  # line / paragraph separators
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE)
def test_escape_sequences_and_controls_are_removed(raw: str, shown: str) -> None:
    assert strip_controls(raw) == shown


def test_markup_is_kept_as_literal_text() -> None:
    text = inert("[bold red]x[/] [link=http://evil]y[/link]")
    assert isinstance(text, Text)
    assert text.plain == "[bold red]x[/] [link=http://evil]y[/link]"
    assert text.spans == []  # nothing was interpreted as style


def test_marks_and_separators_split_across_chunks_are_removed_too() -> None:
    s = StreamSanitizer()
    shown = "".join(s.feed(p) for p in ["left\u200f", "\u2028right\u200e"]) + s.flush()
    assert shown == "left\nright"


def test_notify_inert_turns_markup_off_and_strips_escapes() -> None:
    class Recorder:
        def notify(self, message: str, **kwargs: object) -> None:
            self.seen = (message, kwargs)

    target = Recorder()
    notify_inert(target, "x [/] [@click=app.quit]q[/] \x1b[2Jy", severity="error")
    assert target.seen == ("x [/] [@click=app.quit]q[/] y", {"markup": False, "severity": "error"})


def test_unicode_and_newlines_survive() -> None:
    assert strip_controls("naïve 東京 🙂\nok") == "naïve 東京 🙂\nok"


def test_sequence_split_across_chunks_never_leaks() -> None:
    s = StreamSanitizer()
    parts = ["abc\x1b", "[", "2", "Jdef\x1b]0;ti", "tle\x07ghi\x1b"]
    shown = "".join(s.feed(p) for p in parts) + s.flush()
    assert shown == "abcdefghi"
    assert "2J" not in shown and "title" not in shown


def test_held_back_text_is_bounded() -> None:
    s = StreamSanitizer()
    shown = s.feed("x\x1b]" + "y" * 1000)  # an OSC that never ends is not held forever
    assert "\x1b" not in shown and shown.startswith("x")


def test_wrap_is_prefix_stable_and_fits() -> None:
    line = "The sky looks blue because air molecules scatter short wavelengths " * 3
    whole = wrap_line(line, 17)
    assert all(len(part.rstrip()) <= 17 for part in whole)
    assert "".join(whole) == line
    # Wrapping in two steps from the last visual line gives the same lines (what appends do).
    head = wrap_line(line[:50], 17)
    again = head[:-1] + wrap_line(head[-1] + line[50:], 17)
    assert again == whole


def test_wrap_splits_words_longer_than_the_width() -> None:
    assert wrap_line("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert wrap_line("東京東京東京", 4) == ["東京", "東京", "東京"]
