"""Validation of the `bedrock_pricing=` override table."""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import botocore
import botocore.loaders
import pytest
from llmfy_bedrock import overrides
from llmfy_bedrock.overrides import parse_overrides

from llmfy_core import (
    Price,
    PricingTableError,
    PricingWarning,
    Unpriced,
    llmfy_usage_tracker,
)

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
GOOD_ENTRY = {"region": "US East (N. Virginia)", "input": 0.003, "output": 0.015}


def test_documented_table_parses() -> None:
    table = parse_overrides({MODEL: {"us-east-1": GOOD_ENTRY}})

    price = table.lookup(MODEL, "us-east-1", None, False)

    assert isinstance(price, Price)
    assert price.input == Decimal("0.003")
    assert price.output == Decimal("0.015")
    assert price.price_per_tokens == 1000
    assert price.cache_read is None


def test_cache_prices_parse() -> None:
    entry = {**GOOD_ENTRY, "cache_read": 0.0003, "cache_write": "0.00375"}
    table = parse_overrides({MODEL: {"us-east-1": entry}})

    price = table.lookup(MODEL, "us-east-1", None, True)

    assert isinstance(price, Price)
    assert price.cache_read == Decimal("0.0003")
    assert price.cache_write == Decimal("0.00375")


def test_override_leaves_other_regions_alone() -> None:
    table = parse_overrides({MODEL: {"us-east-1": GOOD_ENTRY}})

    other_region = table.lookup(MODEL, "eu-central-1", None, False)

    # Not final, so the bundled table still prices the model there.
    assert isinstance(other_region, Unpriced)
    assert not other_region.final
    assert table.lookup("amazon.nova-micro-v1:0", "us-east-1", None, False) is None


BAD_TABLES: list[tuple[str, Any, list[str]]] = [
    ("model not a string", {5: {"us-east-1": GOOD_ENTRY}}, ["5", "model id"]),
    ("empty model", {" ": {"us-east-1": GOOD_ENTRY}}, ["model id"]),
    ("regions not a mapping", {MODEL: [GOOD_ENTRY]}, [MODEL, "list"]),
    ("regions a number", {MODEL: 0.003}, [MODEL, "float"]),
    ("no region", {MODEL: {}}, [MODEL, "no Region"]),
    (
        "prices not nested",
        {MODEL: {"input": 0.003, "output": 0.015}},
        [MODEL, "'input'"],
    ),
    ("region name", {MODEL: {"US East (N. Virginia)": GOOD_ENTRY}}, [MODEL, "US East"]),
    ("region not a string", {MODEL: {1: GOOD_ENTRY}}, [MODEL, "Region 1"]),
    (
        "region with line break",
        {MODEL: {"us-east-1\n": GOOD_ENTRY}},
        [MODEL, "Invalid Region 'us-east-1\\n'"],
    ),
    (
        "entry not a mapping",
        {MODEL: {"us-east-1": 0.003}},
        [MODEL, "'us-east-1'", "float"],
    ),
    (
        "missing input",
        {MODEL: {"us-east-1": {"output": 0.015}}},
        ["'us-east-1'", "'input'"],
    ),
    (
        "missing output",
        {MODEL: {"us-east-1": {"input": 0.003}}},
        ["'us-east-1'", "'output'"],
    ),
    (
        "negative",
        {MODEL: {"us-east-1": {"input": -1, "output": 0.015}}},
        ["'input'", "negative"],
    ),
    (
        "nan",
        {MODEL: {"us-east-1": {"input": float("nan"), "output": 1}}},
        ["'input'", "finite"],
    ),
    (
        "infinite",
        {MODEL: {"us-east-1": {"input": 0.1, "output": float("inf")}}},
        ["'output'"],
    ),
    (
        "text",
        {MODEL: {"us-east-1": {"input": "cheap", "output": 0.015}}},
        ["'input'", "cheap"],
    ),
    (
        "boolean",
        {MODEL: {"us-east-1": {"input": True, "output": 0.015}}},
        ["'input'", "bool"],
    ),
    (
        "none",
        {MODEL: {"us-east-1": {"input": None, "output": 0.015}}},
        ["'input'", "None"],
    ),
    (
        "unknown field",
        {MODEL: {"us-east-1": {**GOOD_ENTRY, "cached_input": 0.1}}},
        ["'cached_input'", "Allowed fields"],
    ),
    (
        "negative cache",
        {MODEL: {"us-east-1": {**GOOD_ENTRY, "cache_read": -0.1}}},
        ["'cache_read'", "negative"],
    ),
    (
        "one-hour write text",
        {MODEL: {"us-east-1": {**GOOD_ENTRY, "cache_write_1h": "a lot"}}},
        ["'cache_write_1h'", "'a lot'"],
    ),
    (
        "unit zero",
        {MODEL: {"us-east-1": {**GOOD_ENTRY, "price_per_tokens": 0}}},
        ["'price_per_tokens'"],
    ),
    (
        "unit text",
        {MODEL: {"us-east-1": {**GOOD_ENTRY, "price_per_tokens": "1000"}}},
        ["'price_per_tokens'"],
    ),
    (
        "display name not text",
        {MODEL: {"us-east-1": {**GOOD_ENTRY, "region": 1}}},
        ["field 'region'", "display name"],
    ),
]


@pytest.mark.parametrize(
    ("table", "expected"),
    [(table, expected) for _, table, expected in BAD_TABLES],
    ids=[name for name, _, _ in BAD_TABLES],
)
def test_bad_table_raises(table: Any, expected: list[str]) -> None:
    with pytest.raises(PricingTableError) as raised:
        parse_overrides(table)

    message = str(raised.value)
    for part in expected:
        assert part in message
    assert "Expected shape" in message
    assert "bedrock" in message or "bedrock_pricing" in message


def test_bad_table_raises_at_tracker_start() -> None:
    with pytest.raises(PricingTableError) as raised:
        llmfy_usage_tracker(bedrock_pricing={MODEL: {"us-east-1": {"input": 0.003}}})

    assert isinstance(raised.value, ValueError)
    assert MODEL in str(raised.value)


def test_table_not_a_mapping_raises() -> None:
    with pytest.raises(PricingTableError):
        llmfy_usage_tracker(bedrock_pricing=[MODEL])  # type: ignore[arg-type]


def test_implausible_price_warns() -> None:
    # 5 USD per 1,000 tokens is 5,000 USD per million: almost surely a unit mistake.
    with pytest.warns(PricingWarning, match="per million"):
        parse_overrides({MODEL: {"us-east-1": {"input": 5, "output": 0.015}}})


# Claude Sonnet 4.5 at its published us-east-1 rates, in USD per 1,000 tokens.
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_45_RATES = {
    "input": "0.0033",
    "output": "0.0165",
    "cache_read": "0.00033",
    "cache_write": "0.004125",
    "long_context": [],
}


def record_one_hour_writes(tracker: Any) -> Any:
    """Record 10 plain input, 2000 cache-read and 1000 1-hour cache-write tokens."""
    return tracker.record(
        "bedrock",
        SONNET_45,
        10 + 2000 + 1000,
        100,
        cache_read_tokens=2000,
        cache_write_tokens=1000,
        other_tokens={"cache_write_1h": 1000},
        region="us-east-1",
    )


def test_one_hour_write_rate_priced() -> None:
    entry = {**SONNET_45_RATES, "cache_write_1h": "0.0066"}

    with llmfy_usage_tracker(
        bedrock_pricing={SONNET_45: {"us-east-1": entry}}
    ) as usage:
        record = record_one_hour_writes(usage)

    # Per 1,000 tokens: 10*0.0033 + 100*0.0165 + 2000*0.00033 + 1000*0.0066
    # = 0.033 + 1.65 + 0.66 + 6.6 = 8.943, so 0.008943 USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.008943")
    assert record.cost.parts["cache_write_1h"] == Decimal("0.0066")


def test_missing_one_hour_rate_warns_once() -> None:
    table = {SONNET_45: {"us-east-1": SONNET_45_RATES}}

    with llmfy_usage_tracker(bedrock_pricing=table) as usage:
        with pytest.warns(PricingWarning) as warned:
            first = record_one_hour_writes(usage)
            record_one_hour_writes(usage)

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert SONNET_45 in messages[0]
    assert "'cache_write_1h'" in messages[0]
    assert "estimate" in messages[0]
    assert "bedrock_pricing=" in messages[0]
    # The 1-hour writes at the cache_write rate: 0.033 + 1.65 + 0.66 + 1000 *
    # 0.004125 = 6.468 per 1,000 tokens, so 0.006468 USD.
    assert first.cost is not None
    assert first.cost.total == Decimal("0.006468")
    assert first.cost.parts["estimated:cache_write_1h"] == 0
    assert "(estimate: no rate for cache_write_1h)" in str(usage)


def test_misspelt_model_key_warns() -> None:
    misspelt = "anthropic.claude-3-5-sonet-20240620-v1:0"
    table = {
        f"us.{misspelt}": {"us-east-1": GOOD_ENTRY},
        MODEL: {"us-east-1": GOOD_ENTRY},
        "anthropic.claude-sonnet-9-20300101-v1:0": {"us-east-1": GOOD_ENTRY},
    }

    with pytest.warns(PricingWarning) as warned:
        llmfy_usage_tracker(bedrock_pricing=table)

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert f"'us.{misspelt}'" in messages[0]
    assert f"Did you mean {MODEL!r}?" in messages[0]
    assert warned[0].filename == __file__


def test_misspelt_region_warns() -> None:
    table = {
        MODEL: {
            "us-eest-1": GOOD_ENTRY,
            "eu-wset-1": GOOD_ENTRY,
            # Real Regions one letter apart from a bundled one: no warning.
            "af-south-1": GOOD_ENTRY,
            "ap-southeast-7": GOOD_ENTRY,
        }
    }

    with pytest.warns(PricingWarning) as warned:
        llmfy_usage_tracker(bedrock_pricing=table)

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 2
    assert f"model {MODEL!r} in 'us-eest-1'" in messages[0]
    assert "Did you mean 'us-east-1'?" in messages[0]
    assert "Did you mean 'eu-west-1'?" in messages[1]
    assert warned[0].filename == __file__


def test_unknown_region_warns_and_applies() -> None:
    table = {MODEL: {"mars-1": GOOD_ENTRY}}

    with pytest.warns(PricingWarning) as warned:
        usage = llmfy_usage_tracker(bedrock_pricing=table)
    record = usage.record("bedrock", MODEL, 1000, 1000, region="mars-1")

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert f"model {MODEL!r} in 'mars-1'" in messages[0]
    assert "not an AWS Region that llmfy knows" in messages[0]
    assert "Did you mean" not in messages[0]
    assert f"botocore {botocore.__version__}" in messages[0]
    assert "Check the Region code" in messages[0]
    assert warned[0].filename == __file__
    # The entry still prices requests sent to that Region, in case AWS opened
    # it after the installed botocore: 1,000 tokens at 0.003 and 0.015 per 1,000.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.003") + Decimal("0.015")


def test_own_model_in_other_region_reason() -> None:
    # A model that only the tracker's table prices, sent to a Region the
    # table leaves out.
    model = "acme.custom-v1:0"
    table = {model: {"us-east-1": GOOD_ENTRY}}

    with pytest.warns(PricingWarning):
        with llmfy_usage_tracker(bedrock_pricing=table) as usage:
            record = usage.record("bedrock", model, 1000, 1000, region="us-west-2")

    reason = record.unpriced_reason
    assert record.cost is None
    assert reason is not None
    assert "bedrock_pricing=" in reason
    assert "'us-west-2'" in reason
    assert "us-east-1" in reason


def test_real_region_not_bundled_quiet() -> None:
    # eu-west-3 (Paris) is an AWS Region without a bundled price.
    table = {MODEL: {"eu-west-3": GOOD_ENTRY, "us-gov-west-1": GOOD_ENTRY}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = parse_overrides(table)

    assert isinstance(parsed.lookup(MODEL, "eu-west-3", None, False), Price)


def test_unknown_region_quiet_without_botocore_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without botocore's list, llmfy has only the bundled Regions to compare
    # with, and a warning for every other one would flag real Regions.
    def fail() -> None:
        raise OSError("endpoints.json is missing")

    monkeypatch.setattr(botocore.loaders, "create_loader", fail)
    overrides._aws_regions.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = parse_overrides({MODEL: {"mars-1": GOOD_ENTRY}})
    finally:
        overrides._aws_regions.cache_clear()

    assert isinstance(parsed.lookup(MODEL, "mars-1", None, False), Price)


def test_sovereign_cloud_region_parses() -> None:
    table = parse_overrides({MODEL: {"eusc-de-east-1": GOOD_ENTRY}})

    price = table.lookup(MODEL, "eusc-de-east-1", None, False)

    assert isinstance(price, Price)
    assert price.input == Decimal("0.003")


# Claude Sonnet 4.5 at its global rates, in USD per 1,000 tokens, 10% under
# the us-east-1 rate of the bundled table, so that the two costs differ.
# Flat rates for Claude Sonnet 4.5 at every length, which `long_context: []` confirms.
OVERRIDE_RATES = {"input": "0.003", "output": "0.015", "long_context": []}
SPELLINGS = [
    # (entry key, requested model id)
    ("anthropic.claude-sonnet-4-5-20250929", f"us.{SONNET_45}"),
    ("claude-sonnet-4-5-20250929-v1:0", SONNET_45),
    ("us.anthropic.claude-sonnet-4-5-20250929", f"us.{SONNET_45}"),
    ("global.anthropic.claude-sonnet-4-5-20250929", f"global.{SONNET_45}"),
]


def converse_with_override(
    bedrock_server: Any, client: Any, table: dict[str, Any], model: str
) -> Any:
    """Return the record of a Converse request of 1,000 input and 500 output tokens."""
    usage_body = {"inputTokens": 1000, "outputTokens": 500, "totalTokens": 1500}
    message = {"role": "assistant", "content": [{"text": "Hi"}]}
    bedrock_server.queue_json(
        {"output": {"message": message}, "stopReason": "end_turn", "usage": usage_body}
    )

    with llmfy_usage_tracker(bedrock_pricing=table) as usage:
        client.converse(modelId=model, messages=[])

    return usage.records[0]


@pytest.mark.parametrize(("key", "model"), SPELLINGS)
def test_other_spelling_of_model_priced(
    key: str, model: str, bedrock_server: Any, make_client: Any
) -> None:
    record = converse_with_override(
        bedrock_server, make_client(), {key: {"us-east-1": OVERRIDE_RATES}}, model
    )
    assert record.price_origin == "override"
    # 1,000 * 0.003 / 1,000 + 500 * 0.015 / 1,000 = 0.003 + 0.0075 = 0.0105
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0105")


def test_entry_without_long_context_warns() -> None:
    rates = {"input": "0.003", "output": "0.015"}

    with pytest.warns(PricingWarning) as warned:
        parse_overrides({f"us.{SONNET_45}": {"us-east-1": rates}})

    assert len(warned) == 1
    message = str(warned[0].message)
    assert f"model 'us.{SONNET_45}', region 'us-east-1' without" in message
    assert "more than 200,000 input tokens" in message
    assert "`long_context: []` to keep the flat rates" in message


def test_entry_for_model_without_tiers_silent() -> None:
    rates = {"input": "0.00006", "output": "0.00024"}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = parse_overrides({"amazon.nova-lite-v1:0": {"us-east-1": rates}})

    assert len(table) == 2


def test_two_spellings_same_region_raise() -> None:
    table = {
        "anthropic.claude-sonnet-4-5-20250929": {"us-east-1": OVERRIDE_RATES},
        SONNET_45: {"us-east-1": OVERRIDE_RATES},
    }

    with pytest.raises(PricingTableError) as raised:
        parse_overrides(table)

    message = str(raised.value)
    assert "'anthropic.claude-sonnet-4-5-20250929'" in message
    assert f"{SONNET_45!r}" in message
    assert "region 'us-east-1'" in message


def test_two_spellings_other_regions_apply() -> None:
    table = parse_overrides(
        {
            "anthropic.claude-sonnet-4-5-20250929": {"us-east-1": OVERRIDE_RATES},
            SONNET_45: {
                "us-west-2": {**OVERRIDE_RATES, "input": "0.004", "output": "0.02"}
            },
        }
    )

    east = table.lookup(f"us.{SONNET_45}", "us-east-1", None, False)
    west = table.lookup(f"us.{SONNET_45}", "us-west-2", None, False)

    assert isinstance(east, Price)
    assert east.input == Decimal("0.003")
    assert isinstance(west, Price)
    assert west.input == Decimal("0.004")


# Claude Opus 4.6 in USD per 1,000 tokens, below the bundled us-east-1 rates
# (0.0055 in, 0.0275 out) and global rates (0.005 in, 0.025 out).
OPUS_46_RATES = {"input": "0.004", "output": "0.02"}


@pytest.mark.parametrize(
    ("key", "model"),
    [
        # Keys in the bundled spelling, `:0` included, and requests in
        # Bedrock's spelling of Claude Opus 4.6, which has no `:0`.
        ("us.anthropic.claude-opus-4-6-v1:0", "us.anthropic.claude-opus-4-6-v1"),
        (
            "global.anthropic.claude-opus-4-6-v1:0",
            "global.anthropic.claude-opus-4-6-v1",
        ),
    ],
)
def test_bundled_profile_key_prices_bedrock_id(
    key: str, model: str, bedrock_server: Any, make_client: Any
) -> None:
    record = converse_with_override(
        bedrock_server, make_client(), {key: {"us-east-1": OPUS_46_RATES}}, model
    )
    assert record.price_origin == "override"
    # 1,000 * 0.004 / 1,000 + 500 * 0.02 / 1,000 = 0.004 + 0.01 = 0.014
    assert record.cost is not None
    assert record.cost.total == Decimal("0.014")


def test_unknown_region_of_many_models_warns_once() -> None:
    # A table that prices every model in a Region newer than the installed
    # botocore would otherwise give one warning per model.
    models = [MODEL, "amazon.nova-micro-v1:0", "amazon.nova-pro-v1:0"]
    table = {model: {"mars-1": GOOD_ENTRY} for model in models}

    with pytest.warns(PricingWarning) as warned:
        parsed = parse_overrides(table)

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert f"model {MODEL!r} in 'mars-1'" in messages[0]
    assert "2 more models" in messages[0]
    for model in models:
        assert isinstance(parsed.lookup(model, "mars-1", None, False), Price)


# Claude Sonnet 4.5 re-priced in us-east-1 with rates made up for these tests,
# in USD per 1,000 tokens, and higher rates above 200,000 input tokens.
LONG_CONTEXT_ENTRY = {
    "input": 0.003,
    "output": 0.015,
    "cache_read": 0.0003,
    "long_context": [
        {
            "above_input_tokens": 200_000,
            "input": 0.006,
            "output": 0.0225,
            "cache_read": 0.0006,
            "cache_write_1h": 0.012,
        }
    ],
}


def test_long_context_rates_above_threshold() -> None:
    table = {SONNET_45: {"us-east-1": LONG_CONTEXT_ENTRY}}
    profile = f"us.{SONNET_45}"

    with llmfy_usage_tracker(bedrock_pricing=table) as usage:
        at_threshold = usage.record(
            "bedrock",
            profile,
            200_000,
            1_000,
            cache_read_tokens=50_000,
            region="us-east-1",
        )
        above = usage.record(
            "bedrock",
            profile,
            200_001,
            1_000,
            cache_read_tokens=50_000,
            region="us-east-1",
        )
        one_hour_writes = usage.record(
            "bedrock",
            profile,
            210_000,
            1_000,
            cache_write_tokens=10_000,
            other_tokens={"cache_write_1h": 10_000},
            region="us-east-1",
        )

    # Not above 200,000 input tokens, cached ones included: the Region's rates.
    # Per 1,000 tokens: 150,000 x 0.003 + 50,000 x 0.0003 + 1,000 x 0.015
    # = 450 + 15 + 15 = 480, so 0.48 USD.
    assert at_threshold.price_origin == "override"
    assert at_threshold.cost is not None
    assert at_threshold.cost.total == Decimal("0.48")
    # Above it, the tier's rates for the whole request: 150,001 x 0.006
    # + 50,000 x 0.0006 + 1,000 x 0.0225 = 900.006 + 30 + 22.5 = 952.506.
    assert above.cost is not None
    assert above.cost.total == Decimal("0.952506")
    # The tier's 1-hour write rate: 200,000 x 0.006 + 10,000 x 0.012
    # + 1,000 x 0.0225 = 1,200 + 120 + 22.5 = 1,342.5.
    assert one_hour_writes.cost is not None
    assert one_hour_writes.cost.total == Decimal("1.3425")


def test_long_context_in_region_unit() -> None:
    entry = {
        "input": 3,
        "output": 15,
        "price_per_tokens": 1_000_000,
        "long_context": [
            {"above_input_tokens": 500_000, "input": 9, "output": 30},
            {"above_input_tokens": 200_000, "input": 6, "output": 22.5},
        ],
    }

    price = parse_overrides({SONNET_45: {"eu-west-1": entry}}).lookup(
        SONNET_45, "eu-west-1", None, False
    )

    assert isinstance(price, Price)
    thresholds = [tier.above_input_tokens for tier in price.long_context]
    assert thresholds == [200_000, 500_000]
    assert price.long_context[0].price.input == Decimal("6")
    assert price.long_context[0].price.price_per_tokens == 1_000_000
    assert price.long_context[1].price.output == Decimal("30")
    assert price.long_context[1].price.long_context == ()


def long_context_table(value: object) -> dict[str, Any]:
    """Return a bedrock_pricing table whose us-east-1 `long_context` is `value`."""
    return {MODEL: {"us-east-1": {**GOOD_ENTRY, "long_context": value}}}


def long_context_tier(**fields: object) -> dict[str, object]:
    """Return a valid long-context tier with `fields` replaced."""
    tier: dict[str, object] = {
        "above_input_tokens": 200_000,
        "input": 0.006,
        "output": 0.03,
    }
    tier.update(fields)
    return tier


AT_TIER = f"model '{MODEL}', region 'us-east-1', field 'long_context[0]"

BAD_LONG_CONTEXT: list[tuple[str, Any, list[str]]] = [
    (
        "mapping not list",
        long_context_table(long_context_tier()),
        [
            f"model '{MODEL}', region 'us-east-1', field 'long_context'",
            "expected a list of tiers, got dict",
            "put its mapping in a list",
        ],
    ),
    (
        "text not list",
        long_context_table("200000"),
        ["field 'long_context'", "expected a list of tiers, got str '200000'"],
    ),
    (
        "tier not mapping",
        long_context_table([0.006]),
        [f"{AT_TIER}'", "expected a mapping of `above_input_tokens`"],
    ),
    (
        "float threshold",
        long_context_table([long_context_tier(above_input_tokens=2e5)]),
        [f"{AT_TIER}.above_input_tokens'", "200000.0 (float) is not an integer"],
    ),
    (
        "threshold above 64 bits",
        long_context_table([long_context_tier(above_input_tokens=2**64)]),
        [f"{AT_TIER}.above_input_tokens'", "a number of 65 bits is above"],
    ),
    (
        "bool threshold",
        long_context_table([long_context_tier(above_input_tokens=False)]),
        [f"{AT_TIER}.above_input_tokens'", "False is not a whole number above 0"],
    ),
    (
        "zero threshold",
        long_context_table([long_context_tier(above_input_tokens=0)]),
        [f"{AT_TIER}.above_input_tokens'", "0 is not a whole number above 0"],
    ),
    (
        "negative threshold",
        long_context_table([long_context_tier(above_input_tokens=-200_000)]),
        [f"{AT_TIER}.above_input_tokens'", "-200000 is not a whole number above 0"],
    ),
    (
        "duplicate thresholds",
        long_context_table([long_context_tier(), long_context_tier(input=0.007)]),
        [
            "field 'long_context[1].above_input_tokens'",
            "long_context[0] and long_context[1] both apply above 200000",
        ],
    ),
    (
        "missing threshold",
        long_context_table([{"input": 0.006, "output": 0.03}]),
        [f"{AT_TIER}.above_input_tokens'", "every long-context tier needs"],
    ),
    (
        "missing input",
        long_context_table([{"above_input_tokens": 200_000, "output": 0.03}]),
        [f"{AT_TIER}.input'", "every long-context tier needs"],
    ),
    (
        "missing output",
        long_context_table([{"above_input_tokens": 200_000, "input": 0.006}]),
        [f"{AT_TIER}.output'", "every long-context tier needs"],
    ),
    (
        "unknown field",
        long_context_table([long_context_tier(cached_input=0.0006)]),
        [
            f"{AT_TIER}.cached_input'",
            "Unknown field in the long-context tier",
            "cache_write_1h",
        ],
    ),
    (
        "region name in tier",
        long_context_table([long_context_tier(region="US East (N. Virginia)")]),
        [f"{AT_TIER}.region'", "Unknown field in the long-context tier"],
    ),
    (
        "unit in tier",
        long_context_table([long_context_tier(price_per_tokens=1_000_000)]),
        [f"{AT_TIER}.price_per_tokens'", "in the unit of its entry"],
    ),
    (
        "negative tier rate",
        long_context_table([long_context_tier(cache_write_1h=-1)]),
        [f"{AT_TIER}.cache_write_1h'", "negative"],
    ),
    (
        "long context not nested",
        {MODEL: {"long_context": [long_context_tier()], "us-east-1": GOOD_ENTRY}},
        [MODEL, "'long_context' is given directly under the model"],
    ),
]


@pytest.mark.parametrize(
    ("table", "expected"),
    [(table, expected) for _, table, expected in BAD_LONG_CONTEXT],
    ids=[name for name, _, _ in BAD_LONG_CONTEXT],
)
def test_bad_long_context_raises(table: Any, expected: list[str]) -> None:
    with pytest.raises(PricingTableError) as raised:
        llmfy_usage_tracker(bedrock_pricing=table)

    message = str(raised.value)
    assert "provider 'bedrock'" in message
    assert "Expected shape" in message
    for part in expected:
        assert part in message
