"""Load: many threads and asyncio tasks recording into nested trackers at once.

Each worker keeps its own expected totals, worked out with `compute_cost`
from the test provider's price (gpt-4o-mini at 0.15 input, 0.075 cached and
0.60 output USD per million tokens). After a run of a few seconds, every
tracker's totals must equal the sum of what its workers sent, to the token
and the last Decimal digit, with no thread left hanging and, in
`keep_requests=False` mode, with flat memory.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import attrs

from llmfy_core import (
    Usage,
    UsageTracker,
    active_trackers,
    bind_trackers,
    compute_cost,
    llmfy_usage_tracker,
)
from llmfy_core.pricing import DECIMAL_CONTEXT
from llmfy_core.recording import record_usage

from .servers import LoopbackLLM

# How long the mixed load runs, in seconds: long enough for thousands of
# interleavings, short enough for CI.
# Requests each worker sends: a fixed count, so that the totals checked do not
# depend on how fast the machine is.
PER_THREAD = 1_500
PER_TASK = 20
# A thread still running this long after the run ended is taken as deadlocked.
JOIN_TIMEOUT = 30.0

THREADS = 8
TASKS = 200


@attrs.define
class Expected:
    """What one worker sent, to compare with a tracker's totals."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    unknown_usage: int = 0
    unpriced: int = 0
    cost: Decimal = Decimal(0)

    def add(self, usage: Usage, price: Any) -> None:
        self.requests += 1
        if usage.input_tokens is None or usage.output_tokens is None:
            self.unknown_usage += 1
            return
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        if price is None:
            self.unpriced += 1
        else:
            total = compute_cost(usage, price).total
            self.cost = DECIMAL_CONTEXT.add(self.cost, total)

    def merge(self, other: Expected) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.unknown_usage += other.unknown_usage
        self.unpriced += other.unpriced
        self.cost = DECIMAL_CONTEXT.add(self.cost, other.cost)


def assert_totals(tracker: UsageTracker, expected: Expected) -> None:
    totals = tracker.totals
    assert totals.requests == expected.requests
    assert totals.input_tokens == expected.input_tokens
    assert totals.output_tokens == expected.output_tokens
    assert totals.cache_read_tokens == expected.cache_read_tokens
    assert totals.unknown_usage == expected.unknown_usage
    assert totals.unpriced == expected.unpriced
    assert totals.cost == expected.cost


def random_usage(choices: random.Random) -> Usage:
    """Return a priced, unpriced or unknown request, at random."""
    kind = choices.random()
    if kind < 0.1:
        return Usage("openai", "gpt-4o-mini", None, None)
    model = "gpt-4o-mini" if kind < 0.8 else "model-without-price"
    input_tokens = choices.randint(0, 5000)
    cached = choices.randint(0, input_tokens)
    return Usage(
        "openai",
        model,
        input_tokens,
        choices.randint(0, 2000),
        cache_read_tokens=cached,
    )


def test_threads_and_tasks_into_nested_trackers(provider: Any) -> None:
    price = provider.prices["gpt-4o-mini"]
    workers_done = threading.Event()
    thread_results: list[tuple[UsageTracker, Expected]] = []
    task_results: list[tuple[UsageTracker, Expected]] = []
    middles: list[UsageTracker] = []
    results_lock = threading.Lock()
    read_errors: list[BaseException] = []
    reads: list[int] = []

    def send(usage: Usage, expected: Expected) -> None:
        record_usage(usage, active_trackers())
        expected.add(usage, price if usage.model == "gpt-4o-mini" else None)

    def thread_worker(seed: int) -> None:
        choices = random.Random(seed)
        expected = Expected()
        with llmfy_usage_tracker(keep_requests=seed % 2 == 0) as inner:
            for _ in range(PER_THREAD):
                send(random_usage(choices), expected)
        with results_lock:
            thread_results.append((inner, expected))

    async def task_worker(seed: int) -> None:
        choices = random.Random(seed)
        expected = Expected()
        with llmfy_usage_tracker() as inner:
            for _ in range(PER_TASK):
                send(random_usage(choices), expected)
                await asyncio.sleep(0)
        with results_lock:
            task_results.append((inner, expected))

    def asyncio_worker() -> None:
        async def main() -> None:
            # Tasks nest their trackers in this one, itself in the outer one.
            with llmfy_usage_tracker(keep_requests=False) as middle:
                await asyncio.gather(*(task_worker(1000 + n) for n in range(TASKS)))
            middles.append(middle)

        asyncio.run(main())

    def reader(tracker: UsageTracker) -> None:
        # Reports are read while requests arrive, as a dashboard would.
        try:
            while not workers_done.is_set():
                reads.append(tracker.totals.requests)
                str(tracker)
                tracker.to_dict()
                time.sleep(0.02)
        except BaseException as error:
            read_errors.append(error)

    with llmfy_usage_tracker() as outer:
        workers = [
            threading.Thread(target=bind_trackers(thread_worker), args=(seed,))
            for seed in range(THREADS)
        ]
        workers.append(threading.Thread(target=bind_trackers(asyncio_worker)))
        watcher = threading.Thread(target=reader, args=(outer,))
        watcher.start()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=JOIN_TIMEOUT)
        workers_done.set()
        watcher.join(timeout=JOIN_TIMEOUT)
        workers.append(watcher)

    assert [worker for worker in workers if worker.is_alive()] == []
    assert read_errors == []
    assert reads == sorted(reads)
    assert len(thread_results) == THREADS
    assert len(task_results) == TASKS
    tasks_total = Expected()
    for tracker, expected in task_results:
        assert_totals(tracker, expected)
        tasks_total.merge(expected)
    assert_totals(middles[0], tasks_total)
    everything = Expected()
    everything.merge(tasks_total)
    for tracker, expected in thread_results:
        assert_totals(tracker, expected)
        everything.merge(expected)
    assert_totals(outer, everything)
    assert len(outer.records) == everything.requests
    assert everything.requests == THREADS * PER_THREAD + TASKS * PER_TASK


def test_totals_only_memory_stays_flat(provider: Any) -> None:
    choices = random.Random(3)
    requests = [random_usage(choices) for _ in range(2_000)]

    def grow(keep_requests: bool) -> int:
        """Return the bytes held after 40,000 more requests than a warm-up."""
        with llmfy_usage_tracker(keep_requests=keep_requests) as usage:
            trackers = active_trackers()
            for each in requests:
                record_usage(each, trackers)
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(20):
                    for each in requests:
                        record_usage(each, trackers)
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
        assert usage.request_count == 42_000
        return after - before

    totals_only = grow(keep_requests=False)
    every_request = grow(keep_requests=True)

    # Keeping every request takes at least a pointer per request. Keeping
    # totals takes nothing more once the warm-up has seen every model.
    assert every_request > 40_000 * 8
    assert totals_only < 16 * 1024


def test_real_clients_under_load(
    loopback: LoopbackLLM, openai_client: Any, bedrock_client: Any
) -> None:
    # 8 threads x 20 requests through each SDK, half of them streamed, into a
    # tracker per thread nested in one outer tracker.
    per_thread = 20

    def openai_calls() -> UsageTracker:
        with llmfy_usage_tracker() as inner:
            for number in range(per_thread):
                if number % 2:
                    stream = openai_client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": "Hi"}],
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    list(stream)
                else:
                    openai_client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": "Hi"}],
                    )
        return inner

    def bedrock_calls() -> UsageTracker:
        messages = [{"role": "user", "content": [{"text": "Hi"}]}]
        with llmfy_usage_tracker() as inner:
            for number in range(per_thread):
                if number % 2:
                    response = bedrock_client.converse_stream(
                        modelId="amazon.nova-micro-v1:0", messages=messages
                    )
                    list(response["stream"])
                else:
                    bedrock_client.converse(
                        modelId="amazon.nova-micro-v1:0", messages=messages
                    )
        return inner

    with llmfy_usage_tracker() as outer, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(bind_trackers(openai_calls)) for _ in range(8)]
        futures += [pool.submit(bind_trackers(bedrock_calls)) for _ in range(8)]
        inners = [future.result(timeout=JOIN_TIMEOUT) for future in futures]

    requests = 16 * per_thread
    assert [inner.request_count for inner in inners] == [per_thread] * 16
    assert outer.request_count == requests
    assert outer.input_tokens == 60 * requests
    assert outer.output_tokens == 3 * requests
    # OpenAI gpt-4o-mini: 60 * 0.15 + 3 * 0.60 = 10.8 per million tokens.
    # Bedrock Nova Micro in us-east-1: 60 * 0.035 + 3 * 0.14 = 2.52.
    # 160 requests of each: 160 * (10.8 + 2.52) = 2131.2 per million tokens.
    assert outer.total_cost == Decimal("0.0021312")
