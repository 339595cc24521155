"""The stack's parts one by one, as a demo or a flow test composes them (no worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import (
    BLOCK_NAME,
    read_cloud_token,
    replay_codex_config,
    run_environ,
    save_blocks,
    stack_processes,
    start_replay,
    start_runs_api,
    start_vault,
    stop_stack,
)
from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV, open_broker
from orchestrator.redaction import Redactor
from orchestrator.supervisor import still_running
from tests.conftest import PrefectApi

pytestmark = pytest.mark.integration


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state_dir = tmp_path / "state"
    try:
        yield state_dir
    finally:
        processes = stack_processes(state_dir)
        stop_stack(state_dir)
        assert still_running(processes) == []


def test_parts_agree_on_the_cloud_token_and_blocks_point_at_them(
    state_dir: Path, prefect_api: PrefectApi, redactor: Redactor
) -> None:
    from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials

    vault = start_vault(state_dir)
    token = read_cloud_token(state_dir, vault)
    runs_api = start_runs_api(state_dir, token=token)
    replay = start_replay(state_dir)

    runs = f"{runs_api.url}/workspaces/dev/runs"
    headers = {"authorization": f"Bearer {token.get_secret_value()}"}
    assert httpx.get(runs, headers=headers, timeout=10).status_code == 200
    assert httpx.get(runs, headers={"authorization": "Bearer nope"}, timeout=10).status_code == 401

    save_blocks(
        vault_address=vault.address,
        role_id=vault.role_ids["dev"],
        codex=replay_codex_config(replay),
        cloud_url=runs_api.url,
    )
    assert VaultCredentials.load(BLOCK_NAME).address == vault.address
    assert CodexServerSettings.load(BLOCK_NAME).provider_base_url == replay.url
    assert CodexCloudEndpoint.load(BLOCK_NAME).base_url == runs_api.url

    # What a flow run does with the block and the worker's environment: the same token.
    environ = run_environ(state_dir, home=state_dir / "home")
    settings = VaultCredentials.load(BLOCK_NAME).get_settings()
    with open_broker(settings, "dev", redactor=redactor, environ=environ) as broker:
        assert broker.get(CLOUD_TOKEN) == token.get_secret_value()

    secrets = (token.get_secret_value(), environ[DEFAULT_SECRET_ID_ENV])
    assert not any(s in (state_dir / "stack.json").read_text() for s in secrets)
    for pid in stack_processes(state_dir):
        assert not any(s in _cmdline(pid) for s in secrets)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
