"""Map the genai-prices database onto llmfy's price model.

This module imports `genai_prices` (and with it pydantic and the whole price
database), so the plugin imports it on its first lookup only.

genai-prices states prices in USD per million tokens (`*_mtok` keys) or per
thousand calls (`*_kcount` keys). Its long-context prices (`TieredPrices`)
reprice every token of a request once the request's input tokens exceed a
tier's start, which is what `llmfy_core.LongContextTier` means too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

from llmfy_core import CatalogEntry, LongContextTier, Price, PriceKey, Unpriced
from llmfy_core.pricing import DECIMAL_CONTEXT, STANDARD_TIERS
from llmfy_core.tracker import reads_pricing_tables

# llmfy provider names whose genai-prices provider id differs. Any other name
# is looked up as a genai-prices provider id of the same spelling.
PROVIDER_IDS: Mapping[str, str] = {"openai": "openai", "bedrock": "aws"}

# genai-prices price keys in USD per million tokens, by the `Price` field
# they fill. `cache_write_5m_mtok` is Anthropic's default (5-minute) cache
# write, used where a model has no plain `cache_write_mtok`.
_TOKEN_FIELDS: Mapping[str, tuple[str, ...]] = {
    "input": ("input_mtok",),
    "output": ("output_mtok",),
    "cache_read": ("cache_read_mtok",),
    "cache_write": ("cache_write_mtok", "cache_write_5m_mtok"),
}
# genai-prices price keys for the token subsets that llmfy prices on their own.
_OTHER_FIELDS: Mapping[str, str] = {
    "cache_write_1h": "cache_write_1h_mtok",
    "input_audio": "input_audio_mtok",
    "output_audio": "output_audio_mtok",
    "input_image": "input_image_mtok",
    "output_image": "output_image_mtok",
}
# genai-prices price keys in USD per thousand calls, by llmfy's tool name.
_PER_THOUSAND_CALLS: Mapping[str, str] = {"web_search": "web_searches_kcount"}

PriceValue = Decimal | gp.TieredPrices


def version() -> str:
    """Return the installed genai-prices version."""
    return str(genai_prices.__version__)


def lookup(
    provider: str,
    model: str,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | Unpriced | None:
    """Return genai-prices' price for one request, or None when it has no such model.

    Returns `Unpriced` (not final) when the model is known but the database has
    no price for the request's service tier, for batch requests, or per token.
    """
    snapshot = data_snapshot.get_snapshot()
    found = _find_model(snapshot, provider, model)
    if found is None:
        return None
    genai_provider, info = found
    when = requested_at or dt.datetime.now(dt.UTC)
    source = _source(snapshot, genai_provider, info)

    database = f"genai-prices {version()}"
    if _is_fine_tuned(model) and not _is_fine_tuned(info.id):
        # genai-prices matches `ft:gpt-4-0613:org::id` to gpt-4 (0.2.5).
        return Unpriced(
            f"{database} matches the fine-tuned {provider} model {model!r} only to "
            f"its base model {info.id!r}, and OpenAI bills a fine-tuned model at "
            "rates of its own. " + _how_to_add_price(provider)
        )
    if _varies_by_time_of_day(info):
        return Unpriced(
            f"{database} prices {provider} model {model!r} by the time of day, which "
            "llmfy's price cache (one price per day) cannot follow. "
            + _how_to_add_price(provider)
        )
    context: dict[str, str] = {}
    if service_tier is not None and service_tier not in STANDARD_TIERS:
        context["service_tier"] = service_tier
    if batch:
        context["processing"] = "batch"
    for key, value in context.items():
        if not _has_variant(info, key, value, context, when):
            variant = (
                "batch requests" if key == "processing" else f"service tier {value!r}"
            )
            return Unpriced(
                f"{database} has no price for {variant} of {provider} model "
                f"{model!r} on {when.date().isoformat()}. "
                + _how_to_add_price(provider)
            )
    if len(context) > 1 and not _has_combined_variant(info, context, when):
        # genai-prices would apply one of the two variants and ignore the other.
        return Unpriced(
            f"{database} has no price for batch requests in service tier "
            f"{service_tier!r} of {provider} model {model!r} on "
            f"{when.date().isoformat()}. " + _how_to_add_price(provider)
        )

    price = convert_price(info.get_prices(when, context or None), source)
    if price is None:
        return Unpriced(
            f"{database} has no per-token input price for {provider} model "
            f"{model!r}. " + _how_to_add_price(provider)
        )
    return price


def _is_fine_tuned(model: str) -> bool:
    """Return whether `model` is an OpenAI fine-tuned id (`ft:` or `.ft-`)."""
    return model.startswith("ft:") or ".ft-" in model


def _how_to_add_price(provider: str) -> str:
    if reads_pricing_tables(provider):
        return (
            f"Add the price with llmfy_usage_tracker({provider}_pricing=...) or a "
            "price file."
        )
    return "Add the price to a price file."


def catalog(provider: str | None) -> Iterator[CatalogEntry]:
    """List today's prices of one provider, or of every provider in PROVIDER_IDS.

    Each model is listed under genai-prices' own model id, with one more entry
    for each service tier and for batch requests where the database has them.
    """
    snapshot = data_snapshot.get_snapshot()
    now = dt.datetime.now(dt.UTC)
    names = [provider] if provider is not None else sorted(PROVIDER_IDS)
    for name in names:
        genai_provider = _find_provider(snapshot, name)
        if genai_provider is None:
            continue
        for info in genai_provider.models:
            yield from _catalog_entries(snapshot, name, genai_provider, info, now)


def _catalog_entries(
    snapshot: data_snapshot.DataSnapshot,
    provider: str,
    genai_provider: gp.Provider,
    info: gp.ModelInfo,
    now: dt.datetime,
) -> Iterator[CatalogEntry]:
    source = _source(snapshot, genai_provider, info)
    keys: list[tuple[PriceKey, dict[str, str] | None]] = [(PriceKey(info.id), None)]
    for variant in info.price_variants or ():
        if len(variant.when) != 1 or not _active(variant.constraint, now):
            continue
        ((name, value),) = variant.when.items()
        if name == "service_tier" and value not in STANDARD_TIERS:
            keys.append((PriceKey(info.id, service_tier=value), {name: value}))
        elif name == "processing" and value == "batch":
            keys.append((PriceKey(info.id, batch=True), {name: value}))
    for key, context in keys:
        price = convert_price(info.get_prices(now, context), source)
        if price is not None:
            yield CatalogEntry(provider=provider, key=key, price=price)


def convert_price(model_price: gp.ModelPrice, source: str) -> Price | None:
    """Convert a genai-prices `ModelPrice` to a `Price`, long-context tiers included.

    Returns None when the model has no input price per token. A missing output
    price is 0, as genai-prices charges nothing for a unit it has no price for.
    Price keys with no counterpart in llmfy are left out (see the README).
    """
    values = _llmfy_values(model_price)
    if "input" not in values:
        return None
    starts = sorted(
        {
            tier.start
            for value in values.values()
            if isinstance(value, gp.TieredPrices)
            for tier in value.tiers
        }
    )
    base = _build_price(values, _base_value, source)
    tiers = tuple(
        LongContextTier(
            above_input_tokens=start,
            price=_build_price(values, _value_above(start), source),
        )
        for start in starts
    )
    return Price(
        input=base.input,
        output=base.output,
        cache_read=base.cache_read,
        cache_write=base.cache_write,
        other=base.other,
        per_call=base.per_call,
        long_context=tiers,
        source=source,
    )


def _llmfy_values(model_price: gp.ModelPrice) -> dict[str, PriceValue]:
    stored = {
        key: value
        for key, value in vars(model_price).items()
        if isinstance(value, (Decimal, gp.TieredPrices))
    }
    values: dict[str, PriceValue] = {}
    for field, keys in _TOKEN_FIELDS.items():
        for key in keys:
            if key in stored:
                values[field] = stored[key]
                break
    for kind, key in _OTHER_FIELDS.items():
        if key in stored:
            values[f"other:{kind}"] = stored[key]
    # genai-prices charges image output tokens at the output rate when a model
    # has no rate of its own for them: GPT Image 1 and 2 output only images.
    # Only models that price image input get this rate, not text models.
    image_model = "input_image_mtok" in stored and "output_mtok" in stored
    if image_model and "output_image_mtok" not in stored:
        values["other:output_image"] = stored["output_mtok"]
    for tool, key in _PER_THOUSAND_CALLS.items():
        if key in stored:
            values[f"call:{tool}"] = stored[key]
    return values


def _base_value(value: PriceValue) -> Decimal:
    return value.base if isinstance(value, gp.TieredPrices) else value


def _value_above(start: int) -> Callable[[PriceValue], Decimal]:
    """Return a function giving a value's price for input tokens just above `start`."""

    def value_above(value: PriceValue) -> Decimal:
        if not isinstance(value, gp.TieredPrices):
            return value
        price = value.base
        for tier in sorted(value.tiers, key=lambda tier: tier.start):
            if tier.start <= start:
                price = tier.price
        return price

    return value_above


def _build_price(
    values: Mapping[str, PriceValue],
    pick: Callable[[PriceValue], Decimal],
    source: str,
) -> Price:
    def field(name: str) -> Decimal | None:
        value = values.get(name)
        return None if value is None else pick(value)

    other = {
        name.removeprefix("other:"): pick(value)
        for name, value in values.items()
        if name.startswith("other:")
    }
    per_call = {
        name.removeprefix("call:"): DECIMAL_CONTEXT.divide(pick(value), 1000)
        for name, value in values.items()
        if name.startswith("call:")
    }
    input_price = field("input")
    assert input_price is not None
    return Price(
        input=input_price,
        output=field("output") or Decimal(0),
        cache_read=field("cache_read"),
        cache_write=field("cache_write"),
        other=other,
        per_call=per_call,
        source=source,
    )


def _find_provider(
    snapshot: data_snapshot.DataSnapshot, provider: str
) -> gp.Provider | None:
    provider_id = PROVIDER_IDS.get(provider, provider)
    return next((each for each in snapshot.providers if each.id == provider_id), None)


def _find_model(
    snapshot: data_snapshot.DataSnapshot, provider: str, model: str
) -> tuple[gp.Provider, gp.ModelInfo] | None:
    genai_provider = _find_provider(snapshot, provider)
    if genai_provider is None:
        return None
    info = genai_provider.find_model(model, all_providers=snapshot.providers)
    if info is None:
        return None
    return genai_provider, info


def _source(
    snapshot: data_snapshot.DataSnapshot, provider: gp.Provider, info: gp.ModelInfo
) -> str:
    data = f"genai-prices {version()}"
    if snapshot.from_auto_update:
        data += f" (data updated {snapshot.timestamp:%Y-%m-%d})"
    return f"{data}, {provider.id} model {info.id}"


def _varies_by_time_of_day(info: gp.ModelInfo) -> bool:
    if not isinstance(info.prices, list):
        return False
    return any(
        isinstance(conditional.constraint, gp.TimeOfDateConstraint)
        for conditional in info.prices
    )


def _has_variant(
    info: gp.ModelInfo,
    key: str,
    value: str,
    context: Mapping[str, str],
    when: dt.datetime,
) -> bool:
    """Return whether a price variant for `key` = `value` applies to this request."""
    for variant in info.price_variants or ():
        if variant.when.get(key) != value or not _active(variant.constraint, when):
            continue
        if all(context.get(name) == wanted for name, wanted in variant.when.items()):
            return True
    return False


def _has_combined_variant(
    info: gp.ModelInfo, context: Mapping[str, str], when: dt.datetime
) -> bool:
    """Return whether one price variant applies to every condition of `context`."""
    return any(
        variant.when == context and _active(variant.constraint, when)
        for variant in info.price_variants or ()
    )


def _active(
    constraint: gp.StartDateConstraint | gp.TimeOfDateConstraint | None,
    when: dt.datetime,
) -> bool:
    return constraint is None or constraint.active(when)
