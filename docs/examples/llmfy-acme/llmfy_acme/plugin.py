"""Hook implementations of the llmfy-acme plugin.

An Acme response body looks like
`{"id": "r-1", "model": "acme-large-2-20261101",
"usage": {"prompt": 120, "cached": 100, "completion": 30}}`, where `prompt`
counts every input token, cached ones included.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from llmfy_core import (
    CallContext,
    CatalogEntry,
    Price,
    PriceKey,
    PriceRank,
    StaticPriceTable,
    Unpriced,
    Usage,
    hookimpl,
)
from llmfy_core.pricing import price_from_mapping

PROVIDER = "acme"
SOURCE = "https://acme.example/pricing"
CHECKED = dt.date(2026, 12, 1)
EXPECTED_SHAPE = '{"acme-large-2": {"input": 2.0, "output": 8.0}}'

llmfy_price_rank = PriceRank.PROVIDER
# The providers whose responses usage_extract reads, so that llmfy calls it
# for those alone.
llmfy_providers = ("acme",)

_DATED = re.compile(r"^(?P<model>.+)-\d{8}$")


def model_candidates(model: str) -> Iterator[str]:
    """Yield the ids to look up: the id itself, then the model of a dated snapshot."""
    yield model
    dated = _DATED.match(model)
    if dated:
        yield dated.group("model")


# USD per million tokens.
BUNDLED = StaticPriceTable(
    {
        PriceKey("acme-large-2"): Price(
            Decimal("2.00"),
            Decimal("8.00"),
            cache_read=Decimal("0.50"),
            source=SOURCE,
            checked=CHECKED,
        ),
        PriceKey("acme-small-2"): Price(
            Decimal("0.10"), Decimal("0.40"), source=SOURCE, checked=CHECKED
        ),
    },
    candidates=model_candidates,
)


@hookimpl
def usage_extract(response: Any, context: CallContext) -> Usage | None:
    """Normalize the usage of an Acme response body; None for other providers."""
    if context.provider != PROVIDER or not isinstance(response, Mapping):
        return None
    served = response.get("model")
    model = context.model or served or "unknown"
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return Usage(PROVIDER, model, None, None, served_model=served)
    return Usage(
        provider=PROVIDER,
        model=model,
        input_tokens=usage.get("prompt"),
        output_tokens=usage.get("completion"),
        cache_read_tokens=usage.get("cached", 0),
        served_model=served,
        request_id=response.get("id"),
    )


@hookimpl
def price_lookup(
    provider: str, model: str, service_tier: str | None, batch: bool
) -> Price | Unpriced | None:
    """Return the bundled price of an Acme model."""
    if provider != PROVIDER:
        return None
    return BUNDLED.lookup(model, None, service_tier, batch)


@hookimpl
def pricing_table_parse(
    provider: str, table: Mapping[str, Any]
) -> StaticPriceTable | None:
    """Validate an `acme_pricing=` table, in USD per million tokens."""
    if provider != PROVIDER:
        return None
    entries: dict[PriceKey, Price | Unpriced] = {}
    for model, entry in table.items():
        entries[PriceKey(model)] = price_from_mapping(
            entry,
            provider=PROVIDER,
            model=model,
            region=None,
            default_unit=1_000_000,
            expected_shape=EXPECTED_SHAPE,
            source="acme_pricing override",
        )
    return StaticPriceTable(entries, candidates=model_candidates)


@hookimpl
def price_catalog(provider: str | None) -> Iterable[CatalogEntry] | None:
    """List the bundled prices for `llmfy prices`."""
    if provider not in (None, PROVIDER):
        return None
    return [
        CatalogEntry(PROVIDER, key, price) for key, price in BUNDLED.entries().items()
    ]


@hookimpl
def provider_instrument() -> str:
    """Return the provider name; `llmfy_acme.complete` records each request."""
    return PROVIDER
