"""An OpenBao dev server with demo secrets and one AppRole per environment.

In-process (:class:`DevVault`, a context manager: tests, the foreground ``orchestrator
dev vault``) or detached in a state folder (:func:`start_background` /
:func:`stop_background`: ``make serve``, the demo). See ``docs/credentials.md``.
"""

from ._detached import (
    HOME_DIR,
    PID_FILE,
    STATE_FILE,
    SUPERVISOR_LOG,
    DevVaultState,
    read_state,
    start_background,
    stop_background,
)
from ._secrets import VALUE_ENV_PREFIX, AppRoleLogin, demo_secrets, policy_name, secret_id_file
from ._server import LOG_FILE, ROOT_TOKEN_ENV, DevVault

__all__ = [
    "HOME_DIR",
    "LOG_FILE",
    "PID_FILE",
    "ROOT_TOKEN_ENV",
    "STATE_FILE",
    "SUPERVISOR_LOG",
    "VALUE_ENV_PREFIX",
    "AppRoleLogin",
    "DevVault",
    "DevVaultState",
    "demo_secrets",
    "policy_name",
    "read_state",
    "secret_id_file",
    "start_background",
    "stop_background",
]
