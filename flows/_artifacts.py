"""Prefect artifacts that summarise a run in the UI: plan, subtasks, tests, verdict, manifest."""

from __future__ import annotations

import re

from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from orchestrator.lifecycle import RunHandle
from schemas import Plan, ReviewVerdict, RunManifest, TestReport


def artifact_key(handle: RunHandle, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{what}-{handle.task_id}-{handle.run_id}".lower())


async def publish_plan(handle: RunHandle, plan: Plan) -> None:
    rows = [
        {
            "subtask": s.id,
            "title": s.title,
            "acceptance": "; ".join(s.acceptance),
            "files": ", ".join(s.files),
        }
        for s in plan.subtasks
    ]
    await acreate_table_artifact(
        rows,
        key=artifact_key(handle, "plan"),
        description=f"Plan of {handle.label}: {plan.summary}",
    )


async def publish_subtasks(handle: RunHandle, manifest: RunManifest) -> None:
    rows = [
        {
            "subtask": s.id,
            "status": s.status.value,
            "branch": s.branch or "",
            "commit": (s.commit or "")[:12],
            "builder calls": s.builder_calls,
        }
        for s in manifest.subtasks
    ]
    await acreate_table_artifact(
        rows, key=artifact_key(handle, "subtasks"), description=f"Subtasks of {handle.label}"
    )


async def publish_tests(handle: RunHandle, report: TestReport) -> None:
    outcome = "passed" if report.passed else "FAILED"
    markdown = (
        f"## Tests {outcome}\n\n"
        f"| command | exit code | passed | failed | errors | skipped |\n"
        f"|---|---|---|---|---|---|\n"
        f"| `{report.command}` | {report.exit_code} | {report.tests_passed} | "
        f"{report.tests_failed} | {report.tests_errored} | {report.tests_skipped} |\n\n"
        f"{report.summary}\n"
    )
    await acreate_markdown_artifact(
        markdown, key=artifact_key(handle, "tests"), description=f"Tests of {handle.label}"
    )


async def publish_verdict(handle: RunHandle, verdict: ReviewVerdict) -> None:
    reasons = "\n".join(f"- {reason}" for reason in verdict.reasons)
    markdown = f"## Review: {verdict.verdict.value}\n\n{verdict.summary}\n\n{reasons}\n"
    await acreate_markdown_artifact(
        markdown, key=artifact_key(handle, "review"), description=f"Review of {handle.label}"
    )


async def publish_summary(handle: RunHandle, manifest: RunManifest) -> None:
    result = manifest.result
    lines = [
        f"## Run {handle.label}: {manifest.status.value}",
        "",
        f"- mode: {manifest.mode.mode.value} ({manifest.mode.reason})",
        f"- manifest: `{handle.manifest_path}`",
    ]
    if manifest.status_reason:
        lines.append(f"- reason: {manifest.status_reason}")
    if result and result.branch:
        lines.append(f"- result branch: `{result.branch}` at `{(result.commit or '')[:12]}`")
    if manifest.sync:
        lines.append(f"- cloud sync: {manifest.sync.state.value}")
    if result and result.diff_stat:
        lines += ["", "```", result.diff_stat, "```"]
    await acreate_markdown_artifact(
        "\n".join(lines) + "\n",
        key=artifact_key(handle, "run"),
        description=f"Summary of {handle.label}",
    )
