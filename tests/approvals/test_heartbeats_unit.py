"""Zombie detection without servers: the automation's definition and the heartbeat setting."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
from prefect import Flow
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.settings.context import get_current_settings

import flows.build
import flows.cloud_sync
import flows.nightly
import flows.pipeline
import flows.plan
import flows.review
import flows.subtask
import flows.test
from flows.heartbeats import (
    AUTOMATION_NAME,
    FLOW_NAMES,
    HEARTBEAT_SECONDS,
    crash_automation,
    heartbeat_environ,
    heartbeat_settings,
)
from orchestrator.exceptions import InvalidInputError

MODULES = [
    flows.build,
    flows.cloud_sync,
    flows.nightly,
    flows.pipeline,
    flows.plan,
    flows.review,
    flows.subtask,
    flows.test,
]


def test_the_automation_watches_every_flow_of_the_project_and_only_those() -> None:
    declared = {
        value.name
        for module in MODULES
        for _, value in inspect.getmembers(module, lambda v: isinstance(v, Flow))
        if value.__module__ == module.__name__
    }
    assert declared == set(FLOW_NAMES)
    trigger = crash_automation().trigger
    assert isinstance(trigger, EventTrigger)
    related = trigger.match_related
    assert not isinstance(related, list)
    assert related.root["prefect.resource.name"] == list(FLOW_NAMES)
    assert related.root["prefect.resource.role"] == "flow"


def test_a_flow_run_silent_past_the_window_after_a_heartbeat_is_set_crashed() -> None:
    automation = crash_automation(45)
    assert automation.name == AUTOMATION_NAME and automation.enabled
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture is Posture.Proactive
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.within == timedelta(seconds=45)
    assert trigger.for_each == {"prefect.resource.id"}
    # every way one of our flow runs ends, by state name (a rejected run is "Rejected")
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Rejected"} <= trigger.expect
    assert "prefect.flow-run.Expired" in trigger.expect
    [action] = automation.actions
    assert isinstance(action, ChangeFlowRunState)
    assert action.state is StateType.CRASHED and not action.force
    assert action.message and "orchestrator resume RUN" in action.message


@pytest.mark.parametrize("seconds", [0, 10, HEARTBEAT_SECONDS, HEARTBEAT_SECONDS + 9])
def test_a_window_that_would_crash_live_runs_is_refused(seconds: int) -> None:
    with pytest.raises(InvalidInputError, match=r"crash-after must be at least 40 s"):
        crash_automation(seconds)


def test_runs_in_this_process_send_heartbeats_often_enough_for_the_window() -> None:
    assert heartbeat_environ() == {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    for given, expected in ((None, 30), (180, 30), (30, 30)):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: given}):
            with heartbeat_settings():
                assert get_current_settings().flows.heartbeat_frequency == expected
