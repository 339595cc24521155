"""The learning library in the agent steps, on the in-memory codex: the planner is shown
the codemods and may name one; the build step runs it before the builder's turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.session import CodexSession
from agents.steps import build_step, plan_step
from orchestrator.lifecycle import RunHandle, start_run
from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import CodexServerConfig
from tests.conftest import REPO_ROOT
from tests.helpers.fake_codex import FakeCall, FakeCodex
from tests.helpers.repos import git, task_beside_repo

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

CONFIG = CodexServerConfig.model_validate({"provider": {"base_url": "http://127.0.0.1:9/v1"}})
TASK = """\
id: rename
title: Rename old_name
goal: Rename old_name to new_name.
target: {repo: repo}
approvals: {plan: auto, handover: auto}
"""
CODE = "def old_name():\n    return 1\n\n\nprint(old_name())\n"


async def team(call: FakeCall) -> str:
    role = call.marker.get("role")
    if role == "planner":
        assert "rename-function@^1.0.0 (tags: python, refactor, rename; python)" in call.prompt
        use = {"use": "rename-function@^1", "args": ["--old", "old_name", "--new", "new_name"]}
        subtask = {"id": "rename", "title": "Rename old_name", "codemods": [use]}
        return json.dumps({"summary": "one codemod", "subtasks": [subtask]})
    assert role == "builder"
    assert call.cwd is not None
    return json.dumps({"subtask_id": "rename", "summary": "checked", "files_changed": []})


@pytest.fixture
def run(tmp_path: Path, redactor: object) -> RunHandle:
    settings = Settings(
        home=tmp_path / "home", env="dev", library_index=REPO_ROOT / "library" / "index.yaml"
    )
    task = task_beside_repo(tmp_path, TASK)
    repo = tmp_path / "repo"
    (repo / "names.py").write_text(CODE)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")
    return start_run(Workspace.open(settings), task_file=task, env="dev")


async def test_the_planner_names_a_codemod_that_runs_before_the_builder(run: RunHandle) -> None:
    fake = FakeCodex(team)
    async with CodexSession(CONFIG, streams=fake.streams) as session:
        plan = await plan_step(run, session)
    assert plan.subtasks[0].codemods[0].use == "rename-function@^1"
    async with CodexSession(CONFIG, streams=fake.streams) as session:
        record = await build_step(run, session, "rename")

    [builder] = fake.calls_of("builder")
    assert "Deterministic edits already made" in builder.prompt
    assert "rename-function@1.0.0" in builder.prompt
    assert "+def new_name():" in builder.prompt  # the codemod's diff, shown to the builder
    assert record.commit is not None
    assert "def new_name():" in git(
        Path(run.read().task.repo_path), "show", f"{record.commit}:names.py"
    )
    step = run.read().step("build-rename")
    assert step is not None and step.library == ["rename-function@1.0.0"]
    assert run.read().subtasks[0].codemods[0].args == ["--old", "old_name", "--new", "new_name"]
