"""The MCP side: a Codex session client, the four agent roles, and approvals.

- :class:`CodexSession` runs ``codex mcp-server`` over stdio (official ``mcp`` SDK) and
  turns each call into a :class:`Turn` built from its typed ``codex/event`` stream; its
  streams come from a :class:`StreamFactory` (default: spawn codex; tests: in memory).
- :class:`AgentSession` is the interface the roles and steps take.
- :func:`run_planner`, :func:`run_builder`, :func:`run_tester`, :func:`run_reviewer`
  are the roles; each returns a :class:`RoleOutcome` with a validated output.
- :class:`PolicyApprover` answers codex's exec/patch approval requests.
- The offline replay model provider is not here: it is dev tooling (:mod:`devstack.replay`).

Importing this package starts nothing.
"""

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
from .backend import AgentSession
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

__all__ = [
    "AgentMessage",
    "AgentSession",
    "ApprovalAnswer",
    "ApprovalKind",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalRequested",
    "Approver",
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
    "parse_event",
    "render_marker",
    "run_builder",
    "run_planner",
    "run_reviewer",
    "run_tester",
]
