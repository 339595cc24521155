"""Agent text reaches a reader literally: markdown, HTML, links, backticks and pipes."""

from __future__ import annotations

import pytest

from orchestrator.literal import md_cell, md_code, md_fence, md_text, terminal_text
from tests.helpers.markdown import cells, in_terminal, tags, visible_text

HOSTILE = [
    "textkit/__init__.py",
    "**x**",
    "<img src=x>",
    "[link](http://x)",
    "a `tick` and ``two``",
    "left | right",
    "# not a heading",
    "1. not a list",
    "- not a list either",
    "&amp; stays &amp;",
    "*a* _b_ ~~c~~ \\*d\\*",
    "<script>alert(1)</script>",
    "![pic](http://x/p.png)",
]


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("text", HOSTILE)
def test_prose_renders_exactly_as_written(text: str) -> None:
    shown = md_text(text)
    assert tags(shown) == ["p", "p"]  # one paragraph, nothing else: no em, a, img, h1, li
    assert words(visible_text(shown)) == words(text)
    assert words(in_terminal(shown)) == words(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_a_table_cell_stays_one_cell_and_literal(text: str) -> None:
    table = f"| a | b |\n|---|---|\n| {md_cell(text)} | {md_code(text, cell=True)} |\n"
    assert tags(table).count("td") == 4  # two cells, opened and closed
    assert "img" not in tags(table) and "a" not in tags(table)
    assert [words(cell) for cell in cells(table)] == [words(text), words(text)]


@pytest.mark.parametrize("text", ["plain", "`", "``x``", "a ``` b", "`edge`", ""])
def test_a_code_span_holds_any_backticks(text: str) -> None:
    shown = md_code(text)
    assert tags(shown) == ["p", "code", "code", "p"]
    assert visible_text(shown).strip() == text.strip()


def test_a_fence_no_backtick_run_can_close() -> None:
    text = "echo ```x```\n````\n<b>not bold</b>"
    shown = md_fence(text)
    assert tags(shown) == ["pre", "code", "code", "pre"]
    assert visible_text(shown).strip() == text


def test_multi_line_prose_keeps_its_lines_and_makes_no_code_block() -> None:
    shown = md_text("first line\n    indented **x**\n\n> quoted")
    assert "pre" not in tags(shown) and "blockquote" not in tags(shown)
    assert words(visible_text(shown)) == "first line indented **x** > quoted"
    assert tags(shown).count("br") == 2


def test_control_characters_are_shown_not_obeyed() -> None:
    assert terminal_text("red \x1b[31mX\x1b[0m\rback\u202eevil\nnext") == (
        "red \\x1b[31mX\\x1b[0m\\x0dback\\u202eevil\nnext"
    )
    assert "\x1b" not in md_text("\x1b[2J") and "\x1b" not in md_code("\x1b[2J")
