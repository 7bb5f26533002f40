"""Hook implementations of the llmfy-bedrock plugin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmfy_bedrock import checks, instrument
from llmfy_bedrock.extract import (
    PROVIDER,
    decode_body,
    read_converse,
    to_usage,
    usage_from_converse,
    usage_from_invoke,
    usage_from_stream_chunks,
)
from llmfy_bedrock.overrides import parse_overrides
from llmfy_bedrock.prices import BedrockPriceTable, bundled_table
from llmfy_core import CallContext, Price, PriceRank, Unpriced, Usage, hookimpl
from llmfy_core.model import UsageCounts, usage_from_counts
from llmfy_core.pricing import CatalogEntry

llmfy_price_rank = PriceRank.PROVIDER


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
    counts = read_converse(response, context)
    if counts is not None:
        return usage_from_counts(counts)
    with checks.collecting() as problems:
        usage = _extract(response, context)
    if problems:
        checks.report(context, problems)
    return usage


def _extract(response: Any, context: CallContext) -> Usage:
    operation = context.operation
    if operation == "InvokeModel":
        return usage_from_invoke(_invoke_body(response), context)
    if operation == "InvokeModelWithResponseStream" and isinstance(response, list):
        return usage_from_stream_chunks(response, context)
    if isinstance(response, Mapping):
        return usage_from_converse(response, context)
    return to_usage(None, context)


def _invoke_body(response: Any) -> Mapping[str, Any] | None:
    if isinstance(response, (bytes, bytearray, str)):
        return decode_body(response)
    if isinstance(response, Mapping) and "ResponseMetadata" not in response:
        return response
    return None


def llmfy_usage_reader(
    provider: str, response_type: type
) -> Callable[[Any, CallContext], UsageCounts | None] | None:
    """Return the fast reader of Converse responses, which botocore gives as dicts."""
    if provider != PROVIDER or response_type is not dict:
        return None
    return read_converse


@hookimpl
def price_lookup(
    provider: str,
    model: str,
    region: str | None,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | Unpriced | None:
    """Return the bundled price of a Bedrock model in a Region."""
    if provider != PROVIDER:
        return None
    return bundled_table().lookup(model, region, service_tier, batch)


@hookimpl
def pricing_table_parse(
    provider: str, table: Mapping[str, Any]
) -> BedrockPriceTable | None:
    """Validate a `bedrock_pricing=` table; see `llmfy_bedrock.overrides`."""
    if provider != PROVIDER:
        return None
    return parse_overrides(table)


@hookimpl
def price_catalog(provider: str | None) -> Iterable[CatalogEntry] | None:
    """List the bundled Bedrock prices for `llmfy prices`."""
    if provider not in (None, PROVIDER):
        return None
    return list(bundled_table().catalog())


@hookimpl
def provider_instrument() -> str:
    """Instrument boto3's bedrock-runtime clients, now or when botocore is imported."""
    instrument.install()
    return PROVIDER
