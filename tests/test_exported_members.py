"""Each package re-exports its public names with a sorted ``__all__``."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "agents",
    "blocks",
    "devstack",
    "devstack.replay",
    "devstack.runs_api",
    "devstack.vault",
    "orchestrator",
    "schemas",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported == sorted(exported, key=_isort_style)
    assert set(exported) == _public(package)


def _public(package: object) -> set[str]:
    """Public names, including those a package imports on first use (its ``__dir__``)."""
    return {
        member
        for member in dir(package)
        if not member.startswith("_") and not _is_submodule(package, member)
    }


def _is_submodule(package: object, member: str) -> bool:
    return type(getattr(package, member)).__name__ == "module"


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions: the order ruff's RUF022 keeps."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)
