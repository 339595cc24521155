"""Run ids given by a person: safe, and only ever the given task's own runs."""

from __future__ import annotations

import pytest

from orchestrator.exceptions import InvalidInputError, UnsafeIdError
from orchestrator.lifecycle import check_run_id
from orchestrator.workspace import Workspace
from tests.conftest import sample_manifest


def test_a_new_run_id_is_free_and_an_own_run_is_found(workspace: Workspace) -> None:
    manifest = sample_manifest("add-text-helpers")
    workspace.store.create(manifest)

    assert check_run_id(workspace, "add-text-helpers", "20990101T000000Z-abcdef") is False
    assert check_run_id(workspace, "add-text-helpers", manifest.run_id) is True


def test_another_tasks_run_is_refused(workspace: Workspace) -> None:
    other = sample_manifest("other-task")
    workspace.store.create(other)

    with pytest.raises(InvalidInputError, match="belongs to task other-task, not to add-text"):
        check_run_id(workspace, "add-text-helpers", other.run_id)


@pytest.mark.parametrize("run_id", ["a/b", "../x", ".hidden", "x" * 300])
def test_unsafe_run_ids_are_refused(workspace: Workspace, run_id: str) -> None:
    with pytest.raises(UnsafeIdError, match="invalid run id"):
        check_run_id(workspace, "add-text-helpers", run_id)
