"""The git operations of a run: checks on the target, worktrees, branches, merges, diffs.

Agents never commit: a builder edits files in its worktree inside the sandbox, and
the orchestrator commits outside it. The target repository's own working tree is
never touched; everything happens on run branches in worktrees under ``work/``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ._disk import full_disk_error
from .exceptions import GitError, InvalidInputError, StorageError

GIT_IDENTITY = ("-c", "user.name=Codex Orchestrator", "-c", "user.email=orchestrator@localhost")
GIT_HARDENING = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "tag.gpgSign=false",
)
"""Defence in depth: no git command of ours runs a program that a repository's hooks or
config name (hooks, including the ``post-commit`` and ``reference-transaction`` hooks that
``--no-verify`` does not skip; an fsmonitor; a signing program). The first defence is that
no agent can write the repository's git folder at all."""
GIT_TIMEOUT_SECONDS = 120


def _run_git(repo: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *GIT_IDENTITY, *GIT_HARDENING, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_SECONDS,
        check=False,
    )


def git(repo: Path, *args: str, check: bool = True, writes: Path | None = None) -> str:
    """Run ``git -C repo args`` and return its stdout (stripped).

    Raises:
        StorageError: it failed on a full disk at ``writes`` (default: ``repo``).
        GitError: it failed otherwise.
    """
    completed = _run_git(repo, args)
    if check and completed.returncode != 0:
        command = "git " + " ".join(args)
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        last = detail[-1] if detail else str(completed.returncode)
        full = full_disk_error("git's files", writes or repo, f"git: {last}")
        if full is not None:
            raise full
        raise GitError(
            f"{command} failed in {repo}: {last}",
            command=command,
            stderr=completed.stderr,
        )
    return completed.stdout.strip()


def check_target(repo: Path, base_branch: str) -> str:
    """Check the target repository is usable and return the base branch's commit.

    Raises:
        InvalidInputError: missing folder, not a git repository, unknown base branch,
            or uncommitted changes in its working tree.
    """
    if not repo.is_dir():
        raise InvalidInputError(f"target repository {repo} does not exist")
    top = git(repo, "rev-parse", "--show-toplevel", check=False)
    if not top or Path(top).resolve() != repo.resolve():
        raise InvalidInputError(f"target {repo} is not the top of a git repository")
    commit = git(
        repo,
        "rev-parse",
        "--verify",
        "--quiet",
        f"refs/heads/{base_branch}^{{commit}}",
        check=False,
    )
    if not commit:
        raise InvalidInputError(f"target repository {repo} has no branch {base_branch!r}")
    dirty = git(repo, "status", "--porcelain", "--untracked-files=normal")
    if dirty:
        count = len(dirty.splitlines())
        raise InvalidInputError(
            f"target repository {repo} has {count} uncommitted change(s); "
            "commit or stash them first"
        )
    return commit


def git_common_dir(repo: Path) -> Path:
    """The repository's common git folder (hooks, config, refs), as an absolute path."""
    return Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))


@dataclass(frozen=True)
class Worktree:
    repo: Path
    path: Path
    branch: str


def fresh_worktree(repo: Path, path: Path, branch: str, start: str) -> Worktree:
    """A clean worktree at ``path`` on ``branch``, reset to ``start`` (whatever was there)."""
    if path.exists():
        remove_worktree(repo, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    add = ("worktree", "add", "--force", "-B", branch, str(path), start)
    try:
        git(repo, *add, writes=path)
    except StorageError:  # a full disk: leave no half-written worktree behind
        _forget_worktree(repo, path, branch)
        raise
    except GitError:  # what a killed git left behind holds the branch or the path
        _forget_worktree(repo, path, branch)
        git(repo, *add, writes=path)
    return Worktree(repo, path, branch)


def _forget_worktree(repo: Path, path: Path, branch: str) -> None:
    """Remove every trace of the worktree at ``path`` and of locks on ``branch``.

    A git killed half-way (the orchestrator was SIGKILLed during ``worktree add``) can
    leave a locked or half-written registration that ``prune`` keeps, and a ref lock
    file. Both belong to this run's own path and branch, which no other process uses.
    """
    remove_worktree(repo, path)
    common = git_common_dir(repo)
    for admin in (common / "worktrees").glob("*"):
        gitdir = admin / "gitdir"
        if gitdir.is_file() and Path(gitdir.read_text().strip()) == path / ".git":
            shutil.rmtree(admin, ignore_errors=True)
    (common / "refs" / "heads" / f"{branch}.lock").unlink(missing_ok=True)


def clean_worktree(repo: Path, path: Path, branch: str, commit: str) -> Worktree:
    """The worktree at ``path`` if it is on ``branch`` at ``commit`` with nothing changed
    or added; otherwise a fresh one (:func:`fresh_worktree`)."""
    if path.is_dir() and _is_pristine(path, branch, commit):
        return Worktree(repo, path, branch)
    return fresh_worktree(repo, path, branch, commit)


def _is_pristine(path: Path, branch: str, commit: str) -> bool:
    status = git(path, "status", "--porcelain=v2", "--branch", "--untracked-files=all", check=False)
    headers = {
        line.split()[1]: line.split()[2]
        for line in status.splitlines()
        if line.startswith("# branch.") and len(line.split()) > 2
    }
    changes = [line for line in status.splitlines() if not line.startswith("#")]
    return (
        headers.get("branch.oid") == commit
        and headers.get("branch.head") == branch
        and (not changes)
    )


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree and its registration; a missing one is fine.

    Locked ones too: ``git worktree add`` locks the worktree while it builds it, so an
    add killed half-way leaves it locked, and ``prune`` keeps locked registrations.
    """
    git(repo, "worktree", "unlock", str(path), check=False)
    if path.exists():
        git(repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
    git(repo, "worktree", "prune")


def commit_all(worktree: Worktree, message: str) -> tuple[str, list[str]]:
    """Commit every change in the worktree; returns (commit, changed files)."""
    git(worktree.path, "add", "--all")
    changed = git(worktree.path, "diff", "--cached", "--name-only").splitlines()
    if changed:
        git(worktree.path, "commit", "--quiet", "--no-verify", "-m", message)
    return git(worktree.path, "rev-parse", "HEAD"), changed


def branch_commit(repo: Path, branch: str) -> str | None:
    commit = git(
        repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False
    )
    return commit or None


# Every diff we read: no external diff program or textconv filter a repository's config
# may name runs.
SAFE_DIFF = ("diff", "--no-ext-diff", "--no-textconv")


def diff(repo: Path, base: str, head: str, *, stat: bool = False) -> str:
    kind = "--stat" if stat else "--patch"
    return git(repo, *SAFE_DIFF, kind, f"{base}..{head}")


def uncommitted_diff(worktree: Path, *paths: str) -> str:
    """The worktree's changes against its index (of ``paths``, or all)."""
    return git(worktree, *SAFE_DIFF, "--", *paths)


def diff_numstat(repo: Path, base: str, head: str) -> list[tuple[int | None, int | None, str]]:
    """(lines added, lines removed, path) per file changed in ``base..head``; None for
    the counts of a binary file."""
    rows = []
    for row in git(repo, *SAFE_DIFF, "--numstat", f"{base}..{head}").splitlines():
        added, removed, path = row.split("\t", 2)
        rows.append(
            (None if added == "-" else int(added), None if removed == "-" else int(removed), path)
        )
    return rows


def merge_branches(worktree: Worktree, branches: list[str]) -> str:
    """Merge each branch into the worktree's branch; a conflict aborts and raises GitError."""
    for branch in branches:
        try:
            git(worktree.path, "merge", "--no-ff", "--no-edit", "-m", f"Merge {branch}", branch)
        except GitError:
            git(worktree.path, "merge", "--abort", check=False)
            raise
    return git(worktree.path, "rev-parse", "HEAD")


# -- retention: what a finished run left behind ------------------------------------


@dataclass(frozen=True)
class WorktreeEntry:
    """One worktree as ``git worktree list`` registers it."""

    path: Path
    head: str | None
    branch: str | None
    """The branch checked out (without ``refs/heads/``); ``None`` when detached."""
    locked: bool


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    """Every worktree registered in ``repo`` (its main working tree first)."""
    # -z: a path may hold a newline; records end with an empty field.
    out = _run_git(repo, ("worktree", "list", "--porcelain", "-z"))
    if out.returncode != 0:
        raise GitError(
            f"git worktree list failed in {repo}: {out.stderr.strip()}",
            command="git worktree list",
            stderr=out.stderr,
        )
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for field in out.stdout.split("\0"):
        if field:
            key, _, value = field.partition(" ")
            fields[key] = value
        elif fields:
            entries.append(_worktree_entry(fields))
            fields = {}
    return entries


def _worktree_entry(fields: dict[str, str]) -> WorktreeEntry:
    branch = fields.get("branch")
    return WorktreeEntry(
        path=Path(fields["worktree"]),
        head=fields.get("HEAD"),
        branch=branch.removeprefix("refs/heads/") if branch else None,
        locked="locked" in fields,
    )


def uncommitted_changes(path: Path) -> list[str]:
    """The worktree's changed and untracked files (``git status --porcelain`` lines);
    ignored files are not work."""
    return git(path, "status", "--porcelain", "--untracked-files=all").splitlines()


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """True when ``commit`` is ``of`` or one of its ancestors (nothing on it is lost
    while ``of`` stays)."""
    done = _run_git(repo, ("merge-base", "--is-ancestor", commit, of))
    if done.returncode not in (0, 1):
        raise GitError(
            f"git merge-base --is-ancestor {commit} {of} failed in {repo}: {done.stderr.strip()}",
            command="git merge-base --is-ancestor",
            stderr=done.stderr,
        )
    return done.returncode == 0


def remove_clean_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree only if git agrees it is clean and unlocked.

    Without ``--force``, ``git worktree remove`` refuses a worktree with modified or
    untracked files or a lock: a change made after the caller looked is not lost.

    Raises:
        GitError: git refused (the worktree stays as it is).
    """
    git(repo, "worktree", "remove", str(path))


def delete_branch(repo: Path, branch: str, commit: str) -> None:
    """Delete ``branch`` only while it still points at ``commit``.

    Raises:
        GitError: the branch moved (or is gone); it is left as it is.
    """
    git(repo, "update-ref", "-d", f"refs/heads/{branch}", commit)


# -- remotes: subtasks built on other machines -------------------------------------


def origin_url(repo: Path) -> str | None:
    """The URL of the repository's ``origin`` remote, if it has one."""
    return git(repo, "remote", "get-url", "origin", check=False) or None


def push_commit(repo: Path, remote: str, commit: str, branch: str) -> None:
    """Set ``branch`` on ``remote`` to ``commit`` (forced: the branch is this run's own)."""
    git(repo, "push", "--quiet", "--force", remote, f"{commit}:refs/heads/{branch}")


def fetch_branch(repo: Path, remote: str, branch: str) -> str:
    """Set the local ``branch`` to the remote's (forced); its commit.

    Raises:
        GitError: the remote has no such branch, or git failed.
    """
    git(repo, "fetch", "--quiet", "--force", remote, f"+refs/heads/{branch}:refs/heads/{branch}")
    commit = branch_commit(repo, branch)
    assert commit is not None, branch
    return commit


def mirror_clone(path: Path, remote: str) -> Path:
    """A bare repository at ``path`` to fetch ``remote``'s branches into and build on
    (worktrees of a bare repository work like any other's); made when missing."""
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "--quiet", "--bare", writes=path)
    return path
