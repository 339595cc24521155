"""Agent calls are Prefect tasks retried on transient failures only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.replay import ReplayServer, replay_config
from flows._runtime import is_transient
from flows.pipeline import pipeline
from orchestrator.exceptions import (
    AgentOutputError,
    AgentServerError,
    AgentTimeoutError,
    GitError,
    InvalidInputError,
)
from orchestrator.runstore import load_manifest
from tests.conftest import EXAMPLES
from tests.flows.conftest import Stack


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (AgentServerError("model answered 500", role="planner"), True),
        (AgentTimeoutError("call took longer than 600 s", role="builder"), True),
        (AgentOutputError("plan invalid after one repair", role="planner"), False),
        (InvalidInputError("bad task"), False),
        (GitError("merge conflict", command="git merge"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_only_transient_agent_failures_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_the_retry_condition_reads_the_exception_prefect_hands_it() -> None:
    from prefect.states import Completed, Failed

    from flows._runtime import retry_transient_only

    outage = Failed(data=AgentServerError("model answered 429"))
    bad_output = Failed(data=AgentOutputError("not a plan"))
    assert retry_transient_only(None, None, outage) is True
    assert retry_transient_only(None, None, bad_output) is False
    assert retry_transient_only(None, None, Completed()) is False


@pytest.fixture
def flaky_replay(stack: Stack) -> Iterator[ReplayServer]:
    """A replay provider of this test's own, so injected faults hit only this run."""
    from blocks import CodexServerSettings

    with ReplayServer(EXAMPLES / "replay" / "sample") as server:
        CodexServerSettings.from_config(replay_config(server.url)).save("default", overwrite=True)
        yield server


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_model_outage_is_retried_and_the_run_succeeds(
    stack: Stack, flaky_replay: ReplayServer
) -> None:
    flaky_replay.add_faults("500", 1)  # the planner's first model request fails

    summary = await pipeline(
        task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
    )

    assert summary["status"] == "succeeded"
    manifest = load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)
    plan = manifest.step("plan")
    assert plan is not None and plan.attempt == 2
    assert [e.step_id for e in manifest.errors] == ["plan"]  # the outage stays on record
    assert manifest.errors[0].type == "AgentServerError"
    faults = [r for r in flaky_replay.requests() if r.get("fault")]
    assert len(faults) == 1
