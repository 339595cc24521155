"""The price table: what one million tokens of each model cost, to price a run's usage."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from ._base import StrictModel

PRICE_TABLE_SCHEMA_VERSION: Literal[1] = 1
_MILLION = 1_000_000


class ModelPrice(StrictModel):
    """US dollars per million tokens of one model.

    ``input_tokens`` include the cached ones, and ``output_tokens`` the reasoning ones,
    as the Responses API counts them; so a cached input token is priced at
    ``cached_input`` instead of ``input``, and a reasoning token is an output token.
    """

    input: float = Field(ge=0, description="USD per million uncached input tokens.")
    cached_input: float = Field(ge=0, description="USD per million cached input tokens.")
    output: float = Field(ge=0, description="USD per million output tokens (reasoning too).")

    def cost(self, *, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
        """The cost in USD of these token counts."""
        uncached = max(input_tokens - cached_input_tokens, 0)
        dollars = (
            uncached * self.input
            + min(cached_input_tokens, input_tokens) * self.cached_input
            + output_tokens * self.output
        ) / _MILLION
        return round(dollars, 6)


class PriceTable(StrictModel):
    """Prices per model slug (as codex's ``model`` setting names it)."""

    schema_version: Literal[1] = PRICE_TABLE_SCHEMA_VERSION
    currency: Literal["USD"] = "USD"
    as_of: date = Field(description="The day these prices were read from their source.")
    source: str = Field(default="", description="Where the prices come from.")
    models: dict[str, ModelPrice] = Field(
        description="Model slug to price; a slug not listed has an unknown cost."
    )

    @field_validator("models")
    @classmethod
    def _slugs(cls, models: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        for slug in models:
            if not slug.strip() or slug != slug.strip():
                raise ValueError(f"model slug {slug!r} must be non-blank, without spaces around")
        return models

    def price(self, model: str | None) -> ModelPrice | None:
        """The model's price; None when the table does not know it."""
        return self.models.get(model) if model else None
