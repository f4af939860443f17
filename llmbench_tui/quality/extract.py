"""Finding the code or data a check should look at inside an answer.

Models wrap code in Markdown: some prose, then a fenced block. Code and JSON checks look at the
first fenced block in their language (else the first untagged block, else the whole answer).
Fences are found line by line with plain string tests, never with a backtracking regex, so a
10 MB answer costs one pass. A snippet remembers how many answer lines precede it, so a detail
can say "line 14" of the answer as stored, not of some block the reader has to find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PYTHON = frozenset({"python", "py", "python3"})
TYPESCRIPT = frozenset({"ts", "typescript", "vue"})
JSON = frozenset({"json"})


@dataclass(frozen=True)
class Snippet:
    """Text taken from an answer; ``line_offset`` answer lines come before its first line."""

    text: str
    line_offset: int = 0


def _opening(line: str) -> tuple[str, int, str] | None:
    """``(fence character, fence length, language)`` if ``line`` opens a fenced block."""
    s = line.lstrip(" \t")
    ch = s[:1]
    if ch not in ("`", "~"):
        return None
    size = len(s) - len(s.lstrip(ch))
    if size < 3:
        return None
    info = s[size:].strip()
    if ch == "`" and "`" in info:
        return None  # inline code such as ```x``` on one line, not a fence
    words = info.split(maxsplit=1)
    lang = words[0].strip("{}.").lower() if words else ""
    return ch, size, lang


def _closes(line: str, ch: str, size: int) -> bool:
    s = line.strip()
    return len(s) >= size and s == ch * len(s)


def fenced_block(answer: str, langs: frozenset[str]) -> Snippet | None:
    """The first fenced block tagged with one of ``langs``, else the first untagged one.

    An unclosed fence runs to the end of the answer (as in CommonMark): a model cut off by
    ``max_tokens`` still has its code checked.
    """
    lines = answer.split("\n")
    untagged: Snippet | None = None
    i = 0
    while i < len(lines):
        opening = _opening(lines[i])
        if opening is None:
            i += 1
            continue
        ch, size, lang = opening
        end = i + 1
        while end < len(lines) and not _closes(lines[end], ch, size):
            end += 1
        body = "\n".join(line.removesuffix("\r") for line in lines[i + 1 : end])
        if lang in langs:
            return Snippet(body, i + 1)
        if not lang and untagged is None:
            untagged = Snippet(body, i + 1)
        i = end + 1
    return untagged


def code_of(answer: str, langs: frozenset[str]) -> Snippet:
    """The code a code check looks at: the right fenced block, or the whole answer."""
    return fenced_block(answer, langs) or Snippet(answer)


# Bounded repeats: many unfinished "<script" tags cannot make the scan quadratic.
_SCRIPT_OPEN = re.compile(r"<script\b([^>]{0,2000})>", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(r"</script\s{0,100}>", re.IGNORECASE)
_LANG_TS = re.compile(r"""\blang\s*=\s*(?:"ts"|'ts'|ts(?![\w-]))""", re.IGNORECASE)


class NoTypeScriptBlock(ValueError):
    """Vue single-file-component markup without a ``<script lang="ts">`` block."""


def typescript_source(code: str) -> str:
    """The TypeScript in ``code``: the code itself, or, when it is a Vue single-file component
    (it has ``<script`` tags), its ``lang="ts"`` script blocks with everything else blanked.

    Blanking (newlines kept, the rest of a tag's line turned into spaces) leaves every script
    line and column where it was, so ``tsc``'s positions are positions in the component.
    ``<script>`` and ``<script setup>`` may both be present, as Vue allows; both are checked.
    Raises ``NoTypeScriptBlock`` when there are script tags but none in TypeScript.
    """
    if _SCRIPT_OPEN.search(code) is None:
        return code
    parts: list[str] = []
    pos = 0  # end of the text already turned into parts
    inside_until = 0  # end of the last script block seen, TypeScript or not
    for m in _SCRIPT_OPEN.finditer(code):
        if m.start() < inside_until:
            continue  # "<script" written inside a script block
        close = _SCRIPT_CLOSE.search(code, m.end())
        inside_until = close.start() if close else len(code)
        if _LANG_TS.search(m.group(1)):
            before = code[pos : m.end()]
            column = len(before) - (before.rfind("\n") + 1)
            parts.append("\n" * before.count("\n") + " " * column)
            parts.append(code[m.end() : inside_until])
            pos = inside_until
        if close is None:
            break
    if not parts:
        raise NoTypeScriptBlock('no <script lang="ts"> block in the Vue component')
    return "".join(parts)
