"""Finding code in an answer: fenced blocks by language, and a Vue component's TypeScript with
its lines and columns kept."""

from __future__ import annotations

import pytest

from llmbench_tui.quality.extract import (
    JSON,
    PYTHON,
    TYPESCRIPT,
    NoTypeScriptBlock,
    Snippet,
    code_of,
    fenced_block,
    typescript_source,
)


def test_first_block_in_the_language_wins_over_an_earlier_untagged_one():
    answer = "a\n```\nuntagged\n```\n```bash\nls\n```\n```Python\nx = 1\n```\n"
    assert fenced_block(answer, PYTHON) == Snippet("x = 1", 8)
    assert fenced_block(answer, JSON) == Snippet("untagged", 2)


def test_fence_variants():
    assert fenced_block("~~~~ json {.x}\n[1]\n~~~~", JSON) == Snippet("[1]", 1)
    # Indented (in a list), CRLF line ends, a longer closing fence.
    assert fenced_block("1. code:\n   ```ts\r\n   let a = 1\r\n   `````\n", TYPESCRIPT) == Snippet(
        "   let a = 1", 2
    )
    # A fence of three backticks is not closed by two, nor by a tilde fence.
    assert fenced_block("```py\na\n``\n~~~\nb\n```", PYTHON) == Snippet("a\n``\n~~~\nb", 1)


def test_unclosed_fence_runs_to_the_end():
    assert fenced_block("```python\ndef f():\n    return 1", PYTHON) == Snippet(
        "def f():\n    return 1", 1
    )


def test_inline_backticks_are_not_a_fence():
    assert fenced_block("use ```x``` here", PYTHON) is None
    assert code_of("no fences at all", PYTHON) == Snippet("no fences at all", 0)


def test_vue_script_blocks_keep_their_positions():
    vue = (
        "<template>\n  <p>{{ n }}</p>\n</template>\n"
        '<script lang="ts">\nexport const a = 1\n</script>\n'
        "<style>p { color: red }</style>\n"
        "<script setup lang='ts'>const n: number = a\n</script>\n"
    )
    source = typescript_source(vue)
    lines = source.split("\n")
    assert lines[4] == "export const a = 1"
    assert lines[7] == " " * len("<script setup lang='ts'>") + "const n: number = a"
    assert "<template>" not in source and "<style>" not in source


def test_vue_without_typescript_and_plain_typescript():
    with pytest.raises(NoTypeScriptBlock):
        typescript_source("<script>\nexport default {}\n</script>")
    with pytest.raises(NoTypeScriptBlock):
        typescript_source('<script lang="tsx">\n</script>')
    assert typescript_source("let a: number = 1") == "let a: number = 1"
