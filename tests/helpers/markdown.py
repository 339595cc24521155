"""What a reader sees of markdown: as HTML (CommonMark with GFM tables, as a browser
would show it) and as the terminal shows it through rich's Markdown (the CLI)."""

from __future__ import annotations

import html
import io
import re

from markdown_it import MarkdownIt
from rich.console import Console
from rich.markdown import Markdown

_RENDERER = MarkdownIt("commonmark", {"html": True}).enable("table")
_TAG = re.compile(r"<[^>]+>")


def as_html(markdown: str) -> str:
    """The HTML of ``markdown``; raw HTML in it passes through, as an unsanitised UI would."""
    return _RENDERER.render(markdown)


def tags(markdown: str) -> list[str]:
    """The element names the rendered markdown holds, in order."""
    return [m.group(0).strip("</>").split()[0] for m in _TAG.finditer(as_html(markdown))]


def visible_text(markdown: str) -> str:
    """The text a browser shows of ``markdown`` (tags dropped, entities decoded)."""
    return html_text(as_html(markdown))


def html_text(fragment: str) -> str:
    """The text a browser shows of an HTML fragment."""
    return html.unescape(_TAG.sub(" ", fragment))


def cells(markdown: str) -> list[str]:
    """The text of each body cell of the rendered table(s), in order (blanks collapsed)."""
    found = re.findall(r"<td>(.*?)</td>", as_html(markdown), flags=re.DOTALL)
    return [" ".join(html_text(cell).split()) for cell in found]


def in_terminal(markdown: str) -> str:
    """What ``rich`` prints of ``markdown`` (as ``orchestrator approvals RUN`` does)."""
    out = io.StringIO()
    Console(file=out, width=300, color_system=None, legacy_windows=False).print(Markdown(markdown))
    return out.getvalue()
