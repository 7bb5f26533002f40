"""Hostile override tables given to `llmfy_usage_tracker`, for both providers.

The plugins' own tests cover each shape error of their table format. These
try the values that slip past a type check: Decimal NaN, signalling NaN,
infinity as text, a tiny negative, hexadecimal and bytes. They also check
that an implausible price is warned in the unit the table states, and that a
table of thousands of models loads quickly. Price files are tested in
`plugins/pricing-file/tests/test_hostile_files.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest

from llmfy_core import PricingTableError, PricingWarning, llmfy_usage_tracker

BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def openai_table(value: object) -> dict[str, Any]:
    return {"openai_pricing": {"gpt-4o-mini": {"input": value, "output": 0.6}}}


def bedrock_table(value: object) -> dict[str, Any]:
    entry = {"input": value, "output": 0.015}
    return {"bedrock_pricing": {BEDROCK_MODEL: {"us-east-1": entry}}}


TABLES: list[Callable[[object], dict[str, Any]]] = [openai_table, bedrock_table]


@pytest.mark.parametrize("table", TABLES, ids=["openai", "bedrock"])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(Decimal("NaN"), "not a finite number", id="decimal-nan"),
        pytest.param(Decimal("sNaN"), "not a finite number", id="signalling-nan"),
        pytest.param("Infinity", "not a finite number", id="infinity-text"),
        pytest.param(float("-inf"), "not a finite number", id="minus-infinity"),
        pytest.param("-1e-12", "negative", id="tiny-negative"),
        pytest.param("0x10", "not a number", id="hexadecimal"),
        pytest.param(b"0.15", "not a number", id="bytes"),
    ],
)
def test_hostile_price_value_rejected_by_name(
    table: Callable[[object], Mapping[str, Any]], value: object, fragment: str
) -> None:
    with pytest.raises(PricingTableError) as raised:
        llmfy_usage_tracker(**table(value))

    assert fragment in str(raised.value)
    assert "field 'input'" in str(raised.value)


@pytest.mark.parametrize(
    ("table", "value", "unit"),
    [
        # 2,000 USD per million tokens.
        pytest.param(openai_table, 2000, "USD per 1,000,000 tokens", id="openai"),
        # 2 USD per 1,000 tokens is 2,000 USD per million tokens.
        pytest.param(bedrock_table, 2, "USD per 1,000 tokens", id="bedrock"),
    ],
)
def test_implausible_price_warned_in_table_unit(
    table: Callable[[object], Mapping[str, Any]], value: object, unit: str
) -> None:
    with pytest.warns(PricingWarning) as warned:
        llmfy_usage_tracker(**table(value))

    message = str(warned[0].message)
    assert f"this table is in {unit}" in message
    assert "2000 USD per million tokens" in message


def test_large_override_table_loads_quickly() -> None:
    models = {
        f"custom-model-{index}": {"input": 0.15, "output": 0.6}
        for index in range(20_000)
    }

    started = time.monotonic()
    usage = llmfy_usage_tracker(openai_pricing=models)
    elapsed = time.monotonic() - started
    record = usage.record("openai", "custom-model-19999", 1000, 1000)

    # 1000 * 0.15 + 1000 * 0.60 = 750 USD per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00075")
    # A generous bound: this takes a fraction of a second on a laptop.
    assert elapsed < 10
