"""The printed report and `to_dict()`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from llmfy_core import PricingWarning, llmfy_usage_tracker

GOLDEN = """
------------------
USAGE: 

Total Tokens: 173
\tInput Tokens: 167
\tOutput Tokens: 6
Total Requests: 2
Total Cost (USD): $2.865e-05
Total Cost (USD formatted): $0.00002865

Request Details:
1. gpt-4o-mini 
\tprovider: OPENAI 
\tinput_tokens: 60 
\toutput_tokens: 3 
\ttotal_tokens: 63 
\tinput_price: 0.15 
\toutput_price: 0.6 
\tprice_per_tokens: 1000000 
\ttotal_cost (USD): 1.08e-05 
\ttotal_cost (USD formatted): 0.0000108

2. gpt-4o-mini 
\tprovider: OPENAI 
\tinput_tokens: 107 
\toutput_tokens: 3 
\ttotal_tokens: 110 
\tinput_price: 0.15 
\toutput_price: 0.6 
\tprice_per_tokens: 1000000 
\ttotal_cost (USD): 1.785e-05 
\ttotal_cost (USD formatted): 0.00001785

------------------
"""  # noqa: W291 - the report's lines end with a space


def test_report_matches_documented_example(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 60, 3)
        usage.record("openai", "gpt-4o-mini", 107, 3)

    assert str(usage) == GOLDEN


def test_to_dict_matches_report(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 60, 3)
        usage.record("openai", "gpt-4o-mini", 107, 3)

    data = json.loads(json.dumps(usage.to_dict()))

    assert data["schema"] == "llmfy.usage/1"
    assert data["totals"]["total_tokens"] == 173
    assert data["totals"]["requests"] == 2
    # 60 * 0.15 + 3 * 0.60 = 10.8 and 107 * 0.15 + 3 * 0.60 = 17.85, per million.
    assert data["requests"][0]["cost_usd"] == "0.0000108"
    assert Decimal(data["requests"][1]["cost_usd"]) == Decimal("0.00001785")
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00002865")
    assert data["totals"]["cost_complete"] is True
    assert data["requests"][0]["price"]["input"] == "0.15"


def test_report_shows_cache_and_reasoning_lines(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record(
            "openai",
            "gpt-4o-mini",
            1370,
            155,
            cache_read_tokens=1280,
            reasoning_tokens=64,
        )

    report = str(usage)

    assert "\t\tCached Input Tokens: 1280\n" in report
    assert "\t\tReasoning Tokens: 64\n" in report
    assert "\tcache_read_tokens: 1280 \n" in report
    assert "\tcache_read_price: 0.075 \n" in report
    # 90 uncached * 0.15 + 1280 * 0.075 + 155 * 0.60 = 13.5 + 96 + 93 = 202.5
    assert "\ttotal_cost (USD formatted): 0.0002025" in report


def test_report_never_shows_zero_for_unknown_usage(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", None, None)

    report = str(usage)

    assert "Total Tokens: unknown\n" in report
    assert "Total Cost (USD): unknown\n" in report
    assert "Requests With Unknown Usage: 1\n" in report
    assert "\tinput_tokens: unknown \n" in report


def test_to_dict_unknown_usage_counts_null(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", None, None)

    request = usage.to_dict()["requests"][0]

    assert request["input_tokens"] is None
    assert request["output_tokens"] is None
    assert request["total_tokens"] is None
    assert request["cache_read_tokens"] is None
    assert request["cache_write_tokens"] is None
    assert request["reasoning_tokens"] is None


def test_report_shows_known_half_of_usage(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 1000, None)

    report = str(usage)
    request = usage.to_dict()["requests"][0]

    assert request["input_tokens"] == 1000
    assert "\tinput_tokens: 1000 \n" in report
    assert "\toutput_tokens: unknown \n" in report


def test_to_dict_half_known_usage_counts(provider: object) -> None:
    # Reasoning tokens are part of the output, and cached and cache write
    # tokens part of the input, so a count that was not reported leaves its
    # parts unreported too.
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 1000, None, cache_read_tokens=200)
        usage.record("openai", "gpt-4o-mini", None, 10, reasoning_tokens=4)

    output_unknown, input_unknown = usage.to_dict()["requests"]

    assert output_unknown["cache_read_tokens"] == 200
    assert output_unknown["cache_write_tokens"] == 0
    assert output_unknown["reasoning_tokens"] is None
    assert input_unknown["cache_read_tokens"] is None
    assert input_unknown["cache_write_tokens"] is None
    assert input_unknown["reasoning_tokens"] == 4


def test_unpriced_model_cost_unknown(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning):
            usage.record("openai", "my-own-model", 1000, 100)
        usage.record("openai", "gpt-4o-mini", 60, 3)

    data = usage.to_dict()
    report = str(usage)

    groups = {group["model"]: group for group in data["by_model"]}
    assert groups["my-own-model"]["cost_usd"] is None
    assert groups["my-own-model"]["cost_complete"] is False
    # gpt-4o-mini: 60 input tokens at 0.15 and 3 output tokens at 0.60 USD per
    # million, 9 + 1.8 = 10.8 millionths of a USD.
    assert groups["gpt-4o-mini"]["cost_usd"] == "0.0000108"
    assert data["totals"]["cost_usd"] == "0.0000108"
    assert data["totals"]["cost_complete"] is False
    assert "1. my-own-model \n" in report
    assert "\ttotal_cost (USD formatted): unknown\n" in report
    assert "Total Cost (USD formatted): $0.0000108 (incomplete)\n" in report


def test_all_unpriced_totals_cost_unknown(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning):
            usage.record("openai", "my-own-model", 1000, 100)

    data = usage.to_dict()

    assert data["totals"]["cost_usd"] is None
    assert data["by_model"][0]["cost_usd"] is None
    assert "Total Cost (USD): unknown\n" in str(usage)


def test_report_marks_partial_totals_incomplete(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 60, 3)
        usage.record("openai", "gpt-4o-mini", None, None)

    report = str(usage)

    assert "Total Tokens: 63 (incomplete: 1 request with unknown usage)\n" in report
    assert "Total Cost (USD formatted): $0.0000108 (incomplete)\n" in report


@pytest.mark.parametrize("keep_requests", [True, False])
def test_unpriced_tool_call_marks_cost_incomplete(
    provider: object, keep_requests: bool
) -> None:
    # The test price has no per-call rates, so the call is left out of the
    # cost: 60 x 0.15 + 3 x 0.60 = 10.8 USD per million tokens.
    with llmfy_usage_tracker(keep_requests=keep_requests) as usage:
        usage.record("openai", "gpt-4o-mini", 60, 3, tool_calls={"code_interpreter": 1})

    data = usage.to_dict()
    report = str(usage)

    assert usage.total_cost == Decimal("0.0000108")
    assert usage.cost_complete is False
    assert data["totals"]["cost_complete"] is False
    assert data["totals"]["unpriced_tool_call_requests"] == 1
    assert data["by_model"][0]["cost_complete"] is False
    assert "Requests With Unpriced Tool Calls: 1\n" in report
    assert "Total Cost (USD formatted): $0.0000108 (incomplete)\n" in report


def test_report_totals_only_mode(provider: object) -> None:
    with llmfy_usage_tracker(keep_requests=False) as usage:
        usage.record("openai", "gpt-4o-mini", 60, 3)
        usage.record("openai", "gpt-4o-mini", 107, 3)

    report = str(usage)

    assert "Totals by Model:\n1. gpt-4o-mini \n" in report
    assert "\trequests: 2 \n" in report
    assert "\ttotal_cost (USD formatted): 0.00002865\n" in report
    assert usage.records == []
