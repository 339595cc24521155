"""Replace secret values, and text shaped like common tokens, with ``***``.

One :class:`Redactor` per process holds the registered secret values. It is
applied to every manifest write, every audit line and, once
:func:`install_log_redaction` ran, to every Python log record (so Prefect's
loggers, including the one that ships logs to the API, are covered).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

PLACEHOLDER = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: replacing them everywhere would shred the text."""
_CACHE_ENTRIES = 4096
_CACHE_TEXT_LIMIT = 1024
"""Only texts up to this many characters are remembered (at most ~4 MB in all)."""

TOKEN_PATTERNS: tuple[str, ...] = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}",  # OpenAI API keys
    r"\b(?:hv[sbr]|s|b|r)\.[A-Za-z0-9_-]{24,}",  # Vault / OpenBao tokens
    r"\bgh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{12,}",  # Authorization: Bearer <token>
)


class Redactor:
    """Redacts registered secret values and token-shaped text. Thread-safe."""

    def __init__(self, *, patterns: Iterable[str] = TOKEN_PATTERNS) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._patterns = [re.compile(p) for p in patterns]
        self._redact_short = self._new_cache(None)

    def register(self, *values: str) -> None:
        """Redact these values from now on. Values under 4 characters are ignored."""
        with self._lock:
            self._values.update(v for v in values if len(v) >= MIN_SECRET_LENGTH)
            ordered = sorted(self._values, key=len, reverse=True)
            values_regex = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._redact_short = self._new_cache(values_regex)

    def clear(self) -> None:
        """Forget every registered value (patterns stay)."""
        with self._lock:
            self._values.clear()
            self._redact_short = self._new_cache(None)

    def _new_cache(self, values_regex: re.Pattern[str] | None) -> Callable[[str], str]:
        """Redaction with the values known now, remembering short texts it has seen.

        A manifest is redacted on every write and most of its ~500 strings are the same
        each time: the cache makes that 30x cheaper. A new value means a new cache.
        """

        def redact(text: str) -> str:
            if values_regex is not None:
                text = values_regex.sub(PLACEHOLDER, text)
            for pattern in self._patterns:
                text = pattern.sub(PLACEHOLDER, text)
            return text

        cached = functools.lru_cache(maxsize=_CACHE_ENTRIES)(redact)
        return lambda text: cached(text) if len(text) <= _CACHE_TEXT_LIMIT else redact(text)

    @property
    def secret_count(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        """``text`` with every registered value and token-shaped run replaced by ``***``."""
        return self._redact_short(text)

    def redact_data(self, data: Any) -> Any:
        """A copy of JSON-like ``data`` with every string (keys included) redacted."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.redact_data(k): self.redact_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.redact_data(item) for item in data]
        return data


_default_redactor = Redactor()


def get_redactor() -> Redactor:
    """The process-wide redactor (the one installed on logging by default)."""
    return _default_redactor


def set_redactor(redactor: Redactor) -> Redactor:
    """Replace the process-wide redactor; returns the previous one (tests restore it)."""
    global _default_redactor
    previous, _default_redactor = _default_redactor, redactor
    return previous


RecordFactory = Callable[..., logging.LogRecord]
_installed: tuple[RecordFactory, RecordFactory] | None = None


def install_log_redaction(redactor: Redactor | None = None) -> None:
    """Redact every log record created from now on, in this process. Idempotent.

    The hook is a log-record factory, so it sees records of every logger before any
    handler (console, file, Prefect's API handler) formats them. The message is
    formatted once, redacted, and stored without args; a traceback is formatted,
    redacted, and stored as ``exc_text``.
    """
    global _installed
    if _installed is not None:
        return
    original = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        _redact_record(record, redactor or get_redactor())
        return record

    logging.setLogRecordFactory(redacting_factory)
    _installed = (original, redacting_factory)


def uninstall_log_redaction() -> None:
    """Undo :func:`install_log_redaction` (for tests)."""
    global _installed
    if _installed is None:
        return
    original, factory = _installed
    if logging.getLogRecordFactory() is factory:
        logging.setLogRecordFactory(original)
    _installed = None


def _redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Redact the message template and each argument, keeping the record's shape.

    Formatters that read ``record.args`` themselves (uvicorn's access log) keep
    working: string arguments are redacted in place, other objects are replaced by
    their redacted ``str``; numbers and ``None`` stay as they are.
    """
    record.msg = redactor.redact(record.msg if isinstance(record.msg, str) else str(record.msg))
    if isinstance(record.args, Mapping):
        record.args = {key: _redact_arg(value, redactor) for key, value in record.args.items()}
    elif record.args:
        record.args = tuple(_redact_arg(value, redactor) for value in record.args)
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redactor.redact(text)
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


def _redact_arg(value: object, redactor: Redactor) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redactor.redact(value)
    return redactor.redact(repr(value) if isinstance(value, dict | list | tuple) else str(value))
