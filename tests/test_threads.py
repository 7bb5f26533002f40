"""Trackers carried into the threads and executor work that a block starts."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool
from typing import Any

import pytest

from llmfy_core import (
    CallContext,
    active_trackers,
    bind_trackers,
    llmfy_usage_tracker,
    threads,
)
from llmfy_core.recording import record_response

from .conftest import ProviderPlugin


def send(tokens_in: int = 60) -> None:
    """Record a response as instrumentation would, into the trackers active now."""
    record_response(
        {"model": "gpt-4o-mini", "in": tokens_in, "out": 3},
        CallContext("openai", model="gpt-4o-mini"),
        active_trackers(),
    )


def run_in_thread(target: Callable[[], Any]) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


class Worker:
    """A thread started before a block, running the functions put in its queue."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self.done: queue.Queue[None] = queue.Queue()
        self.thread = threading.Thread(target=self._serve, name="worker")
        self.thread.start()

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()
            self.done.put(None)

    def run(self, job: Callable[[], Any]) -> None:
        self.jobs.put(job)
        self.done.get(timeout=5)

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()


def test_thread_started_in_block_counted(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        run_in_thread(send)

    assert usage.request_count == 1
    assert usage.input_tokens == 60


def test_thread_subclass_run_counted(provider: ProviderPlugin) -> None:
    class Sender(threading.Thread):
        def run(self) -> None:
            send()

    with llmfy_usage_tracker() as usage:
        thread = Sender()
        thread.start()
        thread.join()

    assert usage.request_count == 1


def test_nested_blocks_both_count_thread(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as outer:
        with llmfy_usage_tracker() as inner:
            run_in_thread(send)
        run_in_thread(send)

    assert inner.request_count == 1
    assert outer.request_count == 2


def test_thread_started_before_block_not_counted(provider: ProviderPlugin) -> None:
    worker = Worker()
    try:
        with llmfy_usage_tracker() as usage:
            worker.run(send)
            worker.run(bind_trackers(send))
    finally:
        worker.stop()

    assert usage.request_count == 1


def test_thread_stops_counting_when_block_ends(provider: ProviderPlugin) -> None:
    block_ended = threading.Event()
    sent_after = threading.Event()

    def send_twice() -> None:
        send(tokens_in=10)
        assert block_ended.wait(5)
        send(tokens_in=20)
        sent_after.set()

    with llmfy_usage_tracker() as usage:
        thread = threading.Thread(target=send_twice)
        thread.start()
    block_ended.set()
    thread.join()

    assert sent_after.is_set()
    assert usage.request_count == 1
    assert usage.input_tokens == 10


def test_thread_outliving_block_frees_tracker(provider: ProviderPlugin) -> None:
    stop = threading.Event()
    usage = llmfy_usage_tracker()
    with usage:
        send()
        thread = threading.Thread(target=stop.wait, daemon=True)
        thread.start()
    tracker_reference = weakref.ref(usage)
    del usage
    gc.collect()
    freed = tracker_reference() is None
    stop.set()
    thread.join()

    assert freed


def test_thread_exception_reaches_excepthook(
    provider: ProviderPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    caught: list[BaseException | None] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda arguments: caught.append(arguments.exc_value)
    )

    def fail() -> None:
        send()
        raise KeyError("from the thread")

    with llmfy_usage_tracker() as usage:
        run_in_thread(fail)

    assert len(caught) == 1
    assert isinstance(caught[0], KeyError)
    assert usage.request_count == 1


def test_earlier_pool_counts_block_submissions(
    provider: ProviderPlugin,
) -> None:
    with ThreadPoolExecutor(2) as pool:
        pool.submit(send).result()
        with llmfy_usage_tracker() as usage:
            futures = [pool.submit(send, tokens_in=tokens) for tokens in (1, 2, 4)]
            results = [future.result() for future in futures]
            mapped = list(pool.map(send, [8]))
        pool.submit(send).result()

    assert results == [None, None, None]
    assert mapped == [None]
    assert usage.request_count == 4
    assert usage.input_tokens == 15


@pytest.mark.parametrize("worker_found", [True, False], ids=["worker", "renamed"])
def test_pool_worker_keeps_no_trackers_of_its_start(
    provider: ProviderPlugin, monkeypatch: pytest.MonkeyPatch, worker_found: bool
) -> None:
    if not worker_found:
        # As if a later Python renamed the executor's worker function. Its
        # threads then inherit the trackers, so every job is bound instead.
        monkeypatch.setattr(threads, "_EXECUTOR_WORKER", None)
        monkeypatch.setattr(threads, "_BIND_EVERY_JOB", True)
    with llmfy_usage_tracker() as usage, ThreadPoolExecutor(1) as pool:
        # The first submission starts the pool's only worker thread.
        pool.submit(send, tokens_in=1).result()
        # A submission from a context without trackers, as from another thread.
        outside = contextvars.Context().run(pool.submit, send, tokens_in=2)
        outside.result()

    assert usage.request_count == 1
    assert usage.input_tokens == 1


def test_thread_pool_counts_block_tasks(provider: ProviderPlugin) -> None:
    pool = ThreadPool(2)
    try:
        pool.apply(send)
        with llmfy_usage_tracker() as usage:
            pool.apply(send, (1,))
            mapped = pool.map(send, [2])
            starmapped = pool.starmap(send, [(4,)])
            ordered = list(pool.imap(func=send, iterable=[8]))
            unordered = list(pool.imap_unordered(send, [16]))
            pool.map_async(send, [32]).get(timeout=5)
        pool.apply(send)
    finally:
        pool.close()
        pool.join()

    assert mapped == [None]
    assert starmapped == [None]
    assert ordered == [None]
    assert unordered == [None]
    assert usage.request_count == 6
    assert usage.input_tokens == 63


def test_thread_pool_made_in_block_skips_outside_tasks(
    provider: ProviderPlugin,
) -> None:
    with llmfy_usage_tracker() as usage:
        pool = ThreadPool(1)
        try:
            pool.apply(send, (1,))
            # A task from a context without trackers, as from another thread.
            contextvars.Context().run(pool.apply, send, (2,))
        finally:
            pool.close()
            pool.join()

    assert usage.request_count == 1
    assert usage.input_tokens == 1


def test_submitted_result_and_error_unchanged(
    provider: ProviderPlugin,
) -> None:
    def answer(value: int) -> int:
        send()
        if value < 0:
            raise ValueError(f"negative: {value}")
        return value * 2

    with llmfy_usage_tracker() as usage, ThreadPoolExecutor(2) as pool:
        doubled = pool.submit(answer, 21).result()
        failed = pool.submit(answer, -1)
        with pytest.raises(ValueError, match="negative: -1"):
            failed.result()

    assert doubled == 42
    assert usage.request_count == 2


def test_run_in_executor_counted(provider: ProviderPlugin) -> None:
    async def ask() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, send)
        await asyncio.to_thread(send)

    usage = llmfy_usage_tracker()

    async def main() -> None:
        async with usage:
            await ask()
        # After the block, the same calls count nowhere.
        await ask()

    asyncio.run(main())

    assert usage.request_count == 2


def test_thread_refusing_binding_still_runs(
    provider: ProviderPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    ran = threading.Event()

    class Frozen(threading.Thread):
        def __setattr__(self, name: str, value: Any) -> None:
            if name == "run":
                raise AttributeError("run is read-only here")
            super().__setattr__(name, value)

        def run(self) -> None:
            send()
            ran.set()

    with llmfy_usage_tracker() as usage:
        thread = Frozen(name="frozen")
        thread.start()
        thread.join()

    assert ran.is_set()
    assert usage.request_count == 0
    assert "binding the active trackers to thread 'frozen' failed" in caplog.text
    assert "run is read-only here" in caplog.text
