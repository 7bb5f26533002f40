"""The tracker's defined behaviour around exceptions, odd nesting and reuse.

A request belongs to the trackers active when it was sent, counted once by
each. These tests drive the core through `record_response`, as a provider
plugin's instrumentation does, with the test provider that the `provider`
fixture of `tests/conftest.py` registers: gpt-4o-mini at 0.15 input and 0.60
output USD per million tokens.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from llmfy_core import (
    CallContext,
    UsageTracker,
    active_trackers,
    llmfy_usage_tracker,
)
from llmfy_core.recording import record_response

# One request: 60 * 0.15 + 3 * 0.60 = 10.8 USD per million tokens.
ONE_REQUEST_COST = Decimal("0.0000108")


def send() -> None:
    """Record one response into the trackers active now, as instrumentation does."""
    record_response(
        {"model": "gpt-4o-mini", "in": 60, "out": 3},
        CallContext("openai", model="gpt-4o-mini"),
        active_trackers(),
    )


class ApplicationError(Exception):
    pass


def test_exception_in_block_propagates_unchanged(provider: object) -> None:
    error = ApplicationError("the application failed")

    with pytest.raises(ApplicationError) as raised, llmfy_usage_tracker() as usage:
        send()
        raise error

    assert raised.value is error
    assert usage.request_count == 1
    assert usage.total_cost == ONE_REQUEST_COST
    assert not usage.active
    assert active_trackers() == ()


def test_base_exception_in_block_deactivates(provider: object) -> None:
    with pytest.raises(KeyboardInterrupt), llmfy_usage_tracker() as usage:
        send()
        raise KeyboardInterrupt

    send()

    assert usage.request_count == 1
    assert active_trackers() == ()


def test_exception_in_inner_block_keeps_outer_counting(
    provider: object,
) -> None:
    with llmfy_usage_tracker() as outer:
        with pytest.raises(ApplicationError), llmfy_usage_tracker() as inner:
            send()
            raise ApplicationError
        send()

    assert inner.request_count == 1
    assert outer.request_count == 2


def test_three_trackers_exited_out_of_order(provider: object) -> None:
    outer, middle, inner = (llmfy_usage_tracker() for _ in range(3))
    outer.__enter__()
    middle.__enter__()
    inner.__enter__()
    middle.__exit__(None, None, None)
    send()
    outer.__exit__(None, None, None)
    send()
    inner.__exit__(None, None, None)
    send()

    assert outer.request_count == 1
    assert middle.request_count == 0
    assert inner.request_count == 2
    assert active_trackers() == ()


def test_tracker_exited_twice_stays_inactive(provider: object) -> None:
    usage = llmfy_usage_tracker()
    with usage:
        send()
    usage.__exit__(None, None, None)
    send()

    assert usage.request_count == 1
    assert not usage.active


def test_tracker_after_block_keeps_its_report(provider: object) -> None:
    with llmfy_usage_tracker() as usage:
        send()
    report = str(usage)
    totals = usage.to_dict()["totals"]
    send()

    assert str(usage) == report
    assert usage.to_dict()["totals"] == totals


def test_tracker_after_block_records_by_hand(provider: object) -> None:
    # `record` is for requests the application counts itself: it records into
    # this tracker whether or not a block is active.
    with llmfy_usage_tracker() as usage:
        send()
    usage.record("openai", "gpt-4o-mini", 60, 3)

    assert usage.request_count == 2
    assert usage.total_cost == 2 * ONE_REQUEST_COST


def test_tracker_reentered_counts_each_period(provider: object) -> None:
    usage = llmfy_usage_tracker()
    with usage:
        send()
    send()
    with usage:
        send()

    assert usage.request_count == 2


def test_tracker_nested_in_itself_counts_once(provider: object) -> None:
    usage = llmfy_usage_tracker()
    with usage:
        with usage:
            send()

    assert usage.request_count == 1


def test_decorated_recursive_function_counts_once(provider: object) -> None:
    usage = llmfy_usage_tracker()

    @usage
    def walk(depth: int) -> None:
        if depth:
            walk(depth - 1)
        else:
            send()

    walk(2)

    assert usage.request_count == 1


def test_tracker_exited_from_another_thread(provider: object) -> None:
    # Exiting deactivates the tracker everywhere, even in the thread whose
    # context still lists it.
    usage = llmfy_usage_tracker()
    usage.__enter__()
    send()
    closer = threading.Thread(target=usage.__exit__, args=(None, None, None))
    closer.start()
    closer.join(timeout=5)
    send()

    assert usage.request_count == 1
    assert not usage.active
    assert active_trackers() == ()


def test_task_outliving_block(provider: object) -> None:
    # A task started inside the block inherits the tracker, but a request it
    # sends after the block ended is not counted there.
    async def main() -> tuple[UsageTracker, asyncio.Event]:
        sent = asyncio.Event()
        block_over = asyncio.Event()

        async def worker() -> None:
            send()
            sent.set()
            await block_over.wait()
            send()

        with llmfy_usage_tracker() as usage:
            task = asyncio.ensure_future(worker())
            await sent.wait()
        block_over.set()
        await task
        return usage, sent

    usage, sent = asyncio.run(main())

    assert sent.is_set()
    assert usage.request_count == 1


def test_task_outliving_decorated_call(provider: object) -> None:
    # A task started in one call of a decorated function outlives that call
    # while another call of the same function is still running. The task's
    # later request belongs to no active period, so the tracker skips it.
    usage = llmfy_usage_tracker()

    async def main() -> None:
        block_over = asyncio.Event()
        orphans: list[asyncio.Task[None]] = []

        async def worker() -> None:
            send()
            await block_over.wait()
            send()

        @usage
        async def short_call() -> None:
            orphans.append(asyncio.ensure_future(worker()))
            await asyncio.sleep(0)

        @usage
        async def long_call() -> None:
            await block_over.wait()
            await asyncio.sleep(0.05)

        long_task = asyncio.ensure_future(long_call())
        await asyncio.sleep(0)
        await short_call()
        block_over.set()
        await asyncio.gather(*orphans, long_task)

    asyncio.run(main())

    assert usage.request_count == 1
    assert usage.total_cost == ONE_REQUEST_COST
    assert not usage.active


def test_response_arriving_after_block_counts_there(
    provider: object,
) -> None:
    # Instrumentation captures the trackers when the request is sent.
    with llmfy_usage_tracker() as usage:
        trackers = active_trackers()
    with llmfy_usage_tracker() as later:
        record_response(
            {"model": "gpt-4o-mini", "in": 60, "out": 3},
            CallContext("openai", model="gpt-4o-mini"),
            trackers,
        )

    assert usage.request_count == 1
    assert later.request_count == 0
