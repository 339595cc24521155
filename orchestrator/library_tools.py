"""Where the learning library's tools are: ruff from its wheel, jscodeshift and eslint
from a project-local node folder.

The JavaScript tools are installed from npm into one folder (``tools/node`` under the
orchestrator's home by default, ``ORCHESTRATOR_NODE_TOOLS`` otherwise) with the
versions pinned in its ``package-lock.json``; ``make setup`` runs ``npm ci`` there.
Nothing is looked up on PATH, so a run uses the versions the project pinned.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from schemas import LibraryTool

from .exceptions import LibraryError

NODE_TOOLS = {LibraryTool.JSCODESHIFT: "jscodeshift", LibraryTool.ESLINT: "eslint"}


def tool_executable(tool: LibraryTool, *, node_tools: Path) -> Path:
    """The executable that runs ``tool``'s entries.

    Args:
        tool: ruff, jscodeshift or eslint (libcst runs in Python; ``command`` brings its own).
        node_tools: The folder npm installed the JavaScript tools into.

    Raises:
        LibraryError: the tool is not installed, with how to install it.
    """
    if tool is LibraryTool.RUFF:
        return _ruff()
    if tool in NODE_TOOLS:
        return _node_tool(NODE_TOOLS[tool], node_tools)
    raise LibraryError(f"{tool.value} entries do not run through a tool executable")


def _ruff() -> Path:
    if importlib.util.find_spec("ruff") is None:
        raise LibraryError(
            "ruff is not installed: pip install 'codex-orchestrator[library]' "
            "(ruff linter entries need it)"
        )
    from ruff.__main__ import find_ruff_bin  # type: ignore[import-untyped]  # optional

    return Path(find_ruff_bin())


def _node_tool(name: str, node_tools: Path) -> Path:
    executable = node_tools / "node_modules" / ".bin" / name
    if not executable.is_file():
        raise LibraryError(
            f"{name} is not installed in {node_tools}: run 'npm ci --prefix {node_tools}' "
            "with the project's tools/node/package-lock.json there (make setup does), "
            "or set ORCHESTRATOR_NODE_TOOLS to the folder that has it"
        )
    return executable
