"""genai-prices' prices, long-context tiers, dated prices and variants as llmfy prices.

Expected prices are those that genai-prices 0.2.3 lists (USD per million
tokens); they match the providers' published prices for these models.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import warnings
from decimal import Decimal

import genai_prices
import pytest
from llmfy_genai_prices import adapter, plugin

import llmfy_core
from llmfy_core import Price, PricingWarning, Unpriced, llmfy_usage_tracker

UTC = dt.UTC
BEFORE_VARIANTS = dt.datetime(2025, 5, 1, tzinfo=UTC)
# genai-prices lists OpenAI's flex, priority and batch prices from 2026-10-12
# (service tiers) and 2026-10-14 (batch) on.
AFTER_VARIANTS = dt.datetime(2026, 11, 1, tzinfo=UTC)
VERSION = importlib.metadata.version("genai-prices")


@pytest.fixture
def genai_only() -> None:
    """Load the installed plugins without the provider plugins and the price file."""
    llmfy_core.load_plugins(block=["openai", "bedrock", "pricing-file"])


def lookup(
    provider: str,
    model: str,
    *,
    region: str | None = None,
    service_tier: str | None = None,
    batch: bool = False,
    requested_at: dt.datetime = BEFORE_VARIANTS,
) -> Price | Unpriced | None:
    del region  # genai-prices has one price per model, whatever the region
    return plugin.price_lookup(provider, model, service_tier, batch, requested_at)


def test_openai_price_mapped() -> None:
    price = lookup("openai", "gpt-4o-mini-2024-07-18")

    assert isinstance(price, Price)
    assert price.input == Decimal("0.15")
    assert price.output == Decimal("0.6")
    assert price.cache_read == Decimal("0.075")
    assert price.cache_write is None
    assert price.price_per_tokens == 1_000_000
    # $10 per 1,000 web_search calls.
    assert price.per_call["web_search"] == Decimal("0.01")
    assert price.long_context == ()
    assert price.source == f"genai-prices {VERSION}, openai model gpt-4o-mini"


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ],
)
def test_bedrock_ids_mapped_to_aws(model: str) -> None:
    price = lookup("bedrock", model, region="eu-central-1")

    assert isinstance(price, Price)
    assert price.input == Decimal("3")
    assert price.output == Decimal("15")
    assert price.cache_read == Decimal("0.3")
    assert price.cache_write == Decimal("3.75")
    assert "aws model regional.anthropic.claude-3-5-sonnet" in price.source


def test_one_hour_cache_write_and_audio_prices() -> None:
    haiku = lookup("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    audio = lookup("openai", "gpt-audio")

    assert isinstance(haiku, Price)
    assert haiku.cache_write == Decimal("1.375")
    assert haiku.other["cache_write_1h"] == Decimal("2.2")
    assert isinstance(audio, Price)
    assert audio.other["input_audio"] == Decimal("32")
    assert audio.other["output_audio"] == Decimal("64")


@pytest.mark.parametrize(
    ("model", "expected_total"),
    [
        # Image output at the output rate, the only output of GPT Image 1:
        # 50 x 5 + 4200 x 40 = 168,250 per million.
        ("gpt-image-1", Decimal("0.16825")),
        # Text and image output at their own rates:
        # 50 x 5 + 40 x 10 + 4160 x 32 = 133,770 per million.
        ("gpt-image-1.5", Decimal("0.13377")),
    ],
)
def test_image_output_tokens_priced_without_estimate(
    genai_only: None, model: str, expected_total: Decimal
) -> None:
    with llmfy_usage_tracker() as usage:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PricingWarning)
            record = usage.record(
                "openai", model, 50, 4200, other_tokens={"output_image": 4160}
            )

    assert record.cost is not None
    assert record.cost.total == expected_total
    assert not [part for part in record.cost.parts if part.startswith("estimated:")]


def test_text_model_lists_no_image_rate() -> None:
    price = lookup("openai", "gpt-4o-mini")

    assert isinstance(price, Price)
    assert "output_image" not in price.other


@pytest.mark.parametrize(
    ("moment", "expected_input", "expected_output"),
    [
        (dt.datetime(2025, 6, 9, 23, 59, tzinfo=UTC), "10", "40"),
        (dt.datetime(2025, 6, 10, 0, 0, tzinfo=UTC), "2", "8"),
    ],
)
def test_dated_price_by_request_time(
    moment: dt.datetime, expected_input: str, expected_output: str
) -> None:
    # OpenAI cut o3's price from 10 / 40 to 2 / 8 on 2025-06-10.
    price = lookup("openai", "o3", requested_at=moment)

    assert isinstance(price, Price)
    assert price.input == Decimal(expected_input)
    assert price.output == Decimal(expected_output)


def test_dated_prices_in_tracker(genai_only: None) -> None:
    usage = llmfy_usage_tracker()

    before = usage.record(
        "openai", "o3", 1000, 1000, sent_at=dt.datetime(2025, 6, 1, tzinfo=UTC)
    )
    after = usage.record(
        "openai", "o3", 1000, 1000, sent_at=dt.datetime(2025, 7, 1, tzinfo=UTC)
    )

    # 1000 * 10 + 1000 * 40 = 50,000 per million tokens.
    assert before.cost is not None
    assert before.cost.total == Decimal("0.05")
    # 1000 * 2 + 1000 * 8 = 10,000 per million tokens.
    assert after.cost is not None
    assert after.cost.total == Decimal("0.01")
    assert after.price_origin == "genai-prices"


def test_long_context_tier_mapped() -> None:
    price = lookup("openai", "gpt-5.4")

    assert isinstance(price, Price)
    assert price.input == Decimal("2.5")
    assert price.output == Decimal("15")
    assert len(price.long_context) == 1
    tier = price.long_context[0]
    assert tier.above_input_tokens == 272_000
    assert tier.price.input == Decimal("5")
    assert tier.price.output == Decimal("22.5")
    assert tier.price.cache_read == Decimal("0.5")


def test_long_context_cost_in_tracker(genai_only: None) -> None:
    usage = llmfy_usage_tracker()

    at_threshold = usage.record(
        "openai", "gpt-5.4", 272_000, 1000, sent_at=BEFORE_VARIANTS
    )
    above = usage.record(
        "openai",
        "gpt-5.4",
        300_000,
        1000,
        cache_read_tokens=100_000,
        sent_at=BEFORE_VARIANTS,
    )

    # Not above 272,000 input tokens: 272,000 * 2.5 + 1000 * 15 = 695,000.
    assert at_threshold.cost is not None
    assert at_threshold.cost.total == Decimal("0.695")
    # Above: every token at the long-context rate,
    # 200,000 * 5 + 100,000 * 0.5 + 1000 * 22.5 = 1,072,500.
    assert above.cost is not None
    assert above.cost.total == Decimal("1.0725")
    # genai-prices' own arithmetic agrees.
    calculation = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=300_000, cache_read_tokens=100_000, output_tokens=1000
        ),
        "gpt-5.4",
        provider_id="openai",
        genai_request_timestamp=BEFORE_VARIANTS,
    )
    assert calculation.total_price == above.cost.total


def test_service_tier_variant_priced() -> None:
    flex = lookup("openai", "gpt-5", service_tier="flex", requested_at=AFTER_VARIANTS)
    default = lookup(
        "openai", "gpt-5", service_tier="default", requested_at=AFTER_VARIANTS
    )

    assert isinstance(flex, Price)
    assert flex.input == Decimal("0.625")
    assert flex.output == Decimal("5")
    assert flex.cache_read == Decimal("0.0625")
    assert isinstance(default, Price)
    assert default.input == Decimal("1.25")
    assert default.output == Decimal("10")


@pytest.mark.parametrize("tier", ["default", "standard"])
def test_standard_tier_names_priced_as_standard(tier: str) -> None:
    found = lookup("openai", "gpt-5", service_tier=tier, requested_at=AFTER_VARIANTS)

    assert isinstance(found, Price)
    assert found.input == Decimal("1.25")
    assert found.output == Decimal("10")


@pytest.mark.parametrize(
    ("model", "moment"),
    [
        ("gpt-5", BEFORE_VARIANTS),  # before genai-prices lists a flex price
        ("gpt-4o-mini", AFTER_VARIANTS),  # no flex price for this model
    ],
)
def test_service_tier_without_variant_unpriced(model: str, moment: dt.datetime) -> None:
    found = lookup("openai", model, service_tier="flex", requested_at=moment)

    assert isinstance(found, Unpriced)
    assert not found.final
    assert f"genai-prices {VERSION} has no price for service tier 'flex'" in (
        found.reason
    )
    assert f"openai model '{model}'" in found.reason


def test_batch_variant_priced_and_unpriced() -> None:
    batch = lookup("openai", "gpt-4o-mini", batch=True, requested_at=AFTER_VARIANTS)
    early = lookup("openai", "gpt-4o-mini", batch=True, requested_at=BEFORE_VARIANTS)

    assert isinstance(batch, Price)
    assert batch.input == Decimal("0.075")
    assert batch.output == Decimal("0.3")
    assert isinstance(early, Unpriced)
    assert "no price for batch requests" in early.reason


def test_batch_in_service_tier_unpriced() -> None:
    # genai-prices lists a priority and a batch price of gpt-4o-mini, but
    # none for batch requests in the priority tier.
    found = lookup(
        "openai",
        "gpt-4o-mini",
        service_tier="priority",
        batch=True,
        requested_at=AFTER_VARIANTS,
    )

    assert isinstance(found, Unpriced)
    assert not found.final
    assert "no price for batch requests in service tier 'priority'" in found.reason


def test_unpriced_reason_reaches_record(genai_only: None) -> None:
    usage = llmfy_usage_tracker()

    with pytest.warns(PricingWarning, match="service tier 'flex'"):
        record = usage.record(
            "openai",
            "gpt-4o-mini",
            100,
            10,
            service_tier="flex",
            sent_at=AFTER_VARIANTS,
        )

    assert record.cost is None
    assert record.unpriced_reason is not None
    assert "genai-prices" in record.unpriced_reason


def test_time_of_day_prices_unpriced() -> None:
    found = lookup("deepseek", "deepseek-chat")

    assert isinstance(found, Unpriced)
    assert "time of day" in found.reason


def test_model_without_token_price_unpriced() -> None:
    found = lookup("openai", "tts-1")

    assert isinstance(found, Unpriced)
    assert "no per-token input price" in found.reason


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "no-such-model"), ("acme", "gpt-4o-mini"), ("bedrock", "gpt-4o")],
)
def test_unknown_model_or_provider_not_priced(provider: str, model: str) -> None:
    assert lookup(provider, model) is None


def test_other_genai_provider_by_its_id(genai_only: None) -> None:
    usage = llmfy_usage_tracker()

    record = usage.record(
        "mistral", "mistral-large-latest", 1000, 1000, sent_at=BEFORE_VARIANTS
    )

    # mistral-large: 1000 * 2 + 1000 * 6 = 8,000 per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.008")
    assert record.price is not None
    assert record.price.source == f"genai-prices {VERSION}, mistral model mistral-large"


def test_catalog_lists_openai_and_bedrock() -> None:
    entries = list(adapter.catalog(None))

    providers = {entry.provider for entry in entries}
    mini = [
        entry
        for entry in entries
        if entry.provider == "openai" and entry.key.model == "gpt-4o-mini"
    ]
    assert providers == {"openai", "bedrock"}
    assert any(entry.key.batch for entry in mini)
    assert any(entry.key.service_tier == "priority" for entry in mini), (
        "priority variant listed"
    )
    standard = next(
        entry for entry in mini if not entry.key.batch and not entry.key.service_tier
    )
    assert isinstance(standard.price, Price)
    assert standard.price.input == Decimal("0.15")


def test_catalog_of_one_provider() -> None:
    entries = list(adapter.catalog("bedrock"))

    assert entries
    assert {entry.provider for entry in entries} == {"bedrock"}


def test_unpriced_reason_offers_keyword_only_if_read() -> None:
    # The openai plugin reads openai_pricing= tables; no plugin reads deepseek's.
    deepseek = lookup("deepseek", "deepseek-chat")
    openai = lookup("openai", "tts-1")

    assert isinstance(deepseek, Unpriced)
    assert isinstance(openai, Unpriced)
    assert "deepseek_pricing" not in deepseek.reason
    assert deepseek.reason.endswith("Add the price to a price file.")
    assert "llmfy_usage_tracker(openai_pricing=...)" in openai.reason


def test_fine_tuned_model_not_priced_as_base() -> None:
    # genai-prices matches this id to gpt-4 (30 and 60 USD per million tokens);
    # OpenAI bills a fine-tuned model at rates of its own.
    found = lookup("openai", "ft:gpt-4-0613:acme::8xyz")

    assert isinstance(found, Unpriced)
    assert "'ft:gpt-4-0613:acme::8xyz'" in found.reason
    assert "'gpt-4'" in found.reason


def test_fine_tuned_model_with_own_entry_priced() -> None:
    # genai-prices lists ft:gpt-4o-mini at 0.30 and 1.20 USD per million tokens.
    price = lookup("openai", "ft:gpt-4o-mini-2024-07-18:acme::8xyz")

    assert isinstance(price, Price)
    assert price.input == Decimal("0.3")
    assert price.output == Decimal("1.2")
