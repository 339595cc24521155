"""Budgets: the limits in force for a run, which of them its usage has reached, and raising.

Plain functions over manifests; the budget gate itself (a pause for a person) is
``flows._budget_gate.enforce_budget``. Usage counts what the manifest records of its steps
(:class:`schemas.UsageTotals`): a call is counted once its step is recorded done. Wall
time is the run's age without the time it waited for a person (:func:`wall_seconds`).
Daily limits count every run of the task in its environment started the run's UTC day
(:func:`daily_usage`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from schemas import (
    BudgetKind,
    BudgetLimits,
    BudgetScope,
    DeploymentRef,
    RunBudget,
    RunManifest,
    TaskBudget,
    TaskSpec,
    UsageTotals,
    utc_now,
)

from .exceptions import ManifestError
from .runstore import RunStore
from .usage import cost_text

BUDGET_GATE_PREFIX = "budget"
UNKNOWN = float("inf")
"""What an unknown amount counts as (a cost without a price): it reaches every limit."""
DAY_SCOPES = (BudgetScope.DAILY, BudgetScope.DEPLOYMENT)
"""The scopes whose usage is summed over the runs of a UTC day."""


def resolve_budget(
    spec: TaskSpec,
    env: str,
    defaults: Mapping[str, TaskBudget],
    *,
    deployment: DeploymentRef | None = None,
    per_deployment: Mapping[str, BudgetLimits] | None = None,
) -> RunBudget:
    """The limits in force: the task's own, else the environment's default, else none;
    and the daily limits of the deployment that started the run, if it has any."""
    env_budget = defaults.get(env, TaskBudget())
    parts = [_source(f"env {env} sets", env_budget) or f"env {env}: no default"]
    if from_task := _source("task sets", spec.budget):
        parts.append(from_task)
    of_deployment = BudgetLimits()
    if deployment is not None and per_deployment:
        of_deployment = per_deployment.get(deployment.name, of_deployment)
        if of_deployment.any:
            kinds = ", ".join(k.value for k in BudgetKind if of_deployment.get(k) is not None)
            parts.append(f"deployment {deployment.name} sets daily {kinds}")
    return RunBudget(
        limits=spec.budget.run_limits().over(env_budget.run_limits()),
        daily=spec.budget.daily.over(env_budget.daily),
        deployment_daily=of_deployment,
        source="; ".join(parts),
    )


def _source(prefix: str, budget: TaskBudget) -> str:
    kinds = [k.value for k in BudgetKind if budget.get(k) is not None]
    kinds += [f"daily {k.value}" for k in BudgetKind if budget.daily.get(k) is not None]
    return f"{prefix} {', '.join(kinds)}" if kinds else ""


@dataclass(frozen=True)
class Reached:
    """One limit the usage has reached; ``of`` says whose usage for a daily limit."""

    kind: BudgetKind
    limit: float
    used: float
    scope: BudgetScope = BudgetScope.RUN
    of: str = ""

    def describe(self) -> str:
        name = f"{self.scope.prefix}{self.kind.value}"
        text = f"{name} budget reached: {_amount(self.kind, self.used)} used"
        return f"{text}{f' by {self.of}' if self.of else ''} of {_amount(self.kind, self.limit)}"


# -- what is used --------------------------------------------------------------------


def wall_seconds(manifest: RunManifest, *, now: datetime | None = None) -> float:
    """Seconds the run has been going: from its start to its end (or ``now``), without the
    time a gate waited for a person (overlapping waits counted once).

    Time between a kill and the resume counts: the manifest cannot tell it apart.
    """
    end = manifest.finished_at or now or utc_now()
    start = manifest.created_at
    spans = sorted(
        (max(a.requested_at, start), min(a.decided_at or end, end)) for a in manifest.approvals
    )
    waited, covered = 0.0, start
    for begin, finish in spans:
        begin = max(begin, covered)
        if finish > begin:
            waited += (finish - begin).total_seconds()
            covered = finish
    return max(0.0, (end - start).total_seconds() - waited)


def used(usage: UsageTotals, kind: BudgetKind, wall: float = 0.0) -> float:
    """What ``usage`` (and ``wall`` seconds) amounts to in ``kind``; an unknown cost is
    :data:`UNKNOWN`."""
    if kind is BudgetKind.TOKENS:
        return usage.tokens.total_tokens
    if kind is BudgetKind.AGENT_CALLS:
        return usage.agent_calls
    if kind is BudgetKind.WALL_SECONDS:
        return wall
    return UNKNOWN if usage.cost_usd is None else usage.cost_usd


@dataclass(frozen=True)
class DailyUsage:
    """What the runs one day scope counts together, started on one UTC day, used: of one
    task in one environment (``daily``), or of one deployment (``deployment``)."""

    scope: BudgetScope
    whose: str
    """``add-text-helpers in dev``, ``deployment nightly/nightly``."""
    day: date
    runs: int
    usage: UsageTotals
    wall_seconds: float

    def describe(self) -> str:
        runs = "1 run" if self.runs == 1 else f"{self.runs} runs"
        return f"{runs} of {self.whose} on {self.day.isoformat()} (UTC)"


def run_day(manifest: RunManifest) -> date:
    return manifest.created_at.astimezone(UTC).date()


def daily_usage(
    store: RunStore,
    manifest: RunManifest,
    *,
    scope: BudgetScope = BudgetScope.DAILY,
    now: datetime | None = None,
) -> DailyUsage:
    """The usage of every run started on ``manifest``'s UTC day that ``scope`` counts
    with it: of its task and environment (``daily``), or started by its deployment
    (``deployment``, any task or environment); ``manifest`` itself as given (it may be
    newer than its file).

    Manifests are replaced whole (written to a temporary file and renamed), so each one
    read is a consistent record without taking its lock; one that cannot be read is left
    out (``orchestrator show`` names its problem).
    """
    day = run_day(manifest)
    whose, counts = _counted_with(manifest, scope)
    task_id = manifest.task_id if scope is BudgetScope.DAILY else None
    today = [manifest, *(m for m in _runs_of_day(store, day, manifest, task_id) if counts(m))]
    return DailyUsage(
        scope=scope,
        whose=whose,
        day=day,
        runs=len(today),
        usage=UsageTotals.of_totals([m.usage for m in today]),
        wall_seconds=sum(wall_seconds(m, now=now) for m in today),
    )


def day_usages(
    store: RunStore, manifest: RunManifest, *, now: datetime | None = None
) -> list[DailyUsage]:
    """The day's usage of every day scope ``manifest``'s run has a limit in (none read
    when it has none)."""
    return [daily_usage(store, manifest, scope=s, now=now) for s in _limited_days(manifest)]


def _limited_days(manifest: RunManifest) -> list[BudgetScope]:
    """The day scopes the run has a limit in (a deployment's only when one started it)."""
    budget = manifest.budget
    if budget is None:
        return []
    return [
        scope
        for scope in DAY_SCOPES
        if budget.of(scope).any and (scope is BudgetScope.DAILY or manifest.deployment is not None)
    ]


def _counted_with(
    manifest: RunManifest, scope: BudgetScope
) -> tuple[str, Callable[[RunManifest], bool]]:
    """Whose usage ``scope`` sums for ``manifest``'s run, and which runs are theirs."""
    if scope is BudgetScope.DEPLOYMENT:
        name = _deployment_of(manifest)
        return f"deployment {name}", lambda m: name is not None and _deployment_of(m) == name
    task_id, env = manifest.task_id, manifest.env
    return f"{task_id} in {env}", lambda m: m.task_id == task_id and m.env == env


def _deployment_of(manifest: RunManifest) -> str | None:
    return manifest.deployment.name if manifest.deployment else None


def _runs_of_day(
    store: RunStore, day: date, manifest: RunManifest, task_id: str | None
) -> Iterable[RunManifest]:
    """The other runs in ``store`` (of ``task_id`` only, when given) started on ``day``.

    A manifest last written before the day began is of a run started before it: its file
    is not read (every write stamps the file, at or after the run's start).
    """
    day_start = datetime.combine(day, time(), tzinfo=UTC).timestamp()
    for ref in store.list_runs():
        if (ref.task_id, ref.run_id) == (manifest.task_id, manifest.run_id):
            continue
        if task_id is not None and ref.task_id != task_id:
            continue
        try:
            if ref.manifest_path.stat().st_mtime < day_start:
                continue
            other = store.read(ref.task_id, ref.run_id)
        except (ManifestError, OSError):
            continue
        if run_day(other) == day:
            yield other


# -- what is reached -----------------------------------------------------------------


def reached_limits(
    manifest: RunManifest, *, days: Iterable[DailyUsage] = (), now: datetime | None = None
) -> list[Reached]:
    """The limits the usage has reached (used >= limit): the run's own first, then those
    of each day scope in ``days`` (the task's daily ones, then the deployment's); empty
    when none.

    A cost limit with an unknown cost (a model without a price) counts as reached: the
    run cannot show that it stays inside it.
    """
    if manifest.budget is None:
        return []
    reached = _reached(manifest.budget.limits, manifest.usage, wall_seconds(manifest, now=now))
    for day in sorted(days, key=lambda d: DAY_SCOPES.index(d.scope)):
        reached += _reached(
            manifest.budget.of(day.scope),
            day.usage,
            day.wall_seconds,
            scope=day.scope,
            of=day.describe(),
        )
    return reached


def _reached(
    limits: BudgetLimits,
    usage: UsageTotals,
    wall: float,
    *,
    scope: BudgetScope = BudgetScope.RUN,
    of: str = "",
) -> list[Reached]:
    found = []
    for kind in BudgetKind:
        limit = limits.get(kind)
        if limit is not None and (amount := used(usage, kind, wall)) >= limit:
            found.append(Reached(kind, limit, amount, scope, of))
    return found


def budget_reached(
    store: RunStore, manifest: RunManifest, *, now: datetime | None = None
) -> list[Reached]:
    """The limits ``manifest``'s run has reached, its daily ones (the task's, the
    deployment's) counted over the day's runs in ``store``, read only for a scope the run
    has a limit in."""
    return reached_limits(manifest, days=day_usages(store, manifest, now=now), now=now)


def next_budget_gate_id(manifest: RunManifest) -> str:
    """``budget-<n>``: a run may reach its budget again after a raise."""
    count = sum(1 for a in manifest.approvals if a.id.startswith(f"{BUDGET_GATE_PREFIX}-"))
    return f"{BUDGET_GATE_PREFIX}-{count + 1}"


def suggested_limits(manifest: RunManifest, reached: list[Reached]) -> BudgetLimits:
    """What the gate's form offers as the new limits of the reached limits' scope: one
    more of each reached limit on top of what is used (a person may enter any other)."""
    assert manifest.budget is not None
    scope = reached[0].scope if reached else BudgetScope.RUN
    limits = manifest.budget.of(scope).model_dump()
    for r in reached:
        if r.used == UNKNOWN:
            continue
        raised = r.used + r.limit
        limits[r.kind.value] = (
            int(raised) if r.kind is not BudgetKind.COST_USD else round(raised, 4)
        )
    return BudgetLimits.model_validate(limits)


def raise_budget(
    manifest: RunManifest,
    limits: BudgetLimits,
    *,
    approver: str,
    scope: BudgetScope = BudgetScope.RUN,
) -> None:
    """Record the new limits a person set at a budget gate (a mutation of the manifest):
    the limits of ``scope``, this run's only."""
    assert manifest.budget is not None
    budget = manifest.budget
    field = {BudgetScope.RUN: "limits", BudgetScope.DAILY: "daily"}.get(scope, "deployment_daily")
    manifest.budget = budget.model_copy(
        update={field: limits, "source": f"{budget.source}; {scope.prefix}raised by {approver}"}
    )


def budget_summary(reached: list[Reached]) -> str:
    """One line for lists of waiting runs."""
    return "; ".join(r.describe() for r in reached)


def budget_markdown(
    label: str,
    manifest: RunManifest,
    reached: list[Reached],
    *,
    daily: DailyUsage | None = None,
) -> str:
    """What the approver reads at a budget gate: what was reached, and the usage so far
    (the day's, with ``daily``: the new limits then are that day scope's)."""
    assert manifest.budget is not None
    scope = reached[0].scope if reached else BudgetScope.RUN
    if scope in DAY_SCOPES and daily is not None:
        usage, wall = daily.usage, daily.wall_seconds
        whose = f"{scope.prefix.strip()} ({daily.describe()})"
    else:
        usage, wall, whose = manifest.usage, wall_seconds(manifest), "this run"
    limits = manifest.budget.of(scope)
    lines = [
        f"### Budget reached: run `{label}`",
        "",
        *(f"- {r.describe()}" for r in reached),
        "",
        f"Usage and limits of {whose}:",
        "",
        "| | tokens | agent calls | cost | wall time |",
        "|---|---|---|---|---|",
        f"| used | {usage.tokens.total_tokens} | {usage.agent_calls} | "
        f"{cost_text(usage.cost_usd)} | {int(wall)}s |",
        f"| limit | {_limit(limits.tokens)} | {_limit(limits.agent_calls)} | "
        f"{_limit(limits.cost_usd, money=True)} | {_limit(limits.wall_seconds, unit='s')} |",
        "",
        f"Approve with new {scope.prefix}limits above what "
        "is used to go on; reject to stop the run (it ends rejected, with the budget as its "
        "reason).",
    ]
    return "\n".join(lines) + "\n"


def _amount(kind: BudgetKind, value: float) -> str:
    if value == UNKNOWN:
        return "an unknown amount"
    if kind is BudgetKind.COST_USD:
        return cost_text(value)
    return f"{int(value)}s" if kind is BudgetKind.WALL_SECONDS else str(int(value))


def _limit(value: float | None, *, money: bool = False, unit: str = "") -> str:
    if value is None:
        return "none"
    return cost_text(value) if money else f"{int(value)}{unit}"
