"""Price resolution: profiles, ARNs, Regions, overrides, tiers, batch and catalog.

Rates are USD per million tokens from the bundled table unless a test gives an
override (USD per 1,000 tokens).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from llmfy_bedrock import resolve
from llmfy_bedrock.prices import bundled_table

from llmfy_core import (
    CallContext,
    Price,
    PricingWarning,
    Unpriced,
    Usage,
    compute_cost,
    llmfy_usage_tracker,
)
from llmfy_core.recording import record_usage

from .botocore_support import cache_ttl

SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
APP_PROFILE = (
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
)
MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]


def lookup(
    model: str, region: str | None, tier: str | None = None, batch: bool = False
) -> Price | Unpriced | None:
    return bundled_table().lookup(model, region, tier, batch)


def price_of(model: str, region: str | None, batch: bool = False) -> Price:
    found = lookup(model, region, batch=batch)
    assert isinstance(found, Price), found
    return found


def usage_of(
    model: str, region: str | None, input_tokens: int, output_tokens: int
) -> Usage:
    return Usage("bedrock", model, input_tokens, output_tokens, region=region)


@pytest.mark.parametrize(
    ("model", "region", "expected_input"),
    [
        # In-region and geographic profiles: the source Region's rate (3.3).
        (SONNET_45, "us-east-1", "3.3"),
        (f"us.{SONNET_45}", "us-east-1", "3.3"),
        (f"us.{SONNET_45}", "us-west-2", "3.3"),
        (f"eu.{SONNET_45}", "eu-central-1", "3.3"),
        (f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET_45}", None, "3.3"),
        (
            f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{SONNET_45}",
            "us-east-1",
            "3.3",
        ),
        # The global profile: AWS's global rate (3), from any source Region.
        (f"global.{SONNET_45}", "us-east-1", "3"),
        (f"global.{SONNET_45}", "ap-northeast-1", "3"),
        (
            f"arn:aws:bedrock:us-west-2:123456789012:inference-profile/global.{SONNET_45}",
            None,
            "3",
        ),
    ],
)
def test_sonnet_45_priced_as_billed(
    model: str, region: str | None, expected_input: str
) -> None:
    price = price_of(model, region)

    assert price.input == Decimal(expected_input)
    assert price.price_per_tokens == 1_000_000
    assert price.source == "https://aws.amazon.com/bedrock/pricing/"
    assert price.checked == dt.date(2026, 12, 4)


def test_profile_without_global_rate_uses_region() -> None:
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"

    assert price_of(f"us.{model}", "us-west-2").input == Decimal("3")
    assert price_of(f"eu.{model}", "eu-central-1").output == Decimal("15")
    assert price_of(f"apac.{model}", "ap-northeast-1").cache_read == Decimal("0.3")


def test_region_in_arn_wins_over_client() -> None:
    arn = f"arn:aws:bedrock:eu-central-1::foundation-model/{SONNET_45}"

    assert resolve.billing_region(arn, "us-east-1") == "eu-central-1"
    assert resolve.billing_region(SONNET_45, "us-east-1") == "us-east-1"


def test_model_without_version_suffix() -> None:
    # The table keys Claude Sonnet 5 as anthropic.claude-sonnet-5-v1:0.
    assert price_of("us.anthropic.claude-sonnet-5", "us-west-2").input == Decimal("3.3")
    assert price_of("global.anthropic.claude-sonnet-5", "us-west-2").input == Decimal(
        "3"
    )


OPUS_46_USAGE = {
    "inputTokens": 100,
    "outputTokens": 100,
    "totalTokens": 1200,
    "cacheWriteInputTokens": 1000,
    "cacheDetails": [{"ttl": "1h", "inputTokens": 1000}],
}


@pytest.mark.parametrize(
    ("model", "expected_cost"),
    [
        # Bedrock names Claude Opus 4.6 anthropic.claude-opus-4-6-v1, with no
        # `:0`, and the table keys it as anthropic.claude-opus-4-6-v1:0.
        # Regional rate: 5.5 in, 11 for 1-hour cache writes, 27.5 out.
        # 100 * 5.5 + 1000 * 11 + 100 * 27.5 = 550 + 11000 + 2750
        # = 14300 millionths of a USD
        ("us.anthropic.claude-opus-4-6-v1", "0.0143"),
        ("anthropic.claude-opus-4-6-v1", "0.0143"),
        # Global rate: 5 in, 10 for 1-hour cache writes, 25 out.
        # 100 * 5 + 1000 * 10 + 100 * 25 = 500 + 10000 + 2500
        # = 13000 millionths of a USD
        ("global.anthropic.claude-opus-4-6-v1", "0.013"),
    ],
)
@cache_ttl
def test_id_without_revision_priced(
    model: str, expected_cost: str, bedrock_server: Any, make_client: Any
) -> None:
    client = make_client("us-east-1")
    message = {"role": "assistant", "content": [{"text": "Hi"}]}
    body = {
        "output": {"message": message},
        "stopReason": "end_turn",
        "usage": OPUS_46_USAGE,
    }
    bedrock_server.queue_json(body)

    with llmfy_usage_tracker() as usage:
        client.converse(modelId=model, messages=MESSAGES)

    record = usage.records[0]
    assert record.price_origin == "bedrock"
    assert record.cost is not None
    assert record.cost.total == Decimal(expected_cost)


def test_id_without_revision_unpriced_elsewhere() -> None:
    # ap-south-1 has no bundled Opus 4.6 rate, and no other Region's is used.
    found = lookup("apac.anthropic.claude-opus-4-6-v1", "ap-south-1")

    assert isinstance(found, Unpriced)
    assert found.final
    assert "'ap-south-1'" in found.reason


def test_shared_stem_matches_nothing() -> None:
    # Titan Embeddings v1 and v2 share the stem amazon.titan-embed-text.
    assert lookup("amazon.titan-embed-text", "us-east-1") is None
    assert lookup("amazon.titan-embed-text-v9:0", "us-east-1") is None


def test_unknown_model_is_left_to_others() -> None:
    assert lookup("example.unknown-model-v1:0", "us-east-1") is None


def test_missing_region_is_unpriced() -> None:
    found = lookup("amazon.nova-micro-v1:0", "eu-west-1")

    assert isinstance(found, Unpriced)
    assert found.final
    assert "amazon.nova-micro-v1:0" in found.reason
    assert "'eu-west-1'" in found.reason
    assert "us-east-1" in found.reason
    assert "bedrock_pricing" in found.reason


def test_missing_region_warns_through_tracker() -> None:
    usage = usage_of("eu.amazon.nova-micro-v1:0", "eu-west-1", 100, 10)

    with llmfy_usage_tracker() as tracker:
        with pytest.warns(PricingWarning, match="eu-west-1") as warned:
            record_usage(usage, [tracker])
        record_usage(usage, [tracker])

    assert len(warned) == 1
    assert "amazon.nova-micro-v1:0" in str(warned[0].message)
    assert tracker.records[0].cost is None
    assert tracker.records[1].cost is None
    assert tracker.totals.unpriced == 2


def test_unknown_client_region_is_unpriced() -> None:
    found = lookup("amazon.nova-micro-v1:0", None)

    assert isinstance(found, Unpriced)
    assert "unknown region" in found.reason
    # The same reason serves a request recorded by hand without a region.
    assert "or a request recorded by hand gave none" in found.reason


def test_application_profile_unpriced_with_hint() -> None:
    found = lookup(APP_PROFILE, "us-east-1")

    assert isinstance(found, Unpriced)
    assert found.final
    assert APP_PROFILE in found.reason
    assert "bedrock_pricing" in found.reason
    assert "register_profile_model" in found.reason


def test_application_profile_priced_by_override() -> None:
    override = {APP_PROFILE: {"us-east-1": {"input": 0.003, "output": 0.015}}}
    usage = usage_of(APP_PROFILE, "us-east-1", 8, 2)

    with llmfy_usage_tracker(bedrock_pricing=override) as tracker:
        record_usage(usage, [tracker])

    record = tracker.records[0]
    # 0.003 and 0.015 USD per 1,000 tokens: 8*0.003 + 2*0.015 = 0.024 + 0.03
    # = 0.054 per 1,000 -> 0.000054 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.000054")
    assert record.price_origin == "override"


def test_application_profile_with_registered_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        resolve._profile_models, APP_PROFILE, "anthropic.claude-3-haiku-20240307-v1:0"
    )

    price = price_of(APP_PROFILE, "us-west-2")

    # The ARN's Region (us-east-1) prices it: Claude 3 Haiku 0.25 in, 1.25 out.
    assert price.input == Decimal("0.25")
    assert price.output == Decimal("1.25")


@pytest.mark.usefixtures("profile_models")
def test_profile_registered_after_request_priced() -> None:
    with llmfy_usage_tracker() as tracker:
        with pytest.warns(PricingWarning, match="register_profile_model"):
            tracker.record("bedrock", APP_PROFILE, 1000, 1000, region="us-east-1")
        resolve.register_profile_model(APP_PROFILE, "amazon.nova-lite-v1:0")
        tracker.record("bedrock", APP_PROFILE, 1000, 1000, region="us-east-1")

    before, after = tracker.records
    assert before.cost is None
    # Nova Lite in us-east-1: 1000 input tokens at 0.06 and 1000 output tokens
    # at 0.24 USD per million, 0.00006 + 0.00024 USD.
    assert after.cost is not None
    assert after.cost.total == Decimal("0.0003")


def test_application_profile_warns_in_tracker() -> None:
    usage = usage_of(APP_PROFILE, "us-east-1", 8, 2)

    with llmfy_usage_tracker() as tracker:
        with pytest.warns(PricingWarning, match="application inference profile"):
            record_usage(usage, [tracker])

    assert tracker.records[0].cost is None
    assert tracker.records[0].unpriced_reason is not None


def test_provisioned_throughput_is_final() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123"

    found = lookup(arn, "us-east-1")

    assert isinstance(found, Unpriced)
    assert found.final
    assert "billed by the hour" in found.reason


def test_long_context_reprices_request() -> None:
    price = price_of(f"us.{SONNET_45}", "us-east-1")
    usage = usage_of(f"us.{SONNET_45}", "us-east-1", 250_000, 1_000)

    cost = compute_cost(usage, price)

    # Above 200,000 input tokens the regional long-context rate applies to the
    # whole request: 6.6 in, 24.75 out.
    # 250000*6.6 + 1000*24.75 = 1650000 + 24750 = 1674750 -> 1.67475 USD
    assert cost.total == Decimal("1.67475")


def test_short_context_keeps_base_rate() -> None:
    price = price_of(f"us.{SONNET_45}", "us-east-1")
    usage = usage_of(f"us.{SONNET_45}", "us-east-1", 200_000, 1_000)

    cost = compute_cost(usage, price)

    # 200000*3.3 + 1000*16.5 = 660000 + 16500 = 676500 -> 0.6765 USD
    assert cost.total == Decimal("0.6765")


def test_batch_price_is_half() -> None:
    price = price_of("amazon.nova-lite-v1:0", "us-east-1", batch=True)

    assert price.input == Decimal("0.03")
    assert price.output == Decimal("0.12")


def test_batch_missing_is_unpriced() -> None:
    found = lookup("amazon.titan-text-lite-v1", "us-east-1", batch=True)

    assert isinstance(found, Unpriced)
    assert "batch" in found.reason


def test_priority_tier_is_unpriced() -> None:
    found = lookup("amazon.nova-micro-v1:0", "us-east-1", tier="priority")

    assert isinstance(found, Unpriced)
    assert "'priority'" in found.reason


def test_default_tier_keeps_standard_price() -> None:
    found = lookup("amazon.nova-micro-v1:0", "us-east-1", tier="default")

    assert isinstance(found, Price)
    assert found.input == Decimal("0.035")


def test_override_resolves_profiles_and_arns() -> None:
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    override = {
        model: {
            "us-east-1": {
                "region": "US East (N. Virginia)",
                "input": 0.002,
                "output": 0.01,
            }
        }
    }
    calls = [
        usage_of(f"us.{model}", "us-east-1", 1000, 100),
        usage_of(
            f"arn:aws:bedrock:us-east-1::foundation-model/{model}", None, 1000, 100
        ),
        usage_of(f"eu.{model}", "eu-central-1", 1000, 100),
    ]

    with llmfy_usage_tracker(bedrock_pricing=override) as tracker:
        for usage in calls:
            record_usage(usage, [tracker])

    profile, arn, other_region = tracker.records
    # Override: 1000*0.002 + 100*0.01 = 2 + 1 = 3 per 1,000 -> 0.003 USD
    assert profile.cost is not None
    assert profile.cost.total == Decimal("0.003")
    assert arn.cost is not None
    assert arn.cost.total == Decimal("0.003")
    # eu-central-1 has no override entry: the bundled rate (3 in, 15 out) applies.
    # 1000*3 + 100*15 = 4500 -> 0.0045 USD
    assert other_region.price_origin == "bedrock"
    assert other_region.cost is not None
    assert other_region.cost.total == Decimal("0.0045")


def test_override_applies_to_every_tier() -> None:
    override = {
        "amazon.nova-micro-v1:0": {"us-east-1": {"input": 0.0001, "output": 0.0002}}
    }
    usage = Usage(
        "bedrock",
        "amazon.nova-micro-v1:0",
        1000,
        1000,
        region="us-east-1",
        service_tier="priority",
    )

    with llmfy_usage_tracker(bedrock_pricing=override) as tracker:
        record_usage(usage, [tracker])

    # 1000*0.0001 + 1000*0.0002 = 0.3 per 1,000 -> 0.0003 USD
    assert tracker.records[0].cost is not None
    assert tracker.records[0].cost.total == Decimal("0.0003")


def test_override_unit_per_million() -> None:
    override = {
        "amazon.nova-micro-v1:0": {
            "us-east-1": {"input": 1, "output": 2, "price_per_tokens": 1_000_000}
        }
    }
    usage = usage_of("amazon.nova-micro-v1:0", "us-east-1", 1000, 1000)

    with llmfy_usage_tracker(bedrock_pricing=override) as tracker:
        record_usage(usage, [tracker])

    # 1000*1 + 1000*2 = 3000 per million -> 0.003 USD
    assert tracker.records[0].cost is not None
    assert tracker.records[0].cost.total == Decimal("0.003")


def test_catalog_lists_regions_and_global() -> None:
    entries = list(bundled_table().catalog())
    keys = {(entry.key.model, entry.key.region, entry.key.batch) for entry in entries}

    assert (SONNET_45, "eu-central-1", False) in keys
    assert (f"global.{SONNET_45}", None, False) in keys
    assert (SONNET_45, "us-east-1", True) in keys
    assert all(entry.provider == "bedrock" for entry in entries)
    assert all(isinstance(entry.price, Price) for entry in entries)


def test_catalog_prices_carry_source_and_date() -> None:
    for entry in bundled_table().catalog():
        price = entry.price
        assert isinstance(price, Price)
        assert price.source.startswith("https://aws.amazon.com/bedrock/pricing")
        assert price.checked is not None


def test_catalog_through_hook() -> None:
    from llmfy_core.plugins import get_registry

    results: list[Any] = get_registry().manager.hook.price_catalog(provider="bedrock")
    listed = [entry for result in results if result for entry in result]

    assert any(entry.key.model == SONNET_45 for entry in listed)


def test_table_covers_required_models() -> None:
    required = [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
        SONNET_45,
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "amazon.nova-micro-v1:0",
        "amazon.nova-lite-v1:0",
        "amazon.nova-pro-v1:0",
        "amazon.nova-premier-v1:0",
        "amazon.titan-text-lite-v1",
        "amazon.titan-text-express-v1",
        "amazon.titan-embed-text-v2:0",
        "meta.llama3-1-70b-instruct-v1:0",
        "mistral.mistral-7b-instruct-v0:2",
        "cohere.command-r-v1:0",
        "cohere.embed-v4:0",
    ]
    for model in required:
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            assert isinstance(lookup(model, region), Price), (model, region)


def test_recorded_context_region_used(bedrock_server: Any, make_client: Any) -> None:
    client = make_client("ap-northeast-1")
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 100, "outputTokens": 10, "totalTokens": 110},
        "metrics": {"latencyMs": 1},
    }
    bedrock_server.queue_json(body)

    with llmfy_usage_tracker() as tracker:
        client.converse(
            modelId="apac.anthropic.claude-3-haiku-20240307-v1:0", messages=MESSAGES
        )

    record = tracker.records[0]
    assert record.usage.region == "ap-northeast-1"
    # Claude 3 Haiku in ap-northeast-1: 0.25 in, 1.25 out.
    # 100*0.25 + 10*1.25 = 25 + 12.5 = 37.5 -> 0.0000375 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000375")


def test_context_without_usage_is_unknown() -> None:
    from llmfy_bedrock.plugin import usage_extract

    context = CallContext("bedrock", "Converse", "amazon.nova-micro-v1:0", "us-east-1")
    usage = usage_extract({}, context)

    assert usage is not None
    assert usage.input_tokens is None
    assert usage.output_tokens is None
