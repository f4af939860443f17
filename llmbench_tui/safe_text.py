"""Turn untrusted text (model output, server messages, stored fields) into inert text.

A model can emit anything: Rich markup (``[bold red]``, ``[link=…]``), terminal escape sequences
(``ESC[2J`` clears the screen, OSC 52 writes the clipboard, OSC 8 makes links), bells, backspaces,
carriage returns that overwrite a line, bidirectional overrides and marks that reorder what is
shown, Unicode line/paragraph separators that some terminals break lines on and others do not. The
dashboard writes text straight into terminal cells (Rich and Textual drop only BEL, BS, VT, FF and
CR; ESC goes through), so every such sequence is removed here and the rest is shown as the
characters it is. Markup needs no escaping as long as nobody parses it:
callers build ``rich.text.Text(...)`` objects or plain segments, never markup strings.

Sequences can be split across stream chunks, so ``StreamSanitizer`` holds back an unfinished
escape at the end of a chunk until the next one completes (or ends) it.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

# ESC-introduced sequences (7-bit) and their 8-bit C1 twins: CSI, OSC/DCS/SOS/PM/APC strings
# (ended by BEL or ST), and two-byte escapes.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                        # CSI ... final byte
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c)   # OSC/DCS/SOS/PM/APC ... ST
  | \x1b[ -/]*[0-~]                                          # two-byte / nF escapes
    """,
    re.VERBOSE | re.DOTALL,
)
# An escape that has started but not finished at the very end of a chunk.
_UNFINISHED = re.compile(
    r"(?:(?:\x1b\[|\x9b)[0-?]*[ -/]*"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x9c]*"
    r"|\x1b[ -/]*)\Z",
    re.DOTALL,
)
# Whatever is left that a terminal would act on: C0 controls but newline and tab, DEL, C1, and
# the bidi controls that make text read in another order than it is stored (embeddings,
# overrides, isolates, and the LRM/RLM/ALM marks).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# U+2028/U+2029 are line breaks to Unicode but not to a terminal: make them the newline they mean.
_SEPARATORS = re.compile("[\u2028\u2029]")
_HOLD_MAX = 256  # never hold back more than this: a runaway "escape" is just dropped text


def strip_controls(text: str) -> str:
    """Remove every escape sequence and control character; keep ``\\n`` (U+2028/U+2029 become
    one); tabs become spaces."""
    text = _SEPARATORS.sub("\n", text.replace("\r\n", "\n"))
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text)
    return text.replace("\t", "    ")


def inert(text: str, style: str = "") -> Text:
    """A Rich ``Text`` that shows ``text`` literally: no markup parsed, no escapes kept."""
    return Text(strip_controls(text), style=style)


def notify_inert(target: Any, message: str, **kwargs: Any) -> None:
    """``target.notify(message)`` with the message shown literally.

    Textual parses a toast's message as markup unless told not to: a model or file named
    ``x [/] y`` would raise ``MarkupError`` and crash the app, and ``[@click=app.quit]`` would
    become a live action. Every toast that carries a name, a path or an error sentence goes
    through here.
    """
    target.notify(strip_controls(message), markup=False, **kwargs)


class StreamSanitizer:
    """Sanitize a stream chunk by chunk without letting a split escape sequence through.

    ``feed`` returns the safe text that can be shown now; ``flush`` returns what was held back
    (sanitized) once the stream has ended.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        m = _UNFINISHED.search(text)
        if m and len(text) - m.start() <= _HOLD_MAX:
            self._held = text[m.start() :]
            text = text[: m.start()]
        return strip_controls(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return strip_controls(text)


def one_line(text: Any, width: int | None = None) -> str:
    """Any untrusted field as one inert line: the single home of that rule.

    The response, error and model come from a server, and ``llmbench import`` takes arbitrary
    JSON. ``strip_controls`` removes escape sequences whole (``ESC[2J`` leaves no ``[2J``) and
    every control character; whitespace runs, newlines included, become one space, so a field
    cannot forge lines; text longer than ``width`` is cut with an ellipsis. With a ``width``,
    only the text's first ``20 × width`` characters are read: a field may hold a 10 MB answer.
    """
    raw = "" if text is None else str(text)
    if width is not None:
        raw = raw[: width * 20]
    flat = " ".join(strip_controls(raw).split())
    return flat if width is None or len(flat) <= width else flat[: width - 1] + "…"
