"""Orchestration overhead: the full pipeline against a bare script making the same codex calls.

Both sides use the same replay provider (with a simulated model latency per turn),
the same real ``codex mcp-server``, the same prompts (the role functions) and the
same sample repository. The bare side calls the roles directly with one codex
session per call; the replay provider runs in a process of its own, like a remote
model; the pipeline side runs the manager flow with its subflows, tasks,
manifest writes, Vault logins, git worktrees, gates, artifacts and the cloud mirror.
They run alternately, ``--rounds`` times each, in one process.

    python bench/bench_pipeline.py [--latency 1.0] [--rounds 5]

Prints both medians, the ratio (target <= 1.15 at 1 s latency) and the orchestration
overhead per agent call in milliseconds (target <= 150).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from agents.roles import run_builder, run_planner, run_reviewer, run_tester  # noqa: E402
from agents.session import CodexSession  # noqa: E402
from devstack import prepare_sample_repo  # noqa: E402
from devstack.replay import ReplayProcess, replay_config  # noqa: E402
from devstack.runs_api import spawn_server  # noqa: E402
from devstack.vault import DevVault  # noqa: E402
from orchestrator.credentials import CLOUD_TOKEN, DEFAULT_SECRET_ID_ENV  # noqa: E402
from orchestrator.taskspec import load_task_spec  # noqa: E402

TASK = ROOT / "examples" / "tasks" / "add-text-helpers.yaml"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@localhost", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def fresh_repo(folder: Path) -> Path:
    return prepare_sample_repo(folder / f"repo-{time.monotonic_ns()}")


async def bare_run(config: object, folder: Path) -> tuple[float, int]:
    """The same agent calls, made directly: plan, one build per subtask, test, review."""
    spec = load_task_spec(TASK)
    repo = fresh_repo(folder)
    started = time.perf_counter()
    calls = 0

    async def call(role, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        async with CodexSession(config) as session:  # type: ignore[arg-type]
            return await role(session, *args, **kwargs)

    plan = (await call(run_planner, spec, repo=repo)).output
    branches = []
    for subtask in plan.subtasks:
        tree = folder / f"wt-{subtask.id}-{time.monotonic_ns()}"
        git(repo, "worktree", "add", "-q", "-b", f"b/{tree.name}", str(tree), "main")
        await call(run_builder, spec, subtask, worktree=tree)
        git(tree, "add", "--all")
        git(tree, "commit", "-qm", subtask.id)
        branches.append(f"b/{tree.name}")
    result = folder / f"result-{time.monotonic_ns()}"
    git(repo, "worktree", "add", "-q", "-b", f"r/{result.name}", str(result), "main")
    for branch in branches:
        git(result, "merge", "--no-ff", "--no-edit", "-q", branch)
    report = (await call(run_tester, spec, repo=result)).output
    diff = git(result, "diff", "main..HEAD")
    await call(run_reviewer, spec, repo=result, diff=diff, test_report=report)
    return time.perf_counter() - started, calls


async def pipeline_run(folder: Path) -> tuple[float, int]:
    from flows.pipeline import pipeline

    repo = fresh_repo(folder)
    started = time.perf_counter()
    summary = await pipeline(task_file=str(TASK), repo=str(repo))
    elapsed = time.perf_counter() - started
    assert summary["status"] == "succeeded", summary
    return elapsed, 5


class Model:
    """The replay provider in a process of its own, as a remote model would be: load in
    the measured process must not slow the model down."""

    def __init__(self, process: ReplayProcess) -> None:
        self.process = process
        self.url = process.url
        self._control = process.url.removesuffix("/v1") + "/_replay"

    def set_latency(self, seconds: float) -> None:
        httpx.put(f"{self._control}/latency", json={"seconds": seconds}).raise_for_status()

    def request_count(self) -> int:
        response = httpx.get(f"{self._control}/requests")
        response.raise_for_status()
        return len(response.json())


@contextmanager
def stack(latency: float, folder: Path) -> Iterator[Model]:
    """OpenBao, the Runs API, the replay provider and a Prefect API; blocks saved."""
    from prefect.testing.utilities import prefect_test_harness

    from blocks import CodexCloudEndpoint, CodexServerSettings, VaultCredentials

    os.environ.update(
        PREFECT_HOME=str(folder / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        ORCHESTRATOR_HOME=str(folder / "home"),
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    with (
        DevVault(envs=("dev",)) as vault,
        ReplayProcess.spawn(ROOT / "examples" / "replay" / "sample", latency=latency) as process,
        prefect_test_harness(server_startup_timeout=60),
    ):
        runs_api = spawn_server(
            db_path=folder / "runs.sqlite3",
            token=vault.values("dev")[CLOUD_TOKEN],
            log_path=folder / "runs-api.log",
        )
        try:
            os.environ[DEFAULT_SECRET_ID_ENV] = vault.approle("dev").secret_id.get_secret_value()
            VaultCredentials(address=vault.address, role_id=vault.approle("dev").role_id).save(
                "default", overwrite=True
            )
            model = Model(process)
            CodexServerSettings.from_config(replay_config(model.url)).save(
                "default", overwrite=True
            )
            CodexCloudEndpoint(base_url=runs_api.url, workspace_id="bench").save(
                "default", overwrite=True
            )
            yield model
        finally:
            runs_api.stop()


async def measure(latency: float, rounds: int, folder: Path, model: Model) -> None:
    config = replay_config(model.url)
    model.set_latency(0.0)
    await pipeline_run(folder)  # warm-up: imports, database, codex binary in page cache
    await bare_run(config, folder)
    model.set_latency(latency)
    bare, orchestrated, calls = [], [], 0
    for round_number in range(1, rounds + 1):
        before = model.request_count()
        seconds, calls = await bare_run(config, folder)
        bare.append(seconds)
        middle = model.request_count()
        seconds, _ = await pipeline_run(folder)
        orchestrated.append(seconds)
        after = model.request_count()
        print(
            f"round {round_number}: bare {bare[-1]:.2f} s ({middle - before} model requests), "
            f"pipeline {orchestrated[-1]:.2f} s ({after - middle} model requests)"
        )
    report(statistics.median(bare), statistics.median(orchestrated), calls, latency)


def report(bare: float, orchestrated: float, calls: int, latency: float) -> None:
    ratio = orchestrated / bare
    overhead_ms = (orchestrated - bare) / calls * 1000
    print(f"model latency per turn: {latency:.2f} s; agent calls per run: {calls}")
    print(f"bare script (median):  {bare:7.2f} s")
    print(f"pipeline (median):     {orchestrated:7.2f} s")
    print(f"ratio pipeline/bare:   {ratio:7.3f}   (target <= 1.15)")
    print(f"overhead per call:     {overhead_ms:7.0f} ms (target <= 150)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="model latency per turn (s)")
    parser.add_argument("--rounds", type=int, default=5, help="measured runs of each side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-", dir=Path.home()) as tmp:
        folder = Path(tmp)
        with stack(args.latency, folder) as model:
            asyncio.run(measure(args.latency, args.rounds, folder, model))


if __name__ == "__main__":
    main()
