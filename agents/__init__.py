"""The agent layer: two codex backends, the four agent roles, and approvals.

- :class:`AgentSession` is the interface the roles and steps take; :func:`new_session`
  makes the session of the backend the settings name (``CodexServerConfig.backend``).
- :class:`CodexSession` (``mcp``) runs ``codex mcp-server`` over stdio (official ``mcp``
  SDK) and turns each call into a :class:`Turn` built from its typed ``codex/event``
  stream; its streams come from a :class:`StreamFactory` (default: spawn codex; tests:
  in memory).
- :class:`AppServerSession` (``app-server``) runs ``codex app-server`` (JSON-RPC over
  stdio, the SDK's generated models) and gives the same :class:`Turn`.
- :func:`run_planner`, :func:`run_builder`, :func:`run_tester`, :func:`run_reviewer`
  are the roles; each returns a :class:`RoleOutcome` with a validated output.
- :class:`PolicyApprover` answers codex's exec/patch approval requests.
- The offline replay model provider is not here: it is dev tooling (:mod:`devstack.replay`).

Importing this package starts nothing, and leaves out the app-server backend's
dependencies (the SDK's generated models, ~0.7 CPU-s to import) until
:class:`AppServerSession` is first used: an ``mcp`` run never needs them.
"""

import importlib
import typing

from ._launch import CodexLaunch
from ._streams import ServerStreams, StreamFactory
from .approvals import (
    ApprovalAnswer,
    ApprovalKind,
    ApprovalRecord,
    ApprovalRequest,
    Approver,
    DenyAllApprover,
    PolicyApprover,
)
from .backend import AgentSession, BackendSession, new_session
from .events import (
    AgentMessage,
    ApprovalRequested,
    CodexEvent,
    ErrorEvent,
    EventCallback,
    ExecCommandBegin,
    ExecCommandEnd,
    OtherEvent,
    PatchApplyBegin,
    PatchApplyEnd,
    SessionConfigured,
    TaskComplete,
    TaskStarted,
    TokenCount,
    TurnAborted,
    TurnDiff,
    WarningEvent,
    parse_event,
)
from .markers import find_marker, render_marker
from .roles import (
    RoleOutcome,
    TesterAnswer,
    build_test_report,
    run_builder,
    run_planner,
    run_reviewer,
    run_tester,
)
from .session import CodexSession
from .turns import Turn

if typing.TYPE_CHECKING:
    from .appserver import AppServerSession

_LAZY = {"AppServerSession": ".appserver"}
"""Public names whose module is imported on first use (PEP 562)."""


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AgentMessage",
    "AgentSession",
    "AppServerSession",
    "ApprovalAnswer",
    "ApprovalKind",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalRequested",
    "Approver",
    "BackendSession",
    "CodexEvent",
    "CodexLaunch",
    "CodexSession",
    "DenyAllApprover",
    "ErrorEvent",
    "EventCallback",
    "ExecCommandBegin",
    "ExecCommandEnd",
    "OtherEvent",
    "PatchApplyBegin",
    "PatchApplyEnd",
    "PolicyApprover",
    "RoleOutcome",
    "ServerStreams",
    "SessionConfigured",
    "StreamFactory",
    "TaskComplete",
    "TaskStarted",
    "TesterAnswer",
    "TokenCount",
    "Turn",
    "TurnAborted",
    "TurnDiff",
    "WarningEvent",
    "build_test_report",
    "find_marker",
    "new_session",
    "parse_event",
    "render_marker",
    "run_builder",
    "run_planner",
    "run_reviewer",
    "run_tester",
]
