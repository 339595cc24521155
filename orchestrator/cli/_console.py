"""Rich consoles for the CLI; what they write passes through the process's redactor.

The consoles write to a stream that redacts each rendered chunk with
:func:`orchestrator.redaction.get_redactor` (the values the command registered, such as
a token read from Vault, and token-shaped text) before it reaches ``sys.stdout`` /
``sys.stderr``, looked up on each write so that captured output (tests, typer's runner)
is redacted too. A value that a table wraps across two lines is not one run of text any
more and is not caught: secrets are kept out of what is printed in the first place; this
is the last guard.
"""

from __future__ import annotations

import io
import sys
from typing import Any, TextIO, cast

from rich.console import Console

from orchestrator.redaction import get_redactor


class _RedactedStream(io.TextIOBase):
    """``sys.<name>``, with every write redacted."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only on TextIOBase, a str here
        return getattr(self._stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        self._stream.write(get_redactor().redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def _redacted(name: str) -> TextIO:
    # TextIOBase is a text stream, but typeshed does not make it an IO[str].
    return cast(TextIO, _RedactedStream(name))


class _LiveWidthConsole(Console):
    """A console that reads ``COLUMNS`` each time it prints, not once when it is made.

    Rich fixes the width from ``COLUMNS`` in ``__init__``; these consoles are made when
    the CLI is first imported, so an in-process caller (typer's runner, a test) that
    sets ``COLUMNS`` later would get the width of whatever the environment said then.
    Without a fixed width, rich reads the terminal's size and ``COLUMNS`` on every print.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._width = None


console = _LiveWidthConsole(file=_redacted("stdout"), highlight=False)
err_console = _LiveWidthConsole(file=_redacted("stderr"), highlight=False, soft_wrap=True)
