"""The call marker at the top of every prompt."""

from __future__ import annotations

import pytest

from agents import find_marker, render_marker


def test_a_marker_round_trips() -> None:
    attributes = {"role": "builder", "task": "add-text-helpers", "subtask": "slugify"}
    line = render_marker(attributes)
    assert line == '<orchestrator-call role="builder" task="add-text-helpers" subtask="slugify" />'
    assert find_marker(f"{line}\nDo the work.\n") == attributes


def test_the_first_marker_wins_and_text_without_one_has_none() -> None:
    first = render_marker({"role": "reviewer", "task": "t"})
    quoted = render_marker({"role": "builder", "task": "other"})
    assert find_marker(f"{first}\n```diff\n+{quoted}\n```") == {"role": "reviewer", "task": "t"}
    assert find_marker("just a prompt") is None


@pytest.mark.parametrize(("key", "value"), [("role", 'a"b'), ("Role", "x"), ("role", "a\nb")])
def test_values_that_would_break_the_marker_are_refused(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="call marker"):
        render_marker({key: value})
