"""The replay model provider: scripted Responses API turns for codex, offline.

Run it in-process (:class:`ReplayServer`, a background thread) or as a subprocess
(``python -m agents.replay --fixtures DIR --port P --request-log FILE``, or
:meth:`ReplayProcess.spawn`); point codex at :attr:`ReplayServer.url` with
:func:`replay_config`.
"""

from ._app import FAULT_KINDS, FaultKind, ReplayState, create_app
from ._config import replay_config
from ._fixtures import FixtureError, FixtureSet, Script, Step, Usage
from ._server import ReplayProcess, ReplayServer

__all__ = [
    "FAULT_KINDS",
    "FaultKind",
    "FixtureError",
    "FixtureSet",
    "ReplayProcess",
    "ReplayServer",
    "ReplayState",
    "Script",
    "Step",
    "Usage",
    "create_app",
    "replay_config",
]
