"""Usage totals in the manifest, the price table, and what a call costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.exceptions import DocumentError
from orchestrator.lifecycle import RunHandle, StepOutcome, begin_step, finish_step
from orchestrator.runstore import load_manifest
from orchestrator.settings import Settings
from orchestrator.usage import call_cost, cost_text, load_price_table, usage_line
from orchestrator.workspace import Workspace
from schemas import (
    AgentRole,
    AgentStep,
    PhaseName,
    PriceTable,
    RunManifest,
    TokenUsage,
    schema_errors,
)
from tests.conftest import sample_manifest


def tokens(inp: int, cached: int, out: int, reasoning: int = 0) -> TokenUsage:
    return TokenUsage(
        input_tokens=inp,
        cached_input_tokens=cached,
        output_tokens=out,
        reasoning_output_tokens=reasoning,
        total_tokens=inp + out,
    )


def test_the_default_price_table_validates_and_prices_known_models() -> None:
    table = load_price_table()
    data = json.loads((Path(__file__).parents[2] / "orchestrator" / "prices.json").read_text())
    assert schema_errors("price-table", data) is None
    assert {"gpt-5", "gpt-5-codex", "gpt-5-mini", "replay"} <= set(table.models)
    # gpt-5: $1.25 per million uncached input, $0.125 cached, $10 output (reasoning too)
    cost = call_cost(table, "gpt-5", tokens(1_000_000, 200_000, 100_000, reasoning=40_000))
    assert cost == pytest.approx(0.8 * 1.25 + 0.2 * 0.125 + 0.1 * 10)


def test_an_unknown_model_costs_unknown_never_a_number() -> None:
    table = load_price_table()
    assert call_cost(table, "gpt-99-imaginary", tokens(10, 0, 5)) is None
    assert cost_text(None) == "unknown"
    assert call_cost(table, None, TokenUsage()) == 0.0  # no agent call, nothing spent


def test_a_price_table_from_a_setting_replaces_the_default(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "as_of": "2026-12-01",
                "models": {"house-model": {"input": 2, "cached_input": 1, "output": 4}},
            }
        )
    )
    table = load_price_table(Settings(home=tmp_path, prices_file=path).prices_file)
    assert table.price("gpt-5") is None
    assert call_cost(table, "house-model", tokens(1_000_000, 0, 500_000)) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "cannot read the price table"),
        (
            '{"as_of": "2026-12-01", "models": {"m": {"input": -1, "cached_input": 0, '
            '"output": 1}}}',
            "field 'models.m.input'",
        ),
        ('{"as_of": "2026-12-01", "models": {}, "extra": 1}', "field 'extra'"),
    ],
)
def test_a_bad_price_table_is_one_clear_error(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(DocumentError) as caught:
        load_price_table(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


def with_steps(manifest: RunManifest) -> RunManifest:
    manifest.phases.plan.steps.append(
        AgentStep(
            id="plan",
            role=AgentRole.PLANNER,
            model="gpt-5",
            tokens=tokens(100, 20, 10),
            cost_usd=0.5,
        )
    )
    manifest.phases.build.steps += [
        AgentStep(
            id="build-a",
            role=AgentRole.BUILDER,
            model="gpt-5",
            tokens=tokens(1000, 0, 50, 7),
            cost_usd=0.25,
        ),
        AgentStep(
            id="build-b",
            role=AgentRole.BUILDER,
            model="mystery",
            tokens=tokens(10, 0, 1),
            cost_usd=None,
        ),
    ]
    return manifest


def test_totals_equal_the_sums_over_steps_on_every_load_and_write(tmp_path: Path) -> None:
    workspace = Workspace.open(Settings(home=tmp_path))
    manifest = with_steps(sample_manifest())
    workspace.store.create(manifest)
    loaded = workspace.store.read(manifest.task_id, manifest.run_id)

    assert loaded.phases.plan.usage.tokens == tokens(100, 20, 10)
    assert loaded.phases.plan.usage.cost_usd == 0.5
    build = loaded.phases.build.usage
    assert build.tokens == tokens(1000, 0, 50, 7) + tokens(10, 0, 1)
    assert (build.agent_calls, build.cost_usd, build.unpriced_models) == (2, None, ["mystery"])
    assert loaded.usage.tokens.total_tokens == 110 + 1050 + 11
    assert loaded.usage.agent_calls == 3
    assert loaded.usage.cost_usd is None  # one call's cost is unknown: so is the run's
    assert "cost unknown (no price for mystery)" in usage_line(loaded.usage)

    # a file whose totals were edited by hand: read back, they are the sums again
    path = workspace.store.find(manifest.run_id).manifest_path
    data = json.loads(path.read_text())
    data["usage"]["tokens"]["total_tokens"] = 1
    data["phases"]["plan"]["usage"]["agent_calls"] = 99
    path.write_text(json.dumps(data))
    reread = load_manifest(path)
    assert reread.usage.tokens.total_tokens == 1171
    assert reread.phases.plan.usage.agent_calls == 1


def test_a_finished_step_records_its_model_and_priced_cost(tmp_path: Path) -> None:
    workspace = Workspace.open(Settings(home=tmp_path))
    manifest = sample_manifest()
    workspace.store.create(manifest)
    handle = RunHandle(workspace, manifest.task_id, manifest.run_id)
    outcomes = {
        "plan": ("gpt-5-mini", tokens(2_000_000, 1_000_000, 100_000)),
        "test": ("not-in-the-table", tokens(5, 0, 5)),
    }
    for step_id, (model, used) in outcomes.items():
        phase = PhaseName.PLAN if step_id == "plan" else PhaseName.TEST
        role = AgentRole.PLANNER if step_id == "plan" else AgentRole.TESTER
        begin_step(handle, phase, step_id, role)
        artifact = handle.store_artifact(f"{step_id}.json", "{}", kind="x", step_id=step_id)
        outcome = StepOutcome(None, None, [], [], used, 10, model=model)
        finish_step(handle, step_id, outcome, artifacts=[artifact])

    written = json.loads(handle.manifest_path.read_text())
    plan = written["phases"]["plan"]["steps"][0]
    assert plan["model"] == "gpt-5-mini"
    assert plan["cost_usd"] == pytest.approx(1.0 * 0.25 + 1.0 * 0.025 + 0.1 * 2.0)
    assert written["phases"]["test"]["steps"][0]["cost_usd"] is None
    assert written["usage"]["cost_usd"] is None
    assert written["usage"]["unpriced_models"] == ["not-in-the-table"]
    assert written["usage"]["tokens"]["total_tokens"] == 2_100_010
    assert (
        PriceTable.model_validate(
            json.loads((Path(__file__).parents[2] / "orchestrator" / "prices.json").read_text())
        ).currency
        == "USD"
    )
