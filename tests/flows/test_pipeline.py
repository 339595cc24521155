"""The manager pipeline end to end, on real parts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agents.durable import step_codex_home
from devstack.replay import replay_config
from flows.pipeline import pipeline
from orchestrator.lifecycle import RunHandle
from orchestrator.literal import md_text
from orchestrator.runstore import load_manifest
from orchestrator.usage import usage_line
from schemas import PhaseName, RunManifest, RunStatus, StepStatus, TokenUsage, schema_errors
from tests.agents.conftest import alive, descendants
from tests.flows.conftest import Stack
from tests.flows.test_resume import EXPECTED_DIFF, result_diff

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def changed_files(repo: Path, branch: str) -> list[str]:
    return subprocess.run(
        ["git", "diff", "--name-only", f"main..{branch}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def run_tests_on(repo: Path, branch: str, checkout: Path) -> subprocess.CompletedProcess[str]:
    """The sample project's own test suite, run on a fresh checkout of ``branch``."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(checkout), branch],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_sample_task_runs_end_to_end(stack: Stack, tmp_path: Path) -> None:
    summary = await pipeline(
        task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
    )

    assert summary["status"] == "succeeded", summary
    manifest = load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)
    assert schema_errors("run-manifest", manifest.model_dump(mode="json")) is None
    assert manifest.status is RunStatus.SUCCEEDED
    assert manifest.deployment is None  # called here, not by a deployment
    for phase in ("plan", "build", "test", "review"):
        assert getattr(manifest.phases, phase).status is StepStatus.SUCCEEDED, phase
    assert [s.id for s in manifest.subtasks] == ["slugify", "truncate"]
    assert all(s.builder_calls == 1 for s in manifest.subtasks)
    assert manifest.result is not None and manifest.result.branch is not None
    assert "textkit/__init__.py" in changed_files(stack.repo, manifest.result.branch)
    diff = result_diff(stack.repo, manifest)
    if os.environ.get("UPDATE_EXPECTED_DIFF"):  # after changing the sample replay scripts
        EXPECTED_DIFF.write_text(diff)
    assert diff == EXPECTED_DIFF.read_text()
    tests = run_tests_on(stack.repo, manifest.result.branch, tmp_path / "checkout")
    assert tests.returncode == 0, tests.stdout
    assert "passed" in tests.stdout


async def test_the_environment_picks_the_app_server_backend_end_to_end(stack: Stack) -> None:
    """The block says ``mcp`` but ``app-server`` for the run's environment (dev): every
    agent step runs on codex app-server 0.163.0, to the same result."""
    from blocks import CodexServerSettings

    config = replay_config(stack.replay.url, backend_by_env={"dev": "app-server"})
    await CodexServerSettings.from_config(config).asave("default", overwrite=True)

    summary = await pipeline(
        task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
    )

    assert summary["status"] == "succeeded", summary
    manifest = load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)
    steps = [s for phase in PhaseName for s in manifest.phases.get(phase).steps]
    assert {(s.backend, s.codex_version) for s in steps} == {("app-server", "0.163.0")}
    assert len(steps) == 5 and all(s.tokens.total_tokens > 0 for s in steps)
    assert result_diff(stack.repo, manifest) == EXPECTED_DIFF.read_text()
    assert codex_servers_of(os.getpid(), b"app-server") == []
    handle = RunHandle(stack.workspace, manifest.task_id, manifest.run_id)
    homes = {step_codex_home(handle, s.id).parent for s in steps}
    assert [h for h in homes if h.exists()] == [], "each step's CODEX_HOME goes with it"


async def test_a_run_leaves_no_codex_server_or_home_behind(stack: Stack) -> None:
    """Servers are started ahead of their calls and stopped behind them: every one of
    them, used or not, is gone when the run returns."""
    homes = Path.home() / ".cache" / "codex-orchestrator"
    before = set(homes.glob(f"codex-home-{os.getpid()}-*"))
    summary = await pipeline(
        task_file=str(stack.task("add-text-helpers.yaml")), repo=str(stack.repo)
    )

    assert summary["status"] == "succeeded", summary
    assert codex_servers_of(os.getpid()) == []
    assert set(homes.glob(f"codex-home-{os.getpid()}-*")) == before


def codex_servers_of(pid: int, subcommand: bytes = b"mcp-server") -> list[int]:
    """Live ``codex <subcommand>`` children of ``pid`` (zombies count as gone)."""
    found = []
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if subcommand in command and alive(child):
            found.append(child)
    return found


async def test_phase_flow_runs_and_artifacts_read_back_through_the_api(stack: Stack) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    task_file = stack.task("add-word-stats.yaml")  # fixed subtasks, parallel mode
    summary = await pipeline(task_file=str(task_file), repo=str(stack.repo))
    assert summary["status"] == "succeeded", summary
    label = f"{summary['task_id']}/{summary['run_id']}"
    manifest = load_manifest(stack.workspace.store.find(summary["run_id"]).manifest_path)
    assert manifest.mode.mode.value == "parallel"

    async with get_client() as client:
        runs = {
            phase: await client.read_flow_run(getattr(manifest.phases, phase).flow_run_id)
            for phase in ("plan", "build", "test", "review")
        }
        manager = await client.read_flow_run(manifest.flow_run_id)
        keys = [
            f"{what}-{summary['task_id']}-{summary['run_id']}".lower()
            for what in ("plan", "subtasks", "tests", "review", "usage", "run")
        ]
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )

    assert manager.name == label
    assert manager.state is not None and manager.state.is_completed()
    for phase, run in runs.items():
        assert run.name == f"{phase} {label}"
        assert run.state is not None and run.state.is_completed(), phase
        assert run.parent_task_run_id is not None  # a subflow of the manager
    assert {a.key for a in artifacts} == set(keys)
    run_summary = next(a for a in artifacts if a.key == keys[-1])
    assert str(stack.workspace.store.find(summary["run_id"]).manifest_path) in str(run_summary.data)
    assert_usage_recorded(manifest, next(a for a in artifacts if a.key == keys[-2]).data)
    assert f"usage: {md_text(usage_line(manifest.usage))}" in str(run_summary.data)


def assert_usage_recorded(manifest: RunManifest, table: object) -> None:
    """The manifest's totals are the sums over its steps, and the artifact shows them."""
    steps = [s for phase in PhaseName for s in manifest.phases.get(phase).steps]
    called = [s for s in steps if s.model is not None]
    assert called and all(s.model == "replay" and s.tokens.total_tokens > 0 for s in called)
    assert manifest.usage.tokens == sum((s.tokens for s in steps), TokenUsage())
    assert manifest.usage.agent_calls == len(called)
    for name in PhaseName:
        phase = manifest.phases.get(name)
        assert phase.usage.tokens == sum((s.tokens for s in phase.steps), TokenUsage())
    rows = json.loads(table) if isinstance(table, str) else table
    assert isinstance(rows, list)
    [run_row] = [r for r in rows if r["scope"] == "run"]
    assert run_row["total"] == manifest.usage.tokens.total_tokens
    assert run_row["input"] == manifest.usage.tokens.input_tokens
    assert run_row["cost (USD)"] == "$0.0000"  # the replay provider charges nothing
    step_rows = {r["name"]: r["total"] for r in rows if r["scope"] == "step"}
    assert step_rows == {md_text(s.id): s.tokens.total_tokens for s in steps}  # as the UI shows
