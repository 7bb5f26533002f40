"""Long-context tiers in a price file: their prices, units and adjustments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import llmfy_pricing_file

from llmfy_core import llmfy_usage_tracker

from .conftest import WriteFile

SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_long_context_rates_above_threshold(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        """\
[providers.openai]
discount_percent = 20

[[providers.openai.prices]]
model = "gpt-5.4"
input = 2.50
cache_read = 0.25
output = 15
effective_from = 2025-01-01
long_context = [
  { above_input_tokens = 272000, input = 5, cache_read = 0.50, output = 22.50 },
]
""",
    )
    llmfy_pricing_file.use_price_file(path)

    with llmfy_usage_tracker() as usage:
        at_threshold = usage.record(
            "openai", "gpt-5.4", 272_000, 1_000, cache_read_tokens=100_000
        )
        above = usage.record(
            "openai", "gpt-5.4", 272_001, 1_000, cache_read_tokens=100_000
        )

    # The discount takes 20% off the tier's prices too: 2, 0.2 and 12 USD per
    # million tokens up to 272,000 input tokens, cached ones included, and 4,
    # 0.4 and 18 above.
    assert at_threshold.price_origin == "pricing-file"
    assert at_threshold.price is not None
    (tier,) = at_threshold.price.long_context
    assert tier.above_input_tokens == 272_000
    assert tier.price.input == Decimal("4")
    assert tier.price.cache_read == Decimal("0.4")
    assert tier.price.output == Decimal("18")
    assert tier.price.checked == dt.date(2025, 1, 1)
    assert tier.price.source == at_threshold.price.source
    # In millionths of a USD: 172,000 x 2 + 100,000 x 0.2 + 1,000 x 12
    # = 344,000 + 20,000 + 12,000 = 376,000.
    assert at_threshold.cost is not None
    assert at_threshold.cost.total == Decimal("0.376")
    # 172,001 x 4 + 100,000 x 0.4 + 1,000 x 18 = 688,004 + 40,000 + 18,000
    # = 746,004.
    assert above.cost is not None
    assert above.cost.total == Decimal("0.746004")


def test_long_context_tables_in_entry_unit(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        f"""\
[[providers.bedrock.prices]]
model = "{SONNET_45}"
region = "us-east-1"
unit = "usd_per_thousand_tokens"
input = 0.003
output = 0.015

[[providers.bedrock.prices.long_context]]
above_input_tokens = 500000
input = 0.009
output = 0.03

[[providers.bedrock.prices.long_context]]
above_input_tokens = 200000
input = 0.006
output = 0.0225
cache_write = 0.0075
""",
    )
    llmfy_pricing_file.use_price_file(path)
    profile = f"us.{SONNET_45}"

    with llmfy_usage_tracker() as usage:
        base = usage.record("bedrock", profile, 200_000, 1_000, region="us-east-1")
        middle = usage.record(
            "bedrock",
            profile,
            300_000,
            1_000,
            cache_write_tokens=100_000,
            region="us-east-1",
        )
        top = usage.record("bedrock", profile, 600_000, 1_000, region="us-east-1")

    assert base.price is not None
    thresholds = [tier.above_input_tokens for tier in base.price.long_context]
    assert thresholds == [200_000, 500_000]
    assert base.price.long_context[0].price.price_per_tokens == 1000
    # In thousandths of a USD: 200,000 x 0.003 + 1,000 x 0.015 = 600 + 15 = 615.
    assert base.cost is not None
    assert base.cost.total == Decimal("0.615")
    # 200,000 x 0.006 + 100,000 x 0.0075 + 1,000 x 0.0225
    # = 1,200 + 750 + 22.5 = 1,972.5.
    assert middle.cost is not None
    assert middle.cost.total == Decimal("1.9725")
    # 600,000 x 0.009 + 1,000 x 0.03 = 5,400 + 30 = 5,430.
    assert top.cost is not None
    assert top.cost.total == Decimal("5.43")


def test_long_context_in_json(write_file: WriteFile) -> None:
    path = write_file(
        "prices.json",
        """{
  "providers": {
    "openai": {
      "multiplier": 0.5,
      "prices": [
        {"model": "gpt-5.4", "input": 2.50, "output": 15,
         "long_context": [
           {"above_input_tokens": 272000, "input": 5, "output": 22.50}
         ]}
      ]
    }
  }
}
""",
    )

    price = llmfy_pricing_file.load_price_file(path).lookup("openai", "gpt-5.4")

    # Halved by the multiplier: 1.25 USD per million input tokens up to
    # 272,000 input tokens, and 2.5 above.
    assert price is not None
    assert price.input == Decimal("1.25")
    assert price.for_input_tokens(272_000) is price
    above = price.for_input_tokens(272_001)
    assert above.input == Decimal("2.5")
    assert above.output == Decimal("11.25")
