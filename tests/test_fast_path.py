"""The recording fast path: plugins' usage readers and the trackers' slots.

After `usage_extract` has returned a usage for a type of response, later
responses of that type are read by that plugin's `llmfy_usage_reader` and added
to the slot each tracker keeps for their kind. These tests check that the
fast path records exactly what the full path records, and that it steps
aside whenever plugins, prices, days or price tiers change.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

import llmfy_core
from llmfy_core import (
    CallContext,
    LongContextTier,
    Price,
    PriceRank,
    RequestRecord,
    Usage,
    UsageTracker,
    hookimpl,
    invalidate_price_cache,
    llmfy_usage_tracker,
    recording,
)
from llmfy_core.ledger import FOLD_SIZE, nanos_of
from llmfy_core.model import UsageCounts
from llmfy_core.model import counts_of_usage as usage_counts
from llmfy_core.plugins import get_registry
from llmfy_core.recording import record_response, record_usage, usage_reader
from tests.conftest import GPT_4O_MINI, ProviderPlugin

CONTEXT = CallContext("openai", model="gpt-4o-mini")


class ReadingPlugin(ProviderPlugin):
    """The test provider plus a usage reader, which counts its calls.

    With `checked=False` the reader breaks its contract and returns counts
    as the response gives them, valid or not.
    """

    def __init__(
        self,
        checked: bool = True,
        provider: str = "openai",
        prices: dict[str, Price] | None = None,
    ) -> None:
        super().__init__(provider, prices or {"gpt-4o-mini": GPT_4O_MINI})
        self.checked = checked
        self.llmfy_readers_check_counts = False
        self.reads = 0
        self.failing = False

    def llmfy_usage_reader(
        self, provider: str, response_type: type
    ) -> Callable[[Any, CallContext], UsageCounts | None] | None:
        if provider != self.provider or response_type is not dict:
            return None
        return self.read

    def read(self, response: Any, context: CallContext) -> UsageCounts | None:
        self.reads += 1
        if self.failing:
            raise RuntimeError("reader failed")
        inputs = response.get("in")
        outputs = response.get("out")
        cached = response.get("cached", 0)
        valid = all(type(count) is int for count in (inputs, outputs, cached))
        if self.checked and not (valid and 0 <= cached <= inputs and outputs >= 0):
            return None
        served = response.get("model")
        model = context.model or served
        key = (self.provider, model, served, None, None, None, False)
        return (*key, None, inputs, outputs, cached, 0, 0)


@pytest.fixture
def reading() -> Iterator[ReadingPlugin]:
    """Register only the reading test provider."""
    llmfy_core.load_plugins(autoload=False)
    plugin = ReadingPlugin()
    llmfy_core.register_plugin(plugin, "test-openai")
    yield plugin


def response(
    inputs: Any = 1370,
    outputs: Any = 155,
    cached: Any = 1280,
    model: str = "gpt-4o-mini",
) -> dict[str, Any]:
    return {"model": model, "in": inputs, "out": outputs, "cached": cached}


def record(trackers: tuple[UsageTracker, ...], count: int = 1, **fields: Any) -> None:
    for _ in range(count):
        record_response(response(**fields), CONTEXT, trackers)


def record_slowly(tracker: UsageTracker, count: int, **fields: Any) -> None:
    """Record through the full path only: with the plugins' readers unused."""
    for _ in range(count):
        tracker.add_usage(
            llmfy_core.Usage(
                "openai",
                "gpt-4o-mini",
                fields.get("inputs", 1370),
                fields.get("outputs", 155),
                fields.get("cached", 1280),
                served_model="gpt-4o-mini",
            )
        )


# (1370 - 1280) x 0.15 + 1280 x 0.075 + 155 x 0.60 = 13.5 + 96 + 93 = 202.5
# USD per million tokens for one request.
ONE_REQUEST = Decimal("0.0002025")


def test_reader_used_after_first_response(reading: ReadingPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        record((usage,), 5)

    assert reading.reads >= 3
    assert usage.request_count == 5
    assert usage.total_cost == 5 * ONE_REQUEST


def test_usage_reader_known_after_extract(reading: ReadingPlugin) -> None:
    assert usage_reader("openai", dict) is None

    with llmfy_usage_tracker() as usage:
        record((usage,), 2)

    assert usage_reader("openai", dict) == reading.read
    assert usage_reader("bedrock", dict) is None
    llmfy_core.register_plugin(ReadingPlugin(), "another")
    assert usage_reader("openai", dict) is None


def test_fast_records_equal_full_records(reading: ReadingPlugin) -> None:
    with llmfy_usage_tracker() as fast:
        record((fast,), 10)
    slow = llmfy_usage_tracker()
    record_slowly(slow, 10)

    fast_records = fast.records
    slow_records = slow.records
    assert len(fast_records) == 10
    for got, want in zip(fast_records, slow_records, strict=True):
        assert got.usage == want.usage
        assert got.price == want.price
        assert got.cost == want.cost
        assert got.cost is not None
        assert got.cost.total == ONE_REQUEST
        assert got.price_origin == want.price_origin
        assert got.sent_at.tzinfo is dt.UTC


def test_many_requests_fold_exactly(reading: ReadingPlugin) -> None:
    count = 3 * FOLD_SIZE + 7
    with (
        llmfy_usage_tracker() as kept,
        llmfy_usage_tracker(keep_requests=False) as totals_only,
    ):
        record((kept, totals_only), count)

    for usage in (kept, totals_only):
        assert usage.request_count == count
        assert usage.input_tokens == 1370 * count
        assert usage.cache_read_tokens == 1280 * count
        assert usage.output_tokens == 155 * count
        assert usage.total_cost == count * ONE_REQUEST
    assert len(kept.records) == count
    assert totals_only.records == []


def test_record_order_kept_across_kinds(reading: ReadingPlugin) -> None:
    reading.prices["gpt-4.1"] = Price(Decimal(2), Decimal(8))
    other = CallContext("openai", model="gpt-4.1")
    with llmfy_usage_tracker() as usage:
        trackers = (usage,)
        for number in range(1, 2 * FOLD_SIZE):
            context = CONTEXT if number % 3 else other
            record_response(response(inputs=number, cached=0), context, trackers)
            if number % 50 == 0:
                record_response(response(inputs=None), context, trackers)

    inputs = [each.usage.input_tokens for each in usage.records]
    want: list[int | None] = []
    for number in range(1, 2 * FOLD_SIZE):
        want.append(number)
        if number % 50 == 0:
            want.append(None)
    assert inputs == want
    models = {each.usage.model for each in usage.records}
    assert models == {"gpt-4o-mini", "gpt-4.1"}


def test_records_read_after_every_request(reading: ReadingPlugin) -> None:
    # Each read of the totals folds one request, and the small batches are
    # merged. Every request must keep its own counts and send time, in order,
    # with requests of the full path between them.
    start = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    count = FOLD_SIZE + 40
    with llmfy_usage_tracker() as usage:
        for number in range(count):
            sent = start + dt.timedelta(seconds=number)
            if number % 97 == 0:
                fields = response(inputs=None)
            else:
                fields = response(inputs=2000 + number, outputs=number, cached=0)
            record_response(fields, CONTEXT, (usage,), sent)
            assert usage.request_count == number + 1

    for number, request in enumerate(usage.records):
        assert request.sent_at == start + dt.timedelta(seconds=number)
        tokens = (request.usage.input_tokens, request.usage.output_tokens)
        if number % 97 == 0:
            assert tokens[0] is None
        else:
            assert tokens == (2000 + number, number)


def test_small_folds_share_chunks(reading: ReadingPlugin) -> None:
    # A tracker read after every request must not keep a bytes object per
    # request: its one-request chunks are merged in runs.
    count = 4 * FOLD_SIZE
    with llmfy_usage_tracker() as usage:
        for _ in range(count):
            record((usage,))
            assert usage.request_count > 0

    kept_requests = usage.ledger._kept
    assert len(kept_requests) == count
    assert len(kept_requests.chunks) <= count // FOLD_SIZE + 16
    assert usage.total_cost == count * ONE_REQUEST


def kept_row(number: int) -> tuple[int, ...]:
    """Return request `number`'s send time and five token counts.

    The bits of `number % 32` choose the token columns that are not 0.
    """
    bits = number % 32
    cache_read = number + 1 if bits & 4 else 0
    cache_write = number + 2 if bits & 8 else 0
    inputs = cache_read + cache_write + (number + 3 if bits & 1 else 0)
    outputs = number + 4 if bits & 2 else 0
    reasoning = 1 if bits & 16 and outputs else 0
    sent = 1_796_419_800_000_000_000 + number * 1000
    return sent, inputs, outputs, cache_read, cache_write, reasoning


def test_kept_chunks_leave_out_zero_columns() -> None:
    # A chunk leaves out the token columns that are 0 for all its requests.
    # Chunks of other columns, merged or not, keep every request's counts.
    from llmfy_core.ledger import KeptRequests, Slot, moment_of
    from llmfy_core.resolver import Resolution

    key = ("openai", "gpt-4o-mini", None, None, None, None, False)
    slot = Slot(key, Resolution(GPT_4O_MINI, "test", None), None)
    kept = KeptRequests()
    sizes = [1] * 20 + [7, 32, 1, 1, 41] + [1] * 17
    number = 0
    for size in sizes:
        rows = [kept_row(number + offset) for offset in range(size)]
        sents, *tokens = (list(column) for column in zip(*rows, strict=True))
        sums = [sum(column) for column in tokens]
        chunk = kept.pack(tokens, sums, sents)
        # A mask, then the send times and each column whose sum is not 0.
        columns = 1 + sum(1 for total in sums if total)
        assert len(chunk) == 8 + 8 * columns * size
        ids = [f"req-{number + offset}" for offset in range(size)]
        kept.add_chunk([slot] * size, ids, chunk)
        number += size

    assert len(kept.chunks) < len(sizes)
    chunks = kept.chunks_now()
    for index in range(number):
        record_read = kept.record_at(index, {}, chunks)
        sent, inputs, outputs, cache_read, cache_write, reasoning = kept_row(index)
        assert record_read.sent_at == moment_of(sent)
        assert record_read.usage.input_tokens == inputs
        assert record_read.usage.output_tokens == outputs
        assert record_read.usage.cache_read_tokens == cache_read
        assert record_read.usage.cache_write_tokens == cache_write
        assert record_read.usage.reasoning_tokens == reasoning
        assert record_read.usage.request_id == f"req-{index}"


def test_fold_keeps_send_time_past_64_bits() -> None:
    # A queued request whose send time does not fit 64 bits fails the batch's
    # packing, and is then kept whole instead of being tried again and again.
    from llmfy_core.ledger import Ledger, Slot
    from llmfy_core.resolver import Resolution

    key = ("openai", "gpt-4o-mini", None, None, None, None, False)
    slot = Slot(key, Resolution(GPT_4O_MINI, "test", None), None)
    counts = (*key, None, 1370, 155, 1280, 0, 0)
    ledger = Ledger(keep_requests=True)
    ledger.queue.extend((slot, counts, 2**63 + 10**9))
    with ledger.lock:
        ledger.fold()

    records = ledger.records({})
    assert len(records) == 1
    assert records[0].sent_at == dt.datetime(
        2262, 4, 11, 23, 47, 17, 854775, tzinfo=dt.UTC
    )
    assert records[0].cost.total == ONE_REQUEST


def test_records_read_while_chunks_merge(reading: ReadingPlugin) -> None:
    # One thread records and reads the totals after each request, so its
    # small chunks keep merging, while another builds records: each record
    # must still have its own request's counts.
    count = 4 * FOLD_SIZE
    failures: list[str] = []
    done = threading.Event()

    def read_records(usage: UsageTracker) -> None:
        while not done.is_set():
            try:
                for number, record_read in enumerate(usage.records):
                    if record_read.usage.output_tokens != number:
                        failures.append(f"record {number}: {record_read.usage}")
                        return
            except Exception as error:
                failures.append(repr(error))
                return

    interval = sys.getswitchinterval()
    # Switch threads often, so that the reader runs between a fold's steps.
    sys.setswitchinterval(1e-6)
    try:
        with llmfy_usage_tracker() as usage:
            reader = threading.Thread(target=read_records, args=(usage,))
            reader.start()
            for number in range(count):
                record_response(response(outputs=number), CONTEXT, (usage,))
                assert usage.request_count == number + 1
            done.set()
            reader.join()
    finally:
        sys.setswitchinterval(interval)

    assert failures == []
    outputs = [request.usage.output_tokens for request in usage.records]
    assert outputs == list(range(count))


def test_alternating_kinds_priced_separately(reading: ReadingPlugin) -> None:
    # A fold batch that contains two kinds adds each kind's sums to its own price.
    reading.prices["gpt-4.1"] = Price(Decimal(2), Decimal(8))
    other = CallContext("openai", model="gpt-4.1")
    count = 2 * FOLD_SIZE + 3
    with llmfy_usage_tracker() as usage:
        for number in range(count):
            if number % 2:
                record_response(response(model="gpt-4.1"), other, (usage,))
            else:
                record_response(response(), CONTEXT, (usage,))

    mini_requests = (count + 1) // 2
    other_requests = count // 2
    # gpt-4.1 has no cached rate: 1370 x 2 + 155 x 8 = 3980 per million.
    want = mini_requests * ONE_REQUEST + other_requests * Decimal("0.00398")
    assert usage.total_cost == want
    assert sum(each.cost.total for each in usage.records if each.cost) == want
    models = [each.usage.model for each in usage.records]
    assert models == ["gpt-4o-mini", "gpt-4.1"] * other_requests + ["gpt-4o-mini"]


def test_send_times_beyond_nanosecond_range_kept(reading: ReadingPlugin) -> None:
    # Kept requests store send times as 64-bit nanoseconds (1677 to 2262).
    # Other send times are kept as given, through the fast and the full path.
    times = [
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1677, 9, 22, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 4, 21, 30, 0, 123456, tzinfo=dt.UTC),
        dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.UTC),
        dt.datetime(2262, 4, 12, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ]
    with llmfy_usage_tracker() as usage:
        for sent_at in times * 3:
            record_response(response(), CONTEXT, (usage,), sent_at)

    assert [each.sent_at for each in usage.records] == times * 3
    assert usage.request_count == 18
    assert usage.total_cost == 18 * ONE_REQUEST


def test_send_time_in_nanoseconds(reading: ReadingPlugin) -> None:
    # The instrumentation passes time.time_ns(), which costs less than a
    # datetime. Both forms give the same records, on the fast and full paths.
    moment = dt.datetime(2026, 12, 4, 21, 30, 0, 123456, tzinfo=dt.UTC)
    nanos = 1_796_419_800_123_456_789
    with llmfy_usage_tracker() as usage:
        for _ in range(3):
            record_response(response(), CONTEXT, (usage,), nanos)
            record_response(response(), CONTEXT, (usage,), moment)
        record_usage(Usage("openai", "gpt-4o-mini", 1370, 155, 1280), (usage,), nanos)

    assert [each.sent_at for each in usage.records] == [moment] * 7
    assert usage.total_cost == 7 * ONE_REQUEST


@pytest.mark.parametrize(
    ("nanos", "moment"),
    [
        (10**17, dt.datetime(1973, 3, 3, 9, 46, 40, tzinfo=dt.UTC)),
        (2**63 - 1, dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.UTC)),
        # Past the 64-bit range, kept as a datetime on the full path.
        (2**63 + 10**9, dt.datetime(2262, 4, 11, 23, 47, 17, 854775, tzinfo=dt.UTC)),
    ],
)
def test_send_time_in_nanoseconds_at_limits(
    reading: ReadingPlugin, nanos: int, moment: dt.datetime
) -> None:
    with llmfy_usage_tracker() as usage:
        for _ in range(3):
            record_response(response(), CONTEXT, (usage,), nanos)

    assert [each.sent_at for each in usage.records] == [moment] * 3
    assert [each.fault for each in usage.records] == [None] * 3
    assert usage.total_cost == 3 * ONE_REQUEST


@pytest.mark.parametrize(
    "sent_at",
    [
        True,
        "2026-12-04",
        1.5e18,
        1_796_419_800,
        1_796_419_800_123,
        -1,
        10**30,
        10**17 - 1,
    ],
)
def test_invalid_send_time_keeps_usage(
    reading: ReadingPlugin, sent_at: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Floats, strings, and ints that read as seconds, milliseconds or a time
    # past the year 9999 are invalid. The request is counted as sent now.
    before = dt.datetime.now(dt.UTC)
    with llmfy_usage_tracker() as usage:
        for _ in range(2):
            record_response(response(), CONTEXT, (usage,), sent_at)
        record_usage(Usage("openai", "gpt-4o-mini", 1370, 155, 1280), (usage,), sent_at)

    assert usage.request_count == 3
    assert usage.total_cost == 3 * ONE_REQUEST
    for record in usage.records:
        assert record.usage.input_tokens == 1370
        assert record.sent_at >= before
        assert record.fault is not None
        assert record.fault.startswith("invalid send time ")
        assert str(sent_at) in record.fault
    assert "counted as sent now" in caplog.text


def register_prices(dated: bool) -> None:
    """Register a plugin that prices every model as gpt-4o-mini."""

    class Prices:
        llmfy_price_rank = PriceRank.ORGANIZATION
        llmfy_price_dated = dated

        @hookimpl
        def price_lookup(self, model: str) -> Price:
            return GPT_4O_MINI

    llmfy_core.register_plugin(Prices(), "prices")


@pytest.mark.parametrize("dated", [False, True])
def test_invalid_send_time_after_slot_made(reading: ReadingPlugin, dated: bool) -> None:
    # The fast path takes an int send time unchecked: the bounds of every slot
    # start in 1973 and end at 64 bits, so an int that is not nanoseconds
    # misses the slot and is reported. A datetime in 1971 makes a slot of its
    # own day, which an int of that day in nanoseconds must miss too.
    register_prices(dated)
    valid = 1_796_419_800_123_456_789
    early = dt.datetime(1971, 1, 1, 12, tzinfo=dt.UTC)
    wrong = [1_796_419_800, 1_796_419_800_123, 10**17 - 1, 10**30, 31_579_200 * 10**9]
    before = dt.datetime.now(dt.UTC)
    with llmfy_usage_tracker() as usage:
        for _ in range(3):
            record_response(response(), CONTEXT, (usage,), valid)
            record_response(response(), CONTEXT, (usage,), early)
        for sent_at in wrong:
            record_response(response(), CONTEXT, (usage,), sent_at)

    records = usage.records
    assert usage.total_cost == 11 * ONE_REQUEST
    assert [each.fault for each in records[:6]] == [None] * 6
    assert [each.sent_at for each in records[:2]] == [
        dt.datetime(2026, 12, 4, 21, 30, 0, 123456, tzinfo=dt.UTC),
        early,
    ]
    for each, sent_at in zip(records[6:], wrong, strict=True):
        assert each.sent_at >= before
        assert each.fault is not None
        assert each.fault.startswith(f"invalid send time {sent_at}")


@pytest.mark.parametrize("sent_at", [1_796_419_800, -1, 10**30])
def test_invalid_send_time_nested_once(
    reading: ReadingPlugin, sent_at: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Nested trackers record one request: an invalid int send time is
    # reported once, and both trackers count it as sent at the same moment.
    register_prices(dated=False)
    with llmfy_usage_tracker() as outer, llmfy_usage_tracker() as inner:
        for _ in range(3):
            record_response(response(), CONTEXT, (outer, inner), 1_796_419_800 * 10**9)
        caplog.clear()
        record_response(response(), CONTEXT, (outer, inner), sent_at)

    warnings = [
        each for each in caplog.records if each.getMessage().startswith("invalid send")
    ]
    assert len(warnings) == 1
    outer_last = outer.records[-1]
    inner_last = inner.records[-1]
    assert outer_last.fault is not None
    assert outer_last.fault.startswith(f"invalid send time {sent_at}")
    assert inner_last.fault == outer_last.fault
    assert inner_last.sent_at == outer_last.sent_at
    assert outer.total_cost == inner.total_cost == 4 * ONE_REQUEST


def test_send_time_past_64_bits_on_last_day(reading: ReadingPlugin) -> None:
    # A dated slot of the last day of the 64-bit range ends with the range:
    # a later time of that day is kept whole, as a datetime.
    register_prices(dated=True)
    last = 2**63 - 1
    later = 2**63 + 10**9
    with llmfy_usage_tracker() as usage:
        for sent_at in [last] * 3 + [later] * 3:
            record_response(response(), CONTEXT, (usage,), sent_at)

    assert usage.total_cost == 6 * ONE_REQUEST
    assert [each.fault for each in usage.records] == [None] * 6
    assert [each.sent_at for each in usage.records] == [
        dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.UTC)
    ] * 3 + [dt.datetime(2262, 4, 11, 23, 47, 17, 854775, tzinfo=dt.UTC)] * 3


def test_two_providers_of_one_type_read_fast(reading: ReadingPlugin) -> None:
    # Both providers' responses are dicts, and each keeps its own reader.
    other = ReadingPlugin(provider="acme", prices={"m": Price(Decimal(1), Decimal(2))})
    # Declared, so that each plugin is asked first for its own provider.
    reading.llmfy_providers = ("openai",)
    other.llmfy_providers = ("acme",)
    llmfy_core.register_plugin(other, "test-acme")
    acme = CallContext("acme", model="m")
    with llmfy_usage_tracker() as usage:
        for _ in range(10):
            record_response(response(), CONTEXT, (usage,))
            record_response(response(model="m", cached=0), acme, (usage,))

    # acme has no cached rate: 1370 x 1 + 155 x 2 = 1680 per million.
    assert usage.total_cost == 10 * ONE_REQUEST + 10 * Decimal("0.00168")
    assert reading.reads >= 9
    assert other.reads >= 9
    providers = [each.usage.provider for each in usage.records]
    assert providers == ["openai", "acme"] * 10


def test_bad_trusted_reader_spares_other_requests(reading: ReadingPlugin) -> None:
    # A plugin that promises valid counts returns a float, a str or a short
    # tuple once. Only that request is repaired, and the others are added whole.
    bad_counts: dict[str, Any] = {
        "float": 100.0,
        "str": "100",
        "short": None,
    }
    for name, bad in bad_counts.items():
        other = ReadingPlugin(
            provider="acme", prices={"m": Price(Decimal(1), Decimal(2))}
        )
        other.llmfy_readers_check_counts = True
        reading.llmfy_providers = ("openai",)
        other.llmfy_providers = ("acme",)
        read_well = other.read

        def read_badly(
            response: Any, context: CallContext, bad: Any = bad, read: Any = read_well
        ) -> Any:
            counts = read(response, context)
            if not response.get("bad") or counts is None:
                return counts
            if bad is None:
                return counts[:9]
            return (*counts[:8], bad, *counts[9:])

        other.read = read_badly  # type: ignore[method-assign]
        llmfy_core.register_plugin(other, f"test-acme-{name}")
        acme = CallContext("acme", model="m")
        with llmfy_usage_tracker() as usage:
            record_response(response(model="m", cached=0), acme, (usage,))
            record_response(response(model="m", cached=0), acme, (usage,))
            for number in range(200):
                record_response(response(), CONTEXT, (usage,))
                if number == 100:
                    bad_response = {**response(model="m", cached=0), "bad": True}
                    record_response(bad_response, acme, (usage,))

        records = usage.records
        assert usage.request_count == 203, name
        assert len(records) == 203, name
        openai_records = [each for each in records if each.usage.provider == "openai"]
        assert len(openai_records) == 200, name
        # 2 good acme requests: 1370 x 1 + 155 x 2 = 1680 per million each.
        good = 200 * ONE_REQUEST + 2 * Decimal("0.00168")
        # The bad request is counted with unknown usage, at no cost.
        assert usage.total_cost == good, name
        assert sum(1 for each in records if each.fault) == 1, name
        llmfy_core.unregister_plugin(f"test-acme-{name}")


def test_reader_result_not_counts_never_raises(reading: ReadingPlugin) -> None:
    # A reader that returns something other than a UsageCounts, while its
    # plugin promises checked counts: the call goes on, and the request is
    # read again by usage_extract.
    reading.llmfy_readers_check_counts = True
    results: list[Any] = [7, (), ("openai",), [*range(13)]]
    for result in results:
        reading.read = lambda response, context, result=result: result  # type: ignore[method-assign]
        with llmfy_usage_tracker() as usage:
            record((usage,), 3)

        assert usage.request_count == 3, result
        assert usage.input_tokens == 3 * 1370, result
        assert usage.total_cost == 3 * ONE_REQUEST, result


@pytest.mark.parametrize("keep_requests", [True, False])
@pytest.mark.parametrize(
    "lengths",
    [[13] * 5 + [12, 14] + [13] * 4, [12] * 11],
    ids=["mixed", "all-short"],
)
def test_reader_counts_of_wrong_length_counted_unknown(
    reading: ReadingPlugin, keep_requests: bool, lengths: list[int]
) -> None:
    # Counts one field short or long start like valid ones and get a slot.
    # Each such request is counted with unknown usage, and the others in its
    # batch keep their counts. The first request is read by usage_extract,
    # the other 11 by the reader.
    reading.llmfy_readers_check_counts = True
    valid = reading.read
    length_of_read = iter(lengths)

    def read(response: Any, context: CallContext) -> Any:
        counts = valid(response, context)
        assert counts is not None
        length = next(length_of_read)
        return counts[:length] if length <= 13 else (*counts, 0)

    reading.read = read  # type: ignore[method-assign]
    with llmfy_usage_tracker(keep_requests=keep_requests) as usage:
        record((usage,), 12)

    bad = [length != 13 for length in [13, *lengths]]
    good_requests = bad.count(False)
    totals = usage.totals
    assert usage.request_count == 12
    assert totals.unknown_usage == 12 - good_requests
    assert totals.faults == 12 - good_requests
    assert usage.input_tokens == good_requests * 1370
    assert usage.total_cost == good_requests * ONE_REQUEST
    if keep_requests:
        assert [record.fault is not None for record in usage.records] == bad


@pytest.mark.parametrize("keep_requests", [True, False])
def test_reader_counts_one_long_counted_unknown(
    reading: ReadingPlugin, keep_requests: bool
) -> None:
    # The reader returns every count one field long. The first request, read
    # by usage_extract, folds with the next FOLD_SIZE - 1, and the read of
    # the totals folds the last 45 alone. Long counts are counted alike in
    # both batches, and in both modes.
    reading.llmfy_readers_check_counts = True
    valid = reading.read

    def read(response: Any, context: CallContext) -> Any:
        counts = valid(response, context)
        assert counts is not None
        return (*counts, 0)

    reading.read = read  # type: ignore[method-assign]
    count = FOLD_SIZE + 45
    with llmfy_usage_tracker(keep_requests=keep_requests) as usage:
        record((usage,), count)

    totals = usage.totals
    assert usage.request_count == count
    assert totals.unknown_usage == count - 1
    assert totals.faults == count - 1
    assert usage.input_tokens == 1370
    assert usage.total_cost == ONE_REQUEST
    if keep_requests:
        faults = [record.fault is not None for record in usage.records]
        assert faults == [False] + [True] * (count - 1)


def test_recording_call_folds_bounded_batch(reading: ReadingPlugin) -> None:
    # While another thread folds, requests pile up. The next recording call
    # folds at most 4 * FOLD_SIZE of them, and a read folds the rest.
    with llmfy_usage_tracker(keep_requests=False) as usage:
        record((usage,), 2)
        ledger = usage.ledger
        with ledger.lock:
            record((usage,), 10 * FOLD_SIZE)
        queued = len(ledger.queue) // 3
        record((usage,), 1)
        assert len(ledger.queue) // 3 == queued + 1 - 4 * FOLD_SIZE
        assert usage.request_count == 2 + 10 * FOLD_SIZE + 1
        assert ledger.queue == []


def test_nested_trackers_both_count(reading: ReadingPlugin) -> None:
    with llmfy_usage_tracker() as outer:
        record((outer,), 3)
        with llmfy_usage_tracker() as inner:
            record((outer, inner), 4)

    assert outer.request_count == 7
    assert inner.request_count == 4
    assert inner.total_cost == 4 * ONE_REQUEST


def test_invalid_reader_counts_repaired_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llmfy_core.load_plugins(autoload=False)
    plugin = ReadingPlugin(checked=False)
    llmfy_core.register_plugin(plugin, "test-openai")
    caplog.set_level(logging.WARNING, logger="llmfy.tracker")

    with llmfy_usage_tracker() as usage:
        record((usage,), 3)
        record((usage,), 1, outputs=-5)
        record((usage,), 1, cached=2.5)
        record((usage,), 1, cached="12")
        record((usage,), 1, cached=True)
        record((usage,), 2)

    assert usage.request_count == 9
    faults = [each.fault for each in usage.records if each.fault is not None]
    assert len(faults) == 4
    assert "output_tokens=-5" in faults[0]
    assert "cache_read_tokens=2.5" in faults[1]
    assert "cache_read_tokens='12'" in faults[2]
    assert "cache_read_tokens=True" in faults[3]
    # The negative output count becomes unknown; the other three lose their
    # invalid cached count: 1370 x 0.15 + 155 x 0.60 = 298.5 each.
    assert usage.totals.unknown_usage == 1
    assert usage.total_cost == 5 * ONE_REQUEST + 3 * Decimal("0.0002985")
    assert "invalid usage for openai model gpt-4o-mini" in caplog.text


def test_failing_reader_falls_back(reading: ReadingPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        record((usage,), 3)
        reading.failing = True
        record((usage,), 3)

    assert usage.request_count == 6
    assert usage.total_cost == 6 * ONE_REQUEST
    assert all(each.fault is None for each in usage.records)


def test_new_price_plugin_applies_at_once(reading: ReadingPlugin) -> None:
    class Organization:
        llmfy_price_rank = PriceRank.ORGANIZATION

        @hookimpl
        def price_lookup(self, provider: str, model: str) -> Price | None:
            return Price(Decimal(1), Decimal(2)) if model == "gpt-4o-mini" else None

    with llmfy_usage_tracker() as usage:
        record((usage,), 5)
        llmfy_core.register_plugin(Organization(), "organization-prices")
        record((usage,), 5)

    # The organization price has no cache-read rate, so cached tokens are
    # charged at its input rate: 1370 x 1 + 155 x 2 = 1680 per million.
    assert usage.total_cost == 5 * ONE_REQUEST + 5 * Decimal("0.00168")


def test_versioned_prices_checked_after_new_plugin(reading: ReadingPlugin) -> None:
    # A plugin that versions its prices, registered once the reader is in
    # use, has its version checked by the reader's path too.
    class Versioned:
        llmfy_price_rank = PriceRank.ORGANIZATION

        def __init__(self) -> None:
            self.version = 1
            self.price = Price(Decimal(1), Decimal(2))

        def llmfy_price_version(self) -> int:
            return self.version

        @hookimpl
        def price_lookup(self, provider: str, model: str) -> Price | None:
            return self.price if model == "gpt-4o-mini" else None

    versioned = Versioned()
    with llmfy_usage_tracker() as usage:
        record((usage,), 5)
        llmfy_core.register_plugin(versioned, "versioned-prices")
        record((usage,), 5)
        versioned.price = Price(Decimal(2), Decimal(4))
        versioned.version = 2
        record((usage,), 5)

    # Without a cache-read rate, cached tokens cost the input rate:
    # 1370 x 1 + 155 x 2 = 1680, then 1370 x 2 + 155 x 4 = 3360 per million.
    assert usage.total_cost == (
        5 * ONE_REQUEST + 5 * Decimal("0.00168") + 5 * Decimal("0.00336")
    )


@pytest.mark.parametrize(
    ("attribute", "cost"),
    [
        # The plugin's price has no cache-read rate, so cached tokens cost
        # its input rate: 1370 x 1 + 155 x 2 = 1680 per million.
        ("llmfy_price_dated", Decimal("0.00168")),
        ("llmfy_price_version", Decimal("0.00168")),
        ("llmfy_mapped_model", Decimal("0.00168")),
        # Taken at the PROVIDER rank, where "test-openai" comes first by name.
        ("llmfy_price_rank", ONE_REQUEST),
    ],
)
def test_raising_price_plugin_attribute_keeps_requests(
    reading: ReadingPlugin,
    attribute: str,
    cost: Decimal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Loading the plugins' prices reads these attributes. One that raises,
    # such as a property backed by an unreachable price source, is taken as
    # unset, so that the requests are still counted and priced.
    class Unreadable:
        def __init__(self) -> None:
            self.failing = False

        def __getattr__(self, name: str) -> Any:
            if name == attribute and self.failing:
                raise RuntimeError("price source unreachable")
            if name == "llmfy_price_rank":
                return PriceRank.ORGANIZATION
            raise AttributeError(name)

        @hookimpl
        def price_lookup(self, provider: str, model: str) -> Price | None:
            return Price(Decimal(1), Decimal(2)) if model == "gpt-4o-mini" else None

    unreadable = Unreadable()
    with llmfy_usage_tracker() as usage:
        record((usage,), 5)
        llmfy_core.register_plugin(unreadable, "unreadable-prices")
        unreadable.failing = True
        record((usage,), 5)

    assert usage.request_count == 10
    assert usage.total_cost == 5 * ONE_REQUEST + 5 * cost
    assert f"{attribute} of plugin unreadable-prices" in caplog.text


def test_invalidated_prices_looked_up_again(reading: ReadingPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        record((usage,), 5)
        reading.prices["gpt-4o-mini"] = Price(Decimal(1), Decimal(2))
        record((usage,), 1)
        invalidate_price_cache()
        record((usage,), 4)

    assert usage.total_cost == 6 * ONE_REQUEST + 4 * Decimal("0.00168")


def test_dated_prices_follow_send_day(reading: ReadingPlugin) -> None:
    change = dt.date(2026, 7, 1)

    class DatedPrices:
        llmfy_price_rank = PriceRank.ORGANIZATION
        llmfy_price_dated = True

        @hookimpl
        def price_lookup(self, model: str, requested_at: dt.datetime) -> Price:
            if requested_at.date() < change:
                return Price(Decimal(1), Decimal(2))
            return Price(Decimal(2), Decimal(4))

    llmfy_core.register_plugin(DatedPrices(), "dated-prices")
    before = dt.datetime(2026, 6, 30, 23, 59, tzinfo=dt.UTC)
    after = dt.datetime(2026, 7, 1, 0, 1, tzinfo=dt.UTC)
    with llmfy_usage_tracker() as usage:
        for sent_at in [before] * 4 + [after] * 4 + [before, after]:
            record_response(response(), CONTEXT, (usage,), sent_at)

    # Cached tokens at the input rate: 1370 x 1 + 155 x 2 = 1680 before the
    # change and 1370 x 2 + 155 x 4 = 3360 after, per million.
    assert usage.total_cost == 5 * Decimal("0.00168") + 5 * Decimal("0.00336")
    sent = [each.sent_at for each in usage.records]
    assert sent == [before] * 4 + [after] * 4 + [before, after]


def test_dated_slot_recorded_inline(
    reading: ReadingPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmfy_core.ledger import Ledger

    class DatedPrices:
        llmfy_price_rank = PriceRank.ORGANIZATION
        llmfy_price_dated = True

        @hookimpl
        def price_lookup(self, model: str) -> Price:
            return Price(Decimal(1), Decimal(2))

    llmfy_core.register_plugin(DatedPrices(), "dated-prices")
    calls: list[int] = []
    add_counts = Ledger.add_counts

    def counted(ledger: Ledger, counts: UsageCounts, sent: int, stamp: int) -> bool:
        calls.append(sent)
        return add_counts(ledger, counts, sent, stamp)

    monkeypatch.setattr(Ledger, "add_counts", counted)
    sent_at = dt.datetime(2026, 7, 9, 12, tzinfo=dt.UTC)
    with llmfy_usage_tracker() as usage:
        for _ in range(5):
            record_response(response(), CONTEXT, (usage,), sent_at)

    # The first request takes the full path and leaves the slot, and
    # record_response queues the others into it itself.
    assert calls == []
    # 1370 x 1 + 155 x 2 = 1680 per million for each request.
    assert usage.total_cost == 5 * Decimal("0.00168")
    assert [record.sent_at for record in usage.records] == [sent_at] * 5


def test_long_context_tier_above_threshold(reading: ReadingPlugin) -> None:
    reading.prices["gpt-4o-mini"] = Price(
        Decimal(1),
        Decimal(2),
        long_context=(LongContextTier(2000, Price(Decimal(10), Decimal(20))),),
    )
    with llmfy_usage_tracker() as usage:
        record((usage,), 3, inputs=2000, cached=0)
        record((usage,), 2, inputs=2001, cached=0)
        record((usage,), 3, inputs=2000, cached=0)

    # At the threshold: 2000 x 1 + 155 x 2 = 2310; above it the whole request
    # at the tier: 2001 x 10 + 155 x 20 = 23110, per million.
    assert usage.total_cost == 6 * Decimal("0.00231") + 2 * Decimal("0.02311")
    costs = [each.cost.total for each in usage.records if each.cost is not None]
    assert costs[3:5] == [Decimal("0.02311")] * 2


def test_request_recorded_sees_every_request(reading: ReadingPlugin) -> None:
    seen: list[RequestRecord] = []

    class Exporter:
        @hookimpl
        def request_recorded(self, record: RequestRecord) -> None:
            seen.append(record)

    llmfy_core.register_plugin(Exporter(), "exporter")
    with llmfy_usage_tracker() as usage:
        record((usage,), 6)

    assert len(seen) == 6
    assert all(each.cost is not None for each in seen)
    assert usage.request_count == 6


class Forwarding:
    """An object whose attribute reads go to `target`, except those given here."""

    def __init__(self, target: Any, **own: Any) -> None:
        self.target = target
        self.__dict__.update(own)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def test_exporter_registered_during_refresh_sees_requests(
    reading: ReadingPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another thread registers an exporter right after the recording path
    # lists the request_recorded implementations. The list it took is stale,
    # and the next request must list them again.
    seen: list[RequestRecord] = []

    class Exporter:
        @hookimpl
        def request_recorded(self, record: RequestRecord) -> None:
            seen.append(record)

    registry = get_registry()
    manager = registry.manager
    list_exporters = manager.hook.request_recorded.get_hookimpls
    registered: list[bool] = []

    def list_then_register() -> Any:
        found = list_exporters()
        if not registered:
            registered.append(True)
            exporter = Exporter()
            thread = threading.Thread(
                target=llmfy_core.register_plugin, args=(exporter, "exporter")
            )
            thread.start()
            thread.join()
        return found

    recorded = Forwarding(
        manager.hook.request_recorded, get_hookimpls=list_then_register
    )
    hooks = Forwarding(manager.hook, request_recorded=recorded)
    seen_registry = Forwarding(registry, manager=Forwarding(manager, hook=hooks))
    monkeypatch.setattr(recording, "get_registry", lambda: seen_registry)
    with llmfy_usage_tracker() as usage:
        record((usage,), 6)

    assert registered
    assert usage.request_count == 6
    assert len(seen) == 6


def test_unpriced_model_warns_once(reading: ReadingPlugin) -> None:
    context = CallContext("openai", model="unlisted-model")
    with llmfy_usage_tracker() as usage:
        with pytest.warns(llmfy_core.PricingWarning) as warned:
            for _ in range(5):
                record_response(response(model="unlisted-model"), context, (usage,))

    assert len(warned) == 1
    assert usage.totals.unpriced == 5
    assert not usage.cost_complete


def test_threads_record_exact_totals(reading: ReadingPlugin) -> None:
    threads_count, per_thread = 8, 2_000
    usage = llmfy_usage_tracker()
    start = threading.Barrier(threads_count)

    def work() -> None:
        start.wait()
        record((usage,), per_thread)

    with usage:
        threads = [threading.Thread(target=work) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    total = threads_count * per_thread
    assert usage.request_count == total
    assert usage.input_tokens == 1370 * total
    assert usage.total_cost == total * ONE_REQUEST
    assert len(usage.records) == total


@pytest.mark.parametrize("checks_counts", [False, True])
def test_count_beyond_64_bits_keeps_no_fault(
    reading: ReadingPlugin, checks_counts: bool
) -> None:
    # With llmfy_readers_check_counts the core trusts the reader's counts, and
    # the count reaches the ledger, which keeps it as a whole Usage.
    reading.llmfy_readers_check_counts = checks_counts
    huge = 2**63
    with llmfy_usage_tracker() as usage:
        record((usage,), 3)
        record((usage,), 1, outputs=huge)

    records = usage.records
    assert len(records) == 4
    assert records[3].usage.output_tokens == huge
    assert records[3].fault is None
    assert usage.totals.faults == 0
    # 90 x 0.15 + 1280 x 0.075 + 2**63 x 0.60, per million tokens.
    big = (
        Decimal(90) * Decimal("0.15")
        + Decimal(1280) * Decimal("0.075")
        + Decimal(huge) * Decimal("0.60")
    ) / 1_000_000
    assert usage.total_cost == 3 * ONE_REQUEST + big


def test_slot_of_stale_prices_not_offered(reading: ReadingPlugin) -> None:
    # A request whose price was resolved before a price change must not leave
    # its slot for later requests, whichever order the two threads ran in.
    from llmfy_core.ledger import Ledger
    from llmfy_core.plugins import CHANGES
    from llmfy_core.resolver import Resolution

    old = Resolution(Price(Decimal(1), Decimal(1)), "old", None)
    new = Resolution(Price(Decimal(2), Decimal(2)), "new", None)
    usage = llmfy_core.Usage("openai", "gpt-4o-mini", 100, 0)
    counts = usage_counts(usage)
    assert counts is not None
    sent_at = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)

    for new_first in (True, False):
        ledger = Ledger(keep_requests=True)
        stale = CHANGES.count
        if not new_first:
            ledger.add(usage, old, sent_at, None, stale, dated=False)
        CHANGES.bump()
        ledger.add(usage, new, sent_at, None, CHANGES.count, dated=False)
        if new_first:
            ledger.add(usage, old, sent_at, None, stale, dated=False)

        assert ledger.add_counts(counts, nanos_of(sent_at), CHANGES.count)
        with ledger.lock:
            ledger.fold()
        origins = [record.price_origin for record in ledger.records({})]
        assert origins[-1] == "new", new_first
        assert sorted(origins[:-1]) == ["new", "old"], new_first


def test_plugin_asked_first_keeps_precedence(reading: ReadingPlugin) -> None:
    # A later-registered plugin is called first. It reads only the responses
    # of model "special"; the provider plugin reads the others.
    class Special:
        @hookimpl
        def usage_extract(
            self, response: Any, context: CallContext
        ) -> llmfy_core.Usage | None:
            if response.get("model") != "special":
                return None
            return llmfy_core.Usage("openai", "special", 1, 1)

    llmfy_core.register_plugin(Special(), "special")
    with llmfy_usage_tracker() as usage:
        record((usage,), 3)
        record((usage,), 1, model="special")

    assert [each.usage.input_tokens for each in usage.records] == [1370] * 3 + [1]
    assert usage_reader("openai", dict) is None


def test_declared_providers_keep_fast_path(reading: ReadingPlugin) -> None:
    class OtherProvider:
        llmfy_providers = ("other",)

        @hookimpl
        def usage_extract(self, response: Any) -> None:
            raise AssertionError("asked for a provider it does not read")

    llmfy_core.register_plugin(OtherProvider(), "other")
    with llmfy_usage_tracker() as usage:
        record((usage,), 4)

    assert usage.request_count == 4
    assert usage_reader("openai", dict) == reading.read
