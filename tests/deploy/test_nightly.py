"""The nightly flow's plain parts: which tasks run, how the queue is claimed, how a run
started as a deployment run is read back, and the summary."""

from __future__ import annotations

import shutil
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows._nightly_runs import job_key
from flows.nightly import (
    Job,
    Outcome,
    claim_queued,
    nightly_jobs,
    outcome_of_run,
    summary_markdown,
    task_files,
)

from .helpers import EXAMPLES

FLOW_RUN = UUID("e714844f-f37b-4d24-9c07-418ed2802dc3")
JOB = Job(Path("/q/done/x-rename.yaml"), "/repo", "queue")


def copy_task(name: str, folder: Path, *, nightly: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    text = (EXAMPLES / "tasks" / name).read_text()
    path.write_text(text if nightly else text.replace("nightly: true", "nightly: false"))
    return path


def test_only_tasks_marked_nightly_run_and_bad_files_fail(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    copy_task("add-text-helpers.yaml", tasks)
    copy_task("add-word-stats.yaml", tasks, nightly=False)
    (tasks / "broken.yaml").write_text("id: [not, an, id]\n")
    (tasks / "notes.txt").write_text("not a task file")
    jobs, failed = nightly_jobs(tasks, repo="/some/repo")
    assert [(j.task_file.name, j.repo, j.source) for j in jobs] == [
        ("add-text-helpers.yaml", "/some/repo", "nightly")
    ]
    assert [(Path(o.task_file).name, o.status) for o in failed] == [("broken.yaml", "invalid")]
    assert sorted(p.name for p in tasks.iterdir()) == [
        "add-text-helpers.yaml",
        "add-word-stats.yaml",
        "broken.yaml",
        "notes.txt",
    ]


def test_queued_tasks_are_claimed_once_with_their_own_target(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    copy_task("add-text-helpers.yaml", queue, nightly=False)
    copy_task("add-word-stats.yaml", queue)
    jobs = claim_queued(queue, repo="")
    assert [j.source for j in jobs] == ["queue", "queue"]
    assert all(j.task_file.parent == queue.resolve() / "done" for j in jobs)
    assert all(
        j.task_file.name.endswith(("-add-text-helpers.yaml", "-add-word-stats.yaml")) for j in jobs
    )
    assert {j.repo for j in jobs} == {str(tmp_path.resolve() / "sample-repo")}  # ../sample-repo
    assert task_files(queue) == []
    assert claim_queued(queue, repo="") == []


def test_a_repo_given_wins_and_a_missing_queue_is_empty(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    copy_task("add-word-stats.yaml", queue)
    assert [j.repo for j in claim_queued(queue, repo="/r")] == ["/r"]
    assert claim_queued(tmp_path / "nowhere", repo="") == []
    assert nightly_jobs(tmp_path / "nowhere", repo="") == ([], [])


def test_summary_is_one_table_row_per_run_with_a_link_to_its_flow_run() -> None:
    url = f"http://127.0.0.1:4200/v2/runs/flow-run/{FLOW_RUN}"
    outcomes = [
        Outcome("/q/done/a.yaml", "queue", "succeeded", "a", "r1", "", str(FLOW_RUN), url),
        Outcome("/t/b.yaml", "nightly", "failed", reason="tests failed | exit 1\nsee log"),
    ]
    text = summary_markdown(outcomes, {"synced": 2, "failed": 0})
    assert f"| a.yaml | queue | succeeded | a/r1 | [{FLOW_RUN}]({url}) |  |" in text
    assert "| b.yaml | nightly | failed |  |  | tests failed \\| exit 1 see log |" in text
    assert "sync backlog: synced 2" in text
    assert "(nothing to run)" in summary_markdown([], None)


def flow_run(name: str, state: State | None) -> FlowRun:
    return FlowRun(id=FLOW_RUN, name=name, flow_id=uuid4(), state=state)


@pytest.mark.parametrize(
    ("state", "status", "reason"),
    [
        (State(type=StateType.COMPLETED), "succeeded", ""),
        (
            State(type=StateType.CANCELLED, name="Rejected", message="plan: no"),
            "rejected",
            "plan: no",
        ),
        (State(type=StateType.CANCELLED, name="Expired", message="nobody"), "expired", "nobody"),
        (State(type=StateType.CANCELLED, name="Cancelled"), "cancelled", ""),
        (
            State(type=StateType.FAILED, name="Failed", message="tests failed"),
            "failed",
            "tests failed",
        ),
        (State(type=StateType.CRASHED, name="Crashed", message="killed"), "crashed", "killed"),
    ],
)
def test_a_deployment_runs_final_state_and_name_tell_how_its_run_ended(
    state: State, status: str, reason: str
) -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        ended = outcome_of_run(JOB, flow_run("rename-word-count/20261201T120000Z-3f9a1c", state))
    assert (ended.task_file, ended.source) == (str(JOB.task_file), "queue")
    assert (ended.status, ended.reason) == (status, reason)
    assert (ended.task_id, ended.run_id) == ("rename-word-count", "20261201T120000Z-3f9a1c")
    assert ended.flow_run_id == str(FLOW_RUN)
    assert ended.url == f"http://127.0.0.1:4200/v2/runs/flow-run/{FLOW_RUN}"


def test_a_run_not_final_at_the_deadline_is_unfinished_and_an_unnamed_one_has_no_run() -> None:
    late = outcome_of_run(
        JOB, flow_run("start rename-0", State(type=StateType.SCHEDULED, name="Late")), waited="2 h"
    )
    assert (late.status, late.task_id, late.run_id) == ("unfinished", "", "")
    assert late.reason == "still Late after 2 h; it goes on"
    failed = outcome_of_run(
        JOB, flow_run("start ../x", State(type=StateType.FAILED, name="Failed"))
    )
    assert (failed.status, failed.task_id, failed.run_id) == ("failed", "", "")
    assert outcome_of_run(JOB, None).status == "unfinished"


def test_a_jobs_key_is_the_same_on_a_retry_and_differs_between_jobs_and_runs() -> None:
    key = job_key("run-1", "/q/done/a.yaml")
    assert key == job_key("run-1", "/q/done/a.yaml")
    assert len({key, job_key("run-1", "/q/done/b.yaml"), job_key("run-2", "/q/done/a.yaml")}) == 3
    assert key.startswith("nightly-")


def test_task_files_are_yaml_or_json_sorted(tmp_path: Path) -> None:
    for name in ("b.yml", "a.json", "c.yaml", "d.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "e.yaml").mkdir()
    assert [p.name for p in task_files(tmp_path)] == ["a.json", "b.yml", "c.yaml"]
    shutil.rmtree(tmp_path / "e.yaml")
