"""``orchestrator approvals`` as a person reads it: every waiting gate across runs, soonest
deadline first, full run ids at 80 columns, filters, and ``--watch``.

The gates are paused the way ``flows.gates`` pauses them (see ``test_inbox``) on the
suite's Prefect API; the command runs as the real console script in a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from schemas import Gate
from tests.conftest import PrefectApi

from .test_inbox import Pauses

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "orchestrator")
WATCH_TIMEOUT = 60


@pytest.fixture
def paused(prefect_api: PrefectApi) -> Iterator[Pauses]:
    """Flow runs paused at gates (deleted afterwards)."""
    made = Pauses()
    yield made
    made.delete_all()


def cli_env(prefect_api: PrefectApi, tmp_path: Path, columns: int = 80) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_API_URL": prefect_api.url,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "ORCHESTRATOR_HOME": str(tmp_path / "home"),
        "COLUMNS": str(columns),
    }


def approvals(prefect_api: PrefectApi, tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [CLI, "approvals", *args],
        env=cli_env(prefect_api, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def three_runs(pauses: Pauses) -> dict[str, UUID]:
    """Three runs of two tasks in one environment of their own, paused with different
    deadlines (the one asked first expires last)."""
    env = pauses.task_id  # unique to this test, so the --env filter sees only these
    made = {}
    for run_id, task, gate, approval_id, timeout in (
        ("20261201T090000Z-aaaaaa", pauses.task_id, Gate.PLAN, "plan", 900),
        ("20261201T090001Z-bbbbbb", pauses.task_id, Gate.BUDGET, "budget-1", 60),
        ("20261201T090002Z-cccccc", f"{pauses.task_id}-other", Gate.HANDOVER, "handover", 300),
    ):
        notice = pauses.notice(run_id, approval_id, gate, f"{approval_id} of {run_id}")
        notice = notice.model_copy(update={"task_id": task, "env": env})
        made[f"{task}/{run_id}"] = pauses.pause(
            notice, key=approval_id, name=f"{task}/{run_id}", timeout=timeout
        )
    return made


def test_every_waiting_gate_is_listed_soonest_deadline_first_with_full_ids_at_80_columns(
    paused: Pauses, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    made = three_runs(paused)

    out = approvals(prefect_api, tmp_path, "--env", paused.task_id)

    lines = out.splitlines()
    for label, flow_run_id in made.items():
        assert any(label in line for line in lines), (label, out)  # whole, on one line
        assert str(flow_run_id) in out
    order = list(made)
    positions = [next(i for i, line in enumerate(lines) if label in line) for label in order]
    # deadlines: bbbbbb in 60 s, cccccc in 300 s, aaaaaa in 900 s
    assert positions[1] < positions[2] < positions[0], out
    assert "budget-1 of 20261201T090001Z-bbbbbb" in out  # what it waits for, under the table


def test_the_filters_keep_only_what_they_name(
    paused: Pauses, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    made = three_runs(paused)
    env = ("--env", paused.task_id)
    labels = list(made)

    by_task = approvals(prefect_api, tmp_path, *env, "--task", f"{paused.task_id}-other")
    assert labels[2] in by_task and labels[0] not in by_task and labels[1] not in by_task
    by_gate = approvals(prefect_api, tmp_path, *env, "--gate", "budget")
    assert labels[1] in by_gate and labels[0] not in by_gate and labels[2] not in by_gate
    other_env = approvals(prefect_api, tmp_path, "--env", "no-such-env")
    assert "no run is waiting for a decision" in other_env


def test_watch_refreshes_until_ctrl_c(
    paused: Pauses, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    made = three_runs(paused)
    log = tmp_path / "watch.out"
    with log.open("wb") as out:
        watching = subprocess.Popen(
            [CLI, "approvals", "--watch", "--interval", "0.5", "--env", paused.task_id],
            env={**cli_env(prefect_api, tmp_path), "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WATCH_TIMEOUT
        while log.read_text().count("3 waiting at") < 2:
            assert watching.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no second refresh:\n{log.read_text()}"
            time.sleep(0.2)
        watching.send_signal(signal.SIGINT)
        try:
            code = watching.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 30 s after Ctrl-C:\n{log.read_text()}") from None
        assert code == 0, log.read_text()
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait(timeout=10)
    text = log.read_text()
    assert all(label in text for label in made)
    assert "Traceback" not in text
