"""Which agent backends are installed here, their codex versions, and whether the sandbox
works for each (``orchestrator doctor``).

For each backend: the executable it would start (as a session resolves it), what
``codex --version`` says, and a sandbox probe: ``codex sandbox -- sh -c ...`` under the
settings a session writes (``workspace-write``), which must run a command and must
not let it write outside its workspace. Every codex process starts through
:mod:`agents._process`, like a session's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from orchestrator.exceptions import AgentServerError
from schemas import AgentBackend, CodexServerConfig

from ._home import private_codex_home
from ._launch import resolve_app_server_command, resolve_codex_command, server_environment
from ._process import open_codex_process

__all__ = ["BackendStatus", "check_backends"]

PROBE_TIMEOUT: Final = 30.0
BACKENDS: Final[tuple[AgentBackend, ...]] = ("mcp", "app-server")
_OFFLINE = CodexServerConfig.model_validate({"provider": {"base_url": "http://127.0.0.1:9/v1"}})
"""Settings for the probes: no model is asked, and none off this machine could be."""


@dataclass(frozen=True)
class BackendStatus:
    """What the doctor found for one backend.

    Attributes:
        backend: ``mcp`` or ``app-server``.
        executable: the codex it starts; None when there is none.
        version: what ``codex --version`` printed (e.g. ``codex-cli 0.163.0``).
        sandbox: ``works``, or what went wrong.
    """

    backend: AgentBackend
    executable: str | None
    version: str | None
    sandbox: str

    @property
    def ok(self) -> bool:
        return self.executable is not None and self.sandbox == "works"


async def check_backends(config: CodexServerConfig | None = None) -> list[BackendStatus]:
    """The status of every backend (``config``: its ``codex_command``, if any)."""
    base = config or _OFFLINE
    return [await _check(base.model_copy(update={"backend": name})) for name in BACKENDS]


async def _check(config: CodexServerConfig) -> BackendStatus:
    app_server = config.backend == "app-server"
    resolve = resolve_app_server_command if app_server else resolve_codex_command
    try:
        executable = resolve(config)
    except AgentServerError as exc:
        return BackendStatus(config.backend, None, None, f"not installed: {exc}")
    try:
        code, output = await _run(config, [executable, "--version"])
        version = output.splitlines()[0] if code == 0 and output else None
        sandbox = await _probe_sandbox(config, executable)
    except OSError as exc:
        return BackendStatus(config.backend, executable, None, f"cannot start: {exc.strerror}")
    return BackendStatus(config.backend, executable, version, sandbox)


async def _probe_sandbox(config: CodexServerConfig, executable: str) -> str:
    probe = Path.home() / ".cache" / "codex-orchestrator" / f"doctor-{secrets.token_hex(4)}"
    script = f"echo inside; if touch {probe} 2>/dev/null; then echo escaped; fi"
    try:
        code, output = await _run(config, [executable, "sandbox", "--", "sh", "-c", script])
    finally:
        escaped = probe.exists()
        probe.unlink(missing_ok=True)
    if escaped or "escaped" in output:
        return "broken: a sandboxed command wrote outside its workspace"
    if code != 0 or "inside" not in output:
        last = output.strip().splitlines()[-1:] or [f"exit code {code}"]
        return f"broken: {last[0][:200]}"
    return "works"


async def _run(config: CodexServerConfig, command: list[str]) -> tuple[int | None, str]:
    """Exit code and stdout then stderr of ``command``, run as a session runs codex."""
    with private_codex_home(config, path=None) as home:
        env = server_environment(home, {})
        async with open_codex_process(command, env=env, cwd=home) as process:
            lines: list[str] = []
            with anyio.move_on_after(PROBE_TIMEOUT):
                async for line in process.lines:
                    lines.append(line.decode("utf-8", "replace"))
            code = await process.wait_exit(PROBE_TIMEOUT)
            return code, "\n".join([*lines, process.stderr_tail()]).strip()
