"""The `openai_pricing=` override table: validation and lookup.

The documented format maps a model id to its prices in USD per million tokens:

    {"gpt-4o-mini": {"input": 0.15, "output": 0.60}}

Optional fields are `cache_read`, `cache_write`, `input_audio`,
`output_audio`, `input_image`, `output_image`, `price_per_tokens` (the unit,
default 1,000,000), `long_context` (see `llmfy_core.long_context`) and
`tiers`, which maps a name of `llmfy_core.pricing.SERVICE_TIERS` (`flex`,
`priority`, `scale`, `ultrafast`) or `batch` (the Batch API) to prices of the
same shape.
An entry without a tier applies to every tier and to the Batch API. A string
value maps a name to another model id, for Azure deployments:
`{"prod-chat": "gpt-4o-mini"}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from llmfy_core import Price, PriceKey, PricingTableError, StaticPriceTable, Unpriced
from llmfy_core.long_context import (
    LONG_CONTEXT,
    parse_long_context,
    warn_if_tiers_dropped,
)
from llmfy_core.model import MILLION
from llmfy_core.pricing import (
    BATCH_TIER,
    SERVICE_TIERS,
    STANDARD_TIERS,
    describe_entry,
    parse_price_value,
    price_from_mapping,
    warn_if_misspelt,
)
from llmfy_openai.extract import EMBEDDINGS_MODEL_NAMES
from llmfy_openai.prices import bundled_model_ids, bundled_price_table, tool_prices
from llmfy_openai.resolve import model_candidates

PROVIDER = "openai"
SOURCE = "openai_pricing override"

EXPECTED_SHAPE = (
    '{"gpt-4o-mini": {"input": 0.15, "output": 0.60}} in USD per million tokens; '
    "optional cache_read, cache_write, input_audio, output_audio, input_image, "
    "output_image, price_per_tokens, long_context "
    '([{"above_input_tokens": 272000, "input": 5.00, "output": 22.50}]) and tiers '
    '({"flex": {...}, "priority": {...}, "batch": {...}}), '
    'or a model id string for an Azure deployment ({"prod-chat": "gpt-4o-mini"})'
)

# The fields that rate a subset of the input or output tokens, and the token
# kind each one prices in `Price.other`.
_SUBSET_FIELDS = {
    "input_audio": "input_audio",
    "output_audio": "output_audio",
    "input_image": "input_image",
    "output_image": "output_image",
}
_EXTRA_FIELDS = frozenset({"tiers", LONG_CONTEXT, *_SUBSET_FIELDS})
# The optional rates of a long-context tier, which are an entry's without its unit.
_TIER_RATES = frozenset({"cache_read", "cache_write", *_SUBSET_FIELDS})
LONG_CONTEXT_SHAPE = (
    '"long_context": [{"above_input_tokens": 272000, "input": 5.00, '
    '"output": 22.50}] in the entry, in the unit of its prices; optional '
    f"{', '.join(sorted(_TIER_RATES))}"
)

# The form of an AWS Region code, such as us-east-1 or us-gov-west-1.
_AWS_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d+")


# The name each model id has in some responses, which a user's table may use
# instead: Azure names text-embedding-ada-002 `ada`, so an `ada` entry still
# prices it. OpenAI's own `ada` was a completions model, shut down on
# 2024-01-04 (OpenAI's deprecations page).
_OTHER_NAMES = {model: name for name, model in EMBEDDINGS_MODEL_NAMES.items()}


class OverrideTable:
    """A parsed `openai_pricing` table, resolving model ids like the bundled one."""

    def __init__(
        self, entries: Mapping[PriceKey, Price | Unpriced], aliases: Mapping[str, str]
    ) -> None:
        self._table = StaticPriceTable(entries, candidates=model_candidates)
        self._aliases = dict(aliases)

    def __len__(self) -> int:
        return len(self._table) + len(self._aliases)

    def lookup(
        self, model: str, region: str | None, service_tier: str | None, batch: bool
    ) -> Price | Unpriced | None:
        """Return the override price of `model`, following deployment aliases.

        An alias whose model has no entry here returns None: the tracker then
        asks the price plugins for that model, from `mapped_model`.
        """
        found = self._table.lookup(model, region, service_tier, batch)
        if found is not None:
            return found
        other_name = _OTHER_NAMES.get(model)
        if other_name is not None:
            found = self._table.lookup(other_name, region, service_tier, batch)
            if found is not None:
                return found
        target = self.mapped_model(model)
        if target is None:
            return None
        return self._table.lookup(target, region, service_tier, batch)

    def mapped_model(self, model: str) -> str | None:
        """Return the model id that an alias entry maps `model` to, if any."""
        if not self._aliases:
            return None
        for candidate in model_candidates(model):
            target = self._aliases.get(candidate)
            if target is not None:
                return target
        return None


def parse_override_table(table: Mapping[str, Any]) -> OverrideTable:
    """Validate an `openai_pricing` table and return it as a price table.

    Raises `PricingTableError` naming the model and field at fault, with the
    expected shape, for wrong nesting, missing `input` or `output`, negative,
    NaN, infinite, boolean or non-numeric prices, unknown fields or tiers, and
    aliases to unknown models.
    """
    entries: dict[PriceKey, Price | Unpriced] = {}
    aliases: dict[str, str] = {}
    for model, entry in table.items():
        if not isinstance(model, str) or not model:
            raise PricingTableError(
                f"Invalid model id {model!r} in openai_pricing: model ids are "
                f"non-empty strings. Expected shape: {EXPECTED_SHAPE}"
            )
        if isinstance(entry, str):
            aliases[model] = entry
            continue
        entries.update(_parse_entry(model, entry))
        _check_spelling(model)

    for model, target in aliases.items():
        _check_alias(model, target, entries)
    return OverrideTable(entries, aliases)


def _check_spelling(model: str) -> None:
    """Warn when `model` is unknown and looks like a misspelt bundled model id."""
    if bundled_price_table().lookup(model, None, None, False) is None:
        warn_if_misspelt(
            "openai_pricing", model, model, bundled_model_ids(), "an OpenAI"
        )


def _parse_entry(model: str, entry: object) -> dict[PriceKey, Price]:
    if not isinstance(entry, Mapping):
        where = describe_entry(PROVIDER, model, None, None)
        raise PricingTableError(
            f"Invalid price entry for {where}: expected a mapping of prices or a model "
            f"id string, got {type(entry).__name__} {entry!r}. If {model!r} is a price "
            f"field, the model id level is missing. Expected shape: {EXPECTED_SHAPE}"
        )
    _check_not_regional(model, entry)
    base = _parse_prices(model, entry, MILLION, None)
    warn_if_tiers_dropped(
        "openai_pricing",
        entry,
        base,
        bundled_price_table().lookup(model, None, None, False),
        provider=PROVIDER,
        model=model,
        region=None,
    )
    parsed = {PriceKey(model): base, PriceKey(model, batch=True): base}

    tiers = entry.get("tiers")
    if tiers is None:
        return parsed
    if not isinstance(tiers, Mapping):
        where = describe_entry(PROVIDER, model, None, "tiers")
        raise PricingTableError(
            f"Invalid tiers for {where}: expected a mapping of tier name to prices, "
            f"got {type(tiers).__name__} {tiers!r}. Expected shape: {EXPECTED_SHAPE}"
        )
    for tier, tier_entry in tiers.items():
        if tier != BATCH_TIER and tier not in SERVICE_TIERS:
            where = describe_entry(PROVIDER, model, None, f"tiers.{tier}")
            allowed = ", ".join(sorted(SERVICE_TIERS | {BATCH_TIER}))
            standard = (
                f" {tier!r} is the standard tier, so give its prices as the "
                "entry's own input and output."
                if tier in STANDARD_TIERS
                else ""
            )
            raise PricingTableError(
                f"Unknown tier for {where}: {tier!r}. Allowed tiers: {allowed}."
                f"{standard} Expected shape: {EXPECTED_SHAPE}"
            )
        if isinstance(tier_entry, Mapping) and "tiers" in tier_entry:
            where = describe_entry(PROVIDER, model, None, f"tiers.{tier}.tiers")
            raise PricingTableError(
                f"Invalid nesting for {where}: a tier cannot have tiers of its own. "
                f"Expected shape: {EXPECTED_SHAPE}"
            )
        price = _parse_prices(model, tier_entry, base.price_per_tokens, f"tiers.{tier}")
        if tier == BATCH_TIER:
            parsed[PriceKey(model, batch=True)] = price
        else:
            parsed[PriceKey(model, service_tier=tier)] = price
    return parsed


def _check_not_regional(model: str, entry: Mapping[str, Any]) -> None:
    """Raise for an entry that nests its prices under AWS Regions, as Bedrock's do.

    A `bedrock_pricing=` table passed as `openai_pricing=`, or as the first
    positional argument, has Region keys where the price fields belong.
    """
    if "input" in entry or "output" in entry:
        return
    nested = [
        key
        for key, value in entry.items()
        if isinstance(value, Mapping)
        and isinstance(key, str)
        and _AWS_REGION.fullmatch(key)
    ]
    if not nested:
        return
    where = describe_entry(PROVIDER, model, None, nested[0])
    raise PricingTableError(
        f"Invalid price entry for {where}: the prices are nested under "
        f"{nested[0]!r}, as in a bedrock_pricing= table, but an openai_pricing= "
        "entry has no regions and applies on every endpoint. Give `input` and "
        "`output` directly under the model id, or pass Bedrock prices as "
        f"bedrock_pricing=. Expected shape: {EXPECTED_SHAPE}"
    )


def _parse_prices(model: str, entry: object, unit: int, prefix: str | None) -> Price:
    field_prefix = "" if prefix is None else f"{prefix}."
    if not isinstance(entry, Mapping):
        where = describe_entry(PROVIDER, model, None, prefix)
        raise PricingTableError(
            f"Invalid price entry for {where}: expected a mapping of prices, got "
            f"{type(entry).__name__} {entry!r}. Expected shape: {EXPECTED_SHAPE}"
        )
    price = price_from_mapping(
        entry,
        provider=PROVIDER,
        model=model,
        region=None,
        default_unit=unit,
        expected_shape=EXPECTED_SHAPE,
        source=SOURCE,
        allowed_extra=_EXTRA_FIELDS,
        field_prefix=field_prefix,
    )
    other: dict[str, Decimal] = {}
    for field, kind in _SUBSET_FIELDS.items():
        if field in entry:
            other[kind] = parse_price_value(
                entry[field],
                provider=PROVIDER,
                model=model,
                field=field_prefix + field,
                price_per_tokens=price.price_per_tokens,
                expected_shape=EXPECTED_SHAPE,
            )
    price = attrs.evolve(price, other=other, per_call=tool_prices())
    if LONG_CONTEXT not in entry:
        return price
    tiers = parse_long_context(
        entry[LONG_CONTEXT],
        provider=PROVIDER,
        model=model,
        region=None,
        field=field_prefix + LONG_CONTEXT,
        optional_rates=_TIER_RATES,
        expected_shape=LONG_CONTEXT_SHAPE,
        parse_rates=lambda rates, field: _parse_prices(
            model, rates, price.price_per_tokens, field
        ),
    )
    return attrs.evolve(price, long_context=tiers)


def _check_alias(model: str, target: str, entries: Mapping[PriceKey, object]) -> None:
    where = describe_entry(PROVIDER, model, None, None)
    if not target:
        raise PricingTableError(
            f"Invalid alias for {where}: the model id is empty. "
            f"Expected shape: {EXPECTED_SHAPE}"
        )
    known_here = any(key.model == target for key in entries)
    if (
        known_here
        or bundled_price_table().lookup(target, None, None, False) is not None
    ):
        return
    raise PricingTableError(
        f"Invalid alias for {where}: {target!r} is neither in openai_pricing nor in "
        "the bundled OpenAI price table. Map the deployment to a priced OpenAI model "
        f"id, or give its prices. Expected shape: {EXPECTED_SHAPE}"
    )
