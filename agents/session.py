"""A codex session: one codex MCP server and the calls made through it.

:class:`CodexSession` puts three pieces together, each in a module of its own:

- the **connection** from a stream factory (:mod:`agents._streams`): by default a
  ``codex mcp-server`` spawned with a private CODEX_HOME and only the environment it
  needs (:mod:`agents._process` owns the process); tests pass an in-memory server;
- the **protocol** (:mod:`agents._protocol`): MCP calls, their ``codex/event``
  notifications in wire order, approvals, deadlines and errors;
- the **turns** (:mod:`agents.turns`): each call's events made into a :class:`Turn`.

Several calls may run at once on one session.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

from orchestrator.exceptions import AgentServerError
from orchestrator.redaction import Redactor
from schemas import ApprovalPolicyName, CodexServerConfig, SandboxMode

from ._launch import CodexLaunch, resolve_codex_command, server_environment
from ._owned import OwnedSession
from ._protocol import McpCodexClient
from ._streams import ServerStreams, StreamFactory, spawn_mcp_server
from .approvals import Approver
from .events import EventCallback
from .turns import Turn, summarize_commands, summarize_patches

# Names other code imports from here; they live in the modules named above.
__all__ = [
    "CodexLaunch",
    "CodexSession",
    "ServerStreams",
    "StreamFactory",
    "Turn",
    "resolve_codex_command",
    "server_environment",
    "summarize_commands",
    "summarize_patches",
]


class CodexSession(OwnedSession):
    """An async context manager owning one connection to a codex MCP server.

    Args:
        config: server settings (provider, model, sandbox, approval policy, timeouts).
        env: extra environment of the server process, e.g. ``{"OPENAI_API_KEY": ...}``
            from the credential broker. Only a few harmless variables (PATH, HOME,
            locale...) are inherited from ours; ``PATH`` starts with this interpreter's
            folder, so ``python`` in agent commands is ours unless ``env`` says otherwise.
        approver: answers codex's exec/patch approval requests; default: deny all.
        codex_home: the CODEX_HOME to use (never under /tmp); default: a fresh private
            folder under ``~/.cache/codex-orchestrator``, removed on exit.
        on_event: receives every event of every call.
        streams: connects to the server; default: spawn ``codex mcp-server``
            (:func:`agents._streams.spawn_mcp_server`).
        redactor: applied to server texts in errors; the value of ``provider.env_key``
            in ``env`` is registered with it. Default: the process-wide one.
    """

    backend: Final = "mcp"

    def __init__(
        self,
        config: CodexServerConfig,
        *,
        env: Mapping[str, str] | None = None,
        approver: Approver | None = None,
        codex_home: Path | None = None,
        on_event: EventCallback | None = None,
        streams: StreamFactory | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__(
            config,
            env=env,
            approver=approver,
            codex_home=codex_home,
            on_event=on_event,
            redactor=redactor,
        )
        self._connect: StreamFactory = streams or spawn_mcp_server
        self._streams: ServerStreams | None = None
        self._client: McpCodexClient | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id, when there is a process (kept after it stopped)."""
        process = self._streams.process if self._streams is not None else None
        return process.pid if process is not None else None

    @property
    def codex_home(self) -> Path | None:
        return self._streams.codex_home if self._streams is not None else None

    @property
    def codex_version(self) -> str | None:
        """The codex version the server reported when it started (None before)."""
        return self._client.server_version if self._client is not None else None

    @property
    def alive(self) -> bool:
        """Open, and the server still there."""
        return self._stack is not None and self._client is not None and self._client.connected

    async def _open(self, stack: AsyncExitStack) -> None:
        self._streams = await stack.enter_async_context(self._connect(self._launch))
        client = McpCodexClient(
            self._streams,
            config=self.config,
            approver=self._approver,
            redactor=self._redactor,
            on_event=self._on_event,
        )
        await client.open(stack)
        self._client = client

    # -- calls -----------------------------------------------------------------------

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
        """Start a new thread with ``prompt`` in ``cwd`` (the ``codex`` tool).

        Raises:
            AgentServerError: the server is not running, died, or answered with an error.
            AgentTimeoutError: the call took longer than ``timeout`` (default: the config's).
        """
        folder = _absolute(cwd)
        arguments: dict[str, Any] = {
            "prompt": prompt,
            "cwd": folder,
            "sandbox": sandbox or self.config.sandbox,
            "approval-policy": approval_policy or self.config.approval_policy,
        }
        return await self._call("codex", arguments, deadline=timeout, on_event=on_event, cwd=folder)

    async def reply(
        self,
        thread_id: str,
        prompt: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-call deadline, the public API
        on_event: EventCallback | None = None,
    ) -> Turn:
        """Continue thread ``thread_id`` with ``prompt`` (the ``codex-reply`` tool).

        Raises:
            AgentServerError: the server is not running, died, or answered with an error.
            AgentTimeoutError: the call took longer than ``timeout`` (default: the config's).
        """
        arguments = {"prompt": prompt, "threadId": thread_id}
        cwd = self._turns.cwd_of(thread_id)
        return await self._call(
            "codex-reply", arguments, deadline=timeout, on_event=on_event, cwd=cwd
        )

    async def _call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        deadline: float | None,
        on_event: EventCallback | None,
        cwd: str | None,
    ) -> Turn:
        if self._client is None or self._stack is None:
            raise AgentServerError("the codex session is not open", tool=tool)
        record = await self._client.call(
            tool, arguments, deadline=deadline, on_event=on_event, cwd=cwd
        )
        return self._turns.build(record)


def _absolute(path: Path) -> str:
    return str(Path(path).absolute())
