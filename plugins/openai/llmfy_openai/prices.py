"""The bundled OpenAI price table, read from `prices.toml` beside this module.

Prices are USD per million tokens. Standard, Batch API, Flex and Priority
rates are separate entries keyed by service tier and batch flag; model ids
resolve through `llmfy_openai.resolve.model_candidates`. A model may keep the
prices it had before a price change, each with the first UTC day it no longer
applied, so that a request is priced at the rate of the day it was sent. A
request sent to a regional processing endpoint, such as eu.api.openai.com, is
priced from a second set of tables, whose rates include the uplift that OpenAI
charges there for some models.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from typing import Any

import attrs

from llmfy_core import LongContextTier, Price, PriceKey, StaticPriceTable, Unpriced
from llmfy_core.pricing import STANDARD_TIERS, closest_name, request_day
from llmfy_openai.resolve import is_fine_tuned, model_candidates

PRICE_FILE = "prices.toml"

FLEX = "flex"
PRIORITY = "priority"

# Price fields given per million tokens in the data file, and the token
# subset each one prices in `Price.other`.
_SUBSET_FIELDS = {"input_audio": "input_audio", "output_audio": "output_audio"}

# The key of a model's earlier prices in the data file.
EARLIER = "earlier"

# The key of the factor by which a model's rates grow for requests sent to a
# regional processing (data residency) endpoint, in the data file.
REGIONAL_PROCESSING = "regional_processing"

# The prices of one model: its standard, Batch API, Flex and Priority prices,
# keyed by service tier (None for the standard one) and batch flag.
ModelPrices = dict[tuple[str | None, bool], Price]

_BATCH_RULE = "50% of the standard rates, https://platform.openai.com/docs/guides/batch"
_FLEX_RULE = (
    "priced at Batch API rates, https://platform.openai.com/docs/guides/flex-processing"
)
_REGIONAL_RULE = (
    "{} times the rates of the global endpoint, "
    "https://developers.openai.com/api/docs/guides/data-residency"
)


@attrs.frozen(slots=True)
class PriceListing:
    """One row of the bundled table, for listing prices (`llmfy prices`).

    `service_tier` is None for the standard tier; `batch` is true for the
    Batch API rate. `aliases` are other model ids billed at the same price.
    """

    model: str
    service_tier: str | None
    batch: bool
    price: Price
    aliases: tuple[str, ...] = ()


# The service tier of Priority processing, which costs more than the standard
# rate and is priced per model.
PRIORITY_TIER = "priority"

# The service tiers that the bundled table prices: the standard tier, which
# `auto` in a request stands for, Flex and Priority.
KNOWN_TIERS = frozenset({"auto", *STANDARD_TIERS, FLEX, PRIORITY_TIER})
# The tier of requests served from Scale Tier units, which are bought ahead
# by the day rather than per token.
SCALE_TIER = "scale"


def _unknown_tier_reason(model: str, tier: str) -> str:
    known = sorted(KNOWN_TIERS - {"auto"})
    if tier == SCALE_TIER:
        cause = (
            f"A request of model {model!r} in the 'scale' service tier ran on "
            "Scale Tier units, which are bought ahead, not billed per token."
        )
    else:
        close = closest_name(tier, known)
        hint = f" Did you mean {close!r}?" if close else ""
        cause = (
            f"The bundled table has no price for the service tier {tier!r} of "
            f"model {model!r}: it prices the tiers {', '.join(map(repr, known))}."
            f"{hint}"
        )
    return (
        f"{cause} To give these requests a cost, add a price with "
        f"llmfy_usage_tracker(openai_pricing={{{model!r}: {{'input': ..., "
        "'output': ...}}), in USD per million tokens."
    )


def lookup_price(
    model: str,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None = None,
    region: str | None = None,
) -> Price | Unpriced | None:
    """Return the bundled price of `model`, resolved the way OpenAI bills it.

    `requested_at` is when the request was sent, None for now: a request sent
    before a price change gets the price of that day. `region` names the
    regional processing endpoint the request was sent to, such as `eu` for
    eu.api.openai.com, and None stands for the global endpoint. Returns
    `Unpriced` for a fine-tuned model whose base model has no fine-tuned price
    in the table, and None for an unknown model id.
    """
    if service_tier is not None and service_tier not in KNOWN_TIERS:
        return Unpriced(_unknown_tier_reason(model, service_tier))
    table = price_table_on(requested_at, regional=region is not None)
    found = table.lookup(model, None, service_tier, batch)
    if (
        service_tier == PRIORITY_TIER
        and isinstance(found, Price)
        and found is table.lookup(model, None, None, batch)
    ):
        # Priority costs more than the standard rate found instead.
        return Unpriced(
            f"The bundled table has no Priority processing price for {model!r}"
            f"{_before_current_price(model, batch, requested_at, table)}, "
            "only its standard price, which Priority requests exceed. Add it "
            f"with llmfy_usage_tracker(openai_pricing={{{model!r}: {{'input': "
            "..., 'output': ..., 'tiers': {'priority': {'input': ..., "
            "'output': ...}}}}), in USD per million tokens."
        )
    if found is not None:
        return found
    if is_fine_tuned(model):
        return Unpriced(
            f"{model!r} is a fine-tuned model, and the bundled table has no "
            "fine-tuned price for its base model. Add it with "
            f"llmfy_usage_tracker(openai_pricing={{{model!r}: "
            "{'input': ..., 'output': ...}}), in USD per million tokens."
        )
    return None


def _before_current_price(
    model: str,
    batch: bool,
    requested_at: dt.datetime | None,
    table: StaticPriceTable,
) -> str:
    """Return words naming the send day if only a later price has a Priority rate."""
    current = bundled_price_table()
    if requested_at is None or table is current:
        return ""
    later = current.lookup(model, None, PRIORITY_TIER, batch)
    if not isinstance(later, Price) or later is current.lookup(
        model, None, None, batch
    ):
        return ""
    return (
        f" as priced on {request_day(requested_at).isoformat()}, the day the "
        "request was sent (only its current price has one)"
    )


def list_prices() -> list[PriceListing]:
    """Return every row of the bundled table today, sorted by model, batch and tier."""
    listings = []
    for model, entry in _load_file()["models"].items():
        aliases = tuple(entry.get("aliases", ()))
        for (tier, batch), price in _current_prices()[model].items():
            listings.append(PriceListing(model, tier, batch, price, aliases))
    listings.sort(key=lambda row: (row.model, row.batch, row.service_tier or ""))
    return listings


@functools.cache
def bundled_model_ids() -> tuple[str, ...]:
    """Return the model ids of the bundled table, sorted."""
    return tuple(sorted({row.model for row in list_prices()}))


@functools.cache
def bundled_price_table(regional: bool = False) -> StaticPriceTable:
    """Return the bundled table of today's prices as a `StaticPriceTable`.

    With `regional`, the table has the rates of requests sent to a regional
    processing endpoint.
    """
    return _static_table(_current_prices(), regional)


def price_table_on(
    requested_at: dt.datetime | None, regional: bool = False
) -> StaticPriceTable:
    """Return the bundled table of the prices in force when a request was sent.

    `requested_at` is the send time, None for now. Its UTC day is used. With
    `regional`, the table has the rates of a regional processing endpoint.
    """
    earlier = _earlier_tables(regional)
    if earlier:
        day = request_day(requested_at)
        for ended, table in earlier:
            if day < ended:
                return table
    return bundled_price_table(regional)


@functools.cache
def _earlier_tables(regional: bool) -> tuple[tuple[dt.date, StaticPriceTable], ...]:
    """Return a table for each period before a price change, oldest first.

    Each table is paired with the first UTC day it no longer applies. In the
    period that ends on that day, each model has the first of its earlier
    prices that ended on that day or later, or else its current price.
    """
    history = _earlier_prices()
    ends = sorted({ended for past in history.values() for ended, _ in past})
    tables = []
    for end in ends:
        prices = dict(_current_prices())
        for model, past in history.items():
            for ended, model_prices in past:
                if ended >= end:
                    prices[model] = model_prices
                    break
        tables.append((end, _static_table(prices, regional)))
    return tuple(tables)


def _static_table(
    prices: Mapping[str, ModelPrices], regional: bool = False
) -> StaticPriceTable:
    """Build a table of one price per model and its aliases.

    With `regional`, the rates of each model with a `regional_processing`
    factor are multiplied by it, in every tier.
    """
    entries: dict[PriceKey, Price | Unpriced] = {}
    for model, entry in _load_file()["models"].items():
        model_prices = prices[model]
        factor = entry.get(REGIONAL_PROCESSING) if regional else None
        if factor is not None:
            model_prices = {
                key: _regional_price(price, Decimal(factor))
                for key, price in model_prices.items()
            }
        for model_id in (model, *entry.get("aliases", ())):
            for (tier, batch), price in model_prices.items():
                entries[PriceKey(model_id, None, tier, batch)] = price
    return StaticPriceTable(entries, candidates=model_candidates)


def _regional_price(price: Price, factor: Decimal) -> Price:
    """Return `price` as charged on a regional processing endpoint."""
    source = f"{price.source}; regional processing: {_REGIONAL_RULE.format(factor)}"
    return _scaled(price, factor, source)


@functools.cache
def _current_prices() -> dict[str, ModelPrices]:
    """Return the prices of each model of the data file, as of today."""
    return {
        model: _entry_prices(model, entry)
        for model, entry in _load_file()["models"].items()
    }


@functools.cache
def _earlier_prices() -> dict[str, list[tuple[dt.date, ModelPrices]]]:
    """Return each model's earlier prices, oldest first, with the day each ended.

    An earlier price has its own price fields, `via` and `checked`, and the
    model's `source` unless it gives its own.
    """
    defaults = _load_file()["defaults"]
    history: dict[str, list[tuple[dt.date, ModelPrices]]] = {}
    for model, entry in _load_file()["models"].items():
        source = entry.get("source", defaults["source"])
        past = [
            (
                earlier["effective_until"],
                _entry_prices(model, {"source": source, **earlier}),
            )
            for earlier in entry.get(EARLIER, ())
        ]
        if past:
            history[model] = sorted(past, key=lambda item: item[0])
    return history


@functools.cache
def tool_prices() -> Mapping[str, Decimal]:
    """Return the bundled prices of built-in tools, in USD per call."""
    tools = _load_file().get("tools", {})
    return {name: Decimal(tool["per_call"]) for name, tool in tools.items()}


@functools.cache
def _load_file() -> dict[str, Any]:
    text = resources.files("llmfy_openai").joinpath(PRICE_FILE).read_text("utf-8")
    return tomllib.loads(text)


def _entry_prices(model: str, entry: Mapping[str, Any]) -> ModelPrices:
    """Build the standard, Batch, Flex and Priority prices of one file entry."""
    defaults = _load_file()["defaults"]
    checked: dt.date = entry.get("checked", defaults["checked"])
    source = entry.get("source", defaults["source"])
    standard = _price(entry, source, entry["via"], checked)

    factor = Decimal(defaults["batch_factor"])
    batch_rate = _scaled(
        standard, factor, f"{standard.source}; Batch API: {_BATCH_RULE}"
    )
    flex_rate = _scaled(standard, factor, f"{standard.source}; Flex: {_FLEX_RULE}")
    prices = {
        (None, False): standard,
        (None, True): batch_rate,
        (FLEX, False): flex_rate,
    }

    priority = entry.get(PRIORITY)
    if priority is not None:
        prices[(PRIORITY, False)] = _price(
            priority,
            priority.get("source", source),
            priority.get("via", "OpenAI's page"),
            checked,
        )
    return prices


def _price(fields: Mapping[str, Any], source: str, via: str, checked: dt.date) -> Price:
    def rate(name: str) -> Decimal | None:
        value = fields.get(name)
        return None if value is None else Decimal(value)

    other = {
        kind: Decimal(fields[name])
        for name, kind in _SUBSET_FIELDS.items()
        if name in fields
    }
    tiers = tuple(
        LongContextTier(
            above_input_tokens=tier["above_input_tokens"],
            price=_price(tier, source, via, checked),
        )
        for tier in fields.get("long_context", ())
    )
    return Price(
        input=Decimal(fields["input"]),
        output=Decimal(fields["output"]),
        cache_read=rate("cache_read"),
        cache_write=rate("cache_write"),
        other=other,
        per_call=tool_prices(),
        long_context=tiers,
        source=f"{source}; compared with {via}",
        checked=checked,
    )


def _scaled(price: Price, factor: Decimal, source: str) -> Price:
    def scale(value: Decimal | None) -> Decimal | None:
        return None if value is None else value * factor

    return attrs.evolve(
        price,
        input=price.input * factor,
        output=price.output * factor,
        cache_read=scale(price.cache_read),
        cache_write=scale(price.cache_write),
        other={kind: rate * factor for kind, rate in price.other.items()},
        long_context=tuple(
            attrs.evolve(tier, price=_scaled(tier.price, factor, source))
            for tier in price.long_context
        ),
        source=source,
    )
