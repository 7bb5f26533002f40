"""Bundled prices that changed on a given day, chosen by the day a request was sent.

OpenAI cut GPT-5.6 Luna's prices by 80% and GPT-5.6 Terra's by 20% on
2026-07-30 (UTC). In USD per million tokens, Luna cost 1.00 input, 0.10 cached
input, 1.25 cache write and 6.00 output before, and 0.20, 0.02, 0.25 and 1.20
from that day. Above 272,000 input tokens it cost 2.00, 0.20, 2.50 and 9.00
before. Terra cost 2.50, 0.25, 3.125 and 15.00 before, and 2.00, 0.20, 2.50 and
12.00 after. OpenAI cut GPT-5.6 Sol's input by 20% and its output by a third
on 2026-08-21: it cost 5.00 input, 0.50 cached input, 6.25 cache write and
30.00 output before, and 4.00, 0.40, 5.00 and 20.00 from that day. The Batch
API and Flex processing cost half of each rate.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from llmfy_openai import lookup_price, plugin

import llmfy_core
from llmfy import Price, Usage, llmfy_usage_tracker
from llmfy_core.cli import main
from llmfy_core.recording import record_usage

BEFORE_CUT = dt.datetime(2026, 7, 13, 12, tzinfo=dt.UTC)
AFTER_CUT = dt.datetime(2026, 8, 1, 12, tzinfo=dt.UTC)
AFTER_SOL_CUT = dt.datetime(2026, 8, 21, tzinfo=dt.UTC)


def price_of(
    model: str,
    requested_at: dt.datetime | None,
    tier: str | None = None,
    batch: bool = False,
) -> Price:
    found = lookup_price(model, tier, batch, requested_at)
    assert isinstance(found, Price), found
    return found


def batch_line(created: int, prompt: int, completion: int) -> dict[str, Any]:
    """Return a Batch API output line of a gpt-5.6-luna Chat Completion."""
    return {
        "id": f"batch_req_{created}",
        "custom_id": f"request-{created}",
        "response": {
            "status_code": 200,
            "request_id": f"req_{created}",
            "body": {
                "id": "chatcmpl-batch",
                "object": "chat.completion",
                "created": created,
                "model": "gpt-5.6-luna",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Paris."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        },
        "error": None,
    }


@pytest.mark.parametrize(
    ("requested_at", "expected_input"),
    [
        pytest.param(BEFORE_CUT, "1.00", id="before"),
        pytest.param(
            dt.datetime(2026, 7, 29, 23, 59, 59, tzinfo=dt.UTC),
            "1.00",
            id="last-moment-before",
        ),
        pytest.param(dt.datetime(2026, 7, 30, tzinfo=dt.UTC), "0.20", id="cut-day"),
        # 21:00 at UTC-4 on 2026-07-29 is 01:00 UTC on 2026-07-30.
        pytest.param(
            dt.datetime(2026, 7, 29, 21, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
            "0.20",
            id="utc-day-counts",
        ),
        pytest.param(dt.datetime(2026, 7, 29, 23), "1.00", id="naive-is-utc"),
        pytest.param(None, "0.20", id="now"),
    ],
)
def test_luna_price_by_send_day(
    requested_at: dt.datetime | None, expected_input: str
) -> None:
    assert price_of("gpt-5.6-luna", requested_at).input == Decimal(expected_input)


def test_luna_price_before_cut() -> None:
    price = price_of("gpt-5.6-luna", BEFORE_CUT)

    assert price.input == Decimal("1.00")
    assert price.cache_read == Decimal("0.10")
    assert price.cache_write == Decimal("1.25")
    assert price.output == Decimal("6.00")
    assert price.checked == dt.date(2026, 12, 5)
    assert price.source.startswith(
        "https://developers.openai.com/api/docs/models/gpt-5.6-luna"
    )


def test_terra_price_before_cut() -> None:
    before = price_of("gpt-5.6-terra", BEFORE_CUT)
    after = price_of("gpt-5.6-terra", AFTER_CUT)

    assert (before.input, before.output) == (Decimal("2.50"), Decimal("15.00"))
    assert (before.cache_read, before.cache_write) == (
        Decimal("0.25"),
        Decimal("3.125"),
    )
    assert (after.input, after.output) == (Decimal("2.00"), Decimal("12.00"))


def test_snapshot_id_gets_dated_price() -> None:
    price = price_of("gpt-5.6-luna-2026-07-09", BEFORE_CUT)

    assert price.input == Decimal("1.00")


def test_batch_and_flex_halve_earlier_price() -> None:
    batch = price_of("gpt-5.6-luna", BEFORE_CUT, batch=True)
    flex = price_of("gpt-5.6-luna", BEFORE_CUT, tier="flex")

    assert (batch.input, batch.output) == (Decimal("0.500"), Decimal("3.000"))
    assert (flex.input, flex.output) == (Decimal("0.500"), Decimal("3.000"))


# Above 272,000 input tokens the whole request is at the long-context rate,
# twice the input and 1.5 times the output rate. Luna before its cut:
# 300,000*2.00 + 1,000*9.00 = 600,000 + 9,000 = 609,000 per million. Sol
# after its cut: 300,000*8.00 + 1,000*30.00 = 2,400,000 + 30,000 = 2,430,000.
@pytest.mark.parametrize(
    ("model", "sent_at", "expected"),
    [
        pytest.param("gpt-5.6-luna", BEFORE_CUT, "0.609", id="luna-before-cut"),
        pytest.param("gpt-5.6-sol", AFTER_SOL_CUT, "2.43", id="sol-after-cut"),
    ],
)
def test_long_context_by_day(model: str, sent_at: dt.datetime, expected: str) -> None:
    usage = Usage("openai", model, 300_000, 1_000)

    with llmfy_usage_tracker() as tracker:
        record_usage(usage, [tracker], sent_at)

    record = tracker.records[0]
    assert record.cost is not None
    assert record.cost.total == Decimal(expected)


def test_report_prices_batch_file_by_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "batch-output.jsonl"
    before = int(BEFORE_CUT.timestamp())
    after = int(AFTER_CUT.timestamp())
    lines = [batch_line(before, 200_000, 100_000), batch_line(after, 200_000, 100_000)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    code = main(["report", str(path), "--json"])
    report = json.loads(capsys.readouterr().out)

    assert code == 0
    # Batch API, half of each rate. Before the cut: 200,000*0.50 + 100,000*3.00
    # = 100,000 + 300,000 = 400,000 per million, 0.4 USD. After it:
    # 200,000*0.10 + 100,000*0.60 = 20,000 + 60,000 = 80,000, 0.08 USD.
    assert report["totals"]["cost_usd"] == "0.48"
    assert report["totals"]["cost_complete"] is True


def test_dated_cache_without_other_plugins() -> None:
    # Only this plugin prices: its declaration alone must key cached prices
    # by day, or the second request would reuse the first one's price.
    llmfy_core.load_plugins(autoload=False)
    llmfy_core.register_plugin(plugin, "openai")
    usage = Usage("openai", "gpt-5.6-luna", 200_000, 100_000)

    with llmfy_usage_tracker() as tracker:
        record_usage(usage, [tracker], BEFORE_CUT)
        record_usage(usage, [tracker], AFTER_CUT)

    before, after = tracker.records
    # 200,000*1.00 + 100,000*6.00 = 800,000 per million before the cut, and
    # 200,000*0.20 + 100,000*1.20 = 160,000 after it.
    assert before.cost is not None
    assert before.cost.total == Decimal("0.8")
    assert after.cost is not None
    assert after.cost.total == Decimal("0.16")


def test_live_request_gets_current_price(
    server: Any, client: openai.OpenAI, bodies: Any
) -> None:
    server.add_json(
        "/v1/chat/completions",
        bodies.chat(model="gpt-5.6-luna", prompt=1000, completion=100),
    )

    with llmfy_usage_tracker() as tracker:
        client.chat.completions.create(
            model="gpt-5.6-luna", messages=[{"role": "user", "content": "Hi"}]
        )

    record = tracker.records[0]
    # Sent now, after the cut: 1000*0.20 + 100*1.20 = 200 + 120 = 320 per
    # million, 0.00032 USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00032")


def test_sol_price_cut(server: Any, client: openai.OpenAI, bodies: Any) -> None:
    body = bodies.response(
        model="gpt-5.6-sol",
        input_tokens=15_000,
        cached=12_000,
        cache_write=2_000,
        output_tokens=100,
    )
    server.add_json("/v1/responses", body)
    last_moment = dt.datetime(2026, 8, 20, 23, 59, 59, tzinfo=dt.UTC)

    with llmfy_usage_tracker() as tracker:
        client.responses.create(model="gpt-5.6", input="Hi")
        before = tracker.record(
            "openai",
            "gpt-5.6-sol",
            15_000,
            100,
            cache_read_tokens=12_000,
            cache_write_tokens=2_000,
            sent_at=last_moment,
        )

    live = tracker.records[0]
    # Sent now, after the cut: 1,000*4.00 + 12,000*0.40 + 2,000*5.00 + 100*20.00
    # = 4,000 + 4,800 + 10,000 + 2,000 = 20,800 per million, 0.0208 USD.
    assert live.cost is not None
    assert live.cost.total == Decimal("0.0208")
    # Before it: 1,000*5.00 + 12,000*0.50 + 2,000*6.25 + 100*30.00
    # = 5,000 + 6,000 + 12,500 + 3,000 = 26,500 per million, 0.0265 USD.
    assert before.cost is not None
    assert before.cost.total == Decimal("0.0265")


PRIORITY_FILE = """
[defaults]
source = "https://developers.openai.com/api/docs/pricing"
checked = 2026-12-05
batch_factor = "0.5"

[models."gpt-test"]
input = "1.00"
cache_read = "0.10"
output = "4.00"
via = "a test"
priority = { input = "2.00", cache_read = "0.20", output = "8.00" }

[[models."gpt-test".earlier]]
effective_until = 2026-07-30
input = "3.00"
output = "12.00"
via = "a test"
checked = 2026-12-05
"""


@pytest.fixture
def priority_file(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace the bundled data with PRIORITY_FILE, then restore it."""
    from llmfy_openai import prices

    cached = [
        prices._load_file,
        prices._current_prices,
        prices._earlier_prices,
        prices._earlier_tables,
        prices.bundled_price_table,
        prices.tool_prices,
    ]
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(prices, "_load_file", lambda: tomllib.loads(PRIORITY_FILE))
    yield
    monkeypatch.undo()
    for function in cached:
        function.cache_clear()


@pytest.mark.usefixtures("priority_file")
def test_earlier_price_takes_nothing_from_current() -> None:
    priority = lookup_price("gpt-test", "priority", False, BEFORE_CUT)
    standard = price_of("gpt-test", BEFORE_CUT)

    # The earlier price gives no Priority rate and no cached input rate.
    assert not isinstance(priority, Price)
    assert priority is not None
    assert "no Priority processing price" in priority.reason
    assert "as priced on 2026-07-13, the day the request was sent" in priority.reason
    assert standard.input == Decimal("3.00")
    assert standard.cache_read is None
    assert price_of("gpt-test", AFTER_CUT, tier="priority").input == Decimal("2.00")


def test_earlier_prices_listed_oldest_first() -> None:
    text = (Path(plugin.__file__).parent / "prices.toml").read_text(encoding="utf-8")
    for model, entry in tomllib.loads(text)["models"].items():
        earlier = entry.get("earlier", [])
        ends = [past["effective_until"] for past in earlier]
        assert ends == sorted(set(ends)), model
        for past in earlier:
            assert isinstance(past["effective_until"], dt.date), model
            assert isinstance(past["checked"], dt.date), model
            assert past["via"], model


def test_o3_before_price_cut():
    before = dt.datetime(2025, 6, 9, 23, 59, tzinfo=dt.UTC)
    cut_day = dt.datetime(2025, 6, 10, tzinfo=dt.UTC)

    with llmfy_usage_tracker() as tracker:
        old = tracker.record("openai", "o3", 1_000_000, 1_000_000, sent_at=before)
        old_batch = tracker.record(
            "openai", "o3", 1_000_000, 1_000_000, sent_at=before, batch=True
        )
        new = tracker.record("openai", "o3", 1_000_000, 1_000_000, sent_at=cut_day)

    # OpenAI cut o3 by 80% on 2025-06-10. Before: 1,000,000 x 10.00 +
    # 1,000,000 x 40.00 USD per million = 50 USD, and half that in a batch.
    assert old.cost is not None
    assert old.cost.total == Decimal("50")
    assert old_batch.cost is not None
    assert old_batch.cost.total == Decimal("25")
    # From that day: 1,000,000 x 2.00 + 1,000,000 x 8.00 = 10 USD.
    assert new.cost is not None
    assert new.cost.total == Decimal("10")


def test_o3_cached_input_before_price_cut() -> None:
    with llmfy_usage_tracker() as tracker:
        cached = tracker.record(
            "openai",
            "o3",
            1_000_000,
            100_000,
            cache_read_tokens=800_000,
            sent_at=dt.datetime(2025, 6, 9, 23, 59, tzinfo=dt.UTC),
        )

    # Launch price: 200,000 uncached x 10.00 + 800,000 cached x 2.50 +
    # 100,000 x 40.00 = 2,000,000 + 2,000,000 + 4,000,000 per million, 8 USD.
    assert cached.cost is not None
    assert cached.cost.total == Decimal("8")


def test_report_o3_cached_batch_before_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = batch_line(int(dt.datetime(2025, 5, 1, tzinfo=dt.UTC).timestamp()), 0, 0)
    body = line["response"]["body"]
    body["model"] = "o3-2025-04-16"
    body["usage"] = {
        "prompt_tokens": 1_000_000,
        "completion_tokens": 100_000,
        "total_tokens": 1_100_000,
        "prompt_tokens_details": {"cached_tokens": 800_000},
    }
    path = tmp_path / "batch-output.jsonl"
    path.write_text(json.dumps(line) + "\n")

    code = main(["report", str(path), "--json"])
    report = json.loads(capsys.readouterr().out)

    assert code == 0
    # Batch API, half of the launch rates: 200,000 x 5.00 + 800,000 x 1.25 +
    # 100,000 x 20.00 = 1,000,000 + 1,000,000 + 2,000,000 per million, 4 USD.
    assert report["totals"]["cost_usd"] == "4"
    assert report["totals"]["cost_complete"] is True
