"""The nightly flow's plain parts: which tasks run, and how the queue is claimed."""

from __future__ import annotations

import shutil
from pathlib import Path

from flows.nightly import Outcome, claim_queued, nightly_jobs, summary_markdown, task_files

from .helpers import EXAMPLES


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


def test_summary_is_one_table_row_per_run() -> None:
    outcomes = [
        Outcome("/q/done/a.yaml", "queue", "succeeded", "a", "r1"),
        Outcome("/t/b.yaml", "nightly", "failed", reason="tests failed | exit 1\nsee log"),
    ]
    text = summary_markdown(outcomes, {"synced": 2, "failed": 0})
    assert "| a.yaml | queue | succeeded | a/r1 |  |" in text
    assert "tests failed \\| exit 1 see log" in text
    assert "sync backlog: synced 2" in text
    assert "(nothing to run)" in summary_markdown([], None)


def test_task_files_are_yaml_or_json_sorted(tmp_path: Path) -> None:
    for name in ("b.yml", "a.json", "c.yaml", "d.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "e.yaml").mkdir()
    assert [p.name for p in task_files(tmp_path)] == ["a.json", "b.yml", "c.yaml"]
    shutil.rmtree(tmp_path / "e.yaml")
