"""Exact cost arithmetic and price validation."""

from __future__ import annotations

from decimal import Decimal
from random import Random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmfy_core
from llmfy_core import (
    LongContextTier,
    Price,
    PriceRank,
    PricingTableError,
    PricingWarning,
    Usage,
    compute_cost,
)
from llmfy_core.pricing import (
    PriceKey,
    StaticPriceTable,
    format_decimal,
    likely_typo,
    parse_price_value,
    price_problem,
)
from llmfy_core.recording import record_usage

from .conftest import ProviderPlugin

PRICE = Price(
    input=Decimal("2.50"),
    output=Decimal("10"),
    cache_read=Decimal("1.25"),
    cache_write=Decimal("3.125"),
)


def usage(**counts: int) -> Usage:
    fields = {"input_tokens": 0, "output_tokens": 0, **counts}
    return Usage(provider="openai", model="m", **fields)  # type: ignore[arg-type]


def test_cached_tokens_charged_once_at_cache_rate() -> None:
    cost = compute_cost(usage(input_tokens=1000, cache_read_tokens=800), PRICE)

    # 200 uncached * 2.50 + 800 cached * 1.25 = 500 + 1000 = 1500 per million
    assert cost.total == Decimal("0.0015")
    assert cost.parts["input"] == Decimal("0.0005")
    assert cost.parts["cache_read"] == Decimal("0.001")


def test_cache_write_charged_at_write_rate() -> None:
    cost = compute_cost(usage(input_tokens=1000, cache_write_tokens=1000), PRICE)

    # 1000 * 3.125 = 3125 per million
    assert cost.total == Decimal("0.003125")
    assert "input" not in cost.parts


def test_reasoning_tokens_are_output_not_extra() -> None:
    cost = compute_cost(usage(output_tokens=100, reasoning_tokens=64), PRICE)

    # 100 output tokens (64 of them reasoning) * 10 = 1000 per million
    assert cost.total == Decimal("0.001")


def test_missing_cache_rates_fall_back_to_input_rate() -> None:
    price = Price(input=Decimal("1"), output=Decimal("2"))

    cost = compute_cost(
        usage(input_tokens=10, cache_read_tokens=4, cache_write_tokens=3), price
    )

    # 3 plain + 4 read + 3 write, all at 1 per million = 10 per million
    assert cost.total == Decimal("0.00001")


def test_subset_kind_priced_at_its_own_rate() -> None:
    price = Price(
        input=Decimal("2.5"),
        output=Decimal("10"),
        other={"input_audio": Decimal("40"), "output_audio": Decimal("80")},
    )

    cost = compute_cost(
        usage(
            input_tokens=100,
            output_tokens=50,
            other_tokens={"input_audio": 60, "output_audio": 20},  # type: ignore[arg-type]
        ),
        price,
    )

    # 40 text in * 2.5 + 60 audio in * 40 + 30 text out * 10 + 20 audio out * 80
    # = 100 + 2400 + 300 + 1600 = 4400 per million
    assert cost.total == Decimal("0.0044")


def test_cached_audio_tokens_charged_once() -> None:
    # 64 prompt tokens, 44 of them audio and 32 cached: at least 12 cached
    # tokens are audio tokens, which must not cost the audio rate as well.
    price = Price(
        input=Decimal("2.5"),
        output=Decimal("10"),
        cache_read=Decimal("1.25"),
        other={"input_audio": Decimal("40")},
    )

    cost = compute_cost(
        usage(
            input_tokens=64,
            output_tokens=10,
            cache_read_tokens=32,
            other_tokens={"input_audio": 44},  # type: ignore[arg-type]
        ),
        price,
    )

    # 32 cached * 1.25 + 32 uncached audio * 40 + 10 out * 10
    # = 40 + 1280 + 100 = 1420 per million
    assert cost.total == Decimal("0.00142")
    assert cost.parts["input_audio"] == Decimal("0.00128")
    assert "input" not in cost.parts


def test_subset_overlap_needs_known_input() -> None:
    price = Price(
        input=Decimal("2.5"), output=Decimal("10"), other={"input_audio": Decimal("40")}
    )

    cost = compute_cost(
        usage(
            input_tokens=None,
            output_tokens=10,
            other_tokens={"input_audio": 44},  # type: ignore[arg-type]
        ),
        price,
    )

    # 44 audio * 40 + 10 out * 10 = 1760 + 100 = 1860 per million
    assert cost.total == Decimal("0.00186")


def test_one_hour_cache_writes_priced_apart() -> None:
    price = Price(
        input=Decimal("3"),
        output=Decimal("15"),
        cache_write=Decimal("3.75"),
        other={"cache_write_1h": Decimal("6")},
    )

    cost = compute_cost(
        usage(
            input_tokens=1000,
            cache_write_tokens=1000,
            other_tokens={"cache_write_1h": 400},  # type: ignore[arg-type]
        ),
        price,
    )

    # 600 five-minute writes * 3.75 + 400 one-hour writes * 6 = 2250 + 2400
    assert cost.total == Decimal("0.00465")


def test_long_context_tier_reprices_whole_request() -> None:
    price = Price(
        input=Decimal("3"),
        output=Decimal("15"),
        long_context=(
            LongContextTier(200_000, Price(input=Decimal("6"), output=Decimal("22.5"))),
        ),
    )

    below = compute_cost(usage(input_tokens=200_000, output_tokens=1000), price)
    above = compute_cost(usage(input_tokens=200_001, output_tokens=1000), price)

    # 200000 * 3 + 1000 * 15 = 615000 per million
    assert below.total == Decimal("0.615")
    # 200001 * 6 + 1000 * 22.5 = 1222506 per million
    assert above.total == Decimal("1.222506")


def test_long_context_tiers_in_any_order() -> None:
    # A plugin may list its tiers in any order: the tier with the highest
    # threshold below the request's input tokens applies.
    tier_200k = LongContextTier(200_000, Price(input=Decimal("6"), output=Decimal(0)))
    tier_1m = LongContextTier(1_000_000, Price(input=Decimal("9"), output=Decimal(0)))
    base = Price(input=Decimal("3"), output=Decimal(0))

    for tiers in ((tier_200k, tier_1m), (tier_1m, tier_200k)):
        price = attrs.evolve(base, long_context=tiers)
        assert price.for_input_tokens(200_000) is price
        assert price.for_input_tokens(200_001) is tier_200k.price
        assert price.for_input_tokens(1_000_000) is tier_200k.price
        assert price.for_input_tokens(1_000_001) is tier_1m.price


def test_price_problem_long_context_thresholds() -> None:
    tier_price = Price(input=Decimal("6"), output=Decimal("22.5"))
    base = Price(input=Decimal("3"), output=Decimal("15"))

    def with_threshold(threshold: object) -> Price:
        tier = LongContextTier(threshold, tier_price)  # type: ignore[arg-type]
        return attrs.evolve(base, long_context=(tier,))

    assert price_problem(with_threshold(200_000)) is None
    assert price_problem(with_threshold(0)) is None
    for threshold in ("200000", None, True, -1, 200_000.0):
        problem = price_problem(with_threshold(threshold))
        assert problem is not None
        assert f"above_input_tokens is {threshold!r}" in problem


def test_tool_calls_priced_per_call_and_unpriced_named() -> None:
    price = Price(
        input=Decimal("1"),
        output=Decimal("1"),
        per_call={"web_search": Decimal("0.01")},
    )

    cost = compute_cost(
        usage(tool_calls={"web_search": 3, "code_interpreter": 1}),  # type: ignore[arg-type]
        price,
    )

    assert cost.total == Decimal("0.03")
    assert cost.parts["unpriced:code_interpreter"] == 0


def test_price_per_thousand_tokens() -> None:
    price = Price(
        input=Decimal("0.003"), output=Decimal("0.015"), price_per_tokens=1000
    )

    cost = compute_cost(usage(input_tokens=1000, output_tokens=1000), price)

    # 1000 * 0.003 / 1000 + 1000 * 0.015 / 1000 = 0.003 + 0.015
    assert cost.total == Decimal("0.018")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.15, Decimal("0.15")),
        ("0.60", Decimal("0.60")),
        (3, Decimal(3)),
        # A negative zero is zero, so that no cost shows as "-0".
        ("-0", Decimal("0")),
        (-0.0, Decimal("0.0")),
    ],
)
def test_price_value_parsed_exactly(value: object, expected: Decimal) -> None:
    parsed = parse_price_value(value, provider="openai", model="m", field="input")

    assert parsed == expected
    assert str(parsed) == str(expected)


def test_implausible_price_warns_with_unit() -> None:
    with pytest.warns(PricingWarning, match="USD per 1,000,000 tokens"):
        parse_price_value(15000, provider="openai", model="m", field="output")


@pytest.mark.parametrize("value", [None, [1], {"a": 1}, "1e", float("-inf")])
def test_price_value_rejects_non_numbers(value: object) -> None:
    with pytest.raises(PricingTableError, match="field 'input'"):
        parse_price_value(value, provider="openai", model="m", field="input")


def test_static_table_prefers_region_and_tier_entries() -> None:
    base = Price(Decimal(1), Decimal(1))
    regional = Price(Decimal(2), Decimal(2))
    flex = Price(Decimal(3), Decimal(3))
    table = StaticPriceTable(
        {
            PriceKey("m"): base,
            PriceKey("m", region="eu-west-1"): regional,
            PriceKey("m", service_tier="flex"): flex,
        }
    )

    assert table.lookup("m", None, None, False) is base
    assert table.lookup("m", "eu-west-1", None, False) is regional
    assert table.lookup("m", "us-east-1", "flex", False) is flex
    assert table.lookup("m", None, None, True) is None
    assert table.lookup("other", None, None, False) is None


def test_format_decimal_plain_without_trailing_zeros() -> None:
    assert format_decimal(Decimal("0.00002865")) == "0.00002865"
    assert format_decimal(Decimal("15.00")) == "15"
    assert format_decimal(Decimal(0)) == "0"


token_counts = st.integers(min_value=0, max_value=10**9)
rates = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    cache_read = draw(token_counts)
    cache_write = draw(token_counts)
    plain = draw(token_counts)
    reasoning = draw(st.integers(min_value=0, max_value=10**6))
    output = reasoning + draw(token_counts)
    return usage(
        input_tokens=plain + cache_read + cache_write,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


@st.composite
def prices(draw: st.DrawFn) -> Price:
    return Price(
        input=draw(rates),
        output=draw(rates),
        cache_read=draw(rates),
        cache_write=draw(rates),
        price_per_tokens=draw(st.sampled_from([1000, 1_000_000])),
    )


@st.composite
def tiered_prices(draw: st.DrawFn) -> Price:
    """A price that is sometimes repriced above a long-context threshold."""
    base = draw(prices())
    if not draw(st.booleans()):
        return base
    threshold = draw(st.integers(min_value=0, max_value=3 * 10**9))
    return attrs.evolve(
        base, long_context=(LongContextTier(threshold, draw(prices())),)
    )


@given(usages(), prices())
def test_cost_equals_sum_of_parts(request_usage: Usage, price: Price) -> None:
    cost = compute_cost(request_usage, price)

    assert cost.total == sum(cost.parts.values(), Decimal(0))


@given(usages(), prices())
def test_cost_exact_against_hand_formula(request_usage: Usage, price: Price) -> None:
    assert request_usage.input_tokens is not None
    assert request_usage.output_tokens is not None
    assert price.cache_read is not None and price.cache_write is not None
    plain = (
        request_usage.input_tokens
        - request_usage.cache_read_tokens
        - request_usage.cache_write_tokens
    )
    expected = (
        plain * price.input
        + request_usage.cache_read_tokens * price.cache_read
        + request_usage.cache_write_tokens * price.cache_write
        + request_usage.output_tokens * price.output
    ) / price.price_per_tokens

    assert compute_cost(request_usage, price).total == expected


@given(st.lists(usages(), min_size=1, max_size=20), tiered_prices(), st.randoms())
def test_tracker_total_additive_in_any_order(
    batch: list[Usage], price: Price, random: Random
) -> None:
    llmfy_core.load_plugins(autoload=False)
    llmfy_core.register_plugin(ProviderPlugin("openai", {"m": price}), "test-openai")
    shuffled = list(batch)
    random.shuffle(shuffled)

    with llmfy_core.llmfy_usage_tracker() as in_order:
        record_usage_all(batch)
    with llmfy_core.llmfy_usage_tracker() as reordered:
        record_usage_all(shuffled)

    expected = sum((compute_cost(each, price).total for each in batch), Decimal(0))
    assert in_order.total_cost == expected
    assert reordered.total_cost == expected


def record_usage_all(batch: list[Usage]) -> None:
    trackers = llmfy_core.active_trackers()
    for each in batch:
        record_usage(each, trackers)


KNOWN_IDS = ["gpt-4o", "gpt-4o-mini", "gpt-5.6"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mnii", "gpt-4o-mini"),
        ("gtp-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mni", "gpt-4o-mini"),
        ("gpt-4o-minii", "gpt-4o-mini"),
        ("gpt-4o-mimi", "gpt-4o-mini"),
        ("gpt-4o-mini", None),
        ("gpt-5.7", None),
        ("gpt-4o-mini-custom", None),
        ("my-model", None),
        ("gpt-4ov", None),
        ("gpt-5.66", None),
        ("gpt-4oo", "gpt-4o"),
        ("gpt-4", None),
        ("GPT-4o-mini", "gpt-4o-mini"),
        ("gpt4o-mini", "gpt-4o-mini"),
        ("gpt_4o_mini", "gpt-4o-mini"),
        ("GPT-5.6", "gpt-5.6"),
        ("gpt-56", "gpt-5.6"),
        ("GPT-5.7", None),
    ],
)
def test_likely_typo_finds_misspelling(name: str, expected: str | None) -> None:
    assert likely_typo(name, KNOWN_IDS) == expected


class MappingPlugin(ProviderPlugin):
    """A provider plugin whose users map deployment names to models."""

    def __init__(self, prices: dict[str, Price], mapping: dict[str, str]) -> None:
        super().__init__("acme", prices)
        self.mapping = mapping

    def llmfy_mapped_model(self, provider: str, model: str) -> str | None:
        return self.mapping.get(model) if provider == "acme" else None


class OrganizationPrices(ProviderPlugin):
    """An organisation's price list, asked before the provider's table."""

    llmfy_price_rank = PriceRank.ORGANIZATION


@pytest.mark.parametrize(
    ("served", "expected_input"),
    [
        # The mapping extends the served name: big-2-turbo, from the provider
        # table, although the organisation lists big-2.
        ("big-2", "4"),
        # A name the mapping does not extend wins, from the organisation list.
        ("big-3", "7"),
    ],
)
def test_mapped_model_against_served_name(served: str, expected_input: str) -> None:
    llmfy_core.load_plugins(autoload=False)
    provider_prices = {
        "big-2": Price(Decimal(10), Decimal(10)),
        "big-2-turbo": Price(Decimal(4), Decimal(4)),
    }
    organization_prices = {
        "big-2": Price(Decimal(9), Decimal(9)),
        "big-3": Price(Decimal(7), Decimal(7)),
    }
    mapping = MappingPlugin(provider_prices, {"deploy": "big-2-turbo"})
    llmfy_core.register_plugin(mapping, "acme")
    llmfy_core.register_plugin(OrganizationPrices("acme", organization_prices), "org")

    with llmfy_core.llmfy_usage_tracker() as usage:
        record = usage.record("acme", "deploy", 100, 100, served_model=served)

    assert record.price is not None
    assert record.price.input == Decimal(expected_input)
