"""Which entry of a price file prices a request: model id, region, tier, batch, unit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import llmfy_pricing_file
import pytest
from llmfy_pricing_file import model_candidates

from llmfy_core import CatalogEntry, Price, llmfy_usage_tracker
from llmfy_core.plugins import get_registry

from .conftest import WriteFile

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"

BEDROCK_TOML = """\
[[providers.bedrock.prices]]
model = "anthropic.claude-3-haiku-20240307-v1:0"
input = 0.25
output = 1.25

[[providers.bedrock.prices]]
model = "anthropic.claude-3-haiku-20240307-v1:0"
region = "eu-central-1"
input = 0.30
output = 1.50

[[providers.bedrock.prices]]
model = "anthropic.claude-3-haiku-20240307-v1:0"
service_tier = "flex"
input = 0.125
output = 0.625

[[providers.bedrock.prices]]
model = "anthropic.claude-3-haiku-20240307-v1:0"
batch = true
input = 0.125
output = 0.625
note = "batch inference"
"""


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-mini", ["gpt-4o-mini"]),
        ("openai", "gpt-4o-mini-2024-07-18", ["gpt-4o-mini-2024-07-18", "gpt-4o-mini"]),
        ("openai", "o3-2025-04-16", ["o3-2025-04-16", "o3"]),
        ("openai", "us.gpt-4o", ["us.gpt-4o"]),
        (
            "bedrock",
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            [
                "us.anthropic.claude-3-haiku-20240307-v1:0",
                "anthropic.claude-3-haiku-20240307-v1:0",
            ],
        ),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            [
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
            ],
        ),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us-gov.amazon.nova-lite-v1:0",
            [
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                "us-gov.amazon.nova-lite-v1:0",
                "us-gov.amazon.nova-lite-v1:0",
                "amazon.nova-lite-v1:0",
            ],
        ),
        ("bedrock", "amazon.nova-lite-v1:0", ["amazon.nova-lite-v1:0"]),
        (
            "bedrock",
            "ca.amazon.nova-lite-v1:0",
            ["ca.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"],
        ),
    ],
)
def test_model_candidates(provider: str, model: str, expected: list[str]) -> None:
    assert list(model_candidates(provider, model)) == expected


def test_candidates_strip_bedrock_prefixes() -> None:
    # Every profile prefix that llmfy-bedrock resolves must reach the entry of
    # the foundation model, or a price file entry misses those requests.
    from llmfy_bedrock.resolve import PROFILE_PREFIXES

    for prefix in sorted(PROFILE_PREFIXES):
        candidates = list(
            model_candidates("bedrock", f"{prefix}.amazon.nova-lite-v1:0")
        )
        assert "amazon.nova-lite-v1:0" in candidates, prefix


def test_canada_profile_priced_by_file(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        '[[providers.bedrock.prices]]\nmodel = "amazon.nova-lite-v1:0"\n'
        'region = "ca-central-1"\ninput = 1\noutput = 2\n',
    )
    llmfy_pricing_file.use_price_file(path)
    usage = llmfy_usage_tracker()

    record = usage.record(
        "bedrock", "ca.amazon.nova-lite-v1:0", 1_000_000, 0, region="ca-central-1"
    )

    # 1,000,000 input tokens at 1 USD per million.
    assert record.cost is not None
    assert record.cost.total == Decimal("1")
    assert record.price_origin == "pricing-file"


def test_dated_snapshot_priced_by_base_entry(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        '[[providers.openai.prices]]\nmodel = "gpt-4o-mini"\ninput = 0.1\n'
        "output = 0.4\n",
    )
    llmfy_pricing_file.use_price_file(path)
    usage = llmfy_usage_tracker()

    record = usage.record("openai", "gpt-4o-mini-2024-07-18", 1_000_000, 0)

    # 1,000,000 input tokens at 0.1 per million.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.1")
    assert record.price_origin == "pricing-file"


@pytest.mark.parametrize(
    ("model", "region", "service_tier", "batch", "expected_input"),
    [
        (HAIKU, None, None, False, "0.25"),
        (HAIKU, "us-east-1", None, False, "0.25"),
        (HAIKU, "eu-central-1", None, False, "0.30"),
        (f"eu.{HAIKU}", "eu-central-1", None, False, "0.30"),
        (HAIKU, "us-east-1", "flex", False, "0.125"),
        # The region's own entry wins over the tier entry without a region.
        (HAIKU, "eu-central-1", "flex", False, "0.30"),
        (HAIKU, None, None, True, "0.125"),
        (HAIKU, "eu-central-1", None, True, "0.125"),
    ],
)
def test_region_tier_and_batch_entries(
    write_file: WriteFile,
    model: str,
    region: str | None,
    service_tier: str | None,
    batch: bool,
    expected_input: str,
) -> None:
    prices = llmfy_pricing_file.load_price_file(write_file("prices.toml", BEDROCK_TOML))

    price = prices.lookup("bedrock", model, region, service_tier, batch)

    assert price is not None
    assert price.input == Decimal(expected_input)


def test_batch_without_entry_left_to_lower_ranks(write_file: WriteFile) -> None:
    prices = llmfy_pricing_file.load_price_file(
        write_file(
            "prices.toml",
            '[[providers.openai.prices]]\nmodel = "gpt-4o"\ninput = 2\noutput = 8\n',
        )
    )

    assert prices.lookup("openai", "gpt-4o", batch=True) is None


def test_unknown_model_and_provider_not_priced(write_file: WriteFile) -> None:
    prices = llmfy_pricing_file.load_price_file(write_file("prices.toml", BEDROCK_TOML))

    assert prices.lookup("bedrock", "amazon.nova-lite-v1:0") is None
    assert prices.lookup("openai", "anthropic.claude-3-haiku-20240307-v1:0") is None


def test_units_and_multiplier(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        """\
unit = "usd_per_thousand_tokens"

[providers.acme]
multiplier = 1.1

[[providers.acme.prices]]
model = "acme-small"
input = 0.001
output = 0.002

[[providers.acme.prices]]
model = "acme-tiny"
unit = "usd_per_token"
input = 0.000001
output = 0.000002
""",
    )
    llmfy_pricing_file.use_price_file(path)
    usage = llmfy_usage_tracker()

    small = usage.record("acme", "acme-small", 10_000, 5_000)
    tiny = usage.record("acme", "acme-tiny", 10_000, 5_000)

    assert small.price is not None
    assert small.price.price_per_tokens == 1000
    assert small.price.input == Decimal("0.0011")
    # 10,000 * 0.0011 / 1,000 + 5,000 * 0.0022 / 1,000 = 0.011 + 0.011.
    assert small.cost is not None
    assert small.cost.total == Decimal("0.022")
    assert tiny.price is not None
    assert tiny.price.price_per_tokens == 1
    # 10,000 * 0.0000011 + 5,000 * 0.0000022 = 0.011 + 0.011.
    assert tiny.cost is not None
    assert tiny.cost.total == Decimal("0.022")


def test_discount_applies_to_every_field(write_file: WriteFile) -> None:
    prices = llmfy_pricing_file.load_price_file(
        write_file(
            "prices.toml",
            """\
[providers.openai]
discount_percent = 12.5

[[providers.openai.prices]]
model = "gpt-4o"
input = 2.50
output = 10
cache_read = 1.25
cache_write = 3
""",
        )
    )

    price = prices.lookup("openai", "gpt-4o")

    # Each price times 0.875.
    assert price is not None
    assert price.input == Decimal("2.1875")
    assert price.output == Decimal("8.75")
    assert price.cache_read == Decimal("1.09375")
    assert price.cache_write == Decimal("2.625")
    assert prices.adjustments["openai"].discount_percent == Decimal("12.5")


@pytest.mark.parametrize(
    ("adjustment", "expected_input"),
    [
        # 0.15 * (100 - 12.5) / 100 and 0.15 * 1.1 USD per million tokens.
        ({"discount_percent": 12.5}, Decimal("0.13125")),
        ({"multiplier": 1.1}, Decimal("0.165")),
    ],
)
def test_parsed_document_float_adjustment(
    adjustment: dict[str, float], expected_input: Decimal
) -> None:
    # json.loads and tomllib.loads return floats unless parse_float=Decimal.
    entry = {"model": "gpt-4o-mini", "input": 0.15, "output": 0.60}
    document = {"providers": {"openai": {**adjustment, "prices": [entry]}}}

    prices = llmfy_pricing_file.parse_price_document(document, Path("prices.json"))
    price = prices.lookup("openai", "gpt-4o-mini")

    assert price is not None
    assert price.input == expected_input


def test_json_file_prices_requests(write_file: WriteFile) -> None:
    path = write_file(
        "prices.json",
        """{
  "format_version": 1,
  "providers": {
    "openai": {
      "multiplier": 0.5,
      "prices": [
        {"model": "gpt-4o-mini", "input": 0.15, "output": 0.60,
         "cache_read": 0.075, "effective_from": "2024-07-18",
         "note": "JSON has no comments"}
      ]
    }
  }
}
""",
    )
    llmfy_pricing_file.use_price_file(path)
    usage = llmfy_usage_tracker()

    record = usage.record(
        "openai", "gpt-4o-mini", 1_000_000, 1_000_000, cache_read_tokens=400_000
    )

    # Halved: input 0.075, cached input 0.0375, output 0.30 per million.
    # 600,000 * 0.075 + 400,000 * 0.0375 + 1,000,000 * 0.30 per million
    # = 0.045 + 0.015 + 0.30 = 0.36.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.36")


def test_catalog_lists_prices_in_force(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        """\
[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.20
output = 0.80
effective_until = 2025-01-01

[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.10
output = 0.40
effective_from = 2025-01-01
""",
    )
    llmfy_pricing_file.use_price_file(path)

    listings = get_registry().manager.hook.price_catalog(provider="openai")
    listed = [
        entry
        for entries in listings
        for entry in entries or ()
        if isinstance(entry, CatalogEntry)
        and isinstance(entry.price, Price)
        and entry.price.source == f"price file {path}"
    ]

    assert len(listed) == 1
    assert listed[0].key.model == "gpt-4o-mini"
    assert listed[0].price.input == Decimal("0.10")
