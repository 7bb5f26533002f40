"""Hook implementations of the llmfy-openai plugin.

Plugin discovery imports this module, so it imports the rest of the plugin
only when a hook first runs: `import llmfy` and discovery stay cheap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from llmfy_core import PriceRank, hookimpl

if TYPE_CHECKING:
    from llmfy_core import CallContext, CatalogEntry, Price, Unpriced, Usage
    from llmfy_openai.extract import UsageReader
    from llmfy_openai.overrides import OverrideTable

llmfy_price_rank = PriceRank.PROVIDER
# The providers whose responses usage_extract reads.
llmfy_providers = ("openai",)
# Its usage readers return only valid counts, so llmfy does not check them.
llmfy_readers_check_counts = True
# Some bundled prices changed on a given day, so llmfy caches prices per day.
llmfy_price_dated = True

PROVIDER = "openai"


@hookimpl
def usage_extract(response: Any, context: CallContext) -> Usage | None:
    """Normalize the usage of an OpenAI response; None for other providers."""
    if context.provider != PROVIDER:
        return None
    from llmfy_openai.extract import extract_usage

    return extract_usage(response, context)


def llmfy_usage_reader(provider: str, response_type: type) -> UsageReader | None:
    """Return the fast reader of OpenAI SDK objects of `response_type`, if any."""
    if provider != PROVIDER:
        return None
    from llmfy_openai.extract import reader_for

    return reader_for(response_type)


def llmfy_mapped_model(provider: str, model: str) -> str | None:
    """Return the model that the Azure deployment `model` was mapped to, if any."""
    if provider != PROVIDER:
        return None
    from llmfy_openai.resolve import mapped_deployment

    return mapped_deployment(model)


@hookimpl
def price_lookup(
    provider: str,
    model: str,
    region: str | None,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | Unpriced | None:
    """Return the bundled price of an OpenAI model id on the day the request was sent.

    `region` names the regional processing endpoint the request was sent to,
    such as `eu`, or is None. Returns None when the model id is unknown.
    """
    if provider != PROVIDER:
        return None
    from llmfy_openai.prices import lookup_price

    return lookup_price(model, service_tier, batch, requested_at, region)


@hookimpl
def price_catalog(provider: str | None) -> Iterable[CatalogEntry] | None:
    """List the bundled OpenAI prices for `llmfy prices`."""
    if provider not in (None, PROVIDER):
        return None
    from llmfy_core import CatalogEntry, PriceKey
    from llmfy_openai.prices import list_prices

    return [
        CatalogEntry(
            PROVIDER, PriceKey(row.model, None, row.service_tier, row.batch), row.price
        )
        for row in list_prices()
    ]


@hookimpl
def pricing_table_parse(
    provider: str, table: Mapping[str, Any]
) -> OverrideTable | None:
    """Validate an `openai_pricing=` table; None for other providers."""
    if provider != PROVIDER:
        return None
    from llmfy_openai.overrides import parse_override_table

    return parse_override_table(table)


@hookimpl
def provider_instrument() -> str:
    """Patch the openai SDK, now or when the application imports it."""
    from llmfy_openai import instrument

    instrument.install()
    return PROVIDER
