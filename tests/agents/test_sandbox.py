"""The sandbox on real codex + replay: no /tmp, no target git folder, a private TMPDIR."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import render_marker
from agents.backend import new_session
from orchestrator.gitops import commit_all, fresh_worktree, git_common_dir, merge_branches
from schemas import CodexServerConfig

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(90)]

HOOKS = ("pre-commit", "post-commit", "reference-transaction", "post-merge")


def prompt(case: str) -> str:
    return f"{render_marker({'role': 'test', 'case': case})}\n"


@pytest.fixture
def tmp_probe(tmp_path: Path) -> Iterator[Path]:
    """Where the fixture's command tries to write in /tmp (named after the test's folder)."""
    probe = (
        Path("/tmp") / f"sandbox-probe-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:16]}"
    )
    probe.unlink(missing_ok=True)
    yield probe
    probe.unlink(missing_ok=True)


async def test_a_sandboxed_builder_writes_neither_git_hooks_nor_tmp(
    codex_config: CodexServerConfig, git_repo: Path, tmp_path: Path, tmp_probe: Path
) -> None:
    """The target lies under the test's temporary folder, as a user's clone in /tmp would."""
    assert git_repo.is_relative_to("/tmp")
    common = git_common_dir(git_repo)
    worktree = fresh_worktree(git_repo, tmp_path / "work" / "builder", "run/builder", "main")
    config_before = (common / "config").read_text()

    async with new_session(codex_config) as session:
        turn = await session.start(prompt("sandbox-escape"), cwd=worktree.path)
        home = session.codex_home
        assert home is not None
        private = home / "tmp"
        settings = tomllib.loads((home / "config.toml").read_text())

    assert [h for h in HOOKS if (common / "hooks" / h).exists()] == []
    assert (common / "config").read_text() == config_before
    assert not tmp_probe.exists()  # noqa: ASYNC240
    # Its own TMPDIR worked (and is gone with the session), so did its workspace.
    used = (worktree.path / "tmpdir-used.txt").read_text().split()
    assert used[0] == "tmp" and Path(used[1]).parent == private
    assert not private.exists()
    assert len(turn.commands) == 3

    # The orchestrator's own commit and merge run no hook, whatever the repository holds.
    marker = git_repo.parent / "hook-ran"
    for name in HOOKS:
        hook = common / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {marker}-{name}\n")
        hook.chmod(0o755)
    with (common / "config").open("a") as config:
        config.write(f"[core]\n\tfsmonitor = touch {marker}-fsmonitor\n")
    (worktree.path / "change.txt").write_text("built\n")
    _, changed = commit_all(worktree, "builder's work")
    assert sorted(changed) == ["change.txt", "tmpdir-used.txt"]
    result = fresh_worktree(git_repo, tmp_path / "work" / "result", "run/result", "main")
    merge_branches(result, ["run/builder"])
    assert sorted(p.name for p in git_repo.parent.glob("hook-ran*")) == []
    assert settings["sandbox_workspace_write"] == {
        "exclude_slash_tmp": True,
        "exclude_tmpdir_env_var": True,
        "writable_roots": [str(private)],
    }


async def test_a_command_the_sandbox_refused_is_recorded_with_that_outcome(
    codex_config: CodexServerConfig, git_repo: Path
) -> None:
    marker = Path.home() / "marker-sandbox-refused"
    marker.unlink(missing_ok=True)
    async with new_session(codex_config) as session:
        turns = [await session.start(prompt("sandbox-refused"), cwd=git_repo) for _ in range(3)]
    assert not marker.exists()
    for turn in turns:  # one turn in several lacks exec events on each backend
        [command] = turn.commands
        assert command.command.endswith("'marker-sandbox-refused').write_text('x')\"")
        assert (command.status, command.exit_code) == ("refused-by-sandbox", 1)
        assert command.reason is not None and "Read-only file system" in command.reason
