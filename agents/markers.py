"""The call marker: one line at the top of every role prompt naming the call.

``<orchestrator-call role="builder" task="add-text-helpers" subtask="slugify" />``

It tells a person reading a transcript what the prompt is for, and it is what the
replay provider matches its scripts on. Only the marker is matched, never the free text
around it, so extra context (e.g. "this step is redone after a crash") does not change
which script answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MARKER_PATTERN", "find_marker", "render_marker"]

MARKER_PATTERN = re.compile(r"<orchestrator-call((?:\s+[a-z_]+=\"[^\"<>]*\")*)\s*/>")
_ATTRIBUTE = re.compile(r"([a-z_]+)=\"([^\"<>]*)\"")
_SAFE_VALUE = re.compile(r"^[^\"<>\n]*$")


def render_marker(attributes: Mapping[str, str]) -> str:
    """The marker line for ``attributes`` (keys lowercase; values without quotes or <>).

    Raises:
        ValueError: a key or value that cannot be written into a marker.
    """
    parts: list[str] = []
    for key, value in attributes.items():
        if not re.fullmatch(r"[a-z_]+", key) or not _SAFE_VALUE.match(value):
            raise ValueError(f"cannot put {key}={value!r} into a call marker")
        parts.append(f'{key}="{value}"')
    return f"<orchestrator-call {' '.join(parts)} />"


def find_marker(text: str) -> dict[str, str] | None:
    """The attributes of the first marker in ``text`` (prompts start with theirs), or None."""
    match = MARKER_PATTERN.search(text)
    if match is None:
        return None
    return dict(_ATTRIBUTE.findall(match.group(1)))
