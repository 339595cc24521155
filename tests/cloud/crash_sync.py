"""Sync one run, and die right after the server committed it, before the ledger says so.

Run by the acceptance tests as ``python crash_sync.py TASK_ID RUN_ID`` with
``ORCHESTRATOR_HOME`` and ``ORCHESTRATOR_CLOUD_*`` in the environment. The process
ends with ``os._exit`` (no clean-up, no flush), as a killed worker would.
"""

from __future__ import annotations

import os
import sys

from orchestrator.cloud_settings import client_from_settings, load_cloud_settings
from orchestrator.sync import sync_run
from orchestrator.sync_ledger import SyncLedger
from orchestrator.workspace import Workspace

CRASH_EXIT_CODE = 17


def _crash(*args: object, **kwargs: object) -> None:
    os._exit(CRASH_EXIT_CODE)


def main(task_id: str, run_id: str) -> int:
    SyncLedger.staging_synced = _crash  # type: ignore[method-assign]  # the writes after the commit
    workspace = Workspace.open()
    with client_from_settings(load_cloud_settings(), audit=workspace.audit) as client:
        sync_run(workspace, client, task_id, run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
