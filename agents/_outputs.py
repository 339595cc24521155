"""Reading agents' answers: the JSON object in a message, and pytest's summary line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)
_SUMMARY_COUNT = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)"
)
_SUMMARY_LINE = re.compile(r"\b(?:\d+ \w+|no tests ran)\b.*\bin [\d.]+s\b")


class InvalidAnswer(ValueError):
    """An answer that cannot be used; the message says why (no raw payload)."""


def extract_json(text: str) -> Any:
    """The JSON value of an answer: the whole text, a fenced block, or the outer ``{...}``.

    Raises:
        InvalidAnswer: no JSON object could be read.
    """
    candidates = [text.strip(), *(m.group(1) for m in _FENCE.finditer(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise InvalidAnswer("the answer holds no JSON object")


@dataclass(frozen=True)
class PytestCounts:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    line: str = ""


def parse_pytest_summary(output: str) -> PytestCounts | None:
    """The counts of pytest's final summary line in ``output``, or None without one."""
    for raw in reversed(output.splitlines()):
        line = raw.strip().strip("=").strip()
        if not _SUMMARY_LINE.search(line):
            continue
        counts: dict[str, int] = {}
        for number, word in _SUMMARY_COUNT.findall(line):
            key = {"error": "errors", "errors": "errors"}.get(word, word)
            counts[key] = counts.get(key, 0) + int(number)
        return PytestCounts(
            passed=counts.get("passed", 0),
            failed=counts.get("failed", 0),
            errors=counts.get("errors", 0),
            skipped=counts.get("skipped", 0),
            line=line,
        )
    return None
