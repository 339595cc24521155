"""Prefect artifacts that summarise a run in the UI: plan, subtasks, tests, verdict, usage,
manifest."""

from __future__ import annotations

import re

from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from orchestrator.lifecycle import RunHandle
from orchestrator.literal import md_cell, md_code, md_fence, md_text
from orchestrator.usage import cost_text, usage_line
from schemas import PhaseName, Plan, ReviewVerdict, RunManifest, TestReport, TokenUsage


def artifact_key(handle: RunHandle, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{what}-{handle.task_id}-{handle.run_id}".lower())


async def publish_plan(handle: RunHandle, plan: Plan) -> None:
    # The UI renders each string cell, and the description, as markdown of its own.
    rows = [
        {
            "subtask": md_text(s.id),
            "title": md_text(s.title),
            "acceptance": md_text("; ".join(s.acceptance)),
            "files": md_text(", ".join(s.files)),
        }
        for s in plan.subtasks
    ]
    await acreate_table_artifact(
        rows,
        key=artifact_key(handle, "plan"),
        description=f"Plan of {md_code(handle.label)}: {md_text(plan.summary)}",
    )


async def publish_subtasks(handle: RunHandle, manifest: RunManifest) -> None:
    rows = [
        {
            "subtask": md_text(s.id),
            "status": s.status.value,
            "branch": md_text(s.branch or ""),
            "commit": (s.commit or "")[:12],
            "builder calls": s.builder_calls,
            "built by": md_text(f"{s.built_by.worker} ({s.built_by.flow_run_id})")
            if s.built_by
            else "this run",
        }
        for s in manifest.subtasks
    ]
    await acreate_table_artifact(
        rows, key=artifact_key(handle, "subtasks"), description=f"Subtasks of {handle.label}"
    )


async def publish_tests(handle: RunHandle, report: TestReport) -> None:
    outcome = "passed" if report.all_passed else "FAILED"
    markdown = (
        f"## Tests {outcome}\n\n"
        f"| command | exit code | passed | failed | errors | skipped |\n"
        f"|---|---|---|---|---|---|\n"
        f"| {md_code(report.command, cell=True)} | {report.exit_code} | {report.tests_passed} | "
        f"{report.tests_failed} | {report.tests_errored} | {report.tests_skipped} |\n\n"
        f"{md_text(report.summary)}\n" + _lint_markdown(report)
    )
    await acreate_markdown_artifact(
        markdown, key=artifact_key(handle, "tests"), description=f"Tests of {handle.label}"
    )


def _lint_markdown(report: TestReport) -> str:
    if not report.lint:
        return ""
    rows = [
        f"| {md_cell(lint.entry)} | {md_cell(f.path)} | {f.line or ''} | {md_cell(f.rule or '')} "
        f"| {md_cell(f.message)} |"
        for lint in report.lint
        for f in lint.findings
    ]
    clean = [md_code(lint.entry) for lint in report.lint if lint.passed]
    lines = ["", "### Linters", ""]
    if clean:
        lines.append(f"Clean: {', '.join(clean)}")
    if rows:
        lines += ["", "| linter | file | line | rule | finding |", "|---|---|---|---|---|", *rows]
    return "\n".join(lines) + "\n"


async def publish_verdict(handle: RunHandle, verdict: ReviewVerdict) -> None:
    reasons = "\n".join(f"- {md_text(reason)}" for reason in verdict.reasons)
    markdown = f"## Review: {verdict.verdict.value}\n\n{md_text(verdict.summary)}\n\n{reasons}\n"
    await acreate_markdown_artifact(
        markdown, key=artifact_key(handle, "review"), description=f"Review of {handle.label}"
    )


def usage_rows(manifest: RunManifest) -> list[dict[str, str | int]]:
    """One row per agent step, one per phase, and the run's total: tokens and cost."""

    def row(
        scope: str, name: str, model: str, tokens: TokenUsage, cost: float | None
    ) -> dict[str, str | int]:
        return {
            "scope": scope,
            "name": md_text(name),
            "model": md_text(model),
            "input": tokens.input_tokens,
            "cached input": tokens.cached_input_tokens,
            "output": tokens.output_tokens,
            "reasoning": tokens.reasoning_output_tokens,
            "total": tokens.total_tokens,
            "cost (USD)": cost_text(cost),
        }

    rows = []
    for name in PhaseName:
        phase = manifest.phases.get(name)
        rows += [row("step", s.id, s.model or "-", s.tokens, s.cost_usd) for s in phase.steps]
        rows.append(row("phase", name.value, "", phase.usage.tokens, phase.usage.cost_usd))
    usage = manifest.usage
    rows.append(row("run", f"{usage.agent_calls} agent calls", "", usage.tokens, usage.cost_usd))
    return rows


async def publish_usage(handle: RunHandle, manifest: RunManifest) -> None:
    await acreate_table_artifact(
        usage_rows(manifest),
        key=artifact_key(handle, "usage"),
        description=f"Token usage and cost of {md_code(handle.label)}",
    )


async def publish_summary(handle: RunHandle, manifest: RunManifest) -> None:
    result = manifest.result
    lines = [
        f"## Run {md_code(handle.label)}: {manifest.status.value}",
        "",
        f"- mode: {manifest.mode.mode.value} ({md_text(manifest.mode.reason)})",
        f"- manifest: {md_code(str(handle.manifest_path))}",
    ]
    if manifest.status_reason:  # may quote a reviewer or a model error
        lines.append(f"- reason: {md_text(manifest.status_reason)}")
    if result and result.branch:
        commit = (result.commit or "")[:12]
        lines.append(f"- result branch: {md_code(result.branch)} at {md_code(commit)}")
    if manifest.sync:
        lines.append(f"- cloud sync: {manifest.sync.state.value}")
    lines.append(f"- usage: {md_text(usage_line(manifest.usage))}")
    if result and result.diff_stat:
        lines += ["", md_fence(result.diff_stat)]
    await acreate_markdown_artifact(
        "\n".join(lines) + "\n",
        key=artifact_key(handle, "run"),
        description=f"Summary of {handle.label}",
    )
