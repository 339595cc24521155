"""Retention: remove what finished runs left in the target repository, never work.

A run leaves one worktree per subtask and one for its result under
``<home>/work/<task>/<run>/``, a branch per subtask and a result branch. Once the run
is finished for good (succeeded, rejected, expired, or failed by a verdict: nothing
resumes it, see :func:`orchestrator.lifecycle.continues_on_resume`), :func:`collect` removes

- each of its worktrees that is clean (no modified or untracked file; ignored files
  are not work) and unlocked, and whose commit the result branch (or the base commit)
  contains;
- each subtask branch the result branch (or the base commit) contains, and that no
  worktree anywhere has checked out: its commits stay reachable from the result.

The result branch is always kept. Anything else is kept and reported with the reason:
a worktree with uncommitted changes or commits not in the result, a subtask branch not
merged, every part of a run that is running, paused, or can resume. Removal is a second
check by git itself (``git worktree remove`` without ``--force``; a branch is deleted
only while it still points at the commit that was checked), so a change made between
the look and the removal is kept too. Each removal is one line in the audit log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from schemas import RunManifest

from .exceptions import GitError, ManifestCorruptError
from .gitops import (
    WorktreeEntry,
    branch_commit,
    delete_branch,
    git,
    is_ancestor,
    list_worktrees,
    remove_clean_worktree,
    uncommitted_changes,
)
from .lifecycle import continues_on_resume
from .runstore import RunRef
from .workspace import Workspace

__all__ = ["Action", "Item", "ItemKind", "collect", "collect_run"]


class ItemKind(StrEnum):
    WORKTREE = "worktree"
    BRANCH = "branch"
    RUN = "run"


class Action(StrEnum):
    REMOVE = "remove"
    """Planned (a dry run stops here)."""
    REMOVED = "removed"
    KEEP = "keep"
    FAILED = "failed"
    """Planned, and git refused; the item is as it was."""


@dataclass(frozen=True)
class Item:
    """One thing a run left behind, and what retention does with it."""

    run: str
    """``<task-id>/<run-id>``."""
    kind: ItemKind
    name: str
    """The worktree's path, the branch's name, or the run's work folder."""
    action: Action
    reason: str
    commit: str | None = None


def collect(
    workspace: Workspace, *, dry_run: bool = False, task_id: str | None = None
) -> list[Item]:
    """Plan and (unless ``dry_run``) do retention for every run in the workspace."""
    refs = [r for r in workspace.store.list_runs() if task_id in (None, r.task_id)]
    return [item for ref in refs for item in collect_run(workspace, ref, dry_run=dry_run)]


def collect_run(workspace: Workspace, ref: RunRef, *, dry_run: bool = False) -> list[Item]:
    """Plan and (unless ``dry_run``) do retention for one run; see the module docstring."""
    label = f"{ref.task_id}/{ref.run_id}"
    work = workspace.settings.work_dir / ref.task_id / ref.run_id
    try:
        manifest = workspace.store.read(ref.task_id, ref.run_id)
    except ManifestCorruptError as exc:
        return [Item(label, ItemKind.RUN, str(work), Action.KEEP, f"manifest unreadable: {exc}")]
    kept = _kept_run(manifest, label, work)
    if kept is not None:
        return [kept]
    plan = _plan(manifest, label, work)
    if dry_run:
        return plan
    done = _apply_all(workspace, manifest, plan)
    removed = [
        Path(i.name) for i in done if i.kind is ItemKind.WORKTREE and i.action is Action.REMOVED
    ]
    for folder in [*(p.parent for p in removed), work]:
        _remove_empty(folder, stop=workspace.settings.work_dir)
    return done


def _kept_run(manifest: RunManifest, label: str, work: Path) -> Item | None:
    """The one item of a run that is not finished for good (nothing of it is touched)."""
    if not manifest.status.finished:
        reason = f"run is {manifest.status.value}"
    elif continues_on_resume(manifest):
        reason = "run failed by an error and can resume"
    elif not Path(manifest.task.repo_path, ".git").exists():
        reason = f"target repository {manifest.task.repo_path} is gone"
    else:
        return None
    return Item(label, ItemKind.RUN, str(work), Action.KEEP, reason)


@dataclass(frozen=True)
class _Context:
    repo: Path
    label: str
    keepers: tuple[str, ...]
    """Commits that stay: the result branch's tip and the base commit."""
    worktrees: tuple[WorktreeEntry, ...]


def _plan(manifest: RunManifest, label: str, work: Path) -> list[Item]:
    repo = Path(manifest.task.repo_path)
    result = manifest.result.branch if manifest.result else None
    result_tip = branch_commit(repo, result) if result else None
    keepers = tuple(c for c in (result_tip, manifest.task.base_commit) if c)
    context = _Context(repo, label, keepers, tuple(list_worktrees(repo)))
    ours = [w for w in context.worktrees if _inside(w.path, work)]
    items = [_plan_worktree(context, w) for w in ours]
    held = {w.branch for w, i in zip(ours, items, strict=True) if i.action is Action.KEEP}
    held |= {w.branch for w in context.worktrees if not _inside(w.path, work)}
    for branch in dict.fromkeys(s.branch for s in manifest.subtasks if s.branch):
        item = _plan_branch(context, branch, held=held)
        if item is not None:
            items.append(item)
    if result_tip and result:
        items.append(Item(label, ItemKind.BRANCH, result, Action.KEEP, "result", result_tip))
    return items


def _plan_worktree(context: _Context, worktree: WorktreeEntry) -> Item:
    def item(action: Action, reason: str) -> Item:
        name = str(worktree.path)
        return Item(context.label, ItemKind.WORKTREE, name, action, reason, worktree.head)

    if not worktree.path.is_dir():
        return item(Action.REMOVE, "folder is gone; registration pruned")
    if worktree.locked:
        return item(Action.KEEP, "locked (git worktree lock)")
    changes = uncommitted_changes(worktree.path)
    if changes:
        return item(Action.KEEP, f"{len(changes)} uncommitted change(s)")
    if worktree.head is None or not _contained(context, worktree.head):
        return item(Action.KEEP, "commits not merged into the result branch")
    return item(Action.REMOVE, "clean, merged")


def _plan_branch(context: _Context, branch: str, *, held: set[str | None]) -> Item | None:
    tip = branch_commit(context.repo, branch)
    if tip is None:
        return None
    if branch in held:
        reason, action = "checked out in a worktree that is kept", Action.KEEP
    elif not _contained(context, tip):
        reason, action = "not merged into the result branch", Action.KEEP
    else:
        reason, action = "merged into the result branch", Action.REMOVE
    return Item(context.label, ItemKind.BRANCH, branch, action, reason, tip)


def _contained(context: _Context, commit: str) -> bool:
    return any(is_ancestor(context.repo, commit, keeper) for keeper in context.keepers)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _apply_all(workspace: Workspace, manifest: RunManifest, plan: list[Item]) -> list[Item]:
    """Worktrees first, then branches, each checked again by git; a branch that a
    worktree still has checked out (one git refused to remove) is kept."""
    repo = Path(manifest.task.repo_path)
    done = {id(i): _apply(workspace, manifest, i) for i in plan if i.kind is ItemKind.WORKTREE}
    checked_out = {w.branch for w in list_worktrees(repo)}
    for item in plan:
        if item.kind is ItemKind.BRANCH:
            if item.action is Action.REMOVE and item.name in checked_out:
                item = replace(item, action=Action.KEEP, reason="checked out in a worktree")
            done[id(item)] = _apply(workspace, manifest, item)
    return [done.get(id(i), i) for i in plan]


def _apply(workspace: Workspace, manifest: RunManifest, item: Item) -> Item:
    if item.action is not Action.REMOVE:
        return item
    repo = Path(manifest.task.repo_path)
    try:
        if item.kind is ItemKind.WORKTREE:
            _remove_worktree(repo, Path(item.name))
        else:
            delete_branch(repo, item.name, item.commit or "")
    except GitError as exc:
        return replace(item, action=Action.FAILED, reason=str(exc))
    workspace.audit.append(
        f"gc.{item.kind.value}_removed",
        task_id=manifest.task_id,
        run_id=manifest.run_id,
        name=item.name,
        commit=item.commit,
    )
    return replace(item, action=Action.REMOVED)


def _remove_worktree(repo: Path, path: Path) -> None:
    if path.is_dir():
        remove_clean_worktree(repo, path)
    else:  # only its registration is left
        git(repo, "worktree", "prune")


def _remove_empty(folder: Path, *, stop: Path) -> None:
    """Remove ``folder`` and its parents below ``stop`` while they are empty."""
    path = folder
    while path != stop and path.is_relative_to(stop):
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty: a kept worktree, or something not ours
            return
        path = path.parent
