"""The `long_context` field of a user's price entry: validation and parsing.

`openai_pricing=`, `bedrock_pricing=` and price files share one shape:

    "long_context": [{"above_input_tokens": 272000, "input": 5.00, "output": 22.50}]

Each tier has a threshold and rates in the unit and with the rate fields of
the entry it belongs to. When a request's input tokens, cached ones included,
exceed a tier's threshold, the tier's rates replace the entry's for the whole
request (see `Price.for_input_tokens`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

from llmfy_core.errors import PricingTableError, PricingWarning, warn_in_setup
from llmfy_core.logs import get_logger
from llmfy_core.model import LongContextTier, Price, Unpriced
from llmfy_core.pricing import describe_entry

logger = get_logger("llmfy.pricing")

LONG_CONTEXT = "long_context"
THRESHOLD = "above_input_tokens"
REQUIRED_RATES = ("input", "output")
# The largest threshold taken. No request has more input tokens, and Python
# cannot turn an int of over 4,300 digits into text for a report.
MAX_THRESHOLD = 2**63 - 1

RatesParser = Callable[[Mapping[str, Any], str], Price]
"""Builds a tier's `Price` from its rate fields and the tier's field path."""

ErrorFactory = Callable[[str, str], Exception]
"""Returns the exception to raise for an error message about a field path."""


def _pricing_table_error(field: str, message: str) -> Exception:
    return PricingTableError(message)


def parse_long_context(
    value: object,
    *,
    provider: str,
    model: str,
    region: str | None,
    field: str,
    optional_rates: Collection[str],
    expected_shape: str,
    parse_rates: RatesParser,
    fail: ErrorFactory = _pricing_table_error,
) -> tuple[LongContextTier, ...]:
    """Validate the `long_context` list of a price entry and return its tiers.

    `value` is a list of mappings, each with `above_input_tokens` (a whole
    number above 0, unique in the list), `input`, `output` and any of
    `optional_rates`. None means no tiers. `field` is the list's path in
    error messages, such as `tiers.flex.long_context`.

    `parse_rates(rates, tier_field)` builds a tier's `Price` from its rate
    fields, in the unit of the entry, and names its own faults under
    `tier_field` (`long_context[0]`). The tiers are returned in ascending
    order of threshold.

    Faults of the list's shape raise `fail(field_path, message)`, by default
    a `PricingTableError`, with a message that names the provider, model,
    region and field and ends with `expected_shape`.
    """
    if value is None:
        return ()
    shape = f" Expected shape: {expected_shape}"

    def where(at: str) -> str:
        return describe_entry(provider, model, region, at)

    if not isinstance(value, (list, tuple)):
        hint = (
            " To give one tier, put its mapping in a list."
            if isinstance(value, Mapping)
            else ""
        )
        raise fail(
            field,
            f"Invalid long-context tiers for {where(field)}: expected a list of "
            f"tiers, got {type(value).__name__} {value!r}.{hint}{shape}",
        )

    tiers: list[LongContextTier] = []
    # The index of the tier that gave each threshold, for duplicates.
    first_index: dict[int, int] = {}
    for index, item in enumerate(value):
        tier_field = f"{field}[{index}]"
        tier = _checked_tier(item, tier_field, optional_rates, where, shape, fail)
        threshold = _threshold(tier, tier_field, where, shape, fail)
        if threshold in first_index:
            at = f"{tier_field}.{THRESHOLD}"
            raise fail(
                at,
                f"Duplicate long-context threshold for {where(at)}: "
                f"{field}[{first_index[threshold]}] and {tier_field} both apply "
                f"above {threshold} input tokens. Give each tier its own "
                f"threshold, or merge the two tiers into one.{shape}",
            )
        first_index[threshold] = index
        rates = {key: rate for key, rate in tier.items() if key != THRESHOLD}
        tiers.append(LongContextTier(threshold, parse_rates(rates, tier_field)))
    return tuple(sorted(tiers, key=lambda tier: tier.above_input_tokens))


def warn_if_tiers_dropped(
    keyword: str,
    entry: Mapping[str, Any],
    price: Price,
    bundled: Price | Unpriced | None,
    *,
    provider: str,
    model: str,
    region: str | None,
) -> None:
    """Warn when an entry without `long_context` replaces a price that has tiers.

    `keyword` is the table's argument (`openai_pricing`), `entry` the user's
    price entry, `price` its parsed price and `bundled` the bundled price it
    replaces. The entry then charges its flat rates above the bundled
    thresholds, where the bundled price charges more. An entry with
    `long_context: []`, or whose input and output rates reach those of every
    bundled tier, keeps its flat rates without a warning.
    """
    if LONG_CONTEXT in entry or not isinstance(bundled, Price):
        return
    if not bundled.long_context:
        return
    if all(_charges_at_least(price, tier.price) for tier in bundled.long_context):
        return

    lowest = min(bundled.long_context, key=lambda tier: tier.above_input_tokens)
    where = describe_entry(provider, model, region, None)
    message = (
        f"{keyword} prices {where} without `{LONG_CONTEXT}`, so a request of "
        f"more than {lowest.above_input_tokens:,} input tokens, cached ones "
        "included, is charged the entry's flat rates. The bundled price charges "
        f"more above that: input {lowest.price.input} and output "
        f"{lowest.price.output} USD per {lowest.price.price_per_tokens:,} tokens. "
        f"Give the entry's own long-context rates in `{LONG_CONTEXT}`, or "
        f"`{LONG_CONTEXT}: []` to keep the flat rates for every request."
    )
    logger.warning("%s", message)
    warn_in_setup(PricingWarning(message))


def _charges_at_least(price: Price, other: Price) -> bool:
    """Return whether `price` charges at least `other` per input and output token."""
    # Cross-multiplied, so that prices in different units compare exactly.
    unit, other_unit = price.price_per_tokens, other.price_per_tokens
    return (
        price.input * other_unit >= other.input * unit
        and price.output * other_unit >= other.output * unit
    )


def _checked_tier(
    tier: object,
    tier_field: str,
    optional_rates: Collection[str],
    where: Callable[[str], str],
    shape: str,
    fail: ErrorFactory,
) -> Mapping[str, Any]:
    """Return `tier` if it is a mapping with a threshold and known rate fields."""
    if not isinstance(tier, Mapping):
        raise fail(
            tier_field,
            f"Invalid long-context tier for {where(tier_field)}: expected a mapping "
            f"of `{THRESHOLD}` and prices, got {type(tier).__name__} {tier!r}."
            f"{shape}",
        )
    if LONG_CONTEXT in tier:
        at = f"{tier_field}.{LONG_CONTEXT}"
        raise fail(
            at,
            f"Invalid nesting for {where(at)}: a long-context tier cannot have "
            "long-context tiers of its own. List every tier in the entry's "
            f"`{LONG_CONTEXT}`.{shape}",
        )
    allowed = {THRESHOLD, *REQUIRED_RATES, *optional_rates}
    unknown = sorted(str(key) for key in tier if key not in allowed)
    if unknown:
        at = f"{tier_field}.{unknown[0]}"
        raise fail(
            at,
            f"Unknown field in the long-context tier for {where(at)}. Allowed "
            f"fields: {', '.join(sorted(allowed))}. A tier's prices are in the "
            f"unit of its entry.{shape}",
        )
    for required in (THRESHOLD, *REQUIRED_RATES):
        if required not in tier:
            at = f"{tier_field}.{required}"
            raise fail(
                at,
                f"Missing field for {where(at)}: every long-context tier needs "
                f"`{THRESHOLD}`, `input` and `output`.{shape}",
            )
    return tier


def _threshold(
    tier: Mapping[str, Any],
    tier_field: str,
    where: Callable[[str], str],
    shape: str,
    fail: ErrorFactory,
) -> int:
    """Return the tier's threshold as an int, or raise naming what is wrong.

    Any integer type is taken (an `int`, or a NumPy integer, which has
    `__index__`), but not a bool, and not a float or Decimal even when whole.
    """
    value = tier[THRESHOLD]
    at = f"{tier_field}.{THRESHOLD}"
    try:
        threshold = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        threshold = None
    if threshold is not None and 1 <= threshold <= MAX_THRESHOLD:
        return threshold

    whole = threshold if threshold is not None else _whole_value(value)
    if whole is not None and whole > MAX_THRESHOLD:
        # Not shown: its text may have more digits than Python converts.
        problem = (
            f"a number of {whole.bit_length()} bits is above {MAX_THRESHOLD}, "
            "and no request has that many input tokens"
        )
    else:
        # A price file's decimal numbers are Decimals, so show 272000.0 as written.
        written = str(value) if isinstance(value, Decimal) else repr(value)
        if threshold is None and whole is not None and whole > 0:
            kind = type(value).__name__
            problem = f"{written} ({kind}) is not an integer; write it as {whole}"
        else:
            problem = f"{written} is not a whole number above 0"
    raise fail(
        at,
        f"Invalid long-context threshold for {where(at)}: {problem}. Give the "
        "number of input tokens, cached ones included, above which the tier's "
        f"prices apply to the whole request, such as 200000.{shape}",
    )


def _whole_value(value: object) -> int | None:
    """Return a finite float or Decimal without a fraction as an int, else None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == int(value):
        return int(value)
    return None
