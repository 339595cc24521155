"""What every backend's session does the same way: owning its server for ``async with``.

A session holds the settings, the credentials (registered with the redactor before the
server starts), the approver and the event subscriber, and an exit stack that owns
the server and its CODEX_HOME; :meth:`OwnedSession._open` is each backend's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from orchestrator.redaction import Redactor, get_redactor
from schemas import CodexServerConfig

from ._launch import CodexLaunch
from .approvals import Approver, DenyAllApprover
from .events import EventCallback
from .turns import TurnBuilder


class OwnedSession(ABC):
    """An async context manager owning one codex server (see the backends' docs)."""

    def __init__(
        self,
        config: CodexServerConfig,
        *,
        env: Mapping[str, str] | None,
        approver: Approver | None,
        codex_home: Path | None,
        on_event: EventCallback | None,
        redactor: Redactor | None,
    ) -> None:
        self.config = config
        self._launch = CodexLaunch(config=config, env=dict(env or {}), codex_home=codex_home)
        self._approver: Approver = approver or DenyAllApprover()
        self._on_event = on_event
        self._redactor = redactor or get_redactor()
        self._stack: AsyncExitStack | None = None
        self._turns = TurnBuilder()

    @abstractmethod
    async def _open(self, stack: AsyncExitStack) -> None:
        """Start the server and connect, everything entered on ``stack``."""

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._register_credentials()
            await self._open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (by default: stop the server, remove its home). Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            # Not shielded here: the stack holds task groups entered outside any new
            # scope; the process layer shields its own shutdown.
            await stack.aclose()

    def _register_credentials(self) -> None:
        key = self.config.provider.env_key
        if key and self._launch.env.get(key):
            self._redactor.register(self._launch.env[key])
