"""Core services with no Prefect import: run store, audit log, redaction, task specs.

Importing this package does nothing: no I/O, no settings read, no logging set-up.
"""

from .audit import AuditLog
from .exceptions import (
    AgentError,
    AgentOutputError,
    AgentServerError,
    AgentTimeoutError,
    ApprovalError,
    BudgetStoppedError,
    CredentialError,
    DevStackError,
    DocumentError,
    GitError,
    InvalidInputError,
    LibraryError,
    LockTimeoutError,
    ManifestCorruptError,
    ManifestError,
    OrchestratorError,
    ProcessError,
    ReplayFixtureError,
    RunFailedError,
    RunNotFoundError,
    SpecError,
    StorageError,
    SyncError,
    TaskSpecError,
    UnsafeIdError,
)
from .redaction import (
    Redactor,
    get_redactor,
    install_log_redaction,
    set_redactor,
    uninstall_log_redaction,
)
from .runstore import RunRef, RunStore, load_manifest, new_run_id
from .settings import Settings
from .taskspec import load_task_spec, resolve_repo
from .workspace import Workspace

__all__ = [
    "AgentError",
    "AgentOutputError",
    "AgentServerError",
    "AgentTimeoutError",
    "ApprovalError",
    "AuditLog",
    "BudgetStoppedError",
    "CredentialError",
    "DevStackError",
    "DocumentError",
    "GitError",
    "InvalidInputError",
    "LibraryError",
    "LockTimeoutError",
    "ManifestCorruptError",
    "ManifestError",
    "OrchestratorError",
    "ProcessError",
    "Redactor",
    "ReplayFixtureError",
    "RunFailedError",
    "RunNotFoundError",
    "RunRef",
    "RunStore",
    "Settings",
    "SpecError",
    "StorageError",
    "SyncError",
    "TaskSpecError",
    "UnsafeIdError",
    "Workspace",
    "get_redactor",
    "install_log_redaction",
    "load_manifest",
    "load_task_spec",
    "new_run_id",
    "resolve_repo",
    "set_redactor",
    "uninstall_log_redaction",
]
