"""llmfy pricing plugin: a team's negotiated prices, above the bundled tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from llmfy_core import CatalogEntry, Price, PriceKey, PriceRank, hookimpl
from llmfy_core.pricing import STANDARD_TIERS

llmfy_price_rank = PriceRank.ORGANIZATION

CONTRACT = "Team contract 2026-07, section 4"
SIGNED = dt.date(2026, 7, 1)

# USD per million tokens at the standard service tier, keyed by provider and
# model id.
NEGOTIATED = {
    ("openai", "gpt-4o-mini"): Price(
        Decimal("0.12"), Decimal("0.48"), source=CONTRACT, checked=SIGNED
    ),
}


@hookimpl
def price_lookup(
    provider: str, model: str, service_tier: str | None, batch: bool
) -> Price | None:
    """Return the negotiated price of a standard request.

    The contract sets no Flex, Priority or Batch API rates, so those requests
    are left to the lower-ranked sources, such as the bundled table.
    """
    if batch or (service_tier is not None and service_tier not in STANDARD_TIERS):
        return None
    return NEGOTIATED.get((provider, model))


@hookimpl
def price_catalog(provider: str | None) -> Iterable[CatalogEntry]:
    """List the negotiated prices for `llmfy prices`."""
    return [
        CatalogEntry(each_provider, PriceKey(model), price)
        for (each_provider, model), price in NEGOTIATED.items()
        if provider in (None, each_provider)
    ]
