"""Price tables, validation of user prices, and exact cost arithmetic."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Context, Decimal, InvalidOperation
from typing import Protocol

import attrs

from llmfy_core.errors import PricingTableError, PricingWarning, warn_in_setup
from llmfy_core.logs import get_logger
from llmfy_core.model import (
    INPUT_SUBSET_KINDS,
    MILLION,
    OUTPUT_SUBSET_KINDS,
    UNPRICED_PREFIX,
    Cost,
    LongContextTier,
    Price,
    Unpriced,
    Usage,
)

logger = get_logger("llmfy.pricing")

# Exact for any realistic token count times any price: 60 significant digits.
DECIMAL_CONTEXT = Context(prec=60)

# A price of 10**(MAX_PRICE_EXPONENT + 1) USD or more, whose adjusted exponent
# is above MAX_PRICE_EXPONENT, is rejected outright: no token costs that much,
# and such numbers overflow the Decimal context.
MAX_PRICE_EXPONENT = 12

# A price above this many USD per million tokens is almost surely a unit mistake.
PLAUSIBLE_MAX_PER_MILLION = Decimal(1000)

# `Cost.parts` names subset tokens charged at their parent count's rate, because
# the price has no rate of their own, as `estimated:<kind>` with a zero amount.
ESTIMATED_PREFIX = "estimated:"

STANDARD_TIERS = frozenset({"default", "standard"})
"""Names of the standard service tier, which is priced at a model's standard rate.

OpenAI and Bedrock responses report it as `default`, and Google Vertex AI
calls it `standard`.
"""

SERVICE_TIERS = frozenset({"flex", "priority", "scale", "ultrafast"})
"""Names of the service tiers other than the standard one.

An `openai_pricing` entry may price these under `tiers`, and `llmfy cost` and
`llmfy prices` accept them with --tier for every provider. OpenAI's API names
flex, priority and scale (for Scale Tier projects), and genai-prices 0.2.5
lists OpenAI ultrafast prices.
"""
# NOTE: genai-prices 0.2.5 also lists OpenAI `fast` prices, described there as
# the former priority tier. `openai_pricing` cannot price `fast`, and the CLI
# accepts it only because genai-prices lists it.

BATCH_TIER = "batch"
"""The key under `tiers` of an `openai_pricing` entry that prices the Batch API.

The Batch API is not a service tier: a request sent through it has
`Usage.batch` set, and the CLI selects its prices with --batch.
"""

_ZERO = Decimal(0)
_ONE = Decimal(1)
_RATIO_CONTEXT = Context(prec=3)


class PriceTable(Protocol):
    """A source of prices for one provider, such as a user's override table."""

    def lookup(
        self, model: str, region: str | None, service_tier: str | None, batch: bool
    ) -> Price | Unpriced | None:
        """Return the price of `model`, or None when the table has no entry."""
        ...


@attrs.frozen(slots=True)
class PriceKey:
    """The key of one entry in a `StaticPriceTable`.

    A `region` or `service_tier` of None matches every region or tier that has
    no entry of its own.
    """

    model: str
    region: str | None = None
    service_tier: str | None = None
    batch: bool = False


@attrs.frozen(slots=True)
class CatalogEntry:
    """One listed price: which provider, model, region and tier it is for."""

    provider: str
    key: PriceKey
    price: Price | Unpriced


ModelCandidates = Callable[[str], Iterable[str]]


def _exact_id(model: str) -> Iterable[str]:
    return (model,)


class StaticPriceTable:
    """A price table held in memory, keyed by model, region, tier and batch.

    `candidates` turns a model id into the ids to try, in order, so that a
    provider can resolve dated snapshots or inference-profile prefixes the way
    it bills them.
    """

    def __init__(
        self,
        entries: Mapping[PriceKey, Price | Unpriced],
        candidates: ModelCandidates = _exact_id,
    ) -> None:
        self._entries = dict(entries)
        self._candidates = candidates

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, model: object) -> bool:
        return any(key.model == model for key in self._entries)

    def entries(self) -> Mapping[PriceKey, Price | Unpriced]:
        """Return every entry of the table."""
        return dict(self._entries)

    def lookup(
        self, model: str, region: str | None, service_tier: str | None, batch: bool
    ) -> Price | Unpriced | None:
        """Return the most specific entry for the first candidate id that has one."""
        entries = self._entries
        for candidate in self._candidates(model):
            for key in _specificity_order(candidate, region, service_tier, batch):
                found = entries.get(key)
                if found is not None:
                    return found
        return None


def _specificity_order(
    model: str, region: str | None, service_tier: str | None, batch: bool
) -> Iterable[PriceKey]:
    regions = (region, None) if region is not None else (None,)
    tiers = (service_tier, None) if service_tier is not None else (None,)
    for each_region in regions:
        for tier in tiers:
            yield PriceKey(model, each_region, tier, batch)


def parse_price_value(
    value: object,
    *,
    provider: str,
    model: str,
    field: str,
    region: str | None = None,
    price_per_tokens: int = MILLION,
    expected_shape: str = "",
) -> Decimal:
    """Convert one price given by a user or a file to an exact `Decimal`.

    Accepts int, float, Decimal and numeric strings. A float is converted
    through its shortest repr, so `0.15` becomes exactly `Decimal("0.15")`.
    Raises `PricingTableError` for booleans, non-numeric values, NaN,
    infinities and negative prices; warns with `PricingWarning` when the price
    is implausibly large for its unit.
    """
    where = describe_entry(provider, model, region, field)
    shape = f" Expected shape: {expected_shape}" if expected_shape else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise PricingTableError(
            f"Invalid price for {where}: {value!r} is a {type(value).__name__}, "
            f"not a number. Give USD per {price_per_tokens:,} tokens as a number."
            f"{shape}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PricingTableError(
            f"Invalid price for {where}: {value!r} is not a finite number.{shape}"
        )
    try:
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise PricingTableError(
            f"Invalid price for {where}: {value!r} is not a number. "
            f"Give USD per {price_per_tokens:,} tokens, such as 0.15.{shape}"
        ) from None
    if not price.is_finite():
        raise PricingTableError(
            f"Invalid price for {where}: {value!r} is not a finite number.{shape}"
        )
    if price < 0:
        raise PricingTableError(
            f"Invalid price for {where}: {value!r} is negative. "
            f"Prices are USD per {price_per_tokens:,} tokens and at least 0.{shape}"
        )
    # "-0" is zero, but its sign would carry into every cost it prices.
    price = price.copy_abs()
    if price.adjusted() > MAX_PRICE_EXPONENT:
        raise PricingTableError(
            f"Invalid price for {where}: {value!r} is far too large for a price in "
            f"USD per {price_per_tokens:,} tokens.{shape}"
        )
    per_million = DECIMAL_CONTEXT.divide(price * MILLION, price_per_tokens)
    if per_million > PLAUSIBLE_MAX_PER_MILLION:
        message = (
            f"The price for {where} is "
            f"{describe_rate(price, price_per_tokens)}. Check the unit: this "
            f"table is in USD per {price_per_tokens:,} tokens."
        )
        logger.warning("%s", message)
        warn_in_setup(PricingWarning(message))
    return price


def parse_price_per_tokens(
    value: object,
    *,
    provider: str,
    model: str,
    region: str | None = None,
    expected_shape: str = "",
    field: str = "price_per_tokens",
) -> int:
    """Validate a `price_per_tokens` unit: a whole number of tokens, at least 1.

    `field` names the unit in the error, such as `tiers.flex.price_per_tokens`.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        where = describe_entry(provider, model, region, field)
        shape = f" Expected shape: {expected_shape}" if expected_shape else ""
        raise PricingTableError(
            f"Invalid unit for {where}: {value!r}. `price_per_tokens` is the number "
            "of tokens the prices are for, a whole number such as 1000 or 1000000."
            f"{shape}"
        )
    return value


INVALID_PRICE_FIX = (
    "Build the Price from Decimal rates of at least 0 (Decimal('0.15'), not "
    "0.15), or report it to the plugin's author."
)
"""The advice that ends a warning about a plugin price that `price_problem` rejects."""


def price_problem(price: Price) -> str | None:
    """Return what makes a `Price` from a plugin unusable, or None when it is valid.

    Every rate must be a finite `Decimal` of at least 0, `price_per_tokens`
    a whole number of at least 1, `checked` None or a date, and
    `long_context` a tuple of `LongContextTier` whose `above_input_tokens` is
    a whole number of at least 0. Tables parsed from user input are checked
    as they are read, so this is for the `Price` objects that plugins build.
    """
    rates: list[tuple[str, object]] = [
        ("input", price.input),
        ("output", price.output),
        ("cache_read", price.cache_read),
        ("cache_write", price.cache_write),
    ]
    rates += [(f"other.{kind}", rate) for kind, rate in price.other.items()]
    rates += [(f"per_call.{tool}", rate) for tool, rate in price.per_call.items()]
    for field, rate in rates:
        if rate is None and field in ("cache_read", "cache_write"):
            continue
        if not isinstance(rate, Decimal):
            return f"{field} is {rate!r}, a {type(rate).__name__}, not a Decimal"
        if not rate.is_finite() or rate < 0:
            return f"{field} is {rate}, not a finite number of at least 0"
    unit = price.price_per_tokens
    if isinstance(unit, bool) or not isinstance(unit, int) or unit < 1:
        return f"price_per_tokens is {unit!r}, not a whole number of at least 1"
    checked: object = price.checked
    if checked is not None and not isinstance(checked, dt.date):
        return f"checked is {checked!r}, not a datetime.date"
    # Typed as object, because a plugin may pass anything despite the annotation.
    tiers: object = price.long_context
    if not isinstance(tiers, (tuple, list)):
        return f"long_context is {tiers!r}, not a tuple of LongContextTier"
    for tier in tiers:
        if not isinstance(tier, LongContextTier):
            return f"long_context contains {tier!r}, not a LongContextTier"
        threshold = tier.above_input_tokens
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int)
            or threshold < 0
        ):
            return (
                f"a long-context tier's above_input_tokens is {threshold!r}, not a "
                "whole number of at least 0"
            )
        problem = price_problem(tier.price)
        if problem is not None:
            return f"long-context tier above {threshold}: {problem}"
    return None


def describe_entry(
    provider: str, model: str, region: str | None, field: str | None
) -> str:
    """Describe a price-table entry for an error message."""
    parts = [f"provider {provider!r}", f"model {model!r}"]
    if region is not None:
        parts.append(f"region {region!r}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ", ".join(parts)


def compute_cost(usage: Usage, price: Price) -> Cost:
    """Compute the exact cost of `usage` at `price`.

    Every token is charged once: a token in a priced subset (`input_audio`,
    `cache_write_1h`, ...) at the subset's rate, a cached input token at the
    cache-read rate, a cache write token at the cache-write rate, and every
    other input or output token at the input or output rate. Subset tokens
    that must also be cached, because the subsets and the cache counts add up
    to more than the input count, take the cache rate only. A long-context
    tier reprices the whole request. Tool calls are charged per call; tools
    the price does not list are named in `Cost.parts` under `unpriced:<tool>`
    with a zero amount, so that callers can tell the total is a lower bound.
    Subset tokens whose rate the price lacks are charged at the rate of the
    count they belong to, and named under `estimated:<kind>` with a zero
    amount.
    """
    if usage.other_tokens or usage.tool_calls or price.long_context:
        return _compute_cost_in_full(usage, price)
    rates = per_token_rates(price)
    if rates is None:
        return _compute_cost_in_full(usage, price)
    multiply = DECIMAL_CONTEXT.multiply
    add = DECIMAL_CONTEXT.add
    input_rate, cache_read_rate, cache_write_rate, output_rate = rates
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    plain_input = (usage.input_tokens or 0) - cache_read - cache_write
    output = usage.output_tokens or 0
    parts: dict[str, Decimal] = {}
    total = _ZERO
    if plain_input > 0:
        total = parts["input"] = multiply(input_rate, plain_input)
    if cache_read:
        parts["cache_read"] = amount = multiply(cache_read_rate, cache_read)
        total = add(total, amount)
    if cache_write > 0:
        parts["cache_write"] = amount = multiply(cache_write_rate, cache_write)
        total = add(total, amount)
    if output:
        parts["output"] = amount = multiply(output_rate, output)
        total = add(total, amount)
    return Cost(total, parts)


Rates = tuple[Decimal, Decimal, Decimal, Decimal]

# id(price) -> (price, per-token rates); the price is kept so the id stays valid.
_RATE_CACHE: dict[int, tuple[Price, Rates | None]] = {}
_RATE_CACHE_SIZE = 4096


def per_token_rates(price: Price) -> Rates | None:
    """Return the input, cache-read, cache-write and output USD per token.

    Dividing by a power of ten is exact in Decimal, so these rates give the
    same result as multiplying first; for any other unit, return None and let
    the caller multiply first.
    """
    cached = _RATE_CACHE.get(id(price))
    if cached is not None and cached[0] is price:
        return cached[1]
    unit = price.price_per_tokens
    rates = None
    if str(unit).rstrip("0") == "1":
        divide = DECIMAL_CONTEXT.divide
        cache_read = price.input if price.cache_read is None else price.cache_read
        cache_write = price.input if price.cache_write is None else price.cache_write
        rates = (
            divide(price.input, unit),
            divide(cache_read, unit),
            divide(cache_write, unit),
            divide(price.output, unit),
        )
    if len(_RATE_CACHE) >= _RATE_CACHE_SIZE:
        _RATE_CACHE.clear()
    _RATE_CACHE[id(price)] = (price, rates)
    return rates


def _compute_cost_in_full(usage: Usage, price: Price) -> Cost:
    price = price.for_input_tokens(usage.input_tokens)
    ctx = DECIMAL_CONTEXT
    input_tokens = usage.input_tokens or 0
    output_tokens = usage.output_tokens or 0
    other = usage.other_tokens
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    parts: dict[str, Decimal] = {}

    plain_input = input_tokens - cache_read - cache_write
    plain_output = output_tokens
    # Input tokens counted in a priced subset as well as cached or written to
    # the cache. They cost the cache rate only, as OpenAI prices cached audio
    # of its realtime models at the cached text rate (2.50 and 0.30 USD per
    # million for gpt-4o-realtime-preview and gpt-4o-mini-realtime-preview).
    overlap = 0
    if usage.input_tokens is not None:
        priced = sum(
            tokens
            for kind, tokens in other.items()
            if kind in INPUT_SUBSET_KINDS
            and kind != "cache_write_1h"
            and kind in price.other
        )
        overlap = max(cache_read + cache_write + priced - input_tokens, 0)
    estimated = []
    for kind, tokens in other.items():
        if not tokens:
            continue
        rate = price.other.get(kind)
        if rate is None:
            # The tokens stay in the count they are part of, at its rate.
            if kind in INPUT_SUBSET_KINDS or kind in OUTPUT_SUBSET_KINDS:
                estimated.append(kind)
            continue
        if kind == "cache_write_1h":
            cache_write -= tokens
        elif kind in INPUT_SUBSET_KINDS:
            plain_input -= tokens
            cached = min(overlap, tokens)
            overlap -= cached
            tokens -= cached
        elif kind in OUTPUT_SUBSET_KINDS:
            plain_output -= tokens
        if tokens:
            parts[kind] = ctx.multiply(rate, tokens)

    _add_part(parts, "input", price.input, max(plain_input, 0))
    cache_read_rate = price.input if price.cache_read is None else price.cache_read
    _add_part(parts, "cache_read", cache_read_rate, cache_read)
    cache_write_rate = price.input if price.cache_write is None else price.cache_write
    _add_part(parts, "cache_write", cache_write_rate, max(cache_write, 0))
    _add_part(parts, "output", price.output, max(plain_output, 0))

    unit = price.price_per_tokens
    for kind, amount in parts.items():
        parts[kind] = ctx.divide(amount, unit)

    for kind in estimated:
        parts[ESTIMATED_PREFIX + kind] = _ZERO

    for tool, calls in usage.tool_calls.items():
        if not calls:
            continue
        rate = price.per_call.get(tool)
        if rate is None:
            parts[UNPRICED_PREFIX + tool] = _ZERO
        else:
            parts[f"tool:{tool}"] = ctx.multiply(rate, calls)

    total = _ZERO
    for amount in parts.values():
        total = ctx.add(total, amount)
    return Cost(total=total, parts=parts)


def _add_part(parts: dict[str, Decimal], kind: str, rate: Decimal, tokens: int) -> None:
    if tokens:
        parts[kind] = DECIMAL_CONTEXT.multiply(rate, tokens)


def request_day(requested_at: dt.datetime | None) -> dt.date:
    """Return the UTC day a request was sent on, which chooses among dated prices.

    None stands for now, and a naive datetime is taken as UTC.
    """
    if requested_at is None:
        return dt.datetime.now(dt.UTC).date()
    if requested_at.tzinfo is not None:
        requested_at = requested_at.astimezone(dt.UTC)
    return requested_at.date()


def price_with_source(price: Price, source: str, checked: dt.date | None) -> Price:
    """Return `price` with its source and check date set."""
    return attrs.evolve(price, source=source, checked=checked)


def tidy_decimal(value: Decimal) -> Decimal:
    """Return `value` without trailing zeros and without an exponent.

    `Decimal("0.000010800")` becomes `Decimal("0.0000108")` and
    `Decimal("1.2E+2")` becomes `Decimal("120")`; the value is unchanged.
    """
    normalized = value.normalize(DECIMAL_CONTEXT)
    if normalized.as_tuple().exponent > 0:  # type: ignore[operator]
        return normalized.quantize(_ONE, context=DECIMAL_CONTEXT)
    return normalized


def likely_typo(name: str, known: Iterable[str]) -> str | None:
    """Return the id in `known` that `name` misspells, if there is one.

    A misspelling here is the same id in other letter case or with other
    separators (`GPT-4o-mini`, `gpt4o-mini`, `us-east1`), or one edit on
    letters: a letter added, dropped or replaced, or two neighbouring
    characters swapped (`gpt-4o-mnii`). An id that differs in a digit is
    another version, not a misspelling, so `gpt-5.7` does not match
    `gpt-5.6`, and one with a new last letter is a variant, so `gpt-4v` does
    not match `gpt-4`.
    """
    known = list(known)
    return same_id_spelled_otherwise(name, known) or next(
        (
            candidate
            for candidate in known
            if candidate != name and _one_letter_edit(name, candidate)
        ),
        None,
    )


def suggested_name(name: str, choices: Iterable[str]) -> str | None:
    """Return the choice that `name` most likely means, or None.

    A misspelling that `likely_typo` finds comes first, because difflib
    misses the same name in other letter case (`OpenAI` for `openai`).
    """
    choices = list(choices)
    return likely_typo(name, choices) or closest_name(name, choices)


def closest_name(name: str, choices: Iterable[str]) -> str | None:
    """Return the choice closest to `name` by `difflib`, or None when none is close."""
    # Imported here, for error messages only, to keep `import llmfy` cheap.
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def same_id_spelled_otherwise(name: str, known: Iterable[str]) -> str | None:
    """Return the id in `known` that `name` spells in other case or separators."""
    bare = _bare_id(name)
    for candidate in known:
        if candidate != name and _bare_id(candidate) == bare:
            return candidate
    return None


def _bare_id(name: str) -> str:
    """Return `name` in lower case without the separators `-`, `_`, `.` and spaces."""
    return name.casefold().translate(_SEPARATORS)


_SEPARATORS = str.maketrans("", "", "-_. ")


def warn_if_misspelt(
    keyword: str, key: str, model: str, known: Iterable[str], kind: str
) -> None:
    """Warn when the `model` of an override entry misspells a known model id.

    `keyword` is the table's argument (`openai_pricing`), `key` the entry's
    key, which names `model`, and `kind` the kind of id (`an OpenAI`).
    """
    meant = likely_typo(model, known)
    if meant is None:
        return
    unknown = "which is" if model == key else f"whose model {model!r} is"
    message = (
        f"{keyword} has an entry for {key!r}, {unknown} not {kind} model id that "
        f"llmfy knows. Did you mean {meant!r}? As written, the entry prices only "
        f"requests for {key!r}, and {meant!r} keeps its bundled price."
    )
    logger.warning("%s", message)
    warn_in_setup(PricingWarning(message))


def _one_letter_edit(first: str, second: str) -> bool:
    if abs(len(first) - len(second)) > 1:
        return False
    start = 0
    while start < min(len(first), len(second)) and first[start] == second[start]:
        start += 1
    end_first, end_second = len(first), len(second)
    while (
        end_first > start
        and end_second > start
        and first[end_first - 1] == second[end_second - 1]
    ):
        end_first -= 1
        end_second -= 1
    differing = first[start:end_first] + second[start:end_second]
    if len(first) == len(second) and end_first - start == 2:
        # Two neighbouring characters swapped.
        return first[start:end_first] == second[start:end_second][::-1]
    if len(differing) == 1 and start == min(len(first), len(second)):
        # A letter added at the end names a variant (`gpt-4v`, `o3s`), unless
        # it repeats the last one (`gpt-4o-minii`). A digit is a version.
        return start > 0 and differing.isalpha() and differing == first[start - 1]
    return len(differing) <= 2 and differing.isalpha()


def describe_rate(rate: Decimal, price_per_tokens: int) -> str:
    """Describe a rate in its own unit and, for any other unit, per million tokens.

    Returns `5000 USD per million tokens` for a rate per million, and
    `0.06 USD per 1,000 tokens, which is 60 USD per million tokens` otherwise.
    """
    if price_per_tokens == MILLION:
        return f"{format_decimal(rate)} USD per million tokens"
    per_million = DECIMAL_CONTEXT.divide(rate * MILLION, price_per_tokens)
    return (
        f"{format_decimal(rate)} USD per {price_per_tokens:,} tokens, which is "
        f"{format_decimal(per_million)} USD per million tokens"
    )


def format_ratio(ratio: Decimal) -> str:
    """Format a ratio for a message: whole from 10 up (`33,333`), else 3 digits."""
    if ratio >= 10:
        return f"{ratio:,.0f}"
    return format_decimal(ratio.normalize(_RATIO_CONTEXT))


def format_decimal(value: Decimal) -> str:
    """Format a Decimal in plain notation without trailing zeros (`0.0000108`)."""
    if value == 0:
        return "0"
    return format(value.normalize(DECIMAL_CONTEXT), "f")


def price_from_mapping(
    entry: object,
    *,
    provider: str,
    model: str,
    region: str | None,
    default_unit: int,
    expected_shape: str,
    source: str,
    allowed_extra: frozenset[str] = frozenset(),
    field_prefix: str = "",
) -> Price:
    """Build a `Price` from one entry of a user's override table.

    `entry` has `input` and `output`, and optionally `cache_read`,
    `cache_write` and `price_per_tokens` (the unit, `default_unit` when absent).
    Keys in `allowed_extra` are left to the caller; any other key is an error.
    `field_prefix` starts each field name in the errors, such as `tiers.flex.`
    for the prices of a tier inside a model's entry.
    """
    if not isinstance(entry, Mapping):
        where = describe_entry(
            provider, model, region, field_prefix.rstrip(".") or None
        )
        raise PricingTableError(
            f"Invalid price entry for {where}: expected a mapping of prices, got "
            f"{type(entry).__name__} {entry!r}. Expected shape: {expected_shape}"
        )
    known = {"input", "output", "cache_read", "cache_write", "price_per_tokens"}
    unknown = sorted(set(entry) - known - allowed_extra)
    if unknown:
        where = describe_entry(provider, model, region, field_prefix + unknown[0])
        raise PricingTableError(
            f"Unknown field in the price entry for {where}. Allowed fields: "
            f"{', '.join(sorted(known | allowed_extra))}. "
            f"Expected shape: {expected_shape}"
        )
    for required in ("input", "output"):
        if required not in entry:
            where = describe_entry(provider, model, region, field_prefix + required)
            raise PricingTableError(
                f"Missing price for {where}: every entry needs `input` and "
                f"`output`. Expected shape: {expected_shape}"
            )

    unit = default_unit
    if "price_per_tokens" in entry:
        unit = parse_price_per_tokens(
            entry["price_per_tokens"],
            provider=provider,
            model=model,
            region=region,
            expected_shape=expected_shape,
            field=field_prefix + "price_per_tokens",
        )

    def value(field: str) -> Decimal | None:
        if field not in entry or (entry[field] is None and field.startswith("cache")):
            return None
        return parse_price_value(
            entry[field],
            provider=provider,
            model=model,
            region=region,
            field=field_prefix + field,
            price_per_tokens=unit,
            expected_shape=expected_shape,
        )

    input_price = value("input")
    output_price = value("output")
    assert input_price is not None and output_price is not None
    return Price(
        input=input_price,
        output=output_price,
        cache_read=value("cache_read"),
        cache_write=value("cache_write"),
        price_per_tokens=unit,
        source=source,
    )
