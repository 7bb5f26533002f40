"""The `openai_pricing=` override table: its format, validation and precedence."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from typing import Any

import pytest
from llmfy_openai.overrides import parse_override_table

from llmfy import Price, PricingTableError, PricingWarning, Usage, llmfy_usage_tracker


def test_documented_format():
    with llmfy_usage_tracker(
        openai_pricing={"gpt-4o-mini": {"input": 0.15, "output": 0.60}}
    ) as usage:
        record = usage.record("openai", "gpt-4o-mini", 60, 3)

    assert record.price_origin == "override"
    assert record.price is not None
    assert record.price.input == Decimal("0.15")
    # 60 x 0.15 + 3 x 0.60 = 10.8 per million
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000108")


def test_override_applies_to_served_snapshot():
    table = {"gpt-4o-mini": {"input": 1, "output": 2}}

    with llmfy_usage_tracker(openai_pricing=table) as usage:
        record = usage.record(
            "openai", "gpt-4o-mini", 1000, 100, served_model="gpt-4o-mini-2024-07-18"
        )

    assert record.price_origin == "override"
    # 1000 x 1 + 100 x 2 = 1200 per million
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0012")


def test_other_models_keep_bundled_prices():
    with llmfy_usage_tracker(
        openai_pricing={"gpt-4o-mini": {"input": 1, "output": 2}}
    ) as usage:
        record = usage.record("openai", "gpt-4.1", 1000, 0)

    assert record.price_origin == "openai"
    assert record.price is not None
    assert record.price.input == Decimal("2.00")


def test_optional_fields():
    table = parse_override_table(
        {
            "my-model": {
                "input": 0.003,
                "output": 0.006,
                "cache_read": 0.0003,
                "cache_write": 0.00375,
                "input_audio": 0.04,
                "output_audio": 0.08,
                "price_per_tokens": 1000,
            }
        }
    )

    price = table.lookup("my-model", None, None, False)

    assert isinstance(price, Price)
    assert price.cache_read == Decimal("0.0003")
    assert price.cache_write == Decimal("0.00375")
    assert dict(price.other) == {
        "input_audio": Decimal("0.04"),
        "output_audio": Decimal("0.08"),
    }
    assert price.price_per_tokens == 1000


def test_tiers_and_batch():
    table = parse_override_table(
        {
            "gpt-5": {
                "input": 1.25,
                "output": 10,
                "tiers": {
                    "flex": {"input": 0.625, "output": 5},
                    "priority": {"input": 2.5, "output": 20},
                    "batch": {"input": 0.6, "output": 4.9},
                },
            }
        }
    )

    assert table.lookup("gpt-5-2025-08-07", None, "flex", False).input == Decimal(
        "0.625"
    )
    assert table.lookup("gpt-5", None, "priority", False).input == Decimal("2.5")
    assert table.lookup("gpt-5", None, None, True).input == Decimal("0.6")
    assert table.lookup("gpt-5", None, "default", False).input == Decimal("1.25")


def test_entry_without_tiers_applies_to_batch():
    table = parse_override_table({"gpt-4o": {"input": 2, "output": 8}})

    assert table.lookup("gpt-4o", None, None, True) == table.lookup(
        "gpt-4o", None, None, False
    )


def test_azure_deployment_alias():
    with llmfy_usage_tracker(openai_pricing={"prod-chat": "gpt-4o-mini"}) as usage:
        record = usage.record("openai", "prod-chat", 60, 3)

    assert record.price is not None
    assert record.price.input == Decimal("0.15")
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000108")


def test_deployment_alias_of_one_tracker_only():
    # One deployment name mapped to two models by two trackers, and not at
    # all by a third: each tracker prices it by its own mapping.
    with llmfy_usage_tracker(openai_pricing={"prod": "gpt-4o"}) as first:
        first_record = first.record("openai", "prod", 1_000_000, 0)
    with llmfy_usage_tracker(openai_pricing={"prod": "gpt-4o-mini"}) as second:
        second_record = second.record("openai", "prod", 1_000_000, 0)
    with llmfy_usage_tracker() as third:
        third_record = third.record("openai", "prod", 1_000_000, 0)

    # 1M input tokens at 2.50 (gpt-4o) and 0.15 (gpt-4o-mini) per million.
    assert first_record.cost is not None
    assert first_record.cost.total == Decimal("2.5")
    assert second_record.cost is not None
    assert second_record.cost.total == Decimal("0.15")
    assert third_record.price is None
    assert third_record.cost is None


def test_alias_to_override_entry():
    table = parse_override_table(
        {"prod": "house-model", "house-model": {"input": 1, "output": 1}}
    )

    assert table.lookup("prod", None, None, False).input == Decimal("1")


def test_batch_usage_uses_override_batch_tier():
    table = {
        "gpt-4o": {
            "input": 2,
            "output": 8,
            "tiers": {"batch": {"input": 1, "output": 4}},
        }
    }
    usage = Usage(
        provider="openai",
        model="gpt-4o",
        input_tokens=1000,
        output_tokens=100,
        batch=True,
    )

    with llmfy_usage_tracker(openai_pricing=table) as tracker:
        record = tracker.add_usage(usage)

    # 1000 x 1 + 100 x 4 = 1400 per million
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0014")


def flex_prices(tier_entry: object) -> dict[str, object]:
    """Return an openai_pricing table whose gpt-4o-mini Flex prices are `tier_entry`."""
    return {"gpt-4o-mini": {"input": 1, "output": 2, "tiers": {"flex": tier_entry}}}


BAD_TABLES = [
    pytest.param(
        {"input": 0.15, "output": 0.60},
        ["'input'", "model id level"],
        id="missing-model-level",
    ),
    pytest.param(
        {"gpt-4o-mini": {"prices": {"input": 0.15}}},
        ["'prices'", "Unknown field"],
        id="wrong-nesting",
    ),
    pytest.param(
        {"gpt-4o-mini": {"output": 0.6}}, ["'input'", "Missing"], id="missing-input"
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": 0.15}}, ["'output'", "Missing"], id="missing-output"
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": -0.15, "output": 0.6}},
        ["'input'", "negative"],
        id="negative",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": math.nan, "output": 0.6}},
        ["'input'", "finite"],
        id="nan",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": 0.15, "output": math.inf}},
        ["'output'", "finite"],
        id="inf",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": "cheap", "output": 0.6}},
        ["'input'", "not a number"],
        id="non-numeric",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": True, "output": 0.6}}, ["'input'", "bool"], id="bool"
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": [0.15], "output": 0.6}},
        ["'input'", "list"],
        id="list",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": 0.15, "output": 0.6, "price_per_tokens": 0}},
        ["price_per_tokens"],
        id="bad-unit",
    ),
    pytest.param({"gpt-4o-mini": 0.15}, ["'gpt-4o-mini'", "float"], id="number-entry"),
    pytest.param(
        {"gpt-4o-mini": {"input": 1, "output": 2, "tiers": [1]}},
        ["'tiers'"],
        id="tiers-not-mapping",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": 1, "output": 2, "tiers": {"turbo": {}}}},
        ["tiers.turbo", "Unknown tier"],
        id="unknown-tier",
    ),
    pytest.param(
        {"gpt-4o-mini": {"input": 1, "output": 2, "tiers": {"default": {}}}},
        [
            "tiers.default",
            "Unknown tier",
            "'default' is the standard tier",
            "give its prices as the entry's own input and output",
        ],
        id="standard-tier",
    ),
    pytest.param(
        flex_prices({"input": 1}),
        ["model 'gpt-4o-mini', field 'tiers.flex.output'", "Missing"],
        id="tier-missing-output",
    ),
    pytest.param(
        flex_prices({"input": -1, "output": 1}),
        ["model 'gpt-4o-mini', field 'tiers.flex.input'", "negative"],
        id="tier-negative",
    ),
    pytest.param(
        flex_prices({"input": 1, "output": 1, "cached": 1}),
        ["model 'gpt-4o-mini', field 'tiers.flex.cached'", "Unknown field"],
        id="tier-unknown-field",
    ),
    pytest.param(
        flex_prices({"input": 1, "output": 1, "input_audio": "x"}),
        ["model 'gpt-4o-mini', field 'tiers.flex.input_audio'", "not a number"],
        id="tier-bad-audio-rate",
    ),
    pytest.param(
        flex_prices({"input": 1, "output": 1, "price_per_tokens": 0}),
        ["model 'gpt-4o-mini', field 'tiers.flex.price_per_tokens'"],
        id="tier-bad-unit",
    ),
    pytest.param(
        {
            "gpt-4o-mini": {
                "input": 1,
                "output": 2,
                "tiers": {"flex": {"input": 1, "output": 1, "tiers": {}}},
            }
        },
        ["tiers.flex.tiers", "nesting"],
        id="nested-tiers",
    ),
    pytest.param(
        {"prod-chat": "gpt-nonexistent"},
        ["'prod-chat'", "gpt-nonexistent"],
        id="alias-unknown",
    ),
    pytest.param({5: {"input": 1, "output": 2}}, ["model id 5"], id="non-string-model"),
    pytest.param(
        {"amazon.nova-lite-v1:0": {"us-east-1": {"input": 0.06, "output": 0.24}}},
        ["'us-east-1'", "bedrock_pricing="],
        id="bedrock-table",
    ),
    pytest.param(
        {"gpt-4o-mini": {"eu-west-1": {"input": 0.15, "output": 0.6}}},
        ["'eu-west-1'", "directly under the model id"],
        id="region-nesting",
    ),
]


@pytest.mark.parametrize(("table", "fragments"), BAD_TABLES)
def test_bad_table_rejected(table, fragments):
    with pytest.raises(PricingTableError) as caught:
        llmfy_usage_tracker(openai_pricing=table)

    message = str(caught.value)
    assert "openai" in message
    assert "Expected shape" in message or "price_per_tokens" in message
    for fragment in fragments:
        assert fragment in message


def test_bad_table_is_value_error():
    with pytest.raises(ValueError):
        llmfy_usage_tracker(openai_pricing={"gpt-4o-mini": {"input": -1, "output": 1}})


def test_override_without_audio_rates_warns():
    table = {"gpt-4o-audio-preview": {"input": "2.50", "output": "10.00"}}

    with llmfy_usage_tracker(openai_pricing=table) as usage:
        with pytest.warns(PricingWarning) as warned:
            record = usage.record(
                "openai",
                "gpt-4o-audio-preview",
                1000,
                1000,
                other_tokens={"input_audio": 1000, "output_audio": 1000},
            )

    messages = sorted(str(warning.message) for warning in warned)
    assert len(messages) == 2
    assert "'input_audio' rate" in messages[0]
    assert "charged at the input rate" in messages[0]
    assert "'output_audio' rate" in messages[1]
    assert "openai_pricing=" in messages[1]
    # Every token at the text rates: 1000 x 2.50 + 1000 x 10.00 = 12500 per
    # million, so 0.0125 USD, marked as an estimate.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0125")
    assert set(record.cost.parts) >= {"estimated:input_audio", "estimated:output_audio"}


def test_bundled_price_without_audio_rate_advice():
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record(
                "openai", "gpt-4o-mini", 1000, 10, other_tokens={"input_audio": 100}
            )

    message = str(warned[0].message)
    example = (
        "openai_pricing={'gpt-4o-mini': {'input': ..., 'output': ..., "
        "'input_audio': ...}}"
    )
    assert "from plugin 'openai'" in message
    assert example in message
    assert "in USD per 1,000,000 tokens" in message
    assert "replaces the model's whole price" in message


def missing_rate_warning(model: str, **request: Any) -> str:
    """Record 100 input and 10 output tokens of `model`; return the warning."""
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record("openai", model, 100, 10, **request)
    return str(warned[0].message)


def test_flex_price_without_image_rate_advice():
    # o3's Flex request gets the bundled Flex price, which has no input_image
    # rate. An entry without `tiers` prices every tier, Flex too, at its
    # rates, so the example puts the rate under the Flex tier.
    flex_image = {"service_tier": "flex", "other_tokens": {"input_image": 20}}

    message = missing_rate_warning("o3", **flex_image)

    example = (
        "openai_pricing={'o3': {'input': ..., 'output': ..., 'tiers': {'flex': "
        "{'input': ..., 'output': ..., 'input_image': ...}}}}"
    )
    assert example in message

    # The example filled in, with rates made up for this test, in USD per
    # million tokens: 80 input tokens x 1 + 20 image tokens x 1.5 + 10 output
    # tokens x 4 = 80 + 30 + 40 = 150 millionths of a USD.
    prices = {
        "o3": {
            "input": 2,
            "output": 8,
            "tiers": {"flex": {"input": 1, "output": 4, "input_image": 1.5}},
        }
    }
    with llmfy_usage_tracker(openai_pricing=prices) as usage:
        record = usage.record("openai", "o3", 100, 10, **flex_image)
    assert record.cost.total == Decimal("0.00015")


def test_batch_price_without_audio_rate_advice():
    message = missing_rate_warning(
        "gpt-4o-mini", batch=True, other_tokens={"input_audio": 20}
    )

    example = (
        "openai_pricing={'gpt-4o-mini': {'input': ..., 'output': ..., 'tiers': "
        "{'batch': {'input': ..., 'output': ..., 'input_audio': ...}}}}"
    )
    assert example in message


def test_unit_warnings_point_at_caller():
    # 5000 USD per million is implausible on its own, and 33,333.3 times
    # gpt-4o-mini's published input price of 0.15.
    pricing = {"gpt-4o-mini": {"input": 5000, "output": 0.6}}

    with pytest.warns(PricingWarning) as warned:
        with llmfy_usage_tracker(openai_pricing=pricing) as usage:
            usage.record("openai", "gpt-4o-mini", 1000, 100)

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 2
    assert "5000 USD per million tokens. Check the unit" in messages[0]
    assert " 33,333 times the published price " in messages[1]
    assert warned[0].filename == __file__
    assert warned[1].filename == __file__


@pytest.mark.parametrize("key", ["GPT-4o-mini", "gpt4o-mini", "gpt_4o_mini"])
def test_model_key_in_other_case_or_separators_warns(key: str):
    with pytest.warns(PricingWarning) as warned:
        llmfy_usage_tracker(openai_pricing={key: {"input": 1, "output": 2}})

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert f"{key!r}" in messages[0]
    assert "Did you mean 'gpt-4o-mini'?" in messages[0]


def test_misspelt_model_key_warns():
    table = {
        "gpt-4o-mnii": {"input": 1, "output": 2},
        "gpt-5.7": {"input": 1, "output": 2},
        "my-team-model": {"input": 1, "output": 2},
    }

    with pytest.warns(PricingWarning) as warned:
        llmfy_usage_tracker(openai_pricing=table)

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert "'gpt-4o-mnii'" in messages[0]
    assert "Did you mean 'gpt-4o-mini'?" in messages[0]
    assert warned[0].filename == __file__


# GPT-5.4 re-priced with long-context rates made up for these tests, in USD
# per million tokens. The bundled rates are 2.50, 0.25 and 15.00.
LONG_CONTEXT_TABLE = {
    "gpt-5.4": {
        "input": 2,
        "cache_read": 0.2,
        "output": 12,
        "long_context": [
            {"above_input_tokens": 272_000, "input": 4, "cache_read": 0.4, "output": 18}
        ],
    }
}


def test_long_context_rates_above_threshold():
    with llmfy_usage_tracker(openai_pricing=LONG_CONTEXT_TABLE) as usage:
        at_threshold = usage.record(
            "openai", "gpt-5.4", 272_000, 1_000, cache_read_tokens=100_000
        )
        above = usage.record(
            "openai", "gpt-5.4", 272_001, 1_000, cache_read_tokens=100_000
        )

    # Not above 272,000 input tokens, cached ones included: the entry's rates.
    # 172,000 x 2 + 100,000 x 0.2 + 1,000 x 12 = 344,000 + 20,000 + 12,000
    # = 376,000 millionths of a USD.
    assert at_threshold.price_origin == "override"
    assert at_threshold.cost is not None
    assert at_threshold.cost.total == Decimal("0.376")
    # Above it, the tier's rates for the whole request:
    # 172,001 x 4 + 100,000 x 0.4 + 1,000 x 18 = 688,004 + 40,000 + 18,000
    # = 746,004 millionths of a USD.
    assert above.cost is not None
    assert above.cost.total == Decimal("0.746004")


def test_long_context_tiers_sorted_by_threshold():
    # Rates in USD per 1,000 tokens, made up for this test.
    table = {
        "my-model": {
            "input": 0.001,
            "output": 0.002,
            "price_per_tokens": 1000,
            "long_context": [
                {"above_input_tokens": 400_000, "input": 0.003, "output": 0.006},
                {
                    "above_input_tokens": 200_000,
                    "input": 0.002,
                    "output": 0.004,
                    "cache_write": 0.0025,
                    "input_audio": 0.008,
                },
            ],
        }
    }

    price = parse_override_table(table).lookup("my-model", None, None, False)

    assert isinstance(price, Price)
    thresholds = [tier.above_input_tokens for tier in price.long_context]
    assert thresholds == [200_000, 400_000]
    lower = price.long_context[0].price
    assert lower.input == Decimal("0.002")
    assert lower.cache_write == Decimal("0.0025")
    assert dict(lower.other) == {"input_audio": Decimal("0.008")}
    assert lower.price_per_tokens == 1000
    assert lower.per_call == price.per_call
    assert lower.long_context == ()
    with llmfy_usage_tracker(openai_pricing=table) as usage:
        middle = usage.record("openai", "my-model", 300_000, 1_000)
        top = usage.record("openai", "my-model", 500_000, 1_000)
    # In thousandths of a USD: 300,000 x 0.002 + 1,000 x 0.004 = 600 + 4 = 604.
    assert middle.cost.total == Decimal("0.604")
    # 500,000 x 0.003 + 1,000 x 0.006 = 1,500 + 6 = 1,506.
    assert top.cost.total == Decimal("1.506")


def test_entry_without_long_context_warns():
    with pytest.warns(PricingWarning) as warned:
        llmfy_usage_tracker(openai_pricing={"gpt-5.4": {"input": 2, "output": 12}})

    assert len(warned) == 1
    message = str(warned[0].message)
    assert "openai_pricing prices provider 'openai', model 'gpt-5.4'" in message
    assert "more than 272,000 input tokens" in message
    # The bundled GPT-5.4 rates above 272,000 input tokens.
    assert "input 5.00 and output 22.50 USD per 1,000,000 tokens" in message
    assert "`long_context: []` to keep the flat rates" in message


def test_empty_long_context_keeps_flat_rates():
    table = {"gpt-5.4": {"input": 2, "output": 12, "long_context": []}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with llmfy_usage_tracker(openai_pricing=table) as usage:
            record = usage.record("openai", "gpt-5.4", 300_000, 1_000)

    # 300,000 x 2 + 1,000 x 12 = 612,000 millionths of a USD.
    assert record.cost.total == Decimal("0.612")


def test_entry_above_long_context_rates_silent():
    # Rates at or above the bundled GPT-5.4 rates above 272,000 input tokens
    # (5.00 input and 22.50 output) lose nothing that the bundled price charges.
    table = {"gpt-5.4": {"input": 10, "output": 22.5}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with llmfy_usage_tracker(openai_pricing=table) as usage:
            record = usage.record("openai", "gpt-5.4", 300_000, 1_000)

    # 300,000 x 10 + 1,000 x 22.5 = 3,022,500 millionths of a USD.
    assert record.cost.total == Decimal("3.0225")


def test_entry_below_long_context_output_warns():
    table = {"gpt-5.4": {"input": 10, "output": 20}}

    with pytest.warns(PricingWarning, match="more than 272,000 input tokens"):
        llmfy_usage_tracker(openai_pricing=table)


def test_entry_for_model_without_tiers_silent():
    table = {"gpt-4o-mini": {"input": 0.1, "output": 0.5}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tracker = llmfy_usage_tracker(openai_pricing=table)

    assert tracker is not None


class IndexOnlyInt:
    """An integer that is not an int, as NumPy's are: it has only `__index__`."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_long_context_threshold_of_any_integer_type():
    tier = long_context_tier(above_input_tokens=IndexOnlyInt(272_000))

    with llmfy_usage_tracker(openai_pricing=long_context(tier)) as usage:
        at_threshold = usage.record("openai", "gpt-5.4", 272_000, 1_000)
        above = usage.record("openai", "gpt-5.4", 272_001, 1_000)

    # 272,000 x 2 + 1,000 x 12 = 556,000 millionths of a USD.
    assert at_threshold.cost.total == Decimal("0.556")
    # 272,001 x 4 + 1,000 x 18 = 1,106,004 millionths of a USD.
    assert above.cost.total == Decimal("1.106004")


def test_long_context_under_service_tiers():
    table = {
        "gpt-5.4": {
            "input": 2,
            "output": 12,
            "long_context": [{"above_input_tokens": 272_000, "input": 4, "output": 18}],
            "tiers": {
                "priority": {
                    "input": 4,
                    "output": 24,
                    "long_context": [
                        {"above_input_tokens": 100_000, "input": 8, "output": 36}
                    ],
                },
                "flex": {"input": 1, "output": 6},
                "batch": {
                    "input": 1,
                    "output": 6,
                    "long_context": [
                        {"above_input_tokens": 272_000, "input": 2, "output": 9}
                    ],
                },
            },
        }
    }

    with llmfy_usage_tracker(openai_pricing=table) as usage:
        priority_at = usage.record(
            "openai", "gpt-5.4", 100_000, 1_000, service_tier="priority"
        )
        priority_above = usage.record(
            "openai", "gpt-5.4", 100_001, 1_000, service_tier="priority"
        )
        flex_above = usage.record(
            "openai", "gpt-5.4", 300_000, 1_000, service_tier="flex"
        )
        batch_above = usage.record("openai", "gpt-5.4", 300_000, 1_000, batch=True)
        default_above = usage.record("openai", "gpt-5.4", 200_000, 1_000)

    # In millionths of a USD. Priority, not above 100,000 input tokens:
    # 100,000 x 4 + 1,000 x 24 = 424,000.
    assert priority_at.cost.total == Decimal("0.424")
    # Priority above it: 100,001 x 8 + 1,000 x 36 = 800,008 + 36,000 = 836,008.
    assert priority_above.cost.total == Decimal("0.836008")
    # A tier without long_context of its own has none, whatever the entry's:
    # 300,000 x 1 + 1,000 x 6 = 306,000.
    assert flex_above.cost.total == Decimal("0.306")
    # Batch above 272,000: 300,000 x 2 + 1,000 x 9 = 609,000.
    assert batch_above.cost.total == Decimal("0.609")
    # The default tier below the entry's 272,000 is untouched by the
    # priority tier's 100,000: 200,000 x 2 + 1,000 x 12 = 412,000.
    assert default_above.cost.total == Decimal("0.412")


def long_context(*tiers: object) -> dict[str, object]:
    """Return an openai_pricing table whose gpt-5.4 has `long_context` = `tiers`."""
    return {"gpt-5.4": {"input": 2, "output": 12, "long_context": list(tiers)}}


def long_context_tier(**fields: object) -> dict[str, object]:
    """Return a valid long-context tier with `fields` replaced."""
    tier: dict[str, object] = {"above_input_tokens": 272_000, "input": 4, "output": 18}
    tier.update(fields)
    return tier


BAD_LONG_CONTEXT = [
    pytest.param(
        {"gpt-5.4": {"input": 2, "output": 12, "long_context": long_context_tier()}},
        [
            "model 'gpt-5.4', field 'long_context'",
            "expected a list of tiers, got dict",
            "To give one tier, put its mapping in a list.",
        ],
        id="mapping-not-list",
    ),
    pytest.param(
        {"gpt-5.4": {"input": 2, "output": 12, "long_context": 272_000}},
        ["field 'long_context'", "expected a list of tiers, got int 272000"],
        id="number-not-list",
    ),
    pytest.param(
        long_context(4),
        ["field 'long_context[0]'", "expected a mapping of `above_input_tokens`"],
        id="tier-not-mapping",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=272_000.0)),
        [
            "field 'long_context[0].above_input_tokens'",
            "272000.0 (float) is not an integer; write it as 272000",
            "such as 200000",
        ],
        id="float-threshold",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=Decimal(272_000))),
        ["272000 (Decimal) is not an integer; write it as 272000"],
        id="decimal-threshold",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=272_000.5)),
        ["272000.5 is not a whole number above 0"],
        id="fraction-threshold",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=2**63)),
        [
            "field 'long_context[0].above_input_tokens'",
            "a number of 64 bits is above 9223372036854775807",
            "no request has that many input tokens",
        ],
        id="threshold-above-64-bits",
    ),
    pytest.param(
        # Python refuses to turn an int of over 4,300 digits into text.
        long_context(long_context_tier(above_input_tokens=10**5000)),
        ["a number of 16610 bits is above 9223372036854775807"],
        id="threshold-too-long-to-show",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens="272000")),
        [
            "field 'long_context[0].above_input_tokens'",
            "'272000' is not a whole number",
        ],
        id="text-threshold",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=True)),
        ["field 'long_context[0].above_input_tokens'", "True is not a whole number"],
        id="bool-threshold",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=0)),
        ["field 'long_context[0].above_input_tokens'", "0 is not a whole number"],
        id="zero-threshold",
    ),
    pytest.param(
        long_context(long_context_tier(above_input_tokens=-1)),
        ["field 'long_context[0].above_input_tokens'", "-1 is not a whole number"],
        id="negative-threshold",
    ),
    pytest.param(
        long_context({"input": 4, "output": 18}),
        [
            "field 'long_context[0].above_input_tokens'",
            "every long-context tier needs `above_input_tokens`",
        ],
        id="missing-threshold",
    ),
    pytest.param(
        long_context(
            long_context_tier(above_input_tokens=128_000),
            long_context_tier(),
            long_context_tier(input=5),
        ),
        [
            "field 'long_context[2].above_input_tokens'",
            "long_context[1] and long_context[2] both apply above 272000 input tokens",
            "Give each tier its own threshold",
        ],
        id="duplicate-threshold",
    ),
    pytest.param(
        long_context({"above_input_tokens": 272_000, "output": 18}),
        ["field 'long_context[0].input'", "every long-context tier needs"],
        id="missing-input",
    ),
    pytest.param(
        long_context({"above_input_tokens": 272_000, "input": 4}),
        ["field 'long_context[0].output'", "every long-context tier needs"],
        id="missing-output",
    ),
    pytest.param(
        long_context(long_context_tier(cached=0.4)),
        [
            "field 'long_context[0].cached'",
            "Unknown field in the long-context tier",
            "above_input_tokens, cache_read, cache_write, input, input_audio",
        ],
        id="unknown-field",
    ),
    pytest.param(
        long_context(long_context_tier(price_per_tokens=1000)),
        [
            "field 'long_context[0].price_per_tokens'",
            "A tier's prices are in the unit of its entry.",
        ],
        id="unit-in-tier",
    ),
    pytest.param(
        long_context(long_context_tier(tiers={"flex": {"input": 2, "output": 9}})),
        ["field 'long_context[0].tiers'", "Unknown field in the long-context tier"],
        id="tiers-in-tier",
    ),
    pytest.param(
        long_context(long_context_tier(long_context=[])),
        [
            "field 'long_context[0].long_context'",
            "cannot have long-context tiers of its own",
        ],
        id="nested-long-context",
    ),
    pytest.param(
        long_context(long_context_tier(output=-18)),
        ["field 'long_context[0].output'", "-18 is negative"],
        id="negative-rate",
    ),
    pytest.param(
        flex_prices(
            {
                "input": 1,
                "output": 6,
                "long_context": [long_context_tier(above_input_tokens=0)],
            }
        ),
        [
            "field 'tiers.flex.long_context[0].above_input_tokens'",
            "0 is not a whole number",
        ],
        id="tier-zero-threshold",
    ),
    pytest.param(
        flex_prices({"input": 1, "output": 6, "long_context": [{"input": 2}]}),
        [
            "field 'tiers.flex.long_context[0].above_input_tokens'",
            "every long-context tier needs",
        ],
        id="tier-missing-threshold",
    ),
]


@pytest.mark.parametrize(("table", "fragments"), BAD_LONG_CONTEXT)
def test_bad_long_context_rejected(table, fragments):
    with pytest.raises(PricingTableError) as caught:
        llmfy_usage_tracker(openai_pricing=table)

    message = str(caught.value)
    assert "provider 'openai'" in message
    assert "Expected shape" in message
    for fragment in fragments:
        assert fragment in message
