"""Text an agent wrote, made to show literally to the person who reads it.

Plans, subtask titles, file names, commands, reasons, review text and diff stats come
from a model: rendered as markdown (the Prefect UI's pause form and artifacts, the CLI's
``rich`` Markdown), ``textkit/__init__.py`` would show as "textkit/**init**.py", and
``<img src=x>`` or ``[link](http://x)`` could reformat or hide what is decided. Every
builder of such markdown passes agent text through one of these:

- :func:`md_text`: prose (paragraphs, list items);
- :func:`md_cell`: one cell of a markdown table (one line; ``|`` escaped);
- :func:`md_code`: an inline code span, whatever backticks the text holds;
- :func:`md_fence`: a fenced block no backtick run inside can close;
- :func:`terminal_text`: plain text for a terminal (no control characters), for what the
  CLI prints without markdown.
"""

from __future__ import annotations

import re
import string
import unicodedata

__all__ = ["md_cell", "md_code", "md_fence", "md_text", "terminal_text"]

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BACKSLASHED = frozenset(string.punctuation) - set(_ENTITIES)
_BACKTICK_RUN = re.compile(r"`+")


def _escape_line(line: str) -> str:
    # HTML's three specials become entities (no tag, no entity of the agent's survives);
    # every other ASCII punctuation character is backslash-escaped, which CommonMark
    # defines for all of them: no emphasis, link, heading, list, table cell or autolink.
    return "".join(_ENTITIES.get(c) or (f"\\{c}" if c in _BACKSLASHED else c) for c in line)


def md_text(text: str) -> str:
    """``text`` as markdown prose that renders exactly as written.

    Line breaks stay line breaks (CommonMark hard breaks); leading blanks are dropped so
    that no line becomes an indented code block (where escapes would show).
    """
    lines = [_escape_line(terminal_text(line).strip()) for line in text.splitlines()]
    return "\\\n".join(line for line in lines if line)


def md_cell(text: str) -> str:
    """``text`` as the content of one markdown table cell: one line, rendered literally."""
    return md_text(text).replace("\\\n", " ")


def md_code(text: str, *, cell: bool = False) -> str:
    """``text`` as an inline code span; ``cell``: inside a table row (``|`` escaped).

    The span's fence is one backtick longer than the longest run in ``text``, padded
    with a space when ``text`` starts or ends with a backtick, so nothing closes it early.
    """
    line = " ".join(terminal_text(text).split("\n"))
    longest = max((len(run) for run in _BACKTICK_RUN.findall(line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") or not line.strip() else ""
    body = line.replace("|", "\\|") if cell else line
    return f"{fence}{pad}{body}{pad}{fence}"


def md_fence(text: str, *, lang: str = "") -> str:
    """``text`` in a fenced code block whose fence no run of backticks in it can close."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{terminal_text(text, keep_tabs=True)}\n{fence}\n\n"


def terminal_text(text: str, *, keep_tabs: bool = False) -> str:
    """``text`` with control characters (escape sequences, carriage returns) made visible.

    Newlines stay; anything else of Unicode category C* (except a tab with ``keep_tabs``)
    becomes ``\\xNN`` / ``\\uNNNN``, so a terminal shows it instead of obeying it. Print
    the result as plain text (e.g. ``rich.text.Text``), never as rich markup.
    """
    return "".join(
        c
        if c == "\n" or (keep_tabs and c == "\t") or not unicodedata.category(c).startswith("C")
        else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in text
    )
