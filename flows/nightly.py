"""The nightly run: every nightly task, every queued task, then the sync backlog.

Two sources of work:

- ``tasks_dir``: task specs that run every night. Only those marked ``nightly: true``
  run; the files stay where they are.
- ``queue_dir`` (default ``queue/`` under ``ORCHESTRATOR_HOME``): task specs dropped in
  to run once, at the next nightly run, whatever their ``nightly`` flag. Each is claimed
  before its run by moving it to ``queue_dir/done/<UTC time>-<name>``, so it runs at
  most once whatever the outcome (the run's manifest records that path; re-queue a
  file by copying it back). Its target repository is resolved from where it was
  queued, so a relative ``target.repo`` keeps its meaning.

Run from a deployment, on a server with the ``pipeline/pipeline`` deployment, the
nightly run starts every job at once as a deployment run of it (``_nightly_runs``): they
run concurrently, as many at a time as the work pool admits, and the nightly run waits
for all of them (at most ``wait_hours``). Otherwise (a nightly flow called in a process
of its own, or a server without that deployment) the jobs run one after the other, each
a ``pipeline`` subflow in this process. The log says which. One failed run does not stop
the others. Then the ``sync-backlog`` subflow mirrors every finished run that is not
mirrored yet. A markdown artifact lists the runs (status, run, a link to each flow run);
the nightly flow run fails, after the backlog, when any run failed, naming them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.responses import DeploymentResponse
from pydantic import Field

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import Settings
from orchestrator.taskspec import TASK_SUFFIXES, load_task_spec, resolve_repo
from schemas import utc_now

from ._nightly_runs import (
    choose_dispatch,
    flow_run_link,
    job_key,
    run_of_name,
    start_run,
    started_earlier,
    status_of,
    wait_final,
)
from ._runtime import DEFAULT_BLOCK, current_flow_run_id, quiet_subflow, run_logger
from .cloud_sync import sync_backlog
from .pipeline import pipeline

QUEUE_DIR = "queue"
DONE_DIR = "done"
UNFINISHED = "unfinished"
"""A deployment run's status when the nightly run stopped waiting for it."""
WAIT_HOURS = 12.0
"""How long the nightly run waits for its deployment runs by default."""


@dataclass(frozen=True)
class Job:
    """One pipeline run the nightly flow makes."""

    task_file: Path
    repo: str
    source: str
    """``nightly`` (from the tasks folder) or ``queue``."""


@dataclass(frozen=True)
class Outcome:
    """How one job ended."""

    task_file: str
    source: str
    status: str
    task_id: str = ""
    run_id: str = ""
    reason: str = ""
    flow_run_id: str = ""
    url: str = ""
    """The flow run's page in the Prefect UI (blank when no UI is known)."""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def task_files(folder: Path) -> list[Path]:
    """The task spec files directly in ``folder``, by name (none if it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in TASK_SUFFIXES)


def nightly_jobs(tasks_dir: Path, *, repo: str) -> tuple[list[Job], list[Outcome]]:
    """The jobs of the tasks marked ``nightly: true``; files that do not parse fail."""
    jobs, failed = [], []
    for path in task_files(tasks_dir):
        try:
            spec = load_task_spec(path)
        except OrchestratorError as exc:
            failed.append(Outcome(str(path), "nightly", "invalid", reason=str(exc)))
            continue
        if spec.nightly:
            jobs.append(Job(path.resolve(), repo, "nightly"))
    return jobs, failed


def claim_queued(queue_dir: Path, *, repo: str) -> list[Job]:
    """Move every queued task file to ``done/`` (a claim) and return their jobs."""
    jobs = []
    for path in task_files(queue_dir):
        target = repo or _queued_target(path)
        claimed = _claim(path)
        if claimed is not None:
            jobs.append(Job(claimed, target, "queue"))
    return jobs


def _queued_target(path: Path) -> str:
    """The task's repository as seen from the queue ('' if the file does not parse)."""
    try:
        return str(resolve_repo(load_task_spec(path), path))
    except OrchestratorError:
        return ""  # the pipeline run refuses the file and says why


def _claim(path: Path) -> Path | None:
    done = path.parent / DONE_DIR
    done.mkdir(exist_ok=True)
    claimed = done / f"{utc_now():%Y%m%dT%H%M%SZ}-{path.name}"
    try:
        path.rename(claimed)  # atomic: of two claimers, one wins
    except FileNotFoundError:
        return None
    return claimed.resolve()


def outcome_of(job: Job, state: State[Any], result: Any) -> Outcome:
    """A job's outcome from its pipeline subflow's final state (and result, if any).

    A run stopped at a gate ends its flow run ``Cancelled`` (named Rejected or Expired) and carries
    its summary too.
    """
    link = flow_run_link(state.state_details.flow_run_id)
    if (state.is_completed() or state.is_cancelled()) and isinstance(result, dict):
        return Outcome(
            str(job.task_file),
            job.source,
            str(result.get("status", "")),
            task_id=str(result.get("task_id", "")),
            run_id=str(result.get("run_id", "")),
            reason=str(result.get("reason") or ""),
            **link,
        )
    return Outcome(
        str(job.task_file), job.source, "failed", reason=state.message or state.name or "", **link
    )


def outcome_of_run(job: Job, flow_run: FlowRun | None, *, waited: str = "") -> Outcome:
    """A job's outcome from its pipeline deployment run: its name and final state.

    Args:
        job: The job the flow run runs.
        flow_run: The flow run as last read (None if it was never read).
        waited: How long the nightly run waited, for a run still going.
    """
    if flow_run is None:
        return Outcome(str(job.task_file), job.source, UNFINISHED, reason="never read back")
    task_id, run_id = run_of_name(flow_run.name)
    ids = {"task_id": task_id, "run_id": run_id, **flow_run_link(flow_run.id)}
    state = flow_run.state
    if state is None or not state.is_final():
        still = f"still {state.name if state else 'without a state'} after {waited}; it goes on"
        return Outcome(str(job.task_file), job.source, UNFINISHED, reason=still, **ids)
    return Outcome(
        str(job.task_file), job.source, status_of(state), reason=state.message or "", **ids
    )


def summary_markdown(outcomes: list[Outcome], backlog: dict[str, int] | None) -> str:
    """The nightly run as a markdown table, for the UI."""
    lines = [
        "| task file | from | status | run | flow run | reason |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        run = f"{o.task_id}/{o.run_id}" if o.run_id else ""
        cells = [_cell(c) for c in (Path(o.task_file).name, o.source, o.status, run)]
        cells += [_flow_run_cell(o), _cell(o.reason)]
        lines.append("| " + " | ".join(cells) + " |")
    if not outcomes:
        lines.append("| (nothing to run) | | | | | |")
    if backlog is not None:
        lines.append("")
        lines.append(", ".join(f"sync backlog: {k} {v}" for k, v in backlog.items()))
    return "\n".join(lines)


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|")[:300]


def _flow_run_cell(outcome: Outcome) -> str:
    if outcome.url:
        return f"[{outcome.flow_run_id}]({outcome.url})"
    return outcome.flow_run_id


@flow(name="nightly", flow_run_name="nightly {env}")
async def nightly(
    tasks_dir: str = "tasks",
    queue_dir: str = "",
    repo: str = "",
    env: str = "dev",
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
    cloud_block: str = DEFAULT_BLOCK,
    wait_hours: Annotated[float, Field(gt=0)] = WAIT_HOURS,
) -> dict[str, Any]:
    """Run every nightly task and every queued task, at once when deployed; then the sync backlog.

    Args:
        tasks_dir: Folder of task specs; those marked `nightly: true` run every night.
        queue_dir: Folder of queued task specs, each run once and moved to its `done/`
            subfolder; empty for `queue/` under ORCHESTRATOR_HOME.
        repo: Target repository for every run instead of the one each task names.
        env: Environment: selects the Vault secret and the approval policy.
        codex_block: Name of the Codex server settings block.
        vault_block: Name of the Vault credentials block.
        cloud_block: Name of the Codex Cloud endpoint block; empty to skip every mirror.
        wait_hours: How long to wait for the pipeline deployment runs; a run still going
            then is reported unfinished (and goes on).
    """
    logger = run_logger()
    queue = Path(queue_dir) if queue_dir else Settings().home / QUEUE_DIR
    jobs, outcomes = nightly_jobs(Path(tasks_dir), repo=repo)
    queued = claim_queued(queue, repo=repo)
    logger.info("%d nightly tasks in %s, %d queued in %s", len(jobs), tasks_dir, len(queued), queue)
    blocks = {"codex_block": codex_block, "vault_block": vault_block, "cloud_block": cloud_block}
    runs = _Runs(env=env, blocks=blocks, done_dir=queue / DONE_DIR, timeout=wait_hours * 3600)
    outcomes += await runs.run_all(jobs + queued)
    backlog = await _sync_backlog(env, cloud_block=cloud_block, vault_block=vault_block)
    await acreate_markdown_artifact(
        markdown=summary_markdown(outcomes, backlog),
        key="nightly-summary",
        description="The nightly run: every task it ran, and the sync backlog.",
    )
    _raise_on_failures(outcomes, backlog_done=backlog is not None or not cloud_block)
    return {"runs": [asdict(o) for o in outcomes], "sync": backlog}


def _raise_on_failures(outcomes: list[Outcome], *, backlog_done: bool) -> None:
    problems = [f"{Path(o.task_file).name} ({o.status}: {o.reason})" for o in outcomes if not o.ok]
    if not backlog_done:
        problems.append("the sync backlog did not complete")
    if problems:
        raise OrchestratorError(f"nightly run: {len(problems)} problems: " + "; ".join(problems))


@dataclass(frozen=True)
class _Runs:
    """How the nightly run's jobs run: their parameters, and how long it waits for them."""

    env: str
    blocks: dict[str, str]
    done_dir: Path
    timeout: float

    async def run_all(self, jobs: list[Job]) -> list[Outcome]:
        """Every job as a deployment run, all at once, when it can; else subflows in turn."""
        logger = run_logger()
        async with get_client() as client:
            dispatch = await choose_dispatch(client)
            if dispatch.deployment is not None:
                logger.info("%d runs start now as deployment runs of %s", len(jobs), dispatch.why)
                return await self._fan_out(client, dispatch.deployment, jobs)
        logger.info(
            "%d runs go one after the other as pipeline subflows in this process: %s",
            len(jobs),
            dispatch.why,
        )
        return [await self._subflow(job) for job in jobs]

    def parameters(self, job: Job) -> dict[str, str]:
        return {"task_file": str(job.task_file), "env": self.env, "repo": job.repo, **self.blocks}

    async def _subflow(self, job: Job) -> Outcome:
        run_logger().info("running %s (%s)", job.task_file, job.source)
        with quiet_subflow():
            state = await pipeline(**self.parameters(job), return_state=True)
        finished = state.is_completed() or state.is_cancelled()
        result = await state.aresult(raise_on_failure=False) if finished else None
        return _logged(outcome_of(job, state, result))

    async def _fan_out(
        self, client: PrefectClient, deployment: DeploymentResponse, jobs: list[Job]
    ) -> list[Outcome]:
        nightly_id = UUID(current_flow_run_id())
        started = {
            run.id: self._job_of(run)
            for run in await started_earlier(client, deployment, nightly_id)
        }
        if started:
            run_logger().info("%d runs were started by an earlier try of this run", len(started))
        for job in jobs:
            key = job_key(str(nightly_id), str(job.task_file))
            run = await start_run(deployment, key=key, parameters=self.parameters(job))
            started[run.id] = job
            run_logger().info("started %s (%s): flow run %s", job.task_file, job.source, run.id)
        waited = _duration(self.timeout)
        last = await wait_final(
            client,
            started,
            within=self.timeout,
            on_final=lambda run: _logged(outcome_of_run(started[run.id], run)),
        )
        outcomes = [outcome_of_run(job, last.get(i), waited=waited) for i, job in started.items()]
        for outcome in outcomes:
            if outcome.status == UNFINISHED:
                _logged(outcome)
        return outcomes

    def _job_of(self, run: FlowRun) -> Job:
        """The job an earlier try started, from its flow run's parameters."""
        task_file = Path(str(run.parameters.get("task_file", "")))
        source = "queue" if task_file.parent == self.done_dir.resolve() else "nightly"
        return Job(task_file, str(run.parameters.get("repo", "")), source)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:g} h"


def _logged(outcome: Outcome) -> Outcome:
    parts = [f"{Path(outcome.task_file).name}: {outcome.status}"]
    if outcome.run_id:
        parts.append(f"run {outcome.task_id}/{outcome.run_id}")
    if outcome.flow_run_id:
        parts.append(f"flow run {outcome.url or outcome.flow_run_id}")
    if outcome.reason:
        parts.append(outcome.reason)
    run_logger().info("%s", "; ".join(parts))
    return outcome


async def _sync_backlog(env: str, *, cloud_block: str, vault_block: str) -> dict[str, int] | None:
    if not cloud_block:
        return None
    with quiet_subflow():
        state = await sync_backlog(
            env=env, cloud_block=cloud_block, vault_block=vault_block, return_state=True
        )
    if not state.is_completed():
        run_logger().warning("the sync backlog did not complete: %s", state.message)
        return None
    result: dict[str, int] = await state.aresult()
    return result
