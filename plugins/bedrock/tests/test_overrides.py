"""Validation of the `bedrock_pricing=` override table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from llmfy_bedrock.overrides import parse_overrides

from llmfy_core import Price, PricingTableError, PricingWarning, llmfy_usage_tracker

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

    assert table.lookup(MODEL, "eu-central-1", None, False) is None
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
