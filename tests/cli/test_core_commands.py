from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.settings import Settings
from orchestrator.workspace import Workspace
from schemas import AgentRole, AgentStep, BudgetLimits, RunBudget, TokenUsage
from tests.cli.conftest import Cli
from tests.conftest import EXAMPLES, sample_manifest


def test_help_on_every_command(cli: Cli) -> None:
    top = cli("--help")
    assert top.returncode == 0
    for command in ("validate", "runs", "show", "schemas"):
        assert command in top.stdout
        assert cli(command, "--help").returncode == 0


def test_validate_sample_task_exits_0(cli: Cli) -> None:
    result = cli("validate", str(EXAMPLES / "tasks" / "add-text-helpers.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "add-text-helpers" in result.stdout


def test_malformed_task_exits_2_and_names_the_field(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: t\ngoal: g\ntarget: {repo: r}\nexecution: {parallel: maybe}\n")
    result = cli("validate", str(bad))
    assert result.returncode == 2
    assert "field 'execution.parallel'" in result.stderr
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_deeply_nested_task_exits_2_without_a_traceback(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "deep.yaml"
    bad.write_text("id: x\ntitle: t\ngoal: g\ntarget: {repo: r}\nzz: " + "[" * 500 + "]" * 500)
    result = cli("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}: values are nested more than 32 levels deep" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_2(cli: Cli) -> None:
    assert cli("bogus").returncode == 2


@pytest.fixture
def home_with_run(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    manifest = sample_manifest()
    Workspace.open(Settings(home=home)).store.create(manifest)
    return home, manifest.run_id


def test_runs_lists_and_show_prints_a_run(cli: Cli, home_with_run: tuple[Path, str]) -> None:
    _, run_id = home_with_run
    listing = cli("runs")
    assert listing.returncode == 0
    assert run_id in listing.stdout
    assert "running" in listing.stdout

    shown = cli("show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"add-text-helpers/{run_id}" in shown.stdout
    assert cli("show", run_id, "--json").stdout.count(run_id) >= 1


def test_show_unknown_or_unsafe_run_exits_2(cli: Cli, home_with_run: tuple[Path, str]) -> None:
    for run in ("20990101T000000Z-ffffff", "../../etc", "/tmp/x"):
        result = cli("show", run)
        assert result.returncode == 2, run
        assert "error:" in result.stderr


def test_corrupt_manifest_exits_1_and_is_left_untouched(
    cli: Cli, home_with_run: tuple[Path, str]
) -> None:
    home, run_id = home_with_run
    path = next(home.glob(f".runs/*/{run_id}/manifest.json"))
    path.write_text("{torn")

    result = cli("show", run_id)
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr
    assert str(path) in result.stderr
    assert path.read_text() == "{torn"
    assert "corrupt manifest" in cli("runs").stdout


def test_schemas_export_check_passes_on_a_clean_tree(cli: Cli) -> None:
    result = cli("schemas", "export", "--check")
    assert result.returncode == 0, result.stderr


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("a/b", "invalid run id"),
        ("OTHER", "belongs to task other-task, not to add-text-helpers"),
    ],
)
def test_run_with_a_bad_run_id_exits_2_before_prefect_starts(
    cli: Cli, tmp_path: Path, run_id: str, message: str
) -> None:
    home = tmp_path / "home"
    other = sample_manifest("other-task")
    Workspace.open(Settings(home=home)).store.create(other)
    before = _listing(home)

    run_id = other.run_id if run_id == "OTHER" else run_id
    task = EXAMPLES / "tasks" / "add-text-helpers.yaml"
    result = cli(
        "run", str(task), "--run-id", run_id, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    )

    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _listing(home) == before


def test_what_the_cli_prints_passes_through_the_redactor(cli: Cli, tmp_path: Path) -> None:
    token = "ghp_" + "A1b2" * 9  # shaped like a GitHub token
    task = tmp_path / "task.yaml"
    task.write_text(f"id: x\ntitle: t\ngoal: g\ntarget: {{repo: {token}}}\n")

    result = cli("validate", str(task))

    assert result.returncode == 0, result.stderr
    assert f"target repository: {tmp_path}/***" in result.stdout
    assert token not in result.stdout + result.stderr


def test_an_error_message_is_printed_as_written_not_as_markup(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "[bold]task[/bold].yaml"
    result = cli("validate", str(missing))
    assert result.returncode == 2
    assert f"{missing}: no such file" in result.stderr


def test_show_prints_usage_per_step_phase_and_run_with_an_unknown_cost(
    cli: Cli, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    manifest = sample_manifest()
    manifest.budget = RunBudget(limits=BudgetLimits(tokens=90_000), source="env dev: no default")
    manifest.phases.plan.steps.append(
        AgentStep(
            id="plan",
            role=AgentRole.PLANNER,
            model="gpt-5",
            tokens=TokenUsage(input_tokens=1200, output_tokens=80, total_tokens=1280),
            cost_usd=0.0023,
        )
    )
    manifest.phases.build.steps.append(
        AgentStep(
            id="build-a",
            role=AgentRole.BUILDER,
            model="house-model",
            tokens=TokenUsage(input_tokens=700, output_tokens=20, total_tokens=720),
            cost_usd=None,
        )
    )
    Workspace.open(Settings(home=home)).store.create(manifest)

    shown = cli("show", manifest.run_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    [plan_step] = [line for line in lines if "│ plan " in line and "planner" in line]
    assert "gpt-5" in plan_step and "1280" in plan_step and "$0.0023" in plan_step
    [build_total] = [line for line in lines if "build total" in line]
    assert "720" in build_total and "unknown" in build_total
    assert (
        "usage: 2000 tokens (1900 input, 0 cached, 100 output, 0 reasoning) in 2 agent calls; "
        "cost unknown (no price for house-model)"
    ) in shown.stdout
    assert "budget: tokens 90000 (env dev: no default)" in shown.stdout


def test_runs_shows_whole_run_ids_at_80_columns(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Workspace.open(Settings(home=home)).store
    made = [sample_manifest(task_id=t) for t in ("add-text-helpers", "escalated-commands")]
    for manifest in made:
        store.create(manifest)

    listing = cli("runs", env={"COLUMNS": "80"})
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for manifest in made:
        assert any(manifest.run_id in line for line in lines), listing.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ORCHESTRATOR_GC_ON_FINISH", "maybe", "ORCHESTRATOR_GC_ON_FINISH (Input should be"),
        ("ORCHESTRATOR_ENV", "../prod", "ORCHESTRATOR_ENV (String should match pattern"),
        ("ORCHESTRATOR_BUDGETS", "{not json", 'error parsing value for field "budgets"'),
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable_and_changes_nothing(
    cli: Cli, home_with_run: tuple[Path, str], variable: str, value: str, message: str
) -> None:
    home, _ = home_with_run
    before = _listing(home)
    task = EXAMPLES / "tasks" / "add-text-helpers.yaml"
    for args in (("runs",), ("run", str(task))):
        result = cli(*args, env={"ORCHESTRATOR_HOME": str(home), variable: value})
        assert result.returncode == 2, result.stderr
        assert f"error: settings are invalid: {message}" in result.stderr
        assert "Traceback" not in result.stderr
        assert value not in result.stderr  # a setting's value is never shown
    assert _listing(home) == before
