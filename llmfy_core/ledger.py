"""The tracker's storage: token sums per model and price, costed when read.

Cost is linear in the tokens of each kind, so a tracker does not price each
request as it arrives. It adds the request's tokens to a bucket per
(provider, model, region, price) and multiplies the sums by the price's
per-token rates when the totals are read. Decimal multiplication distributes
over these sums exactly, so the total equals the sum of the per-request
costs to the last digit. Requests that the linear form cannot price (priced
token subsets, tool calls, long-context tiers, units that are not a power of
ten) are costed one by one into the same bucket.

Recording takes no lock: a request's slot, counts and send time are added
to the end of a queue, a flat list, with one `list.extend` call, which CPython
runs atomically. The queue is folded into the buckets under the lock once it
contains `FOLD_SIZE` requests and whenever totals or records are read. The fold
copies the requests queued so far and deletes them from the front, while
other threads keep adding at the end. A request recorded by a finalizer that
garbage collection runs inside the fold is queued behind the others, never
deadlocked or lost.

A kept request is stored compactly: up to six 64-bit integers (send time in
nanoseconds and the five token counts, less the counts that are 0 for its
whole batch) in the bytes object of the batch it was folded with, plus
references to its `Slot` and its request id. Its `Usage` and
`RequestRecord` are built only when the records are read.
"""

from __future__ import annotations

import datetime as dt
import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from struct import Struct, calcsize, pack, unpack
from struct import error as StructError
from typing import TYPE_CHECKING, Any, NamedTuple

from llmfy_core.logs import get_logger
from llmfy_core.model import (
    INPUT_TOKENS_INDEX,
    NO_PRICE_FOUND,
    USAGE_KEY_FIELDS,
    CallContext,
    Cost,
    Price,
    RequestRecord,
    Usage,
    UsageCounts,
    counts_of_usage,
    usage_from_counts,
)
from llmfy_core.plugins import CHANGES
from llmfy_core.pricing import (
    DECIMAL_CONTEXT,
    Rates,
    compute_cost,
    per_token_rates,
    tidy_decimal,
)
from llmfy_core.totals import ModelTotals

if TYPE_CHECKING:
    from collections.abc import Mapping

    from llmfy_core.resolver import Resolution

logger = get_logger("llmfy.tracker")

# (provider, model, region, id of the price that applies)
BucketKey = tuple[str, str, str | None, int]

# One request recorded without a slot: usage, price resolution, send time in
# UTC, and the fault noted while recording it.
Entry = tuple[Usage, "Resolution", dt.datetime, str | None]

# How many queued requests a recording thread folds at once. Bounds the queue
# in totals-only mode and spreads the folding over the requests.
FOLD_SIZE = 256
# The length of the queue, three items per request, that triggers a fold.
FOLD_LENGTH = 3 * FOLD_SIZE

# The largest token count stored in a kept request's 64-bit integers; larger
# counts take the slower path that keeps the whole `Usage`.
MAX_COUNT = 2**63 - 1

DAY_NANOSECONDS = 86_400 * 10**9
# Send times are kept as nanoseconds since 1970 in 64-bit integers, from
# MIN_SENT to MAX_COUNT: the years 1677 to 2262. A request sent outside them
# takes the slower path that keeps its whole `datetime`.
MIN_SENT = -(2**63)
# 1973-03-03 UTC in nanoseconds. A send time given as an int must not be
# earlier: seconds and milliseconds of today, passed by mistake, fall below.
MIN_INT_SENT = 10**17

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_ZERO = Decimal(0)

# Readers of the fields of `UsageCounts`.
_TOKEN_KINDS = 5
_TOKEN_GETTERS = tuple(
    itemgetter(INPUT_TOKENS_INDEX + kind) for kind in range(_TOKEN_KINDS)
)
# The number of fields of a `UsageCounts`.
_COUNT_FIELDS = INPUT_TOKENS_INDEX + _TOKEN_KINDS


def sent_fits(sent: int) -> bool:
    """Return whether a send time in nanoseconds fits a kept request's integer."""
    return MIN_SENT <= sent <= MAX_COUNT


def nanos_of(moment: dt.datetime) -> int:
    """Return a UTC time as nanoseconds since 1970-01-01 UTC, as `time.time_ns` does."""
    return (moment - _EPOCH) // _MICROSECOND * 1000


def moment_of(nanos: int) -> dt.datetime:
    """Return the UTC time `nanos` ns after 1970-01-01 UTC, to the microsecond."""
    return _EPOCH + dt.timedelta(microseconds=nanos // 1000)


class Slot:
    """The fields that every request of one kind and price resolution shares.

    `key` is the first `USAGE_KEY_FIELDS` fields of `UsageCounts`. `day` is
    the UTC day number (days since 1970-01-01) that the resolution holds
    for, or None when no price depends on the day a request was sent. Only
    requests sent from `sent_from` up to, not including, `sent_until`
    (nanoseconds since 1970 UTC) belong to the slot: that day, or any time
    when `day` is None. Neither range starts before `MIN_INT_SENT`, so that
    the recording path can take an int send time for nanoseconds without
    checking it: a time that is not misses every slot. A request with more
    input tokens than `input_limit` is charged at a long-context tier and
    does not belong to the slot.
    """

    __slots__ = (
        "bucket",
        "bucket_key",
        "day",
        "input_limit",
        "key",
        "price",
        "resolution",
        "sent_from",
        "sent_until",
    )

    def __init__(
        self, key: tuple[Any, ...], resolution: Resolution, day: int | None
    ) -> None:
        self.key = key
        self.resolution = resolution
        self.price = price = resolution.price
        self.day = day
        if day is None:
            self.sent_from, self.sent_until = MIN_INT_SENT, MAX_COUNT + 1
        else:
            self.sent_from = max(day * DAY_NANOSECONDS, MIN_INT_SENT)
            self.sent_until = min((day + 1) * DAY_NANOSECONDS, MAX_COUNT + 1)
        self.input_limit = MAX_COUNT
        if price is not None and price.long_context:
            self.input_limit = min(
                tier.above_input_tokens for tier in price.long_context
            )
        self.bucket_key: BucketKey = (key[0], key[1], key[3], id(self.price))
        self.bucket: Bucket | None = None


class Bucket:
    """Sums over the requests of one model, region and price.

    For a price with long-context tiers, buckets are keyed by the price that
    applies to each request (`Price.for_input_tokens`), so that every request
    in a bucket is charged at the bucket's flat rates. Token sums cover the
    requests with known usage; the `costed_*` sums are the part of them that
    was costed one by one into `extra_cost`.
    """

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "costed_cache_read",
        "costed_cache_write",
        "costed_input",
        "costed_output",
        "extra_cost",
        "faults",
        "input_tokens",
        "other_tokens",
        "output_tokens",
        "price",
        "rates",
        "reasoning_tokens",
        "requests",
        "tool_calls",
        "unknown_usage",
        "unpriced_tool_calls",
    )

    def __init__(self, price: Price | None) -> None:
        self.price = price
        self.rates: Rates | None = None if price is None else per_token_rates(price)
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.costed_input = 0
        self.costed_cache_read = 0
        self.costed_cache_write = 0
        self.costed_output = 0
        self.extra_cost = _ZERO
        self.other_tokens: dict[str, int] | None = None
        self.tool_calls: dict[str, int] | None = None
        self.unknown_usage = 0
        self.unpriced_tool_calls = 0
        self.faults = 0

    def add(self, usage: Usage, fault: str | None) -> None:
        """Add one request given as a `Usage`; the caller holds the ledger's lock."""
        self.requests += 1
        if fault is not None:
            self.faults += 1
        if usage.tool_calls:
            self.tool_calls = _add_counts(self.tool_calls, usage.tool_calls)
        input_tokens = usage.input_tokens
        output_tokens = usage.output_tokens
        if input_tokens is None or output_tokens is None:
            self.unknown_usage += 1
            return
        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read
        self.cache_write_tokens += cache_write
        self.reasoning_tokens += usage.reasoning_tokens
        if usage.other_tokens:
            self.other_tokens = _add_counts(self.other_tokens, usage.other_tokens)
        price = self.price
        if price is None:
            return
        if self.rates is None or usage.other_tokens or usage.tool_calls:
            cost = compute_cost(usage, price)
            self.extra_cost = DECIMAL_CONTEXT.add(self.extra_cost, cost.total)
            if cost.unpriced_tools:
                self.unpriced_tool_calls += 1
            self.costed_input += input_tokens - cache_read - cache_write
            self.costed_cache_read += cache_read
            self.costed_cache_write += cache_write
            self.costed_output += output_tokens

    @property
    def unpriced(self) -> int:
        """How many requests have known usage but no price."""
        return self.requests - self.unknown_usage if self.price is None else 0

    def cost(self) -> Decimal:
        """Return the exact cost of the priced requests in this bucket."""
        rates = self.rates
        if rates is None:
            return self.extra_cost
        multiply = DECIMAL_CONTEXT.multiply
        add = DECIMAL_CONTEXT.add
        input_rate, cache_read_rate, cache_write_rate, output_rate = rates
        cache_read = self.cache_read_tokens - self.costed_cache_read
        cache_write = self.cache_write_tokens - self.costed_cache_write
        plain_input = (
            self.input_tokens
            - self.cache_read_tokens
            - self.cache_write_tokens
            - self.costed_input
        )
        output = self.output_tokens - self.costed_output
        total = self.extra_cost
        total = add(total, multiply(input_rate, plain_input))
        total = add(total, multiply(cache_read_rate, cache_read))
        total = add(total, multiply(cache_write_rate, cache_write))
        return add(total, multiply(output_rate, output))

    def add_to(self, totals: ModelTotals) -> None:
        """Add this bucket's sums to `totals`."""
        totals.requests += self.requests
        totals.input_tokens += self.input_tokens
        totals.output_tokens += self.output_tokens
        totals.cache_read_tokens += self.cache_read_tokens
        totals.cache_write_tokens += self.cache_write_tokens
        totals.reasoning_tokens += self.reasoning_tokens
        for kind, tokens in (self.other_tokens or {}).items():
            totals.other_tokens[kind] = totals.other_tokens.get(kind, 0) + tokens
        for tool, calls in (self.tool_calls or {}).items():
            totals.tool_calls[tool] = totals.tool_calls.get(tool, 0) + calls
        totals.cost = DECIMAL_CONTEXT.add(totals.cost, self.cost())
        totals.unpriced += self.unpriced
        totals.unknown_usage += self.unknown_usage
        totals.unpriced_tool_calls += self.unpriced_tool_calls
        totals.faults += self.faults


def _add_counts(
    counts: dict[str, int] | None, more: Mapping[str, int]
) -> dict[str, int]:
    counts = {} if counts is None else counts
    for name, count in more.items():
        if count:
            # A count of 0 adds no key, so that the totals list only what occurred.
            counts[name] = counts.get(name, 0) + count
    return counts


# A queued request is three items of `Ledger.queue`: its slot, counts and
# send time in nanoseconds, or None, an `Entry` and 0 for a request without
# a slot.

# `Ledger.slot_table`: a `CHANGES.count` and the slots by request kind.
SlotTable = tuple[int, dict[tuple[Any, ...], Slot]]


class Ledger:
    """The requests of one tracker: a queue, the buckets and the kept requests."""

    def __init__(self, keep_requests: bool) -> None:
        self.keep_requests = keep_requests
        self.lock = threading.Lock()
        self.queue: list[Any] = []
        self._buckets: dict[BucketKey, Bucket] = {}
        # The `CHANGES.count` that the slots by request kind are valid for,
        # and the slots. A slot of dated prices applies only to requests sent
        # on its day. Replaced together, so that a reader sees a matching pair.
        self.slot_table: SlotTable = (-1, {})
        self._kept = KeptRequests()
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()

    # Recording

    def add_counts(self, counts: UsageCounts, sent: int, stamp: int) -> bool:
        """Queue a request whose kind already has a slot; return whether it had one.

        `sent` is the send time in nanoseconds since 1970 UTC and `stamp`
        the current `CHANGES.count`. The caller has checked the counts.
        """
        table_stamp, slots = self.slot_table
        if table_stamp != stamp:
            return False
        slot = slots.get(counts[:USAGE_KEY_FIELDS])
        if slot is None or not slot.sent_from <= sent < slot.sent_until:
            return False
        if counts[INPUT_TOKENS_INDEX] > slot.input_limit:
            return False
        queue = self.queue
        queue.extend((slot, counts, sent))
        # `_fold_when_full`, inlined because this runs for every request.
        if len(queue) >= FOLD_LENGTH:
            self.fold_if_free()
        return True

    def add(
        self,
        usage: Usage,
        resolution: Resolution,
        sent_at: dt.datetime,
        fault: str | None,
        stamp: int,
        dated: bool,
    ) -> None:
        """Queue a request, and give its kind a slot when it fits one.

        `stamp` is `CHANGES.count` as read before the price was resolved, and
        `dated` whether prices depend on the day a request was sent.
        """
        counts = None
        if fault is None and resolution.fault is None:
            counts = counts_of_usage(usage)
        if counts is not None and counts_fit(counts):
            sent = nanos_of(sent_at)
            slot = None
            if sent_fits(sent):
                slot = self._slot_for(counts, resolution, sent, stamp, dated)
            if slot is not None:
                self.queue.extend((slot, counts, sent))
                self._fold_when_full()
                return
        self.queue.extend((None, (usage, resolution, sent_at, fault), 0))
        self._fold_when_full()

    def _slot_for(
        self,
        counts: UsageCounts,
        resolution: Resolution,
        sent: int,
        stamp: int,
        dated: bool,
    ) -> Slot | None:
        price = resolution.price
        if price is not None and per_token_rates(price) is None:
            return None
        key = counts[:USAGE_KEY_FIELDS]
        day = sent // DAY_NANOSECONDS if dated else None
        table_stamp, slots = self.slot_table
        if table_stamp != stamp:
            if stamp != CHANGES.count:
                # Prices changed since this request's were resolved: its slot
                # serves it alone and is not offered to later requests.
                return self._fitting(Slot(key, resolution, day), counts)
            slots = {}
            self.slot_table = (stamp, slots)
        slot = slots.get(key)
        if slot is None or slot.resolution is not resolution or slot.day != day:
            slot = Slot(key, resolution, day)
            # A table whose stamp went stale meanwhile is never read again.
            slots[key] = slot
        return self._fitting(slot, counts)

    @staticmethod
    def _fitting(slot: Slot, counts: UsageCounts) -> Slot | None:
        """Return `slot` unless the request is above its long-context threshold."""
        return None if counts[INPUT_TOKENS_INDEX] > slot.input_limit else slot

    def _fold_when_full(self) -> None:
        if len(self.queue) >= FOLD_LENGTH:
            self.fold_if_free()

    def fold_if_free(self) -> None:
        """Fold the oldest queued requests, unless this or another thread is folding.

        A recording thread folds at most `4 * FOLD_SIZE` requests, so that its
        call stays short while other threads keep queueing. Every request
        recorded while the queue is still full folds more.
        """
        lock = self.lock
        if lock.acquire(blocking=False):
            try:
                self._fold_queued(4 * FOLD_LENGTH)
            finally:
                lock.release()

    def fold(self) -> None:
        """Move every queued request into the buckets; the caller holds `lock`."""
        queue = self.queue
        while queue:
            self._fold_queued(len(queue))

    def _fold_queued(self, limit: int) -> None:
        """Fold the oldest queued requests, up to `limit` items of the queue.

        The caller holds `lock`. `limit` is a multiple of 3, as the queue's
        length is.
        """
        queue = self.queue
        # Only the lock holder deletes, and other threads add at the end, so
        # the first `length` items stay in place until deleted here.
        length = min(len(queue), limit)
        items = queue[:length]
        del queue[:length]
        slots = items[0::3]
        counts = items[1::3]
        sents = items[2::3]
        if slots and slots[0] is not None and slots.count(slots[0]) == len(slots):
            self._fold_run(slots, counts, sents)
            return
        # Requests without a slot come between the others: fold in runs, so
        # that the kept requests stay in the order recorded.
        start = 0
        for end, slot in enumerate(slots):
            if slot is None:
                if start < end:
                    self._fold_run(
                        slots[start:end], counts[start:end], sents[start:end]
                    )
                self._fold_run_entry(counts[end])
                start = end + 1
        if start < len(slots):
            self._fold_run(slots[start:], counts[start:], sents[start:])

    def _fold_run(
        self, slots: list[Slot], counts: list[UsageCounts], sents: list[int]
    ) -> None:
        """Fold queued requests that all have slots."""
        try:
            self._fold_batch(slots, counts, sents)
        except Exception:
            # NOTE: only a bug in llmfy lands here; the requests are logged,
            # not counted, because their data could not be added.
            logger.exception(
                "llmfy failed to add %d requests to its totals", len(slots)
            )

    def _fold_run_entry(self, entry: Entry) -> None:
        """Fold one queued request that has no slot."""
        try:
            self._fold_entry(entry)
        except Exception:
            logger.exception("llmfy failed to add a request to its totals")

    def _fold_batch(
        self,
        slots: list[Slot],
        counts: list[UsageCounts],
        sents: list[int],
    ) -> None:
        """Add requests that have slots, with C-level loops.

        The columns are built and checked before anything is added. A batch
        whose sums exceed 64 bits, or with counts that a reader should not
        have returned (not an int, not 13 fields), is added request by
        request, so that one bad request does not cost the others.
        """
        try:
            if self.keep_requests:
                # One transposition of the batch made the fold about a tenth
                # cheaper than a getter per column (callgrind, Python 3.11),
                # and its number of columns checks the length of every count.
                columns = tuple(zip(*counts, strict=True))
                tokens = columns[INPUT_TOKENS_INDEX : INPUT_TOKENS_INDEX + _TOKEN_KINDS]
                request_ids = columns[INPUT_TOKENS_INDEX - 1]
                sums = [sum(column) for column in tokens]
                fields_valid = len(columns) == _COUNT_FIELDS
            else:
                # Summing without building the columns costs about a quarter
                # less. The getters raise IndexError for short counts. Only the
                # first and last count are checked for long ones, because
                # checking each cost about 300 instructions more per request
                # (callgrind, Python 3.11).
                tokens = None
                sums = [sum(map(getter, counts)) for getter in _TOKEN_GETTERS]
                fields_valid = len(counts[0]) == len(counts[-1]) == _COUNT_FIELDS
            valid = fields_valid and all(
                type(total) is int and 0 <= total <= MAX_COUNT for total in sums
            )
            chunk = (
                self._kept.pack(tokens, sums, sents)
                if valid and tokens is not None
                else None
            )
        except (LookupError, TypeError, ValueError, StructError):
            # The strict zip raises ValueError for counts of unequal lengths.
            valid = False
        if not valid:
            for queued in zip(slots, counts, sents, strict=True):
                try:
                    self._fold_one(*queued)
                except Exception:
                    # NOTE: only a bug in llmfy lands here; the request is
                    # logged, not counted, because its data could not be added.
                    logger.exception("llmfy failed to add a request to its totals")
            return
        first = slots[0]
        if slots.count(first) == len(slots):
            self._add_sums(first, len(slots), sums)
        else:
            by_slot: dict[Slot, list[UsageCounts]] = {}
            for slot, request in zip(slots, counts, strict=True):
                by_slot.setdefault(slot, []).append(request)
            for slot, group in by_slot.items():
                group_tokens = [list(map(get, group)) for get in _TOKEN_GETTERS]
                self._add_sums(slot, len(group), [sum(c) for c in group_tokens])
        if chunk is not None:
            self._kept.add_chunk(slots, request_ids, chunk)

    def _add_sums(self, slot: Slot, requests: int, sums: list[int]) -> None:
        bucket = slot.bucket
        if bucket is None:
            bucket = slot.bucket = self._bucket(slot.bucket_key, slot.price)
        bucket.requests += requests
        bucket.input_tokens += sums[0]
        bucket.output_tokens += sums[1]
        bucket.cache_read_tokens += sums[2]
        bucket.cache_write_tokens += sums[3]
        bucket.reasoning_tokens += sums[4]

    def _fold_one(self, slot: Slot, counts: UsageCounts, sent: int) -> None:
        """Add one request, with invalid counts repaired.

        Counts that are not a `UsageCounts` at all leave the request with
        unknown usage.
        """
        try:
            fits = counts_fit(counts)
        except (TypeError, ValueError):
            # Not a tuple of 13 fields.
            fits = False
        if fits and sent_fits(sent):
            # A send time that the batch cannot pack would bring the request
            # back here, so such a request takes the path below.
            self._fold_batch([slot], [counts], [sent])
            return
        # Deferred import: recording imports this module.
        from llmfy_core.recording import checked_usage, unknown_usage

        try:
            usage, problem = checked_usage(usage_from_counts(counts))
        except (TypeError, ValueError):
            provider, model, served, region, tier, operation, batch = slot.key
            context = CallContext(provider, operation, model, region, tier, batch=batch)
            usage = unknown_usage(context, served_model=served)
            problem = f"not a UsageCounts: {counts!r}"
        fault = None
        if problem is not None:
            logger.warning(
                "invalid usage for %s model %s from a usage reader: %s; the "
                "invalid counts are dropped",
                usage.provider,
                usage.model,
                problem,
            )
            fault = f"invalid usage: {problem}"
        # Valid counts land here too when they do not fit in 64 bits.
        self._fold_entry((usage, slot.resolution, moment_of(sent), fault))

    def _fold_entry(self, entry: Entry) -> None:
        usage, resolution, _, fault = entry
        price = resolution.price
        if price is not None and price.long_context:
            price = price.for_input_tokens(usage.input_tokens)
        key = (usage.provider, usage.model, usage.region, id(price))
        self._bucket(key, price).add(usage, fault)
        if self.keep_requests:
            self._kept.add_entry(entry)

    def _bucket(self, key: BucketKey, price: Price | None) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(price)
        return bucket

    # Reading

    def buckets(self) -> Iterator[tuple[BucketKey, Bucket]]:
        """Yield every bucket with its key; the caller holds `lock` and has folded."""
        yield from self._buckets.items()

    def records(self, tags: Mapping[str, str]) -> list[RequestRecord]:
        """Return the kept requests as records, building the new ones."""
        return self.snapshot(tags).records

    def snapshot(self, tags: Mapping[str, str]) -> LedgerSnapshot:
        """Return the totals, the totals by model and the records of one fold.

        Requests that other threads record meanwhile are in none of them, so
        a report built from the snapshot agrees with itself.
        """
        with self._records_lock:
            with self.lock:
                self.fold()
                totals, groups = self._sums()
                end = len(self._kept)
                # Other threads may fold and merge chunks while the records
                # are built outside the lock, so they are built from copies.
                chunks = self._kept.chunks_now()
            records = self._records
            kept = self._kept
            records.extend(
                kept.record_at(index, tags, chunks)
                for index in range(len(records), end)
            )
            return LedgerSnapshot(totals, groups, list(records))

    def totals_by_model(self) -> dict[GroupKey, ModelTotals]:
        """Return the totals per (provider, model, region), as requested."""
        with self.lock:
            self.fold()
            return self._sums()[1]

    def _sums(self) -> tuple[ModelTotals, dict[GroupKey, ModelTotals]]:
        """Return the totals and the totals by model. The caller must hold `lock`."""
        totals = ModelTotals()
        groups: dict[GroupKey, ModelTotals] = {}
        for (provider, model, region, _), bucket in self._buckets.items():
            bucket.add_to(totals)
            key = (provider, model, region)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ModelTotals()
            bucket.add_to(group)
        totals.cost = tidy_decimal(totals.cost)
        for group in groups.values():
            group.cost = tidy_decimal(group.cost)
        return totals, groups


# (provider, model as requested, region)
GroupKey = tuple[str, str, str | None]


class LedgerSnapshot(NamedTuple):
    """A tracker's totals, totals by model and kept records, as of one fold."""

    totals: ModelTotals
    by_model: dict[GroupKey, ModelTotals]
    # Empty when the tracker keeps totals only.
    records: list[RequestRecord]


class KeptRequests:
    """Every request of a tracker that keeps them, compactly, in the order recorded.

    A request of a slot costs up to six 64-bit integers and two references:
    its send time in nanoseconds since 1970 UTC, its input, output, cache
    read, cache write and reasoning tokens, its `Slot` and its request id.
    The integers of the requests folded together stay in one bytes object, a
    chunk, column after column: appending them to six growing arrays made
    the fold up to a fifth slower. A chunk starts with a mask of the columns
    it contains and leaves out the token columns that are 0 for all its
    requests. A request without a slot is kept as its `Entry` and has no
    integers.
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        # The index of the first request of each chunk.
        self.starts: list[int] = []
        self.owners: list[Slot | Entry] = []
        self.request_ids: list[str | None] = []
        # How many small chunks end `chunks`, with no entry between them.
        self.small_run = 0

    def __len__(self) -> int:
        return len(self.owners)

    @staticmethod
    def pack(
        tokens: Sequence[Sequence[int]], sums: Sequence[int], sents: list[int]
    ) -> bytes:
        """Return the send times and token columns as one chunk of 64-bit integers.

        `sums` are the token columns' sums, which the caller has checked: a
        column of counts of at least 0 whose sum is 0 contains only zeros and is
        left out. Raises `struct.error` for a value that is not an int or does
        not fit in 64 bits, and ValueError when `tokens` has too few columns.
        """
        if len(tokens) != _TOKEN_KINDS:
            raise ValueError(
                f"expected {_TOKEN_KINDS} token columns, got {len(tokens)}"
            )
        mask = 1
        integers = list(sents)
        for kind, column in enumerate(tokens):
            if sums[kind]:
                mask |= 2 << kind
                # Extending a list copies a tuple's references without
                # iterating it, unlike `chain`.
                integers += column
        return pack(f"{1 + len(integers)}{_INTEGER_CODE}", mask, *integers)

    def add_chunk(
        self, slots: list[Slot], request_ids: Sequence[str | None], chunk: bytes
    ) -> None:
        """Keep requests that have slots, given their request ids and `pack` chunk.

        A tracker read after every request folds one request at a time. So
        that it does not keep a chunk per request, every `_MERGE_RUN`
        consecutive small chunks are merged into one.
        """
        chunks = self.chunks
        starts = self.starts
        chunks.append(chunk)
        starts.append(len(self.owners))
        if len(slots) >= FOLD_SIZE:
            self.small_run = 0
        else:
            self.small_run += 1
            if self.small_run == _MERGE_RUN:
                chunks[-_MERGE_RUN:] = [_merged(chunks[-_MERGE_RUN:])]
                del starts[1 - _MERGE_RUN :]
                merged_requests = len(self.owners) + len(slots) - starts[-1]
                self.small_run = 1 if merged_requests < FOLD_SIZE else 0
        self.owners.extend(slots)
        self.request_ids.extend(request_ids)

    def add_entry(self, entry: Entry) -> None:
        """Keep a request that has no slot."""
        # The entry contains the send time, and its record is built from it.
        self.owners.append(entry)
        self.request_ids.append(None)
        # The chunks before and after the entry are not consecutive.
        self.small_run = 0

    def chunks_now(self) -> ChunkList:
        """Return copies of `chunks` and `starts`. The caller holds the ledger's lock.

        A later fold may merge the last chunks, so a reader outside the lock
        reads the copies.
        """
        return list(self.chunks), list(self.starts)

    def record_at(
        self, index: int, tags: Mapping[str, str], chunks: ChunkList
    ) -> RequestRecord:
        """Build the record of the kept request at `index`, given `chunks_now()`."""
        owner = self.owners[index]
        if not isinstance(owner, Slot):
            return build_record(owner, tags)
        parts, starts = chunks
        number = bisect_right(starts, index) - 1
        chunk = parts[number]
        read = _INTEGER.unpack_from
        mask = read(chunk)[0]
        size = (len(chunk) // _INTEGER.size - 1) // mask.bit_count()
        # The place of the request's integer in the first column, after the mask.
        position = 1 + index - starts[number]
        row = []
        for column in range(_ROW_INTEGERS):
            if mask >> column & 1:
                row.append(read(chunk, _INTEGER.size * position)[0])
                position += size
            else:
                row.append(0)
        sent, *counts = row
        usage = usage_from_counts((*owner.key, self.request_ids[index], *counts))
        return build_record((usage, owner.resolution, moment_of(sent), None), tags)


# `KeptRequests.chunks_now()`: the chunks and the index of each one's first
# request.
ChunkList = tuple[list[bytes], list[int]]

# A kept request's integers: its send time and five token counts.
_ROW_INTEGERS = 1 + _TOKEN_KINDS
# Native `ssize_t` where it has 64 bits: it packs a multi-digit int, such as
# a send time, in about half the instructions of `q` (callgrind, Python 3.11).
_INTEGER_CODE = "n" if calcsize("n") == 8 else "q"
_INTEGER = Struct(_INTEGER_CODE)
# A chunk of fewer requests than a full fold is small, and every
# `_MERGE_RUN` consecutive small chunks are merged. A request is then copied
# about FOLD_SIZE / (2 * _MERGE_RUN) times when every fold contains one request.
_MERGE_RUN = 16


def _columns_of(chunk: bytes) -> tuple[int, tuple[int, ...]]:
    """Return the column mask of a chunk and its integers after the mask."""
    values = unpack(f"{len(chunk) // _INTEGER.size}{_INTEGER_CODE}", chunk)
    return values[0], values[1:]


def _merged(parts: list[bytes]) -> bytes:
    """Return the chunk of the requests of `parts`, in order."""
    columns: list[list[Sequence[int]]] = [[] for _ in range(_ROW_INTEGERS)]
    merged_mask = 0
    total = 0
    for part in parts:
        mask, values = _columns_of(part)
        size = len(values) // mask.bit_count()
        merged_mask |= mask
        position = 0
        for column, column_parts in enumerate(columns):
            if mask >> column & 1:
                column_parts.append(values[position : position + size])
                position += size
            else:
                column_parts.append((0,) * size)
        total += size
    kept = [
        chain.from_iterable(column_parts)
        for column, column_parts in enumerate(columns)
        if merged_mask >> column & 1
    ]
    return pack(
        f"{1 + len(kept) * total}{_INTEGER_CODE}",
        merged_mask,
        *chain.from_iterable(kept),
    )


def counts_fit(counts: UsageCounts) -> bool:
    """Return whether the token counts of `counts` are valid for a slot.

    Each must be an int of at least 0 that fits in 64 bits, and the parts
    must not exceed the totals they belong to.
    """
    (
        _,
        _,
        _,
        _,
        _,
        _,
        _,
        _,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
    ) = counts
    return (
        type(input_tokens) is int
        and type(output_tokens) is int
        and type(cache_read) is int
        and type(cache_write) is int
        and type(reasoning) is int
        and cache_read >= 0
        and cache_write >= 0
        and reasoning >= 0
        and cache_read + cache_write <= input_tokens <= MAX_COUNT
        and reasoning <= output_tokens <= MAX_COUNT
    )


def build_record(entry: Entry, tags: Mapping[str, str]) -> RequestRecord:
    """Price one kept request and return its record."""
    usage, resolution, sent_at, fault = entry
    price = resolution.price
    cost = None
    reason = None
    if price is not None and usage.known:
        exact = compute_cost(usage, price)
        parts = {kind: tidy_decimal(amount) for kind, amount in exact.parts.items()}
        cost = Cost(tidy_decimal(exact.total), parts)
    elif price is None:
        reason = resolution.reason or (NO_PRICE_FOUND if usage.known else None)
    return RequestRecord(
        usage=usage,
        price=price,
        cost=cost,
        sent_at=sent_at,
        tags=tags,
        unpriced_reason=reason,
        price_origin=resolution.origin,
        fault=fault,
    )
