"""The test phase: the tester runs the project's test command on the merged result."""

from __future__ import annotations

from prefect import flow

from agents.steps import TEST_STEP, test_step
from schemas import PhaseName, TestReport

from ._artifacts import publish_tests
from ._runtime import (
    DEFAULT_BLOCK,
    PhaseRuntime,
    agent_task,
    call_agent,
    run_logger,
    running_phase,
)


@agent_task("tester", run_name="tester {runtime.handle.label}")
async def tester(runtime: PhaseRuntime) -> TestReport:
    """One tester call (skipped when the manifest records it done)."""
    report = await call_agent(runtime, TEST_STEP, test_step)
    run_logger().info(
        "tests %s: exit %s, %d passed, %d failed",
        "passed" if report.passed else "FAILED",
        report.exit_code,
        report.tests_passed,
        report.tests_failed,
    )
    return report


@flow(name="test", flow_run_name="test {task_id}/{run_id}")
async def test_flow(
    task_id: str,
    run_id: str,
    codex_block: str = DEFAULT_BLOCK,
    vault_block: str = DEFAULT_BLOCK,
) -> TestReport:
    """Run the target project's tests on the merged result; the report has real exit codes."""
    async with running_phase(
        PhaseName.TEST, task_id, run_id, codex_block=codex_block, vault_block=vault_block
    ) as runtime:
        report = await tester(runtime)
        await publish_tests(runtime.handle, report)
    return report


test_flow.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
