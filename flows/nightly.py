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

The runs go one after the other, each a ``pipeline`` subflow; one failed run does not
stop the others. Then the ``sync-backlog`` subflow mirrors every finished run that is
not mirrored yet. A markdown artifact lists the runs; the nightly flow run fails, after
the backlog, when any run failed, naming them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.schemas.objects import State

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import Settings
from orchestrator.taskspec import TASK_SUFFIXES, load_task_spec, resolve_repo
from schemas import utc_now

from ._runtime import DEFAULT_BLOCK, quiet_subflow, run_logger
from .cloud_sync import sync_backlog
from .pipeline import pipeline

QUEUE_DIR = "queue"
DONE_DIR = "done"


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
    if (state.is_completed() or state.is_cancelled()) and isinstance(result, dict):
        return Outcome(
            str(job.task_file),
            job.source,
            str(result.get("status", "")),
            task_id=str(result.get("task_id", "")),
            run_id=str(result.get("run_id", "")),
            reason=str(result.get("reason") or ""),
        )
    return Outcome(
        str(job.task_file), job.source, "failed", reason=state.message or state.name or ""
    )


def summary_markdown(outcomes: list[Outcome], backlog: dict[str, int] | None) -> str:
    """The nightly run as a markdown table, for the UI."""
    lines = ["| task file | from | status | run | reason |", "|---|---|---|---|---|"]
    for o in outcomes:
        run = f"{o.task_id}/{o.run_id}" if o.run_id else ""
        cells = (Path(o.task_file).name, o.source, o.status, run, o.reason)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if not outcomes:
        lines.append("| (nothing to run) | | | | |")
    if backlog is not None:
        lines.append("")
        lines.append(", ".join(f"sync backlog: {k} {v}" for k, v in backlog.items()))
    return "\n".join(lines)


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|")[:300]


@flow(name="nightly", flow_run_name="nightly {env}")
async def nightly(
    tasks_dir: str = "tasks",
    queue_dir: str = "",
    repo: str = "",
    env: str = "dev",
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
    cloud_block: str = DEFAULT_BLOCK,
) -> dict[str, Any]:
    """Run every nightly task and every queued task, one after the other; then the sync backlog.

    Args:
        tasks_dir: Folder of task specs; those marked `nightly: true` run every night.
        queue_dir: Folder of queued task specs, each run once and moved to its `done/`
            subfolder; empty for `queue/` under ORCHESTRATOR_HOME.
        repo: Target repository for every run instead of the one each task names.
        env: Environment: selects the Vault secret and the approval policy.
        codex_block: Name of the Codex server settings block.
        vault_block: Name of the Vault credentials block.
        cloud_block: Name of the Codex Cloud endpoint block; empty to skip every mirror.
    """
    logger = run_logger()
    queue = Path(queue_dir) if queue_dir else Settings().home / QUEUE_DIR
    jobs, outcomes = nightly_jobs(Path(tasks_dir), repo=repo)
    queued = claim_queued(queue, repo=repo)
    logger.info("%d nightly tasks in %s, %d queued in %s", len(jobs), tasks_dir, len(queued), queue)
    blocks = {"codex_block": codex_block, "vault_block": vault_block, "cloud_block": cloud_block}
    for job in jobs + queued:
        outcomes.append(await _run(job, env=env, blocks=blocks))
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


async def _run(job: Job, *, env: str, blocks: dict[str, str]) -> Outcome:
    logger = run_logger()
    logger.info("running %s (%s)", job.task_file, job.source)
    with quiet_subflow():
        state = await pipeline(
            task_file=str(job.task_file), env=env, repo=job.repo, return_state=True, **blocks
        )
    finished = state.is_completed() or state.is_cancelled()
    result = await state.aresult(raise_on_failure=False) if finished else None
    outcome = outcome_of(job, state, result)
    logger.info("%s: %s %s", job.task_file.name, outcome.status, outcome.reason)
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
