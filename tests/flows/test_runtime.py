"""What a phase's codex server gets: credentials from the broker, nothing else of ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.approvals import DenyAllApprover
from devstack.replay import ReplayServer, replay_config
from flows._runtime import PhaseRuntime
from orchestrator.credentials import OPENAI_API_KEY, CredentialBroker
from orchestrator.lifecycle import RunHandle
from orchestrator.redaction import Redactor
from orchestrator.workspace import Workspace
from tests.conftest import EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


async def test_codex_gets_the_model_key_and_none_of_our_environment(
    workspace: Workspace, redactor: Redactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SOMETHING_OF_OURS", "not for codex")
    monkeypatch.setenv("SHLVL", "3")  # an interactive shell's level must not reach codex
    broker = CredentialBroker.from_values(
        "dev", {OPENAI_API_KEY: "sk-test-model-key-0123456789"}, redactor=redactor
    )
    with ReplayServer(EXAMPLES / "replay" / "sample") as replay:
        config = replay_config(replay.url)
        provider = config.provider.model_copy(update={"env_key": "OPENAI_API_KEY"})
        runtime = PhaseRuntime(
            handle=RunHandle(workspace, "t", "r"),
            codex=config.model_copy(update={"provider": provider}),
            broker=broker,
            approver=DenyAllApprover(),
        )
        async with runtime.session("plan") as session:
            assert session.pid is not None
            env = environ_of(session.pid)

    assert env["OPENAI_API_KEY"] == "sk-test-model-key-0123456789"
    assert env["SHLVL"] == "1"  # else bash sources ~/.bashrc for every agent command
    assert "ORCHESTRATOR_SOMETHING_OF_OURS" not in env
    assert not [name for name in env if name.startswith("PREFECT_")]
