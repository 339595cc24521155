"""``flows.approvals`` against a real Prefect API (the suite's test harness), no pipeline.

Each test pauses flow runs the way ``flows.gates`` does (a ``Paused`` state keyed by the
approval id, the form's schema and description saved by Prefect's ``RunInput``, and our
gate notice next to it), then reads and decides them through the public API only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import pytest
from prefect import flow
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.client.orchestration import PrefectClient
from prefect.input import keyset_from_paused_state
from prefect.settings import PREFECT_UI_URL
from prefect.states import Paused, Running

from flows.approvals import (
    decide,
    decided_gates,
    gates_of_run,
    run_with_client,
    waiting_gates,
)
from flows.gates import ApprovalForm
from orchestrator.exceptions import ApprovalError, OrchestratorError, RunNotFoundError
from schemas import (
    ApprovalDecision,
    Channel,
    Decision,
    DecisionNotice,
    Gate,
    GateNotice,
    ResumeNotice,
    WaitingGate,
    utc_now,
)
from tests.conftest import PrefectApi

pytestmark = pytest.mark.integration


@flow(name="inbox-test")
def held() -> None:
    """Never runs: its flow runs are created and paused through the API."""


@dataclass
class Pauses:
    """Flow runs paused at gates the way ``flows.gates`` pauses them; deleted afterwards."""

    task_id: str = field(default_factory=lambda: f"inbox-{uuid.uuid4().hex[:8]}")
    flow_run_ids: list[UUID] = field(default_factory=list)

    def notice(self, run_id: str, approval_id: str, gate: Gate, summary: str = "") -> GateNotice:
        return GateNotice(
            task_id=self.task_id,
            run_id=run_id,
            gate=gate,
            approval_id=approval_id,
            summary=summary,
            requested_at=utc_now(),
            timeout_seconds=60,
        )

    def pause(
        self,
        notice: GateNotice | None,
        *,
        key: str,
        name: str,
        shown: str = "## shown",
        timeout: int = 60,
        earlier: list[GateNotice] | None = None,
    ) -> UUID:
        """A flow run named ``name`` paused with pause key ``key`` and ``notice`` beside it."""

        async def create(client: PrefectClient) -> UUID:
            flow_run = await client.create_flow_run(held, name=name, state=Running())
            for old in [*(earlier or []), *([notice] if notice else [])]:
                key_of = GateNotice.input_key(old.approval_id)
                await _input(client, flow_run.id, key_of, old.model_dump(mode="json"))
            state = Paused(timeout_seconds=timeout, pause_key=key)
            keyset = keyset_from_paused_state(state)
            state.state_details.run_input_keyset = keyset
            await client.set_flow_run_state(flow_run.id, state, force=True)
            # What RunInput.asave stores for the form (it opens a client of its own and,
            # outside a flow run, leaves its connection open).
            form = ApprovalForm.with_initial_data(description=shown)
            schema = create_v2_schema(form.__name__, model_base=form)
            await _input(client, flow_run.id, keyset["schema"], schema)
            await _input(client, flow_run.id, keyset["description"], shown)
            return flow_run.id

        flow_run_id = run_with_client(create)
        self.flow_run_ids.append(flow_run_id)
        return flow_run_id

    def decided(self, flow_run_id: UUID, approval_id: str, decision: ApprovalDecision) -> None:
        """What the gate writes once it has recorded a decision."""

        async def write(client: PrefectClient) -> None:
            notice = DecisionNotice.of(decision).model_dump(mode="json")
            await _input(client, flow_run_id, DecisionNotice.input_key(approval_id), notice)
            await client.set_flow_run_state(flow_run_id, Running(), force=True)

        run_with_client(write)

    def state_of(self, flow_run_id: UUID) -> str:
        async def read(client: PrefectClient) -> str:
            state = (await client.read_flow_run(flow_run_id)).state
            assert state is not None
            return state.type.value

        return run_with_client(read)

    def delete_all(self) -> None:
        async def delete(client: PrefectClient) -> None:
            for flow_run_id in self.flow_run_ids:
                await client.delete_flow_run(flow_run_id)

        run_with_client(delete)


async def _input(client: PrefectClient, flow_run_id: UUID, key: str, value: object) -> None:
    await client.create_flow_run_input(flow_run_id, key, json.dumps(value))


@pytest.fixture
def pauses(prefect_api: PrefectApi) -> Iterator[Pauses]:
    made = Pauses()
    yield made
    made.delete_all()


def ours(gates: list[WaitingGate], pauses: Pauses) -> list[WaitingGate]:
    return [g for g in gates if g.notice.task_id == pauses.task_id]


APPROVE = ApprovalDecision(decision=Decision.APPROVE, approver="Ada", reason="fine")


def test_the_inbox_lists_our_pauses_and_only_ours(pauses: Pauses) -> None:
    plan = pauses.notice("r1", "plan", Gate.PLAN, "plan: 2 subtasks")
    plan_run = pauses.pause(plan, key="plan", name=f"{pauses.task_id}/r1")
    command = pauses.notice("r2", "command-c1", Gate.COMMAND, "command: ls")
    command_run = pauses.pause(command, key="command-c1", name=f"build {pauses.task_id}/r2")
    pauses.pause(None, key="someone-elses", name=f"{pauses.task_id}/foreign")

    listed = ours(run_with_client(waiting_gates), pauses)

    assert [(g.notice, g.flow_run_id) for g in listed] == [
        (plan, plan_run),
        (command, command_run),
    ]
    first = listed[0]
    assert first.flow_run_name == f"{pauses.task_id}/r1"
    assert first.expires_at is not None
    assert timedelta(seconds=50) < first.expires_at - utc_now() <= timedelta(seconds=60)
    assert not first.expired and first.description is None
    ui = PREFECT_UI_URL.value()
    assert first.ui_url == (f"{ui.rstrip('/')}/v2/runs/flow-run/{plan_run}" if ui else None)


def test_one_run_is_named_by_run_id_label_or_flow_run_id(pauses: Pauses) -> None:
    notice = pauses.notice("r1", "plan", Gate.PLAN)
    flow_run_id = pauses.pause(notice, key="plan", name=f"{pauses.task_id}/r1", shown="# Plan")
    pauses.pause(pauses.notice("r2", "plan", Gate.PLAN), key="plan", name=f"{pauses.task_id}/r2")

    for name in ("r1", f"{pauses.task_id}/r1", str(flow_run_id)):
        [gate] = run_with_client(waiting_gates, run=name)
        assert gate.notice == notice
    [shown] = run_with_client(gates_of_run, "r1")
    assert shown.description == "# Plan"


def test_a_stale_pause_of_the_same_gate_gives_way_to_the_newest(pauses: Pauses) -> None:
    """A run killed while paused leaves its flow run paused; its resume pauses anew."""
    name = f"{pauses.task_id}/r1"
    pauses.pause(pauses.notice("r1", "plan", Gate.PLAN, "old"), key="plan", name=name)
    newest = pauses.pause(pauses.notice("r1", "plan", Gate.PLAN, "new"), key="plan", name=name)

    [gate] = run_with_client(waiting_gates, run="r1")

    assert (gate.flow_run_id, gate.notice.summary) == (newest, "new")


def test_a_gate_whose_id_prefixes_another_reads_its_own_notice(pauses: Pauses) -> None:
    """The API filters inputs by prefix: ``command-call-1`` must not read ``...-10``."""
    earlier = pauses.notice("r1", "command-call-10", Gate.COMMAND, "the earlier one")
    current = pauses.notice("r1", "command-call-1", Gate.COMMAND, "the current one")
    pauses.pause(
        current, key="command-call-1", name=f"build {pauses.task_id}/r1", earlier=[earlier]
    )

    [gate] = run_with_client(waiting_gates, run="r1")

    assert gate.notice == current


def test_a_decision_resumes_the_paused_flow_run_with_the_form_input(pauses: Pauses) -> None:
    flow_run_id = pauses.pause(
        pauses.notice("r1", "plan", Gate.PLAN), key="plan", name=f"{pauses.task_id}/r1"
    )

    resumed = run_with_client(decide, "r1", APPROVE, gate="plan")

    assert resumed.flow_run_id == flow_run_id
    assert pauses.state_of(flow_run_id) != "PAUSED"
    assert run_with_client(waiting_gates, run="r1") == []

    async def response(client: PrefectClient) -> str:
        return await client.read_flow_run_input(flow_run_id, "paused-plan-response")

    assert '"approver":"Ada"' in run_with_client(response).replace(" ", "")

    async def announced(client: PrefectClient) -> str:
        return await client.read_flow_run_input(flow_run_id, "orchestrator-resume-plan")

    notice = ResumeNotice.model_validate_json(run_with_client(announced))
    assert (notice.channel, notice.decision, notice.approver) == (
        Channel.CLI,
        Decision.APPROVE,
        "Ada",
    )


def test_several_gates_need_a_choice(pauses: Pauses) -> None:
    for call in ("a", "b"):
        notice = pauses.notice("r1", f"command-{call}", Gate.COMMAND, f"command: {call}")
        pauses.pause(notice, key=f"command-{call}", name=f"build {pauses.task_id}/r1")

    with pytest.raises(ApprovalError, match="waits at 2 gates; choose one with --gate"):
        run_with_client(decide, "r1", APPROVE, gate="command")
    assert run_with_client(decide, "r1", APPROVE, gate="command-b").notice.approval_id == (
        "command-b"
    )


def test_an_expired_gate_is_refused(pauses: Pauses) -> None:
    pauses.pause(
        pauses.notice("r1", "plan", Gate.PLAN), key="plan", name=f"{pauses.task_id}/r1", timeout=1
    )
    [gate] = run_with_client(waiting_gates, run="r1")
    assert gate.expires_at is not None
    time.sleep(max(0.0, (gate.expires_at - utc_now()).total_seconds()) + 0.1)  # its deadline
    assert gate.expired

    with pytest.raises(
        ApprovalError, match=r"timed out at .*: it expired \(nobody decided in time\)"
    ):
        run_with_client(decide, "r1", APPROVE)


def test_what_cannot_be_decided_says_why(pauses: Pauses) -> None:
    name = f"{pauses.task_id}/r1"
    flow_run_id = pauses.pause(pauses.notice("r1", "plan", Gate.PLAN), key="plan", name=name)
    decided = ApprovalDecision(decision=Decision.REJECT, approver="Ada", reason="too big")
    pauses.decided(flow_run_id, "plan", decided)

    [past] = run_with_client(decided_gates, "r1")
    assert (past.flow_run_id, past.notice.approval_id) == (flow_run_id, "plan")
    assert (past.decision.decision, past.decision.channel) == (Decision.REJECT, Channel.CLI)
    with pytest.raises(ApprovalError, match=r"plan gate of .*/r1 was already decided: reject by "
                       r"Ada \(cli\) at .* UTC: too big"):  # fmt: skip
        run_with_client(decide, "r1", APPROVE, gate="plan")
    with pytest.raises(ApprovalError, match="not waiting for a decision; decided so far: plan"):
        run_with_client(gates_of_run, "r1")
    with pytest.raises(RunNotFoundError, match="unknown run 'no-such-run': no flow run of it"):
        run_with_client(decide, "no-such-run", APPROVE)


def test_an_unreachable_api_is_one_error() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        pytest.raises(OrchestratorError, match=r"the Prefect API at http://127.0.0.1:9/api failed"),
    ):
        run_with_client(waiting_gates)
