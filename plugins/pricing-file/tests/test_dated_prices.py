"""A price file with dated entries prices each request by the day it was sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import llmfy_pricing_file
import pytest

from llmfy_core import llmfy_usage_tracker

from .conftest import WriteFile

UTC = dt.UTC

# Three periods of one negotiated gpt-4o-mini price, with a 10% discount on
# every OpenAI price in the file. After the discount, per million tokens:
#   until 2024-12-31:        input 0.18,  output 0.72
#   2025-01-01..2025-06-30:  input 0.135, output 0.54, cached input 0.0675
#   from 2025-07-01:         input 0.09,  output 0.36, cached input 0.045
DATED_TOML = """\
[providers.openai]
discount_percent = 10

[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.20
output = 0.80
effective_until = 2025-01-01

[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.15
output = 0.60
cache_read = 0.075
effective_from = 2025-01-01
effective_until = 2025-07-01

[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.10
output = 0.40
cache_read = 0.05
effective_from = 2025-07-01
"""


def test_dated_entries_price_batch_by_sent_day(write_file: WriteFile) -> None:
    llmfy_pricing_file.use_price_file(write_file("prices.toml", DATED_TOML))
    usage = llmfy_usage_tracker()

    first = usage.record(
        "openai",
        "gpt-4o-mini",
        1000,
        200,
        served_model="gpt-4o-mini-2024-07-18",
        sent_at=dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    # First period: 1000 * 0.18 + 200 * 0.72 = 180 + 144 = 324 per million.
    assert first.cost is not None
    assert first.cost.total == Decimal("0.000324")
    assert first.price is not None
    assert first.price.checked is None

    second = usage.record(
        "openai",
        "gpt-4o-mini",
        2000,
        100,
        cache_read_tokens=500,
        sent_at=dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC),
    )
    # effective_from is inclusive: second period.
    # 1500 * 0.135 + 500 * 0.0675 + 100 * 0.54 = 202.5 + 33.75 + 54 = 290.25.
    assert second.cost is not None
    assert second.cost.total == Decimal("0.00029025")
    assert second.price is not None
    assert second.price.checked == dt.date(2025, 1, 1)

    third = usage.record(
        "openai",
        "gpt-4o-mini",
        1000,
        1000,
        sent_at=dt.datetime(2025, 7, 1, 0, 30, tzinfo=UTC),
    )
    # Half an hour into the third period:
    # 1000 * 0.09 + 1000 * 0.36 = 90 + 360 = 450.
    assert third.cost is not None
    assert third.cost.total == Decimal("0.00045")

    fourth = usage.record(
        "openai",
        "gpt-4o-mini",
        1000,
        1000,
        sent_at=dt.datetime(2025, 6, 30, 12, 0, tzinfo=UTC),
    )
    # Back in the second period: 1000 * 0.135 + 1000 * 0.54 = 135 + 540 = 675.
    assert fourth.cost is not None
    assert fourth.cost.total == Decimal("0.000675")

    fifth = usage.record(
        "openai",
        "gpt-4o-mini",
        10_000,
        0,
        sent_at=dt.datetime(2026, 3, 1, tzinfo=UTC),
    )
    # Third period, open-ended: 10000 * 0.09 = 900.
    assert fifth.cost is not None
    assert fifth.cost.total == Decimal("0.0009")

    # 324 + 290.25 + 450 + 675 + 900 = 2639.25 per million tokens.
    assert usage.total_cost == Decimal("0.00263925")
    assert usage.cost_complete
    origins = {record.price_origin for record in usage.records}
    assert origins == {"pricing-file"}


def test_dated_price_source_names_file(write_file: WriteFile) -> None:
    path = write_file("prices.toml", DATED_TOML)
    llmfy_pricing_file.use_price_file(path)
    usage = llmfy_usage_tracker()

    record = usage.record(
        "openai", "gpt-4o-mini", 10, 10, sent_at=dt.datetime(2025, 3, 1, tzinfo=UTC)
    )

    assert record.price is not None
    assert record.price.source == f"price file {path}"


def test_day_without_entry_left_to_lower_ranks(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        """\
[[providers.acme.prices]]
model = "acme-large"
input = 1
output = 2
effective_from = 2025-01-01
""",
    )
    prices = llmfy_pricing_file.load_price_file(path)

    before = prices.lookup("acme", "acme-large", requested_at=dt.date(2024, 12, 31))
    after = prices.lookup("acme", "acme-large", requested_at=dt.date(2025, 1, 1))

    assert before is None
    assert after is not None
    assert after.input == Decimal(1)


@pytest.mark.parametrize(
    ("moment", "expected_input"),
    [
        (dt.datetime(2024, 12, 31, 23, 0, tzinfo=UTC), Decimal("0.18")),
        (dt.datetime(2024, 12, 31, 23, 0), Decimal("0.18")),  # naive: taken as UTC
        (
            dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            Decimal("0.18"),
        ),
        (dt.date(2025, 7, 1), Decimal("0.09")),
    ],
)
def test_lookup_uses_utc_day(
    write_file: WriteFile, moment: dt.datetime | dt.date, expected_input: Decimal
) -> None:
    prices = llmfy_pricing_file.load_price_file(write_file("prices.toml", DATED_TOML))

    price = prices.lookup("openai", "gpt-4o-mini", requested_at=moment)

    assert price is not None
    assert price.input == expected_input
