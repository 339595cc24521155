"""The agent-backend interface: what the roles and steps need of a session.

Two backends implement it, and give the same :class:`~agents.turns.Turn` out of the same
two calls: :class:`~agents.session.CodexSession` (``mcp``: ``codex mcp-server``) and
:class:`~agents.appserver.AppServerSession` (``app-server``: ``codex app-server``).
:func:`new_session` picks the one the settings name (``CodexServerConfig.backend``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from schemas import AgentBackend, ApprovalPolicyName, CodexServerConfig, SandboxMode

from .approvals import Approver
from .events import EventCallback
from .session import CodexSession
from .turns import Turn

__all__ = ["AgentSession", "BackendSession", "new_session"]


class AgentSession(Protocol):
    """An open session of an agent backend: new threads and replies on them."""

    @property
    def config(self) -> CodexServerConfig:
        """The server settings the session runs with (the roles read its sandbox)."""
        ...

    @property
    def backend(self) -> AgentBackend:
        """Which backend this is (recorded with every agent step)."""
        ...

    @property
    def codex_version(self) -> str | None:
        """The codex version its server reported when it started."""
        ...

    async def start(
        self,
        prompt: str,
        *,
        cwd: Path,
        sandbox: SandboxMode | None = None,
        approval_policy: ApprovalPolicyName | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        """Start a new thread with ``prompt`` in ``cwd``.

        Raises:
            AgentServerError: the server is not running, died, or answered with an error.
            AgentTimeoutError: the call took longer than ``timeout``.
        """
        ...

    async def reply(
        self,
        thread_id: str,
        prompt: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        """Continue thread ``thread_id`` with ``prompt``.

        Raises:
            AgentServerError: the server is not running, died, or answered with an error.
            AgentTimeoutError: the call took longer than ``timeout``.
        """
        ...


class BackendSession(AgentSession, Protocol):
    """A session as :func:`new_session` makes it: opened and closed with ``async with``."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    @property
    def pid(self) -> int | None:
        """The server's process id, once started."""
        ...

    @property
    def alive(self) -> bool:
        """Open, and the server still there."""
        ...

    @property
    def codex_home(self) -> Path | None:
        """The server's CODEX_HOME, once started."""
        ...


def new_session(
    config: CodexServerConfig,
    *,
    env: Mapping[str, str] | None = None,
    approver: Approver | None = None,
    codex_home: Path | None = None,
    on_event: EventCallback | None = None,
) -> BackendSession:
    """An unopened session of the backend ``config.backend`` names.

    Args:
        config: the server settings (``backend`` picks the implementation).
        env: the credentials for the server's environment, and nothing else.
        approver: answers codex's approval requests; default: deny all.
        codex_home: the CODEX_HOME to use; default: a fresh private one.
        on_event: receives every event of every call.
    """
    if config.backend == "app-server":
        # Imported here: its SDK models cost ~0.7 CPU-s that an mcp run never needs.
        from .appserver import AppServerSession

        return AppServerSession(
            config, env=env, approver=approver, codex_home=codex_home, on_event=on_event
        )
    return CodexSession(
        config, env=env, approver=approver, codex_home=codex_home, on_event=on_event
    )
