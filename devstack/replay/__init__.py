"""The replay model provider: scripted Responses API turns for codex, offline.

Run it in-process (:class:`ReplayServer`, a background thread) or as a subprocess
(``python -m devstack.replay --fixtures DIR --port P --request-log FILE``, or
:meth:`ReplayProcess.spawn`); point codex at :attr:`ReplayServer.url` with
:func:`replay_config`. The sample fixture sets are under
:func:`devstack.samples.fixture_set` (``examples/replay/``).
"""

from ._app import FAULT_KINDS, FaultKind, ReplayState, create_app
from ._config import replay_config
from ._fixtures import FixtureSet, Script, Step, Usage
from ._server import READY_PATTERN, ReplayProcess, ReplayServer

__all__ = [
    "FAULT_KINDS",
    "READY_PATTERN",
    "FaultKind",
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
