"""Reading answers: JSON in a message, pytest's summary line."""

from __future__ import annotations

import pytest

from agents._outputs import InvalidAnswer, extract_json, parse_pytest_summary


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '  {"a": 1}\n',
        'Here it is:\n```json\n{"a": 1}\n```\nDone.',
        'Sure! {"a": 1} -- that is all.',
    ],
)
def test_extract_json_finds_the_object(text: str) -> None:
    assert extract_json(text) == {"a": 1}


@pytest.mark.parametrize("text", ["", "no json here", "{broken: }"])
def test_extract_json_refuses_text_without_an_object(text: str) -> None:
    with pytest.raises(InvalidAnswer, match="no JSON object"):
        extract_json(text)


@pytest.mark.parametrize(
    ("output", "counts"),
    [
        ("....\n4 passed in 0.01s\n", (4, 0, 0, 0)),
        ("..F\n=== 1 failed, 2 passed in 0.12s ===\n", (2, 1, 0, 0)),
        ("E\n1 passed, 1 skipped, 2 errors in 1.50s\n", (1, 0, 2, 1)),
        ("\nno tests ran in 0.00s\n", (0, 0, 0, 0)),
        ("3 passed, 1 warning in 0.20s", (3, 0, 0, 0)),
    ],
)
def test_the_pytest_summary_line_is_parsed(output: str, counts: tuple[int, ...]) -> None:
    parsed = parse_pytest_summary(output)
    assert parsed is not None
    assert (parsed.passed, parsed.failed, parsed.errors, parsed.skipped) == counts


def test_output_without_a_summary_line_gives_none() -> None:
    assert parse_pytest_summary("ImportError: no module named textkit\n") is None
