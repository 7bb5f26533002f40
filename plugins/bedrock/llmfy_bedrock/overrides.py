"""The `bedrock_pricing=` override table: validation and conversion.

The documented format maps a model id (or an inference-profile id or ARN) to
AWS Regions, and each Region to its prices, in USD per 1,000 tokens unless
`price_per_tokens` names another unit:

    {"anthropic.claude-3-5-sonnet-20240620-v1:0": {
        "us-east-1": {"region": "US East (N. Virginia)",
                      "input": 0.003, "output": 0.015}}}

`cache_read`, `cache_write` and `cache_write_1h` (cache writes kept for one
hour) are optional. Cache tokens without a price are charged at the `input`
rate, and 1-hour writes without one at the `cache_write` rate. `long_context`
(see `llmfy_core.long_context`) lists the rates of requests above an input
token threshold, with the same rate fields and unit as the Region's. An entry
applies to on-demand and batch requests of every service tier. Model ids
resolve the way the bundled table resolves them, so an entry for a model id
also prices its `us.`, `eu.`, `global.` (...) profiles and its ARNs in that
Region. A key that the bundled table reads as one of its models, such as
`anthropic.claude-sonnet-4-5-20250929` or `claude-sonnet-4-5-20250929-v1:0`,
prices that model as if the key were the bundled model id.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

from llmfy_bedrock.prices import (
    PROVIDER,
    BedrockPriceTable,
    EntryKey,
    bundled_spelling,
    bundled_table,
)
from llmfy_bedrock.resolve import parse_model_id
from llmfy_core import Price, PricingTableError, PricingWarning
from llmfy_core.errors import warn_in_setup
from llmfy_core.logs import get_logger
from llmfy_core.long_context import (
    LONG_CONTEXT,
    parse_long_context,
    warn_if_tiers_dropped,
)
from llmfy_core.pricing import (
    describe_entry,
    likely_typo,
    parse_price_per_tokens,
    parse_price_value,
    price_from_mapping,
    warn_if_misspelt,
)

logger = get_logger("llmfy.bedrock")

OVERRIDE_UNIT = 1000
EXPECTED_SHAPE = (
    "{'MODEL_ID': {'REGION': {'region': 'US East (N. Virginia)', 'input': 0.003, "
    "'output': 0.015, 'cache_read': 0.0003, 'cache_write': 0.00375}}} "
    "with prices in USD per 1,000 tokens (or per `price_per_tokens` tokens), "
    "for example {'anthropic.claude-3-5-sonnet-20240620-v1:0': {'us-east-1': "
    "{'region': 'US East (N. Virginia)', 'input': 0.003, 'output': 0.015}}}"
)
SOURCE = "bedrock_pricing override"

# Region codes: `us-east-1`, `us-gov-west-1`, `us-isob-east-1`, and the
# European Sovereign Cloud's `eusc-de-east-1`.
_REGION = re.compile(r"[a-z]{2,4}(-[a-z]+)*-\d+")
ONE_HOUR_WRITE = "cache_write_1h"
_PRICE_FIELDS = frozenset(
    {
        "input",
        "output",
        "cache_read",
        "cache_write",
        ONE_HOUR_WRITE,
        "price_per_tokens",
        LONG_CONTEXT,
    }
)
_EXTRA_FIELDS = frozenset({"region", ONE_HOUR_WRITE, LONG_CONTEXT})
# The optional rates of a long-context tier, which are a Region's without its unit.
_TIER_RATES = frozenset({"cache_read", "cache_write", ONE_HOUR_WRITE})
LONG_CONTEXT_SHAPE = (
    "'long_context': [{'above_input_tokens': 200000, 'input': 0.006, "
    "'output': 0.0225}] in the Region's prices, in their unit; optional "
    f"{', '.join(sorted(_TIER_RATES))}"
)


def parse_overrides(table: Mapping[str, Any]) -> BedrockPriceTable:
    """Validate a `bedrock_pricing` table and return it as a price table.

    Raises `PricingTableError` naming the model, Region and field at fault and
    showing the expected shape.
    """
    entries: dict[EntryKey, Price] = {}
    # The key that prices each (model id, Region) pair, to catch two keys
    # that spell one bundled model differently.
    keys: dict[tuple[str, str], str] = {}
    # The models priced in each Region that warns, so that it warns once.
    unknown_regions: dict[str, list[str]] = {}
    for model, regions in table.items():
        _check_model(model)
        _check_spelling(model)
        _check_regions(model, regions)
        # Requests carry the bundled spelling, so a key written without its
        # version suffix or provider is stored under that spelling too.
        bundled_id = bundled_spelling(parse_model_id(model))
        for region, entry in regions.items():
            _check_region(model, region, entry)
            if _region_advice(region) is not None:
                unknown_regions.setdefault(region, []).append(model)
            _check_unit(model, region, entry)
            price = _region_price(model, region, entry)
            warn_if_tiers_dropped(
                "bedrock_pricing",
                entry,
                price,
                bundled_table().lookup(bundled_id or model, region, None, False),
                provider=PROVIDER,
                model=model,
                region=region,
            )
            _check_region_name(model, region, entry.get("region"))
            for priced in (model, bundled_id):
                if priced is None:
                    continue
                _check_one_key(keys, priced, region, model)
                entries[(priced, region, False)] = price
                entries[(priced, region, True)] = price
    _warn_unknown_regions(unknown_regions)
    return BedrockPriceTable(entries, complete=False)


def _region_price(model: str, region: str, entry: Mapping[str, Any]) -> Price:
    """Build the price of one Region's entry, with its long-context tiers."""
    price = _rates_price(model, region, entry, OVERRIDE_UNIT, "")
    if LONG_CONTEXT not in entry:
        return price
    tiers = parse_long_context(
        entry[LONG_CONTEXT],
        provider=PROVIDER,
        model=model,
        region=region,
        field=LONG_CONTEXT,
        optional_rates=_TIER_RATES,
        expected_shape=LONG_CONTEXT_SHAPE,
        parse_rates=lambda rates, field: _rates_price(
            model, region, rates, price.price_per_tokens, f"{field}."
        ),
    )
    return attrs.evolve(price, long_context=tiers)


def _rates_price(
    model: str, region: str, entry: Mapping[str, Any], unit: int, field_prefix: str
) -> Price:
    """Build a `Price` from the rate fields of a Region's entry or of one of its tiers.

    `unit` applies unless `entry` has its own `price_per_tokens`.
    """
    price = price_from_mapping(
        entry,
        provider=PROVIDER,
        model=model,
        region=region,
        default_unit=unit,
        expected_shape=EXPECTED_SHAPE,
        source=SOURCE,
        allowed_extra=_EXTRA_FIELDS,
        field_prefix=field_prefix,
    )
    if ONE_HOUR_WRITE not in entry:
        return price
    rate = parse_price_value(
        entry[ONE_HOUR_WRITE],
        provider=PROVIDER,
        model=model,
        field=field_prefix + ONE_HOUR_WRITE,
        region=region,
        price_per_tokens=price.price_per_tokens,
        expected_shape=EXPECTED_SHAPE,
    )
    return attrs.evolve(price, other={ONE_HOUR_WRITE: rate})


def _check_one_key(
    keys: dict[tuple[str, str], str], priced: str, region: str, model: str
) -> None:
    """Raise when two keys of the table price one model id in one Region."""
    other = keys.setdefault((priced, region), model)
    if other == model:
        return
    where = describe_entry(PROVIDER, priced, region, None)
    raise _fail(
        f"Invalid bedrock_pricing: the keys {other!r} and {model!r} both price "
        f"{where}. Keep one of them."
    )


def _fail(message: str) -> PricingTableError:
    return PricingTableError(f"{message} Expected shape: {EXPECTED_SHAPE}")


def _check_model(model: object) -> None:
    if not isinstance(model, str) or not model.strip():
        raise _fail(
            f"Invalid bedrock_pricing: the model key {model!r} is not a model id; "
            "use a Bedrock model id, inference-profile id or ARN as the key."
        )


def _check_spelling(model: str) -> None:
    """Warn when `model` is unknown and looks like a misspelt bundled model id."""
    bundled = bundled_table()
    base = parse_model_id(model).base_model
    if base is not None and bundled.known_model(base) is None:
        warn_if_misspelt(
            "bedrock_pricing", model, base, bundled.model_ids(), "a Bedrock"
        )


def _check_regions(model: str, regions: object) -> None:
    if not isinstance(regions, Mapping):
        where = describe_entry(PROVIDER, model, None, None)
        raise _fail(
            f"Invalid price entry for {where}: expected a mapping of AWS Region to "
            f"prices, got {type(regions).__name__} {regions!r}."
        )
    if not regions:
        where = describe_entry(PROVIDER, model, None, None)
        raise _fail(f"Invalid price entry for {where}: no Region is given.")
    misplaced = sorted(str(key) for key in regions if key in _PRICE_FIELDS)
    if misplaced:
        where = describe_entry(PROVIDER, model, None, misplaced[0])
        raise _fail(
            f"Invalid price entry for {where}: prices are nested under an AWS Region "
            f"such as 'us-east-1', but {misplaced[0]!r} is given directly under the "
            "model."
        )


def _check_region(model: str, region: object, entry: object) -> None:
    if not isinstance(region, str) or _REGION.fullmatch(region) is None:
        where = describe_entry(PROVIDER, model, None, None)
        raise _fail(
            f"Invalid Region {region!r} for {where}: use an AWS Region code such as "
            "'us-east-1' or 'eu-central-1'."
        )
    if not isinstance(entry, Mapping):
        where = describe_entry(PROVIDER, model, region, None)
        raise _fail(
            f"Invalid price entry for {where}: expected a mapping of prices, got "
            f"{type(entry).__name__} {entry!r}."
        )


def _region_advice(region: str) -> str | None:
    """Return what to do about `region`, or None when it does not warn.

    It warns when neither the bundled prices nor botocore list it.
    """
    if region in _bundled_regions():
        return None
    known = _listed_regions()
    if region in known:
        return None
    meant = likely_typo(region, sorted(known))
    if meant is not None:
        return f"Did you mean {meant!r}?"
    if _aws_regions() is not None:
        return (
            f"Neither the bundled prices nor botocore {_botocore_version()} list "
            "it. Check the Region code. If AWS opened the Region after this "
            "botocore release, upgrade botocore or ignore this warning."
        )
    # Without botocore's list, a real Region such as eu-west-3 would be
    # reported too, so only misspellings of bundled Regions warn.
    return None


def _warn_unknown_regions(unknown_regions: Mapping[str, list[str]]) -> None:
    """Warn once of each Region in `unknown_regions`, naming its first model.

    The entries are kept, so that a Region that AWS opened after the
    installed botocore release still gets the user's price.
    """
    for region, models in unknown_regions.items():
        message = (
            f"bedrock_pricing has an entry for model {models[0]!r} in {region!r}, "
            f"which is not an AWS Region that llmfy knows. {_region_advice(region)} "
            f"As written, the entry prices only requests sent to {region!r}."
            f"{_more_models_note(len(models) - 1, region)}"
        )
        logger.warning("%s", message)
        warn_in_setup(PricingWarning(message))


def _more_models_note(count: int, region: str) -> str:
    """Return the sentence that `count` more models are priced in `region`, if any."""
    if count == 0:
        return ""
    noun = "model" if count == 1 else "models"
    return (
        f" The table prices {count} more {noun} in {region!r}, which are not "
        "warned of separately."
    )


@functools.cache
def _bundled_regions() -> frozenset[str]:
    """Return the Regions that the bundled prices name."""
    return frozenset(key[1] for key in bundled_table().entries() if key[1] is not None)


@functools.cache
def _aws_regions() -> frozenset[str] | None:
    """Return the Regions of botocore's endpoint data, or None if it cannot be read.

    Reading botocore's data takes about 0.1 s, so it is read only for a
    Region that the bundled prices do not name.
    """
    regions: set[str] = set()
    try:
        import botocore.loaders

        endpoints = botocore.loaders.create_loader().load_data("endpoints")
        for partition in endpoints["partitions"]:
            regions.update(partition["regions"])
    except Exception as error:
        # The bundled Regions still catch the usual misspellings.
        logger.debug("botocore's list of Regions could not be read: %r", error)
        return None
    return frozenset(regions)


def _listed_regions() -> frozenset[str]:
    """Return the Regions of the bundled prices and, when it can be read, botocore's."""
    return _bundled_regions() | (_aws_regions() or frozenset())


class AwsRegions(AbstractSet[str]):
    """The Regions of the bundled prices and of botocore's endpoint data.

    botocore's data is read only for a Region that the bundled prices do not
    name. When it cannot be read, every Region counts as a member, because
    the bundled prices name a few Regions only.
    """

    def __contains__(self, region: object) -> bool:
        if region in _bundled_regions():
            return True
        aws_regions = _aws_regions()
        return aws_regions is None or region in aws_regions

    def __iter__(self) -> Iterator[str]:
        return iter(_listed_regions())

    def __len__(self) -> int:
        return len(_listed_regions())


def _botocore_version() -> str:
    import botocore

    return str(botocore.__version__)


def _check_unit(model: str, region: str, entry: Mapping[str, Any]) -> None:
    if "price_per_tokens" not in entry:
        return
    try:
        parse_price_per_tokens(
            entry["price_per_tokens"], provider=PROVIDER, model=model, region=region
        )
    except PricingTableError as error:
        raise _fail(str(error)) from None


def _check_region_name(model: str, region: str, name: object) -> None:
    if name is not None and not isinstance(name, str):
        where = describe_entry(PROVIDER, model, region, "region")
        raise _fail(
            f"Invalid value for {where}: {name!r} is a {type(name).__name__}; the "
            "'region' field is the Region's display name, such as "
            "'US East (N. Virginia)'."
        )
