"""Gates without servers: the form's schema, approval ids, what is shown, recording, choosing."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.utilities import schema_tools
from prefect.utilities.schema_tools.validation import build_error_obj
from pydantic import ValidationError
from typer.testing import CliRunner

import flows.gates
from agents.approvals import ApprovalAnswer, ApprovalRequest
from flows._runtime import ESCALATION_GRACE_SECONDS, command_approver
from flows.approvals import select_gate
from flows.gates import ApprovalForm, CommandEscalation, answer_of, form_input, resume_notice
from orchestrator.approvals import (
    command_approval_id,
    command_markdown,
    command_summary,
    gate_summary,
    handover_markdown,
    plan_markdown,
    record_decision,
    request_approval,
    stopped_at_gate,
    timeout_decision,
)
from orchestrator.cli import app
from orchestrator.exceptions import ApprovalError, InvalidInputError
from orchestrator.lifecycle import RunHandle, resolve_policy
from schemas import (
    ApprovalDecision,
    ApprovalPolicy,
    Channel,
    CommandPolicy,
    Decision,
    Gate,
    GateMode,
    GateNotice,
    ResumeNotice,
    RunResult,
    RunStatus,
    TaskSpec,
    WaitingGate,
    check_safe_id,
    schema_errors,
    utc_now,
)
from tests.helpers.markdown import cells, visible_text


def form_schema() -> dict[str, object]:
    """The schema the Prefect server validates a resume against (as the pause saves it)."""
    form = ApprovalForm.with_initial_data(description="## shown")
    return create_v2_schema(form.__name__, model_base=form)


@pytest.mark.parametrize(
    ("run_input", "valid"),
    [
        ({"decision": "approve", "approver": "ada"}, True),
        ({"decision": "reject", "approver": "ada", "reason": "too big"}, True),
        ({"decision": "reject", "approver": "ada"}, False),
        ({"decision": "reject", "approver": "ada", "reason": ""}, False),
        ({"decision": "reject", "approver": "ada", "reason": "   "}, False),
        ({"decision": "approve", "approver": " "}, False),
        ({"decision": "maybe", "approver": "ada"}, False),
        ({"decision": "approve", "approver": "ada", "channel": "policy"}, False),
        ({"decision": "approve", "approver": "ada", "channel": "cli"}, False),  # not a field
        ({"decision": "reject", "approver": "ada", "reason to reject": "x"}, False),
        ({"decision": "approve", "approver": "ada", "extra": 1}, False),
    ],
)
def test_the_form_schema_requires_a_reason_to_reject(
    run_input: dict[str, str], valid: bool
) -> None:
    errors = schema_tools.validate(run_input, form_schema(), raise_on_error=False)
    assert (not errors) is valid, errors


@pytest.mark.parametrize(
    "decision",
    [
        ApprovalDecision(decision=Decision.APPROVE, approver="ada", channel=Channel.CLI),
        ApprovalDecision(decision=Decision.REJECT, approver="ada", reason="no", channel=Channel.UI),
    ],
)
def test_a_decision_resumes_with_what_the_form_accepts(decision: ApprovalDecision) -> None:
    run_input = form_input(decision)
    assert schema_tools.validate(run_input, form_schema(), raise_on_error=False) == []
    assert run_input == {
        "decision": decision.decision.value,
        "approver": "ada",
        "reason": decision.reason,
    }


@pytest.mark.parametrize("reason", ["", "  ", "\n\t"])
def test_a_rejection_without_a_reason_is_refused_in_plain_words(reason: str) -> None:
    with pytest.raises(ValidationError, match="a reason is required to reject: say why"):
        ApprovalForm(decision=Decision.REJECT, approver="ada", reason=reason)
    run_input = {"decision": "reject", "approver": "ada", "reason": reason}
    with pytest.raises(schema_tools.ValidationError) as refused:  # what the server answers
        schema_tools.validate(run_input, form_schema(), raise_on_error=True)
    assert "'reason to reject' is a required property" in str(refused.value)
    ui = build_error_obj(schema_tools.validate(run_input, form_schema()))  # the UI's check
    assert ui["errors"] == [
        {"property": "reason", "errors": ["'reason to reject' is a required property"]}
    ]
    assert ApprovalForm(decision=Decision.APPROVE, approver="ada", reason=reason).reason == reason


def test_the_approver_cannot_set_the_channel() -> None:
    assert "channel" not in ApprovalForm.model_fields
    assert "channel" not in form_schema()["properties"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("announced", "channel"),
    [
        (None, Channel.UI),  # the UI's form: nothing announced it
        ({"channel": "cli", "decision": "approve", "approver": "ada", "reason": ""}, Channel.CLI),
        # announced by a CLI whose resume failed, then decided differently in the UI
        ({"channel": "cli", "decision": "reject", "approver": "ada", "reason": "no"}, Channel.UI),
        ({"channel": "cli", "decision": "approve", "approver": "bob", "reason": ""}, Channel.UI),
        ({"nonsense": True}, Channel.UI),
    ],
)
def test_the_channel_is_the_announcing_tool_only_for_the_decision_it_announced(
    monkeypatch: pytest.MonkeyPatch, announced: object, channel: Channel
) -> None:
    keys: list[str] = []

    async def read_input(key: str) -> object:
        keys.append(key)
        return announced

    monkeypatch.setattr(flows.gates, "_read_input", read_input)
    form = ApprovalForm(decision=Decision.APPROVE, approver="ada")
    decision = asyncio.run(flows.gates._decision_of(form, "plan"))
    assert (decision.decision, decision.approver, decision.channel) == (
        Decision.APPROVE,
        "ada",
        channel,
    )
    assert keys == [ResumeNotice.input_key("plan")] == ["orchestrator-resume-plan"]


def test_a_tool_announces_its_channel_and_the_decision() -> None:
    decision = ApprovalDecision(
        decision=Decision.REJECT, approver="ada", reason="no", channel=Channel.CLI
    )
    notice = resume_notice(decision)
    assert notice.channel is Channel.CLI
    assert notice.describes(Decision.REJECT, "ada", "no")
    assert not notice.describes(Decision.REJECT, "ada", "other")


@pytest.mark.parametrize(
    "decision",
    [
        ApprovalDecision(decision=Decision.APPROVE, approver="x", channel=Channel.POLICY),
        timeout_decision(),
    ],
)
def test_only_a_person_resumes_a_gate(decision: ApprovalDecision) -> None:
    with pytest.raises(InvalidInputError, match="resumed by a person"):
        form_input(decision)


@pytest.mark.parametrize(
    ("decision", "channel"),
    [
        (Decision.EXPIRED, Channel.CLI),
        (Decision.EXPIRED, Channel.UI),
        (Decision.REJECT, Channel.TIMEOUT),
    ],
)
def test_only_a_timeout_expires_a_gate(decision: Decision, channel: Channel) -> None:
    with pytest.raises(ValidationError, match="only a timeout expires a gate"):
        ApprovalDecision(decision=decision, approver="x", reason="r", channel=channel)


def test_the_form_offers_approve_and_reject_only() -> None:
    assert form_schema()["properties"]["decision"]["enum"] == ["approve", "reject"]
    with pytest.raises(ValidationError):
        ApprovalForm(decision=Decision.EXPIRED, approver="ada", reason="late")


def test_the_form_leaves_decision_and_approver_to_fill_in() -> None:
    schema = form_schema()
    assert schema["required"] == ["decision", "approver"]  # not "(Optional)" in the UI


@pytest.mark.parametrize(
    "call_id",
    ["call_abc123", "call_AbC9", "rp-build-x-0", "a/b c", "..x..", "x" * 200, "-._", "é"],
)
def test_command_approval_ids_are_safe(call_id: str) -> None:
    approval_id = command_approval_id(call_id)
    assert approval_id.startswith("command-")
    assert check_safe_id(approval_id) == approval_id
    assert command_approval_id(call_id) == approval_id  # the same request, the same id
    assert re.fullmatch(r"[a-z0-9-]+", approval_id)  # Prefect's flow-run input keys


def test_command_approval_ids_keep_call_ids_apart() -> None:
    assert command_approval_id("rp-build-x-0") == "command-rp-build-x-0"
    assert command_approval_id("call_1").startswith("command-call-1-")
    assert command_approval_id("call_A") != command_approval_id("call-a")
    assert command_approval_id("x" * 100 + "a") != command_approval_id("x" * 100 + "b")
    assert command_approval_id(None) != command_approval_id(None)
    check_safe_id(command_approval_id(None))


def test_a_command_gate_shows_the_command_its_cwd_and_why(handle: RunHandle) -> None:
    shown = command_markdown(
        handle,
        command="echo ```tricky``` | tee /etc/x",
        cwd="/work/tree",
        justification="needs /etc",
        asked_by="builder slugify",
    )
    assert "````sh\necho ```tricky``` | tee /etc/x\n````" in shown  # a fence it cannot close
    assert cells(shown) == ["working directory", "/work/tree", "why, says the agent", "needs /etc"]
    assert "builder slugify asks to run a command outside its sandbox" in " ".join(
        visible_text(shown).split()
    )
    assert handle.label in shown


def test_the_plan_gate_shows_a_table_that_fits_the_form(handle: RunHandle) -> None:
    shown = plan_markdown(
        handle, "Two helpers.", [("slugify", "Add slugify", "a == b; c", "x.py, y.py")]
    )
    assert "| subtask | title |\n|---|---|\n| `slugify` | Add slugify |" in shown
    assert cells(shown) == ["slugify", "Add slugify"]
    assert "slugify : must hold: a == b; c; files: x.py, y.py" in visible_text(shown)


def test_the_handover_gate_shows_branch_tests_verdict_and_diff_stat(handle: RunHandle) -> None:
    def result(m: object) -> None:
        m.result = RunResult(  # type: ignore[attr-defined]
            branch="orchestrator/t/r/result",
            diff_stat=" a.py | 2 +-\n 1 file changed",
            tests_passed=True,
            verdict="approve",
        )

    manifest = handle.update(result)
    shown = handover_markdown(manifest)
    assert "| result branch | `orchestrator/t/r/result` |" in shown
    assert "| tests | passed |" in shown and "| review verdict | approve |" in shown
    assert "```\n a.py | 2 +-\n 1 file changed\n```" in shown
    assert gate_summary(manifest, Gate.HANDOVER) == (
        "hand-over of orchestrator/t/r/result (tests passed, review: approve)"
    )


def test_a_gate_is_asked_once_and_decided_once(handle: RunHandle) -> None:
    first = request_approval(
        handle, "plan", Gate.PLAN, shown="## plan", timeout_seconds=60, flow_run_id="f1"
    )
    again = request_approval(
        handle, "plan", Gate.PLAN, shown="## plan", timeout_seconds=60, flow_run_id="f1"
    )
    assert again == first
    assert handle.read().status.value == "paused"
    decided = record_decision(
        handle,
        "plan",
        ApprovalDecision(decision=Decision.APPROVE, approver="ada", channel=Channel.UI),
    )
    assert decided.decision is Decision.APPROVE and decided.decided_at is not None
    assert handle.read().status.value == "running"
    before = handle.manifest_path.read_bytes()
    with pytest.raises(ApprovalError, match="already decided: approve by ada"):
        record_decision(handle, "plan", timeout_decision())
    assert handle.manifest_path.read_bytes() == before  # nothing changed
    assert schema_errors("run-manifest", handle.read().model_dump(mode="json")) is None
    events = [e.event for e in handle.workspace.audit.read()]
    assert events.count("approval.requested") == 1 and events.count("approval.decided") == 1


def test_command_answers_carry_the_decision_to_the_model(handle: RunHandle) -> None:
    request_approval(
        handle, "command-c1", Gate.COMMAND, shown="x", timeout_seconds=9, flow_run_id=None
    )
    rejected = record_decision(
        handle,
        "command-c1",
        ApprovalDecision(
            decision=Decision.REJECT, approver="ops", reason="no", channel=Channel.CLI
        ),
    )
    assert answer_of(rejected).model_dump() == {
        "approved": False,
        "reason": "denied by ops (cli): no",
    }
    request_approval(
        handle, "command-c2", Gate.COMMAND, shown="x", timeout_seconds=9, flow_run_id=None
    )
    expired = record_decision(handle, "command-c2", timeout_decision())
    assert answer_of(expired).reason == "no decision within 9s: denied (timeout)"
    assert (expired.decision, expired.channel, expired.reason) == (
        Decision.EXPIRED,
        Channel.TIMEOUT,
        "timeout",
    )


@pytest.mark.anyio
async def test_outside_a_flow_run_an_escalation_is_denied_and_nothing_is_recorded(
    handle: RunHandle,
) -> None:
    escalation = CommandEscalation(handle, timeout_seconds=5, policy_source="test")
    answer = await escalation(ApprovalRequest(kind="exec", command=["ls"], call_id="c1"))
    assert not answer.approved
    assert handle.read().approvals == []


def test_the_command_approver_asks_a_person_within_the_policy_timeout(
    handle: RunHandle,
) -> None:
    from devstack.replay import replay_config

    policy = ApprovalPolicy(
        plan=GateMode.AUTO,
        handover=GateMode.AUTO,
        commands=CommandPolicy.ASK_PERSON,
        plan_timeout_seconds=60,
        handover_timeout_seconds=60,
        command_timeout_seconds=120,
        source="test",
    )
    approver = command_approver(handle, policy, replay_config("http://127.0.0.1:1/v1"))
    assert isinstance(approver.escalate, CommandEscalation)
    assert approver.escalate.timeout_seconds == 120
    assert approver.timeout == 120 + ESCALATION_GRACE_SECONDS
    short = replay_config("http://127.0.0.1:1/v1", call_timeout_seconds=30)
    assert command_approver(handle, policy, short).escalate.timeout_seconds == 30  # type: ignore[union-attr]
    assert command_approver(handle, None, short).policy is CommandPolicy.DENY


@pytest.mark.anyio
async def test_under_the_dev_defaults_a_command_is_denied_and_why_is_said(
    handle: RunHandle,
) -> None:
    from devstack.replay import replay_config

    spec = TaskSpec.model_validate({"id": "t", "title": "t", "goal": "g", "target": {"repo": "."}})
    policy = resolve_policy(spec, "dev")
    approver = command_approver(handle, policy, replay_config("http://127.0.0.1:1/v1"))
    assert approver.escalate is None  # an unattended run asks no one
    answer = await approver(ApprovalRequest(kind="exec", command=["true"], cwd=handle.work_dir))
    assert answer == ApprovalAnswer(
        approved=False,
        reason="no person is asked in an unattended run (env dev defaults) (an approved "
        "command would run outside the sandbox): denied",
    )
    assert handle.read().approvals == []


def test_an_approved_command_is_recorded_as_leaving_the_sandbox(handle: RunHandle) -> None:
    approve = ApprovalDecision(decision=Decision.APPROVE, approver="ops", channel=Channel.CLI)
    reject = ApprovalDecision(
        decision=Decision.REJECT, approver="ops", reason="no", channel=Channel.CLI
    )
    for approval_id, gate in [("command-a", Gate.COMMAND), ("command-b", Gate.COMMAND)]:
        request_approval(handle, approval_id, gate, shown="x", timeout_seconds=9, flow_run_id=None)
    request_approval(handle, "plan", Gate.PLAN, shown="p", timeout_seconds=9, flow_run_id=None)
    record_decision(handle, "command-a", approve, sandbox_exit=True)
    record_decision(handle, "command-b", reject, sandbox_exit=True)
    record_decision(handle, "plan", approve)
    manifest = handle.read()
    left = {a.id: a.left_sandbox for a in manifest.approvals}
    assert left == {"command-a": True, "command-b": False, "plan": False}
    assert schema_errors("run-manifest", manifest.model_dump(mode="json")) is None
    decided = [e.detail for e in handle.workspace.audit.read() if e.event == "approval.decided"]
    assert [d["left_sandbox"] for d in decided] == [True, False, False]


def test_an_exec_gate_says_an_approved_command_runs_outside_the_sandbox(
    handle: RunHandle,
) -> None:
    shown = command_markdown(handle, command="make", cwd="/w", justification="build")
    assert "outside its sandbox" in shown
    assert "with the worker's full access" in shown
    patch = command_markdown(handle, command="", cwd="/w", kind="patch", files=["a.py"])
    assert "outside its sandbox" not in patch
    assert command_summary("make  all", "/w").startswith("command OUTSIDE the sandbox: make all")
    assert command_summary("a.py", None, kind="patch") == "patch: a.py"


def waiting(approval_id: str, gate: Gate, summary: str = "") -> WaitingGate:
    notice = GateNotice(
        task_id="t",
        run_id="r",
        gate=gate,
        approval_id=approval_id,
        summary=summary,
        requested_at=utc_now(),
        timeout_seconds=60,
    )
    now = utc_now()
    return WaitingGate(
        flow_run_id=uuid4(),
        flow_run_name="build t/r",
        notice=notice,
        paused_at=now,
        expires_at=now + timedelta(seconds=60),
    )


def test_choosing_among_the_gates_a_run_waits_at() -> None:
    plan = waiting("plan", Gate.PLAN)
    one, two = waiting("command-a", Gate.COMMAND, "ls"), waiting("command-b", Gate.COMMAND, "rm")
    assert select_gate([plan], "r", None) is plan
    assert select_gate([plan], "r", "plan") is plan
    assert select_gate([plan], "r", "handover") is None
    assert select_gate([], "r", None) is None
    assert select_gate([one, two], "r", "command-b") is two
    with pytest.raises(ApprovalError, match=r"waits at 2 gates; choose one with --gate: "
                       r"command-a \(ls\), command-b \(rm\)"):  # fmt: skip
        select_gate([one, two], "r", "command")
    assert not plan.expired
    assert waiting("plan", Gate.PLAN).matches("t/r") and plan.matches(str(plan.flow_run_id))


def test_a_rejection_needs_a_reason_before_any_api_call() -> None:
    # No Prefect API is configured: a call would fail with another error (or start one).
    result = CliRunner().invoke(app, ["reject", "r", "--reason", "  ", "--approver", "ada"])
    assert isinstance(result.exception, InvalidInputError)
    assert str(result.exception) == "reject r: a reason is required to reject"


@pytest.mark.anyio
async def test_escalations_of_one_flow_run_are_asked_one_at_a_time(
    handle: RunHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    import flows.gates

    in_flight, most = 0, 0

    async def one_pause(h: RunHandle, approval_id: str, gate: Gate, **_: object) -> object:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await anyio.sleep(0.05)
        in_flight -= 1
        request_approval(h, approval_id, gate, shown="x", timeout_seconds=5, flow_run_id=None)
        return record_decision(
            h, approval_id, ApprovalDecision(decision=Decision.APPROVE, approver="ops")
        )

    monkeypatch.setattr(flows.gates, "approval_gate", one_pause)
    monkeypatch.setattr(flows.gates.FlowRunContext, "get", classmethod(lambda cls: object()))
    escalation = CommandEscalation(handle, timeout_seconds=5, policy_source="test")
    answers = []

    async def ask(call_id: str) -> None:
        request = ApprovalRequest(kind="exec", command=["touch", call_id], call_id=call_id)
        answers.append(await escalation(request))

    async with anyio.create_task_group() as group:
        for call_id in ("c1", "c2", "c3"):
            group.start_soon(ask, call_id)

    assert most == 1
    assert [a.approved for a in answers] == [True, True, True]
    assert {a.id for a in handle.read().approvals} == {"command-c1", "command-c2", "command-c3"}


def test_a_run_stopped_at_a_gate_says_whether_it_expired_or_was_rejected(
    handle: RunHandle,
) -> None:
    for approval_id in ("plan", "handover"):
        request_approval(
            handle, approval_id, Gate.PLAN, shown="x", timeout_seconds=9, flow_run_id=None
        )
    expired = record_decision(handle, "plan", timeout_decision())
    assert stopped_at_gate(Gate.PLAN, expired) == (
        RunStatus.EXPIRED,
        "plan expired: no decision within 9 s",
    )
    rejected = record_decision(
        handle,
        "handover",
        ApprovalDecision(
            decision=Decision.REJECT, approver="ops", reason="no", channel=Channel.CLI
        ),
    )
    assert stopped_at_gate(Gate.HANDOVER, rejected) == (
        RunStatus.REJECTED,
        "handover rejected by ops (cli): no",
    )
    assert RunStatus.EXPIRED.finished and RunStatus.EXPIRED.stopped


@pytest.mark.anyio
async def test_a_secret_never_reaches_the_gate_notice(
    handle: RunHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"canary-{uuid4().hex}"
    handle.workspace.redactor.register(secret)
    notices: list[GateNotice] = []

    async def ask(handle: RunHandle, notice: GateNotice, shown: str, form: object) -> Any:
        notices.append(notice)
        return ApprovalDecision(decision=Decision.APPROVE, approver="ada", channel=Channel.CLI)

    monkeypatch.setattr(flows.gates, "_ask_a_person", ask)
    await flows.gates.approval_gate(
        handle,
        "command-c9",
        Gate.COMMAND,
        shown="x",
        mode=GateMode.REQUIRED,
        timeout_seconds=9,
        policy_source="test",
        summary=f"command OUTSIDE the sandbox: curl -H 'token: {secret}'",
    )
    [notice] = notices  # what other processes read, and notifications send
    assert secret not in notice.summary
    assert notice.summary.startswith("command OUTSIDE the sandbox: curl -H 'token: ")
