"""Semantic versions and the npm-style ranges a task pins library entries with.

Ranges: ``^1.2`` (>=1.2.0 <2.0.0; ``^0.2`` is <0.3.0, ``^0.0.3`` only 0.0.3), ``~1.2``
(>=1.2.0 <1.3.0), a partial ``1`` or ``1.2`` (the same as ``~``), an exact ``1.2.3`` (or
``1.2.3-rc.1``), and ``*`` or nothing (the highest version). Ranges never match a
pre-release; only an exact pin does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from semver import Version

from .exceptions import LibraryError

_RANGE = re.compile(
    r"^(?P<op>[\^~]?)(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*)"
    r"(?:\.(?P<patch>0|[1-9]\d*)(?:-(?P<pre>[0-9A-Za-z.-]+))?)?)?$"
)


class Bump(IntEnum):
    """How far apart two versions are, or how far a change must move the version."""

    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3


def parse_version(text: str) -> Version:
    """``text`` as a semantic version.

    Raises:
        LibraryError: it is not one.
    """
    try:
        return Version.parse(text)
    except ValueError:
        raise LibraryError(f"{text!r} is not a semantic version (e.g. 1.2.0)") from None


def bump_between(old: Version, new: Version) -> Bump:
    """Which part ``new`` raised over ``old`` (NONE when it is not higher)."""
    if new <= old:
        return Bump.NONE
    if new.major != old.major:
        return Bump.MAJOR
    if new.minor != old.minor:
        return Bump.MINOR
    return Bump.PATCH


@dataclass(frozen=True)
class VersionRange:
    """A parsed range: ``lower <= version < upper`` (or exactly ``lower`` when ``exact``)."""

    text: str
    lower: Version | None
    upper: Version | None
    exact: bool = False

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse a range (see the module's docstring for the forms).

        Raises:
            LibraryError: ``text`` is not a range.
        """
        text = text.strip()
        if text in ("", "*"):
            return cls(text or "*", None, None)
        match = _RANGE.fullmatch(text)
        if match is None:
            raise LibraryError(f"{text!r} is not a version range (e.g. ^1.2, ~1.2.3, 1.2.3)")
        op, pre = match["op"], match["pre"]
        major, minor, patch = (None if g is None else int(g) for g in match.group(2, 3, 4))
        assert major is not None  # the pattern requires it
        lower = Version(major, minor or 0, patch or 0, pre)
        if not op and patch is not None:
            return cls(text, lower, None, exact=True)
        if pre is not None:
            raise LibraryError(f"{text!r}: only an exact version may name a pre-release")
        upper = _caret_upper(major, minor, patch) if op == "^" else _tilde_upper(major, minor)
        return cls(text, lower, upper)

    def matches(self, version: Version) -> bool:
        if self.exact:
            return version == self.lower
        if version.prerelease:
            return False
        above = self.lower is None or version >= self.lower
        return above and (self.upper is None or version < self.upper)


def _caret_upper(major: int, minor: int | None, patch: int | None) -> Version:
    if major > 0 or minor is None:
        return Version(major + 1)
    if minor > 0 or patch is None:
        return Version(0, minor + 1)
    return Version(0, 0, patch + 1)


def _tilde_upper(major: int, minor: int | None) -> Version:
    return Version(major + 1) if minor is None else Version(major, minor + 1)
