from __future__ import annotations

import pytest

from orchestrator._versions import Bump, VersionRange, bump_between, parse_version
from orchestrator.exceptions import LibraryError


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0", "1.3.0-rc.1"]),
        ("^1.2.3", ["1.2.3", "1.4.0"], ["1.2.2", "2.0.0"]),
        ("^0.2", ["0.2.0", "0.2.9"], ["0.3.0", "0.1.9"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0", ["0.0.1", "0.9.0"], ["1.0.0"]),
        ("~1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("1.2", ["1.2.5"], ["1.3.0"]),
        ("1.2.3", ["1.2.3"], ["1.2.4"]),
        ("1.2.3-rc.1", ["1.2.3-rc.1"], ["1.2.3"]),
        ("*", ["0.0.1", "9.0.0"], ["1.0.0-rc.1"]),
        ("", ["3.1.4"], []),
    ],
)
def test_ranges_follow_npm_semantics(text: str, inside: list[str], outside: list[str]) -> None:
    wanted = VersionRange.parse(text)
    assert [v for v in inside if wanted.matches(parse_version(v))] == inside
    assert [v for v in outside if wanted.matches(parse_version(v))] == []


@pytest.mark.parametrize("text", ["^", "1.x", ">=1.0", "^1.2.3-rc.1", "01.2", "v1"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(LibraryError, match=r"version range|pre-release"):
        VersionRange.parse(text)


def test_bump_between_names_the_part_that_moved() -> None:
    v = parse_version
    assert bump_between(v("1.2.3"), v("2.0.0")) is Bump.MAJOR
    assert bump_between(v("1.2.3"), v("1.3.0")) is Bump.MINOR
    assert bump_between(v("1.2.3"), v("1.2.4")) is Bump.PATCH
    assert bump_between(v("1.2.3"), v("1.2.3")) is Bump.NONE
    assert bump_between(v("1.2.3"), v("1.2.3-rc.1")) is Bump.NONE
    with pytest.raises(LibraryError, match="not a semantic version"):
        parse_version("1.2")
