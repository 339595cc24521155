"""The flow-run poller the build fan-out and the nightly run share (``flows/_polling.py``).

Fast, without a server: the runs are read from a script of states per run. What the
callers do with it is tested with them: no deadline in ``test_fanout_waits.py``, a
deadline no run meets in ``test_nightly.py``; here, runs that end one after the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import anyio
import pytest
from prefect.client.schemas.objects import FlowRun, State, StateType

from flows._polling import poll_final

pytestmark = pytest.mark.anyio

R, C, F = StateType.RUNNING, StateType.COMPLETED, StateType.FAILED


class ScriptedRuns:
    """Each read of a run gives the next state of its script (the last one stays)."""

    def __init__(self, scripts: dict[str, list[StateType]]) -> None:
        self.ids = {name: uuid4() for name in scripts}
        self.names = {i: name for name, i in self.ids.items()}
        self.states: dict[UUID, Iterator[StateType]] = {
            self.ids[name]: iter(script) for name, script in scripts.items()
        }
        self.current: dict[UUID, StateType] = {}
        self.reads: list[set[str]] = []

    async def read(self, flow_run_ids: set[UUID]) -> list[FlowRun]:
        self.reads.append({self.names[i] for i in flow_run_ids})
        runs = []
        for i in sorted(flow_run_ids):
            kind = self.current[i] = next(self.states[i], self.current.get(i, R))
            runs.append(FlowRun(id=i, flow_id=uuid4(), name=self.names[i], state=State(type=kind)))
        return runs


async def test_runs_ending_one_after_the_other_are_each_reported_once_and_no_more_read() -> None:
    runs = ScriptedRuns({"a": [R, C], "b": [R, R, F]})
    ended: list[str] = []

    with anyio.fail_after(30):  # a run read again after its end would poll for ever
        last = await poll_final(
            runs.read,
            runs.ids.values(),
            poll_seconds=0,
            on_final=lambda run: ended.append(run.name),
        )

    assert ended == ["a", "b"]
    assert runs.reads == [{"a", "b"}, {"a", "b"}, {"b"}]
    assert {runs.names[i]: run.state.type for i, run in last.items() if run.state} == {
        "a": C,
        "b": F,
    }
