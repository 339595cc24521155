"""A pipeline killed with SIGKILL at any point resumes to the same result.

Each test runs ``orchestrator run`` in a subprocess against the session's Prefect
API, kills its whole process group at one point, then ``orchestrator resume``. The
replay provider's request log shows that no agent step the manifest recorded as
done before the kill is requested again. Each runs on both agent backends; killed
mid-turn, a step on ``app-server`` continues its thread (fewer model requests than the
clean redo ``mcp`` makes).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.replay import ReplayServer, replay_config
from orchestrator.runstore import load_manifest
from schemas import AgentBackend, PhaseName, RunManifest, RunStatus, StepStatus
from tests.conftest import EXAMPLES, PrefectApi
from tests.flows.conftest import ORCHESTRATOR, Stack, cli_env, kill_group, start_cli

pytestmark = pytest.mark.integration

TASK = "add-text-helpers"
SCRIPT_OF_STEP = {
    "plan": f"plan-{TASK}",
    "build-slugify": "build-slugify",
    "build-truncate": "build-truncate",
    "test": f"test-{TASK}",
    "review": f"review-{TASK}",
}
KILL_DEADLINE_SECONDS = 90


BUILD_SCRIPT_STEPS = 3
"""build-slugify's model requests: its patch, its tests, its report."""


@pytest.fixture(params=["mcp", "app-server"])
def backend(request: pytest.FixtureRequest) -> AgentBackend:
    name: AgentBackend = request.param
    return name


@pytest.fixture
def slow_replay(stack: Stack, tmp_path: Path, backend: AgentBackend) -> Iterator[ReplayServer]:
    """A replay provider of this test's own, slow enough (0.3 s a turn) to kill mid-step;
    the 'default' codex block names it and ``backend``."""
    from blocks import CodexServerSettings

    with ReplayServer(
        EXAMPLES / "replay" / "sample", request_log=tmp_path / "requests.jsonl", latency=0.3
    ) as server:
        config = replay_config(server.url, backend=backend)
        CodexServerSettings.from_config(config).save("default", overwrite=True)
        yield server


def read_manifest(stack: Stack) -> RunManifest | None:
    paths = list(stack.workspace.store.root.glob(f"{TASK}/*/manifest.json"))
    return load_manifest(paths[0]) if paths else None


def step_status(manifest: RunManifest | None, step_id: str) -> StepStatus | None:
    step = manifest.step(step_id) if manifest else None
    return step.status if step else None


def requested(replay: ReplayServer, script: str) -> bool:
    return any(r.get("script") == script for r in replay.requests())


def script_steps(requests: list[dict[str, Any]], script: str) -> list[int]:
    """The script step each request of ``script`` was answered with, in order."""
    return [r["step"] for r in requests if r.get("script") == script]


def mid_build_turn(stack: Stack, replay: ReplayServer) -> bool:
    """The slugify builder's patch is applied and its next model answer awaited."""
    return len(script_steps(replay.requests(), SCRIPT_OF_STEP["build-slugify"])) >= 2


KillPoint = Callable[[Stack, ReplayServer], bool]

KILL_POINTS: dict[str, KillPoint] = {
    "during-plan": lambda stack, replay: requested(replay, SCRIPT_OF_STEP["plan"]),
    "mid-build-turn": mid_build_turn,
    "between-builds": lambda stack, replay: (
        step_status(read_manifest(stack), "build-slugify") is StepStatus.SUCCEEDED
    ),
    "during-test": lambda stack, replay: requested(replay, SCRIPT_OF_STEP["test"]),
}


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + KILL_DEADLINE_SECONDS
    while not condition():
        assert process.poll() is None, "the pipeline ended before the kill point"
        assert time.monotonic() < deadline, "kill point not reached in time"
        time.sleep(0.02)


def result_diff(repo: Path, manifest: RunManifest) -> str:
    assert manifest.result is not None and manifest.result.branch
    return subprocess.run(
        ["git", "diff", f"{manifest.task.base_commit}..{manifest.result.branch}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


EXPECTED_DIFF = Path(__file__).parent / "expected-add-text-helpers.diff"
"""The result of an uninterrupted run (test_pipeline.py checks it against one)."""


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_killed_run_resumes_to_the_same_result_without_repeating_done_steps(
    kill_point: str,
    stack: Stack,
    slow_replay: ReplayServer,
    backend: AgentBackend,
    prefect_api: PrefectApi,
    tmp_path: Path,
) -> None:
    env = cli_env(stack, prefect_api)
    log = tmp_path / "pipeline.log"
    task_file = str(stack.task(f"{TASK}.yaml"))
    process = start_cli("run", task_file, "--repo", str(stack.repo), env=env, log=log)
    try:
        wait_for(lambda: KILL_POINTS[kill_point](stack, slow_replay), process)
    finally:
        kill_group(process)
    at_kill = read_manifest(stack)
    assert at_kill is not None and at_kill.status is RunStatus.RUNNING
    done_before = [s for s in SCRIPT_OF_STEP if step_status(at_kill, s) is StepStatus.SUCCEEDED]
    seen_before = len(slow_replay.requests())

    resumed = subprocess.run(
        [ORCHESTRATOR, "resume", at_kill.run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = read_manifest(stack)
    assert final is not None and final.status is RunStatus.SUCCEEDED
    assert result_diff(stack.repo, final) == EXPECTED_DIFF.read_text()
    after = slow_replay.requests()[seen_before:]
    repeated = {r["script"] for r in after} & {SCRIPT_OF_STEP[s] for s in done_before}
    assert not repeated, f"done before the kill, requested again: {repeated}"
    assert all(s.builder_calls >= 1 for s in final.subtasks)
    for step_id in done_before:
        assert final.step(step_id).attempt == 1, step_id  # type: ignore[union-attr]
    assert {s.backend for p in PhaseName for s in final.phases.get(p).steps} == {backend}
    if kill_point == "mid-build-turn":
        check_mid_turn_resume(final, backend, after)


def check_mid_turn_resume(
    final: RunManifest, backend: AgentBackend, after: list[dict[str, Any]]
) -> None:
    """On app-server the killed builder's thread went on: fewer model requests than the
    clean redo, which mcp still makes (the whole script again, on a new thread)."""
    redone = script_steps(after, SCRIPT_OF_STEP["build-slugify"])
    step = final.step("build-slugify")
    assert step is not None and step.attempt == 2
    if backend == "app-server":
        assert step.restart is not None and step.restart.continued, step.restart
        assert 0 < len(redone) < BUILD_SCRIPT_STEPS and redone[0] > 0, redone
    else:
        assert step.restart is None or not step.restart.continued, step.restart
        assert redone == list(range(BUILD_SCRIPT_STEPS)), redone
