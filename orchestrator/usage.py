"""Usage and cost: the price table (a validated document) and the cost of one agent call.

The default table ships with the package (``orchestrator/prices.json``, the model slugs
we know); ``ORCHESTRATOR_PRICES_FILE`` names another one for an environment. A model the
table does not list has an unknown cost (``None``), never a guessed one.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from schemas import PriceTable, TokenUsage, UsageTotals, schema_errors

from ._documents import first_problem
from .exceptions import DocumentError

DEFAULT_PRICES = "prices.json"


def load_price_table(path: Path | None = None) -> PriceTable:
    """The price table at ``path``, or the default one shipped with the package.

    Raises:
        DocumentError: the file is missing, not JSON, or does not validate (its schema is
            ``schemas/price-table.schema.json``).
    """
    where = str(path) if path else f"orchestrator/{DEFAULT_PRICES}"
    try:
        text = (
            path.read_text(encoding="utf-8")
            if path
            else resources.files(__package__).joinpath(DEFAULT_PRICES).read_text(encoding="utf-8")
        )
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentError(f"cannot read the price table ({exc})", path=where) from None
    try:
        table = PriceTable.model_validate(data)
    except ValidationError as exc:
        field, reason = first_problem(exc)
        raise DocumentError(reason, path=where, field=field) from None
    error = schema_errors("price-table", data)
    if error:
        raise DocumentError(error, path=where)
    return table


def call_cost(table: PriceTable, model: str | None, tokens: TokenUsage) -> float | None:
    """The cost in USD of one agent call; 0 without a call, None for an unpriced model."""
    if model is None:
        return 0.0
    price = table.price(model)
    if price is None:
        return None
    return price.cost(
        input_tokens=tokens.input_tokens,
        cached_input_tokens=tokens.cached_input_tokens,
        output_tokens=tokens.output_tokens,
    )


def cost_text(cost_usd: float | None) -> str:
    """A cost for people: ``$0.0123``, or ``unknown`` when a model has no price."""
    return "unknown" if cost_usd is None else f"${cost_usd:.4f}"


def usage_line(usage: UsageTotals) -> str:
    """A run's (or a phase's) usage in one line, for summaries."""
    tokens = usage.tokens
    line = (
        f"{tokens.total_tokens} tokens ({tokens.input_tokens} input, "
        f"{tokens.cached_input_tokens} cached, {tokens.output_tokens} output, "
        f"{tokens.reasoning_output_tokens} reasoning) in {usage.agent_calls} agent "
        f"calls; cost {cost_text(usage.cost_usd)}"
    )
    if usage.unpriced_models:
        line += f" (no price for {', '.join(usage.unpriced_models)})"
    return line
