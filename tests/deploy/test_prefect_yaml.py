"""prefect.yaml is declarative and matches the flows it deploys (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from devstack import WORK_POOL
from devstack._fanout import SUBTASK_DEPLOYMENT, SUBTASK_POOL
from tests.conftest import REPO_ROOT as PROJECT_DIR

PREFECT_YAML = PROJECT_DIR / "prefect.yaml"
FLOWS = {
    "pipeline": "pipeline",
    "plan": "plan",
    "build": "build",
    "build-subtask": "build-subtask",
    "test": "test",
    "review": "review",
    "nightly": "nightly",
    "sync-backlog": "sync-backlog",
}
"""Deployment name -> flow name."""


def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PREFECT_YAML.read_text())
    return data


def deployments() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in config()["deployments"]}


def test_one_pull_step_sets_the_working_folder_and_nothing_is_built() -> None:
    data = config()
    assert data["build"] is None and data["push"] is None
    assert data["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}
    ]


def test_every_deployment_on_the_process_pool_and_subtask_builds_on_their_own() -> None:
    assert set(deployments()) == set(FLOWS)
    for name, deployment in deployments().items():
        pool = SUBTASK_POOL if name == "build-subtask" else WORK_POOL
        assert deployment["work_pool"]["name"] == pool
        assert deployment["enforce_parameter_schema"] is True
    assert SUBTASK_DEPLOYMENT == "build-subtask/build-subtask"  # what serve --workers sets


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_entrypoint_is_a_flow_and_parameters_fit_it(name: str) -> None:
    deployment = deployments()[name]
    file = deployment["entrypoint"].partition(":")[0]
    assert file.startswith("flows/") and (PROJECT_DIR / file).is_file()
    flow = load_flow_from_entrypoint(str(PROJECT_DIR / deployment["entrypoint"]))
    assert flow.name == FLOWS[name]
    schema = parameter_schema(flow).model_dump()
    assert set(deployment.get("parameters", {})) <= set(schema["properties"])


@pytest.mark.parametrize("name", ["pipeline", "nightly"])
def test_every_parameter_has_a_description_for_the_run_form(name: str) -> None:
    flow = load_flow_from_entrypoint(str(PROJECT_DIR / deployments()[name]["entrypoint"]))
    properties = parameter_schema(flow).model_dump()["properties"]
    undocumented = [p for p, field in properties.items() if not field.get("description")]
    assert not undocumented


def test_nightly_runs_at_two_utc_and_never_twice_at_once() -> None:
    nightly = deployments()["nightly"]
    assert nightly["schedules"] == [{"cron": "0 2 * * *", "timezone": "UTC", "active": True}]
    assert nightly["concurrency_limit"] == 1
    assert nightly["parameters"]["tasks_dir"] == "examples/tasks"


def test_defaults_point_at_files_of_the_project() -> None:
    pipeline = deployments()["pipeline"]["parameters"]
    assert (PROJECT_DIR / pipeline["task_file"]).is_file()
    assert Path(pipeline["repo"]) == Path("work/sample-repo")
