from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.exceptions import TaskSpecError
from orchestrator.taskspec import MAX_TASK_FILE_BYTES, load_task_spec, resolve_repo
from tests.conftest import EXAMPLES

VALID = """\
id: demo
title: A demo
goal: Do it.
target:
  repo: ../sample-repo
"""


@pytest.mark.parametrize("name", ["add-text-helpers.yaml", "add-word-stats.yaml"])
def test_sample_tasks_are_valid(name: str) -> None:
    path = EXAMPLES / "tasks" / name
    spec = load_task_spec(path)
    assert resolve_repo(spec, path) == (EXAMPLES / "sample-repo").resolve()


def test_json_task_files_work_too(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"id": "j", "title": "t", "goal": "g", "target": {"repo": "/r"}}')
    assert load_task_spec(path).target.repo == "/r"


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ("execution:\n  parallel: maybe\n", "execution.parallel", "valid boolean"),
        ("colour: red\n", "colour", "unknown field"),
        ("execution:\n  max_parallel: 99\n", "execution.max_parallel", "less than or equal"),
        ("subtasks:\n  - {id: a, title: A}\n  - {id: a, title: B}\n", None, "occurs twice"),
        ("subtasks:\n  - {id: a, title: A, files: [../x]}\n", "subtasks.0.files", "inside"),
    ],
)
def test_invalid_fields_are_named(
    tmp_path: Path, extra: str, field: str | None, reason: str
) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(VALID + extra)
    with pytest.raises(TaskSpecError, match=reason) as caught:
        load_task_spec(path)
    assert caught.value.path == str(path)
    if field:
        assert caught.value.field == field
        assert f"field '{field}'" in str(caught.value)


@pytest.mark.parametrize("task_id", ["../../etc", "/tmp/x", "a/b", "..", "a..b", "-x"])
def test_unsafe_ids_are_refused(tmp_path: Path, task_id: str) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(VALID.replace("id: demo", f"id: '{task_id}'"))
    with pytest.raises(TaskSpecError) as caught:
        load_task_spec(path)
    assert caught.value.field == "id"


def test_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(VALID.replace("goal: Do it.\n", ""))
    with pytest.raises(TaskSpecError, match="required field is missing") as caught:
        load_task_spec(path)
    assert caught.value.field == "goal"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("task.yaml", "id: [unclosed\n", "not valid YAML"),
        ("task.json", "{", "not valid JSON"),
        ("task.yaml", "- a list\n", "mapping"),
        ("task.txt", VALID, "task files end in"),
        ("task.yaml", "x: " + "a" * MAX_TASK_FILE_BYTES, "at most"),
        ("task.yaml", VALID + "zz: " + "[" * 500 + "]" * 500 + "\n", "nested more than"),
        ("task.yaml", VALID + "zz: " + "[" * 40 + "]" * 40 + "\n", "nested more than"),
        ("task.json", '{"zz": ' + "[" * 5000 + "]" * 5000 + "}", "nested more than"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, content: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TaskSpecError, match=reason):
        load_task_spec(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TaskSpecError, match="no such file"):
        load_task_spec(tmp_path / "absent.yaml")
