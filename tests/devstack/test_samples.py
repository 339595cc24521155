"""The sample files are found through the package, not through the checkout's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.replay import FixtureSet
from devstack.samples import examples_dir, fixture_set, prepare_sample_repo, sample_task
from orchestrator.exceptions import InvalidInputError
from orchestrator.gitops import check_target, git
from orchestrator.taskspec import load_task_spec
from tests.conftest import EXAMPLES


def test_the_samples_are_the_projects_examples_folder() -> None:
    assert examples_dir() == EXAMPLES  # an editable install maps devstack.examples onto it
    assert load_task_spec(sample_task()).id == "add-text-helpers"
    assert {s.id for s in FixtureSet.load(fixture_set()).scripts} >= {"plan-add-text-helpers"}
    assert FixtureSet.load(fixture_set("escalation")).name


def test_sample_repo_is_a_clean_git_repo_on_main_and_kept(tmp_path: Path) -> None:
    repo = prepare_sample_repo(tmp_path / "work" / "sample-repo")
    commit = check_target(repo, "main")
    assert (repo / "textkit" / "core.py").is_file()
    assert not list(repo.rglob("__pycache__"))
    assert prepare_sample_repo(tmp_path / "work" / "sample-repo") == repo
    assert git(repo, "rev-parse", "main") == commit
    (repo / "scratch.txt").write_text("dirty")
    with pytest.raises(InvalidInputError, match="uncommitted"):
        prepare_sample_repo(repo)
