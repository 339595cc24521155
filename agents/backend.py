"""The agent-backend interface: what the roles and steps need of a session.

:class:`~agents.session.CodexSession` (``codex mcp-server``) implements it; another
backend only has to give the same :class:`~agents.turns.Turn` out of the same two calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from schemas import ApprovalPolicyName, CodexServerConfig, SandboxMode

from .events import EventCallback
from .turns import Turn

__all__ = ["AgentSession"]


class AgentSession(Protocol):
    """An open session of an agent backend: new threads and replies on them."""

    @property
    def config(self) -> CodexServerConfig:
        """The server settings the session runs with (the roles read its sandbox)."""
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
