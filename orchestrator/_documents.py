"""Helpers for reading YAML documents people write: where a problem is, in their words."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError


def first_problem(exc: ValidationError) -> tuple[str | None, str]:
    """The dotted field and the reason of the first problem pydantic found.

    The reason says how many more there are, so one message stays honest about the rest.
    """
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    reason = first["msg"]
    if first["type"] == "extra_forbidden":
        reason = "unknown field"
    elif first["type"] == "missing":
        reason = "required field is missing"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return field, reason


def yaml_problem(exc: yaml.YAMLError, *, first_line: int = 1) -> str:
    """What is wrong with a YAML text, and on which line (counted from ``first_line``)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + first_line})" if mark is not None else problem


class _PlainDatesLoader(yaml.SafeLoader):
    """A safe loader that leaves dates as text, so pydantic checks them and names the field
    (PyYAML's own date parsing raises a bare ``ValueError`` on ``2026-13-01``)."""


_PlainDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """Parse YAML safely, with dates and times left as strings.

    Raises:
        yaml.YAMLError: the text is not YAML.
    """
    return yaml.load(text, Loader=_PlainDatesLoader)  # a SafeLoader subclass: safe
