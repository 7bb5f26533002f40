"""Callbacks of `multiprocessing.pool.ThreadPool` tasks, with real OpenAI calls.

A pool runs the `callback` and `error_callback` of `apply_async`,
`map_async` and `starmap_async` in its result-handler thread, which it
starts when it is created. The calls such a callback sends belong to the
block that queued the task, not to the block that created the pool.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from multiprocessing.pool import ThreadPool
from typing import Any

import pytest

from llmfy_core import UsageTracker, llmfy_usage_tracker

from .servers import ONE_REPLY_COST, LoopbackLLM

# How long a test waits for a pool's result, in seconds.
RESULT_TIMEOUT_S = 5.0


class Failed(Exception):
    """The error of a pool task that fails on purpose."""


@pytest.fixture
def pool_in_block() -> Iterator[tuple[ThreadPool, UsageTracker]]:
    """A pool created inside a block that stays open for the whole test."""
    with llmfy_usage_tracker() as creator:
        pool = ThreadPool(1)
        try:
            yield pool, creator
        finally:
            pool.close()
            pool.join()


def asker(openai_client: Any) -> Callable[..., None]:
    """Return a function that sends one chat request, whatever its arguments."""

    def ask(*_: object) -> None:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )

    return ask


def in_own_block(queue_tasks: Any) -> UsageTracker:
    """Run `queue_tasks` in a block of its own, outside the pool creator's block.

    An empty context stands for another thread, such as another web request's.
    """

    def run() -> UsageTracker:
        with llmfy_usage_tracker() as submitter:
            queue_tasks()
        return submitter

    return contextvars.Context().run(run)


def test_apply_async_callback_counts_in_submitter(
    loopback: LoopbackLLM,
    openai_client: Any,
    pool_in_block: tuple[ThreadPool, UsageTracker],
) -> None:
    pool, creator = pool_in_block

    ask = asker(openai_client)

    def queue_tasks() -> None:
        pool.apply_async(ask, callback=ask).get(RESULT_TIMEOUT_S)

    submitter = in_own_block(queue_tasks)

    assert submitter.request_count == 2
    assert submitter.total_cost == 2 * ONE_REPLY_COST
    assert creator.request_count == 0


def test_map_async_callbacks_count_in_submitter(
    loopback: LoopbackLLM,
    openai_client: Any,
    pool_in_block: tuple[ThreadPool, UsageTracker],
) -> None:
    pool, creator = pool_in_block

    ask = asker(openai_client)

    def fail(_: object) -> None:
        raise Failed

    def queue_tasks() -> None:
        pool.map_async(ask, [1], None, ask).get(RESULT_TIMEOUT_S)
        failing = pool.starmap_async(fail, [(1,)], error_callback=ask)
        with pytest.raises(Failed):
            failing.get(RESULT_TIMEOUT_S)

    submitter = in_own_block(queue_tasks)

    assert submitter.request_count == 3
    assert submitter.total_cost == 3 * ONE_REPLY_COST
    assert creator.request_count == 0
