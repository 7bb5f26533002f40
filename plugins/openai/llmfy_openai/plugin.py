"""Hook implementations of the llmfy-openai plugin."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmfy_core import (
    CallContext,
    CatalogEntry,
    Price,
    PriceKey,
    PriceRank,
    Unpriced,
    Usage,
    hookimpl,
)
from llmfy_openai import extract, instrument, overrides, prices

llmfy_price_rank = PriceRank.PROVIDER

PROVIDER = "openai"


@hookimpl
def usage_extract(response: Any, context: CallContext) -> Usage | None:
    """Normalize the usage of an OpenAI response; None for other providers."""
    if context.provider != PROVIDER:
        return None
    return extract.extract_usage(response, context)


def llmfy_usage_reader(
    provider: str, response_type: type
) -> extract.UsageReader | None:
    """Return the fast reader of OpenAI SDK objects of `response_type`, if any."""
    if provider != PROVIDER:
        return None
    return extract.reader_for(response_type)


@hookimpl
def price_lookup(
    provider: str, model: str, service_tier: str | None, batch: bool
) -> Price | Unpriced | None:
    """Return the bundled price of an OpenAI model id, or None when unknown."""
    if provider != PROVIDER:
        return None
    return prices.lookup_price(model, service_tier, batch)


@hookimpl
def price_catalog(provider: str | None) -> Iterable[CatalogEntry] | None:
    """List the bundled OpenAI prices for `llmfy prices`."""
    if provider not in (None, PROVIDER):
        return None
    return [
        CatalogEntry(
            PROVIDER, PriceKey(row.model, None, row.service_tier, row.batch), row.price
        )
        for row in prices.list_prices()
    ]


@hookimpl
def pricing_table_parse(
    provider: str, table: Mapping[str, Any]
) -> overrides.OverrideTable | None:
    """Validate an `openai_pricing=` table; None for other providers."""
    if provider != PROVIDER:
        return None
    return overrides.parse_override_table(table)


@hookimpl
def provider_instrument() -> str:
    """Patch the openai SDK, now or when the application imports it."""
    instrument.install()
    return PROVIDER
