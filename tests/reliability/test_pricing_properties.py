"""Property-based tests of the pricing arithmetic over every kind of price.

`tests/test_pricing.py` checks requests with input, cached, cache write and
output tokens at prices per thousand or per million tokens. These add token
subsets with their own rates (audio, 1-hour cache writes), tool calls priced
per call, long-context tiers, and units that are not a power of ten. The
tracker costs such requests one at a time instead of by token sums. For all
of them the cost must be exact in Decimal, equal to the sum of its parts, equal
to the formula worked out here, and a tracker's total must be additive over
requests and independent of their order.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

import llmfy_core
from llmfy_core import (
    LongContextTier,
    Price,
    PriceRank,
    Usage,
    compute_cost,
    hookimpl,
    llmfy_usage_tracker,
)
from llmfy_core.recording import record_usage

counts = st.integers(min_value=0, max_value=10**7)
rates = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False)
# Units whose only prime factors are 2 and 5, so that dividing by them is
# exact in Decimal; 1024 and 2,500,000 take the tracker's per-request path.
units = st.sampled_from([1, 100, 1000, 1024, 1_000_000, 2_500_000])
MODELS = ("model-a", "model-b", "model-c")


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    """A request whose parts fit in the totals they belong to."""
    cache_read = draw(counts)
    cache_write_5m = draw(counts)
    cache_write_1h = draw(counts)
    input_audio = draw(counts)
    plain_input = draw(counts)
    output_audio = draw(counts)
    reasoning = draw(counts)
    plain_output = draw(counts)
    cache_write = cache_write_5m + cache_write_1h
    other = {
        "input_audio": input_audio,
        "output_audio": output_audio,
        "cache_write_1h": cache_write_1h,
    }
    tools = draw(
        st.dictionaries(
            st.sampled_from(["web_search", "file_search", "code_interpreter"]),
            st.integers(min_value=0, max_value=50),
            max_size=3,
        )
    )
    return Usage(
        "acme",
        draw(st.sampled_from(MODELS)),
        plain_input + cache_read + cache_write + input_audio,
        plain_output + reasoning + output_audio,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        other_tokens={kind: tokens for kind, tokens in other.items() if tokens},
        tool_calls=tools,
    )


@st.composite
def prices(draw: st.DrawFn, long_context: bool = True) -> Price:
    """A price with every optional rate either given or left to its default."""
    other = draw(
        st.dictionaries(
            st.sampled_from(["input_audio", "output_audio", "cache_write_1h"]),
            rates,
            max_size=3,
        )
    )
    per_call = draw(st.dictionaries(st.sampled_from(["web_search"]), rates))
    base = Price(
        input=draw(rates),
        output=draw(rates),
        cache_read=draw(st.none() | rates),
        cache_write=draw(st.none() | rates),
        other=other,
        per_call=per_call,
        price_per_tokens=draw(units),
    )
    if not long_context or not draw(st.booleans()):
        return base
    tier = draw(prices(long_context=False))
    threshold = draw(st.integers(min_value=0, max_value=10**7))
    return Price(
        input=base.input,
        output=base.output,
        cache_read=base.cache_read,
        cache_write=base.cache_write,
        other=base.other,
        per_call=base.per_call,
        price_per_tokens=base.price_per_tokens,
        long_context=(LongContextTier(threshold, tier),),
    )


def expected_cost(usage: Usage, price: Price) -> Decimal:
    """Work the cost out from the model's inclusion rules, independently."""
    with localcontext(prec=100):
        return _expected_cost(usage, price)


def _expected_cost(usage: Usage, price: Price) -> Decimal:
    assert usage.input_tokens is not None and usage.output_tokens is not None
    for tier in price.long_context:
        if usage.input_tokens > tier.above_input_tokens:
            price = tier.price  # the whole request is repriced
    plain_input = usage.input_tokens - usage.cache_read_tokens
    plain_input -= usage.cache_write_tokens
    cache_write = usage.cache_write_tokens
    plain_output = usage.output_tokens
    amount = Decimal(0)
    for kind, tokens in usage.other_tokens.items():
        rate = price.other.get(kind)
        if rate is None:
            continue
        amount += rate * tokens
        if kind == "cache_write_1h":
            cache_write -= tokens
        elif kind == "input_audio":
            plain_input -= tokens
        else:
            plain_output -= tokens
    cache_read_rate = price.input if price.cache_read is None else price.cache_read
    cache_write_rate = price.input if price.cache_write is None else price.cache_write
    amount += plain_input * price.input
    amount += usage.cache_read_tokens * cache_read_rate
    amount += cache_write * cache_write_rate
    amount += plain_output * price.output
    total = amount / price.price_per_tokens
    for tool, calls in usage.tool_calls.items():
        total += calls * price.per_call.get(tool, Decimal(0))
    return total


@given(usages(), prices())
def test_cost_is_sum_of_parts(usage: Usage, price: Price) -> None:
    cost = compute_cost(usage, price)

    assert cost.total == sum(cost.parts.values(), Decimal(0))


@given(usages(), prices())
def test_cost_matches_formula(usage: Usage, price: Price) -> None:
    assert compute_cost(usage, price).total == expected_cost(usage, price)


class AcmeProvider:
    """Prices the test models of provider "acme" from a table the test draws."""

    llmfy_price_rank = PriceRank.PROVIDER

    def __init__(self, table: Mapping[str, Price]) -> None:
        self.table = dict(table)

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        return self.table.get(model) if provider == "acme" else None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(usages(), min_size=1, max_size=30),
    st.fixed_dictionaries({model: prices() for model in MODELS}),
    st.randoms(use_true_random=False),
)
def test_tracker_total_additive_and_order_free(
    batch: list[Usage], table: dict[str, Price], random: Random
) -> None:
    llmfy_core.load_plugins(autoload=False)
    llmfy_core.register_plugin(AcmeProvider(table), "acme")
    shuffled = list(batch)
    random.shuffle(shuffled)
    split = random.randint(0, len(batch))

    with llmfy_usage_tracker() as in_order:
        for each in batch:
            record_usage(each, llmfy_core.active_trackers())
    with llmfy_usage_tracker(keep_requests=False) as reordered:
        with llmfy_usage_tracker() as first_part:
            for each in shuffled[:split]:
                record_usage(each, llmfy_core.active_trackers())
        with llmfy_usage_tracker() as second_part:
            for each in shuffled[split:]:
                record_usage(each, llmfy_core.active_trackers())

    expected = sum(
        (expected_cost(each, table[each.model]) for each in batch), Decimal(0)
    )
    assert in_order.total_cost == expected
    assert reordered.total_cost == expected
    assert first_part.total_cost + second_part.total_cost == expected
    assert (
        sum(
            (record.cost.total for record in in_order.records if record.cost),
            Decimal(0),
        )
        == expected
    )
