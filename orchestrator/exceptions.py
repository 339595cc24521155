"""Every error the orchestrator raises on purpose.

    OrchestratorError
    ├── InvalidInputError (ValueError)          bad input: CLI exit code 2, nothing changed
    │   ├── DocumentError                       a file people write, naming file and field
    │   │   ├── TaskSpecError                   a task file that does not parse or validate
    │   │   └── SpecError                       a spec file or guard setting that does not parse
    │   ├── UnsafeIdError                       an id that could escape its folder
    │   ├── RunNotFoundError (LookupError)      no run with that id
    │   ├── ApprovalError                       a decision that cannot be taken
    │   ├── LibraryError                        a library index or change that is refused
    │   └── ReplayFixtureError                  a replay fixture set that does not load (devstack)
    ├── ManifestError                           a run folder's files
    │   ├── ManifestCorruptError (ValueError)   a file on disk fails to parse or validate
    │   ├── LockTimeoutError (TimeoutError)     another process held the lock too long
    │   └── StorageError (OSError)              the disk refused a write: full, read-only, ...
    ├── CredentialError                         Vault down, sealed, forbidden, missing path/key
    ├── AgentError                              the codex MCP server or an agent's output
    │   ├── AgentServerError                    the server died, failed to start, or said isError
    │   ├── AgentTimeoutError (TimeoutError)    a call took longer than its deadline
    │   └── AgentOutputError (ValueError)       structured output invalid after one repair
    ├── SyncError                               the Runs API refused or could not be reached
    ├── GitError                                a git command of ours failed
    ├── RunFailedError                          a run ended failed (carries the reason)
    ├── SubtaskRunError                         a subtask's deployment run on a worker failed
    ├── BudgetStoppedError                      a person (or expiry) stopped a run at its budget
    ├── ProcessError                            a process we started exited early, was not
    │                                           ready in time, or survived SIGKILL
    └── DevStackError                           a dev-stack part (devstack/) cannot start or be used

Every error carries structured fields and survives pickling (Prefect may pickle
it between processes). Messages never contain secret values.
"""

from __future__ import annotations

from typing import Any


def _restore(
    cls: type[OrchestratorError], message: str, state: dict[str, Any]
) -> OrchestratorError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class OrchestratorError(Exception):
    """Root of every orchestrator error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        return self.message


class InvalidInputError(OrchestratorError, ValueError):
    """Input the user can fix; nothing was changed."""


class DocumentError(InvalidInputError):
    """A file people write that cannot be used, naming the file and the field."""

    def __init__(self, message: str, *, path: str, field: str | None = None) -> None:
        where = f"{path}: field '{field}'" if field else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.field = field
        self.reason = message


class TaskSpecError(DocumentError):
    """A task file that cannot be used, naming the file and the field."""


class SpecError(DocumentError):
    """A spec file (or the spec guard's settings) that cannot be read."""


class UnsafeIdError(InvalidInputError):
    def __init__(self, message: str, *, value: str) -> None:
        super().__init__(message)
        self.value = value


class RunNotFoundError(InvalidInputError, LookupError):
    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class ManifestError(OrchestratorError):
    """A problem with a run folder's files."""


class ManifestCorruptError(ManifestError, ValueError):
    """A file on disk that fails to parse or validate; it is left untouched."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path}: {message} (the file was left untouched)")
        self.path = path
        self.reason = message


class LockTimeoutError(ManifestError, TimeoutError):
    def __init__(self, message: str, *, path: str, timeout: float) -> None:
        super().__init__(message)
        self.path = path
        self.timeout = timeout


class StorageError(ManifestError, OSError):
    """A file under the orchestrator home could not be written (disk full, permissions,
    a folder where a file belongs); an environment failure, not bad input."""

    def __init__(self, message: str, *, path: str, errno_name: str | None = None) -> None:
        OrchestratorError.__init__(self, message)
        self.path = path
        self.errno_name = errno_name


class CredentialError(OrchestratorError):
    """Credentials could not be loaded; the message names the cause, never a value."""

    def __init__(self, message: str, *, env: str | None = None, cause: str = "error") -> None:
        super().__init__(message)
        self.env = env
        self.cause = cause


class AgentError(OrchestratorError):
    """The codex MCP server or an agent's answer."""

    def __init__(self, message: str, *, role: str | None = None, tool: str | None = None) -> None:
        super().__init__(message)
        self.role = role
        self.tool = tool


class AgentServerError(AgentError):
    """The server failed to start, died, or answered a call with an error."""


class AgentTimeoutError(AgentError, TimeoutError):
    """A call took longer than its deadline."""


class AgentOutputError(AgentError, ValueError):
    """The agent's structured output was invalid even after one repair request."""


class ApprovalError(InvalidInputError):
    """An approval that cannot be given: not waiting, unknown, or already decided."""

    def __init__(self, message: str, *, run_id: str | None = None, gate: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.gate = gate


class SyncError(OrchestratorError):
    """The Runs API refused the import or could not be reached."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


class GitError(OrchestratorError):
    """A git command failed; ``command`` and ``stderr`` say which and why."""

    def __init__(self, message: str, *, command: str, stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.stderr = stderr


class RunFailedError(OrchestratorError):
    """A run ended failed; ``reason`` says why."""

    def __init__(self, message: str, *, run_id: str, reason: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.reason = reason


class SubtaskRunError(OrchestratorError):
    """A subtask's build on a worker (a deployment run) failed, or crashed too often."""

    def __init__(self, message: str, *, run_id: str, subtask_id: str, flow_run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.subtask_id = subtask_id
        self.flow_run_id = flow_run_id


class BudgetStoppedError(OrchestratorError):
    """A run was stopped at its budget gate; the manifest already says so (rejected)."""

    def __init__(self, message: str, *, run_id: str, reason: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.reason = reason


class LibraryError(InvalidInputError):
    """A library index that does not validate, or a change to it that is refused."""

    def __init__(self, message: str, *, path: str | None = None, entry: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.entry = entry


class ProcessError(OrchestratorError):
    """A process we started (orchestrator.supervisor) exited early, was not ready, or survived.

    The message ends with the tail of its log; ``exit_code`` is set when it exited.
    """

    def __init__(self, message: str, *, name: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.exit_code = exit_code


class DevStackError(OrchestratorError):
    """A part of the dev stack (``devstack/``) cannot start or be used, or a stack already runs."""

    def __init__(self, message: str, *, service: str) -> None:
        super().__init__(message)
        self.service = service


class ReplayFixtureError(InvalidInputError):
    """A replay fixture set that cannot be loaded; names the file and the problem."""
