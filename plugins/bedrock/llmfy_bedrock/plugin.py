"""Hook implementations of the llmfy-bedrock plugin.

Plugin discovery imports this module, so it imports the rest of the plugin
only when a hook first runs: `import llmfy` and discovery stay cheap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from llmfy_core import PriceRank, hookimpl

if TYPE_CHECKING:
    from llmfy_bedrock.prices import BedrockPriceTable
    from llmfy_core import CallContext, Price, Unpriced, Usage
    from llmfy_core.model import UsageCounts
    from llmfy_core.pricing import CatalogEntry

llmfy_price_rank = PriceRank.PROVIDER
# The providers whose responses usage_extract reads.
llmfy_providers = ("bedrock",)
# Its usage readers return only valid counts, so llmfy does not check them.
llmfy_readers_check_counts = True
# Some bundled prices changed on a given day, so llmfy caches prices per day.
llmfy_price_dated = True

PROVIDER = "bedrock"


@hookimpl
def usage_extract(response: Any, context: CallContext) -> Usage | None:
    """Normalize a Bedrock Runtime response; see `llmfy_bedrock.extract`.

    What `response` is depends on `context.operation`. For Converse it is the
    response, and for ConverseStream the `metadata` event. For InvokeModel it
    is the decoded body, its raw bytes, or botocore's response dict when the
    body was not read, and the token headers in `context.headers` come first.
    For InvokeModelWithResponseStream it is the list of decoded chunks that
    can carry usage.
    """
    if context.provider != PROVIDER:
        return None
    from llmfy_bedrock.extract import extract_usage

    return extract_usage(response, context)


def llmfy_usage_reader(
    provider: str, response_type: type
) -> Callable[[Any, CallContext], UsageCounts | None] | None:
    """Return the fast reader of botocore's Converse and InvokeModel dicts."""
    if provider != PROVIDER or response_type is not dict:
        return None
    from llmfy_bedrock.extract import read_response

    return read_response


def llmfy_regions(provider: str) -> AbstractSet[str] | None:
    """Return the AWS Regions that Bedrock requests can be sent to, for price files."""
    if provider != PROVIDER:
        return None
    from llmfy_bedrock.overrides import AwsRegions

    return AwsRegions()


def llmfy_mapped_model(provider: str, model: str) -> str | None:
    """Return the model id an application inference profile was registered to copy.

    Every price source is then asked for that id too, so that a price file or
    a fallback database prices the profile as it prices the model.
    """
    if provider != PROVIDER:
        return None
    from llmfy_bedrock.resolve import registered_profile_model

    return registered_profile_model(model)


@hookimpl
def price_lookup(
    provider: str,
    model: str,
    region: str | None,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | Unpriced | None:
    """Return the bundled price of a Bedrock model in a Region on the day sent."""
    if provider != PROVIDER:
        return None
    from llmfy_bedrock.prices import bundled_table

    return bundled_table().lookup(model, region, service_tier, batch, requested_at)


@hookimpl
def pricing_table_parse(
    provider: str, table: Mapping[str, Any]
) -> BedrockPriceTable | None:
    """Validate a `bedrock_pricing=` table; see `llmfy_bedrock.overrides`."""
    if provider != PROVIDER:
        return None
    from llmfy_bedrock.overrides import parse_overrides

    return parse_overrides(table)


@hookimpl
def price_catalog(provider: str | None) -> Iterable[CatalogEntry] | None:
    """List the bundled Bedrock prices for `llmfy prices`."""
    if provider not in (None, PROVIDER):
        return None
    from llmfy_bedrock.prices import bundled_table

    return list(bundled_table().catalog())


@hookimpl
def provider_instrument() -> str:
    """Instrument boto3's bedrock-runtime clients, now or when botocore is imported."""
    from llmfy_bedrock import instrument

    instrument.install()
    return PROVIDER
