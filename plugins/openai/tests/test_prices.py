"""The bundled price table and model id resolution."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from llmfy_openai import (
    clear_azure_deployments,
    list_prices,
    lookup_price,
    map_azure_deployments,
)
from llmfy_openai import plugin as openai_plugin
from llmfy_openai.resolve import model_candidates, strip_snapshot

import llmfy
from llmfy import Price, PricingWarning, Unpriced, llmfy_usage_tracker

REQUIRED_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.4",
    "gpt-5.6-sol",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
]


def standard(model: str) -> Price:
    price = lookup_price(model, None, False)
    assert isinstance(price, Price), f"{model} has no bundled price"
    return price


@pytest.fixture
def azure_deployments() -> Iterator[None]:
    yield
    clear_azure_deployments()


# The day each required model's price was last compared with its sources,
# where it is not the table's default day.
CHECKED_ON = {"gpt-5.6-sol": dt.date(2026, 12, 5)}


@pytest.mark.parametrize("model", REQUIRED_MODELS)
def test_required_model_priced(model):
    price = standard(model)

    assert price.input > 0
    assert price.source.startswith("https://")
    assert price.checked == CHECKED_ON.get(model, dt.date(2026, 12, 4))


def test_gpt_4o_mini_documented_price():
    price = standard("gpt-4o-mini")

    assert price.input == Decimal("0.15")
    assert price.output == Decimal("0.60")
    assert price.cache_read == Decimal("0.075")
    assert price.price_per_tokens == 1_000_000


def test_dated_snapshot_uses_model_price():
    assert standard("gpt-4o-mini-2024-07-18") == standard("gpt-4o-mini")


def test_snapshot_with_own_price_wins():
    assert standard("gpt-4o-2024-05-13").input == Decimal("5.00")
    assert standard("gpt-4o-2024-08-06").input == Decimal("2.50")


def test_short_snapshot_suffix():
    assert strip_snapshot("gpt-4-0613") == "gpt-4"
    assert standard("gpt-4-0613").input == Decimal("30.00")


def test_fine_tuned_priced_at_fine_tuned_rate():
    price = standard("ft:gpt-4o-mini-2024-07-18:acme:support:abc123")

    assert price.input == Decimal("0.30")
    assert price.output == Decimal("1.20")


def test_fine_tuned_never_uses_base_price():
    candidates = list(model_candidates("ft:gpt-4.1-2025-04-14:acme::x1"))

    assert candidates == [
        "ft:gpt-4.1-2025-04-14:acme::x1",
        "ft:gpt-4.1-2025-04-14",
        "ft:gpt-4.1",
    ]


def test_fine_tuned_without_price_is_unpriced():
    found = lookup_price("ft:gpt-4.1-2025-04-14:acme::x1", None, False)

    assert isinstance(found, Unpriced)
    assert "fine-tuned" in found.reason
    assert "openai_pricing" in found.reason


def test_fine_tuned_without_price_warns_once():
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning, match="fine-tuned"):
            usage.record("openai", "ft:gpt-4.1-2025-04-14:acme::x1", 100, 10)
        usage.record("openai", "ft:gpt-4.1-2025-04-14:acme::x1", 100, 10)

    assert [record.cost for record in usage.records] == [None, None]
    assert usage.totals.unpriced == 2


def test_unknown_model_is_unpriced_not_free():
    assert lookup_price("gpt-99-turbo", None, False) is None

    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning, match="gpt-99-turbo"):
            usage.record("openai", "gpt-99-turbo", 100, 10)

    assert usage.records[0].cost is None
    assert usage.cost_complete is False


def test_aliases():
    assert standard("text-embedding-ada-002-v2") == standard("text-embedding-ada-002")
    assert standard("gpt-5.6") == standard("gpt-5.6-sol")


def test_batch_is_half_price():
    batch = lookup_price("gpt-4o-2024-08-06", None, True)

    assert isinstance(batch, Price)
    assert batch.input == Decimal("1.25")
    assert batch.output == Decimal("5.00")
    assert batch.cache_read == Decimal("0.625")
    assert "guides/batch" in batch.source


def test_flex_uses_batch_rates():
    flex = lookup_price("gpt-5-2025-08-07", "flex", False)

    assert isinstance(flex, Price)
    assert flex.input == Decimal("0.625")
    assert flex.cache_read == Decimal("0.0625")
    assert flex.output == Decimal("5.00")


def test_priority_rates():
    priority = lookup_price("gpt-4o-mini", "priority", False)

    assert isinstance(priority, Price)
    assert priority.input == Decimal("0.25")
    assert priority.cache_read == Decimal("0.125")
    assert priority.output == Decimal("1.00")


@pytest.mark.parametrize("tier", ["default", "standard", "auto"])
def test_standard_tier_names_use_standard_rates(tier):
    assert lookup_price("gpt-4o-mini", tier, False) == standard("gpt-4o-mini")


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("flx", "Did you mean 'flex'?"),
        ("ultrafast", "no price for the service tier 'ultrafast'"),
        ("scale", "Scale Tier units, which are bought ahead"),
    ],
)
def test_unpriced_tiers_say_why(tier, expected):
    # Charging these at the standard rate would be a guess: an unknown or
    # misspelt tier, one without a bundled price, and Scale Tier's units.
    found = lookup_price("gpt-4o-mini", tier, False)

    assert isinstance(found, Unpriced)
    assert expected in found.reason
    assert "openai_pricing={'gpt-4o-mini'" in found.reason


def test_override_prices_unknown_tier():
    prices = {"gpt-4o-mini": {"input": 0.1, "output": 0.2}}

    with llmfy_usage_tracker(openai_pricing=prices) as tracker:
        record = tracker.record(
            "openai", "gpt-4o-mini", 1_000_000, 0, service_tier="scale"
        )

    # 1,000,000 x 0.1 USD per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.1")


def test_long_context_reprices_whole_request():
    price = standard("gpt-5.4")

    assert price.for_input_tokens(272_000).input == Decimal("2.50")
    assert price.for_input_tokens(272_001).input == Decimal("5.00")


def test_gpt_5_5_long_context(server, client, bodies):
    server.add_json(
        "/v1/responses",
        bodies.response(
            model="gpt-5.5-2026-04-23",
            input_tokens=300_000,
            cached=100_000,
            output_tokens=1000,
        ),
    )
    server.add_json(
        "/v1/responses",
        bodies.response(
            model="gpt-5.5-2026-04-23", input_tokens=272_000, output_tokens=1000
        ),
    )

    with llmfy_usage_tracker() as tracker:
        client.responses.create(model="gpt-5.5", input="Summarize the repository.")
        client.responses.create(model="gpt-5.5", input="Summarize the repository.")

    above_threshold, at_threshold = tracker.records
    # Above 272,000 input tokens the whole request costs 2x input and cached
    # input and 1.5x output: 200,000 x 10.00 + 100,000 x 1.00 + 1,000 x 45.00
    # USD per million = 2.0 + 0.1 + 0.045 = 2.145 USD.
    assert above_threshold.cost is not None
    assert above_threshold.cost.total == Decimal("2.145")
    # At exactly 272,000 the standard rates hold: 272,000 x 5.00 + 1,000 x
    # 30.00 USD per million = 1.36 + 0.03 = 1.39 USD.
    assert at_threshold.cost is not None
    assert at_threshold.cost.total == Decimal("1.39")


def test_tool_prices_on_every_model():
    price = standard("gpt-5")

    assert price.per_call["web_search"] == Decimal("0.01")
    assert price.per_call["file_search"] == Decimal("0.0025")
    assert "code_interpreter" not in price.per_call


def test_azure_deployment_mapping(azure_deployments):
    assert lookup_price("prod-chat", None, False) is None

    map_azure_deployments({"prod-chat": "gpt-4o-mini"})

    assert lookup_price("prod-chat", None, False) == standard("gpt-4o-mini")


def test_azure_mapping_after_request_priced(azure_deployments):
    with llmfy_usage_tracker() as tracker:
        with pytest.warns(PricingWarning):
            tracker.record("openai", "prod-mini", 1000, 1000)
        map_azure_deployments({"prod-mini": "gpt-4o-mini"})
        tracker.record("openai", "prod-mini", 1000, 1000)
        clear_azure_deployments()
        tracker.record("openai", "prod-mini", 1000, 1000)

    before, mapped, cleared = tracker.records
    assert before.cost is None
    # gpt-4o-mini: 1000 input tokens at 0.15 and 1000 output tokens at 0.60
    # USD per million, 0.00015 + 0.0006 USD.
    assert mapped.cost is not None
    assert mapped.cost.total == Decimal("0.00075")
    assert cleared.cost is None


def test_azure_deployment_mapping_rejects_empty(azure_deployments):
    with pytest.raises(ValueError, match="empty"):
        map_azure_deployments({"prod-chat": ""})


def test_azure_mapping_rejects_non_mapping(azure_deployments):
    with pytest.raises(TypeError, match="expected a mapping of deployment name"):
        map_azure_deployments(["prod-chat"])


def test_azure_mapping_unknown_model_warns(azure_deployments):
    with pytest.warns(PricingWarning) as warned:
        map_azure_deployments({"prod-chat": "gpt-4o-mni"})

    message = str(warned[0].message)
    assert len(warned) == 1
    assert "'gpt-4o-mni'" in message
    assert "Azure deployment 'prod-chat'" in message
    assert "Did you mean 'gpt-4o-mini'?" in message


def test_listing_covers_every_row():
    rows = list_prices()
    keys = {(row.model, row.service_tier, row.batch) for row in rows}

    assert ("gpt-4o-mini", None, False) in keys
    assert ("gpt-4o-mini", None, True) in keys
    assert ("gpt-4o-mini", "flex", False) in keys
    assert ("gpt-4o-mini", "priority", False) in keys
    assert all(row.price.source.startswith("https://") for row in rows)
    assert all(row.price.checked is not None for row in rows)


def test_audio_cost():
    with llmfy_usage_tracker() as usage:
        record = usage.record(
            "openai",
            "gpt-4o-audio-preview",
            64,
            9,
            other_tokens={"input_audio": 44},
            served_model="gpt-4o-audio-preview-2024-12-17",
        )

    # 20 text x 2.50 + 44 audio x 40 + 9 x 10 = 50 + 1760 + 90 = 1900 per million
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0019")


def test_audio_price_cites_model_page():
    price = standard("gpt-4o-audio-preview")

    assert price.source.startswith(
        "https://developers.openai.com/api/docs/models/gpt-4o-audio-preview;"
    )
    assert price.checked == dt.date(2026, 12, 5)


def test_cache_write_cost():
    with llmfy_usage_tracker() as usage:
        record = usage.record("openai", "gpt-5.6-sol", 4020, 4, cache_write_tokens=4012)

    # 8 x 4 + 4012 x 5 + 4 x 20 = 32 + 20060 + 80 = 20172 per million
    assert record.cost is not None
    assert record.cost.total == Decimal("0.020172")


@pytest.mark.parametrize("model", ["gpt-4o-mnii", "GPT4o-Mini"])
def test_unpriced_misspelt_model_suggests_listed(model: str):
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record("openai", model, 1000, 100)

    message = str(warned[0].message)
    assert f"No price for openai model {model!r}" in message
    assert "Did you mean 'gpt-4o-mini'?" in message
    assert usage.records[0].cost is None


def test_priority_without_bundled_rate_unpriced():
    missing = lookup_price("gpt-5.5", "priority", False)
    listed = lookup_price("gpt-4o-mini", "priority", False)

    assert isinstance(missing, Unpriced)
    assert not missing.final
    assert "'priority'" in missing.reason
    assert isinstance(listed, Price)
    assert listed.input == Decimal("0.25")


def test_priority_without_any_rate_unpriced_in_tracker():
    # Only the bundled table is asked: genai-prices, when installed, has
    # Priority prices of its own for some models.
    llmfy.load_plugins(autoload=False)
    llmfy.register_plugin(openai_plugin, "openai")
    try:
        with llmfy_usage_tracker() as usage:
            with pytest.warns(PricingWarning, match="Priority processing"):
                record = usage.record(
                    "openai", "gpt-5.5", 1000, 100, service_tier="priority"
                )
    finally:
        llmfy.load_plugins()

    assert record.cost is None
