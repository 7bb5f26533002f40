"""Bundled prices that changed on a given day, chosen by the day a request was sent.

Claude Sonnet 5 cost 2.2 input and 11 output USD per million tokens at the
regional rate, and 2 and 10 through the global profile, for requests sent
before 2026-09-01 (UTC). From that day it costs 3.3 and 16.5, and 3 and 15.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llmfy_bedrock import plugin, record_invocation_logs
from llmfy_bedrock.prices import bundled_table

import llmfy_core
from llmfy_core import Price, PricingWarning, Unpriced, Usage, llmfy_usage_tracker
from llmfy_core.cli import main
from llmfy_core.recording import record_usage

SONNET_5 = "anthropic.claude-sonnet-5-v1:0"
LAUNCH_DAY = dt.datetime(2026, 7, 9, 12, tzinfo=dt.UTC)
STANDARD_DAY = dt.datetime(2026, 9, 1, 12, tzinfo=dt.UTC)
MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]


def price_on(
    model: str, requested_at: dt.datetime | None, batch: bool = False
) -> Price | Unpriced | None:
    return bundled_table().lookup(model, "us-west-2", None, batch, requested_at)


def invocation_log(timestamp: str, model: str = "us.anthropic.claude-sonnet-5") -> Any:
    """Return a Converse invocation log record of 1M input and 100k output tokens."""
    return {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": timestamp,
        "region": "us-west-2",
        "requestId": f"request-{timestamp}",
        "operation": "Converse",
        "modelId": model,
        "input": {"inputTokenCount": 1_000_000},
        "output": {"outputTokenCount": 100_000},
    }


@pytest.mark.parametrize(
    ("requested_at", "expected_input"),
    [
        pytest.param(LAUNCH_DAY, "2.2", id="launch"),
        pytest.param(
            dt.datetime(2026, 8, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
            "2.2",
            id="last-launch-moment",
        ),
        pytest.param(dt.datetime(2026, 9, 1, tzinfo=dt.UTC), "3.3", id="change-day"),
        # 20:00 at UTC-5 on 2026-08-31 is 01:00 UTC on 2026-09-01.
        pytest.param(
            dt.datetime(2026, 8, 31, 20, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "3.3",
            id="utc-day-counts",
        ),
        pytest.param(dt.datetime(2026, 8, 31, 23), "2.2", id="naive-is-utc"),
        pytest.param(None, "3.3", id="now"),
    ],
)
def test_regional_price_by_send_day(
    requested_at: dt.datetime | None, expected_input: str
) -> None:
    price = price_on(f"us.{SONNET_5}", requested_at)

    assert isinstance(price, Price)
    assert price.input == Decimal(expected_input)


def test_launch_prices_of_both_scopes() -> None:
    regional = price_on(f"us.{SONNET_5}", LAUNCH_DAY)
    worldwide = price_on(f"global.{SONNET_5}", LAUNCH_DAY)

    assert isinstance(regional, Price)
    assert (regional.input, regional.output) == (Decimal("2.2"), Decimal("11"))
    assert (regional.cache_read, regional.cache_write) == (
        Decimal("0.22"),
        Decimal("2.75"),
    )
    assert isinstance(worldwide, Price)
    assert (worldwide.input, worldwide.output) == (Decimal("2"), Decimal("10"))
    assert (worldwide.cache_read, worldwide.cache_write) == (
        Decimal("0.2"),
        Decimal("2.5"),
    )


def test_launch_price_keeps_source_and_date() -> None:
    price = price_on(f"global.{SONNET_5}", LAUNCH_DAY)

    assert isinstance(price, Price)
    assert price.source == "https://aws.amazon.com/bedrock/pricing/"
    assert price.checked == dt.date(2026, 12, 5)
    # No 1-hour cache-write rate of the launch period is bundled.
    assert "cache_write_1h" not in price.other


def test_batch_before_change_unpriced_with_reason() -> None:
    before = price_on(f"us.{SONNET_5}", LAUNCH_DAY, batch=True)
    after = price_on(f"us.{SONNET_5}", STANDARD_DAY, batch=True)

    assert isinstance(before, Unpriced)
    assert before.final
    assert "no batch price" in before.reason
    assert "before 2026-09-01" in before.reason
    assert isinstance(after, Price)
    assert after.input == Decimal("1.65")


def test_launch_one_hour_writes_estimated() -> None:
    with llmfy_usage_tracker() as tracker:
        with pytest.warns(PricingWarning, match="no 'cache_write_1h' rate"):
            record = tracker.record(
                "bedrock",
                f"us.{SONNET_5}",
                1000,
                10,
                cache_write_tokens=1000,
                other_tokens={"cache_write_1h": 600},
                region="us-west-2",
                sent_at=LAUNCH_DAY,
            )

    # Every cache write at the launch cache_write rate: 1000*2.75 + 10*11
    # = 2750 + 110 = 2860 per million, 0.00286 USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00286")
    assert "estimated:cache_write_1h" in record.cost.parts


def test_invocation_logs_priced_by_day() -> None:
    logs = [
        invocation_log("2026-07-09T12:00:00Z"),
        invocation_log("2026-09-01T00:00:00Z"),
        invocation_log("2026-07-09T12:00:00Z", "global.anthropic.claude-sonnet-5"),
    ]

    with llmfy_usage_tracker() as tracker:
        record_invocation_logs(logs, tracker)

    costs = [record.cost.total if record.cost else None for record in tracker.records]
    # Launch, regional: 1,000,000*2.2 + 100,000*11 = 2,200,000 + 1,100,000
    # = 3,300,000 per million, 3.3 USD.
    assert costs[0] == Decimal("3.3")
    # Standard, regional: 1,000,000*3.3 + 100,000*16.5 = 3,300,000 + 1,650,000
    # = 4,950,000 per million, 4.95 USD.
    assert costs[1] == Decimal("4.95")
    # Launch, global: 1,000,000*2 + 100,000*10 = 3,000,000 per million, 3 USD.
    assert costs[2] == Decimal("3")


def test_report_prices_old_log_at_launch_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "invocation-logs.jsonl"
    lines = [
        invocation_log("2026-07-09T12:00:00Z"),
        invocation_log("2026-09-02T08:00:00Z"),
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    code = main(["report", str(path), "--json"])
    report = json.loads(capsys.readouterr().out)

    assert code == 0
    # 3.3 USD at the launch rate and 4.95 USD at the standard rate (see above).
    assert report["totals"]["cost_usd"] == "8.25"
    assert report["totals"]["cost_complete"] is True


def test_dated_cache_without_other_plugins() -> None:
    # Only this plugin prices: its declaration alone must key cached prices
    # by day, or the second request would reuse the first one's price.
    llmfy_core.load_plugins(autoload=False)
    llmfy_core.register_plugin(plugin, "bedrock")
    usage = Usage("bedrock", f"us.{SONNET_5}", 1_000_000, 100_000, region="us-west-2")

    with llmfy_usage_tracker() as tracker:
        record_usage(usage, [tracker], LAUNCH_DAY)
        record_usage(usage, [tracker], STANDARD_DAY)

    launch, standard = tracker.records
    assert launch.cost is not None
    assert launch.cost.total == Decimal("3.3")
    assert standard.cost is not None
    assert standard.cost.total == Decimal("4.95")


def test_live_request_gets_current_price(bedrock_server: Any, make_client: Any) -> None:
    bedrock_server.queue_json(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 1000, "outputTokens": 100, "totalTokens": 1100},
            "metrics": {"latencyMs": 1},
        }
    )

    with llmfy_usage_tracker() as tracker:
        make_client("us-west-2").converse(modelId=f"us.{SONNET_5}", messages=MESSAGES)

    record = tracker.records[0]
    # Sent now, after 2026-09-01: 1000*3.3 + 100*16.5 = 3300 + 1650 = 4950
    # per million, 0.00495 USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00495")


def test_earlier_prices_listed_oldest_first() -> None:
    data = json.loads(
        (Path(plugin.__file__).parent / "prices.json").read_text(encoding="utf-8")
    )
    for model, spec in data["models"].items():
        for rate in spec["rates"]:
            earlier = rate.get("earlier", [])
            ends = [dt.date.fromisoformat(past["effective_until"]) for past in earlier]
            assert ends == sorted(set(ends)), model
            for past in earlier:
                assert past["source"].startswith("https://aws.amazon.com/"), model
                assert isinstance(dt.date.fromisoformat(past["checked"]), dt.date)
