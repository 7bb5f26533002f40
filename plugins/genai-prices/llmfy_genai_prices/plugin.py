"""Hook implementations of the llmfy-genai-prices plugin.

`genai_prices` is imported on the first lookup, not here, so that loading
llmfy's plugins stays cheap (genai-prices brings pydantic and its whole price
database).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from llmfy_core import PriceRank, hookimpl

if TYPE_CHECKING:
    from llmfy_core import CatalogEntry, Price, Unpriced

# Below the provider plugins' bundled tables: a fallback for unknown models.
llmfy_price_rank = PriceRank.FALLBACK
# Some genai-prices prices change on a given date, so llmfy caches them per day.
llmfy_price_dated = True


@hookimpl
def price_lookup(
    provider: str,
    model: str,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | Unpriced | None:
    """Return genai-prices' price for the model, at the time the request was sent.

    The region is not asked for: genai-prices has one price per model.
    """
    from . import adapter

    return adapter.lookup(provider, model, service_tier, batch, requested_at)


@hookimpl
def price_catalog(provider: str | None) -> Iterator[CatalogEntry]:
    """List today's genai-prices prices of `provider`, or of openai and bedrock."""
    from . import adapter

    return adapter.catalog(provider)
