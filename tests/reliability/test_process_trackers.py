"""Process trackers started and stopped by several threads, and entered as blocks.

`start_process_tracker` and `stop_process_tracker` replace the tuple of
process trackers with a new one. Two tests pause one thread just before it
stores its new tuple, with an opcode trace, while another thread starts or
stops a tracker, and check that neither change is lost.
"""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

from llmfy_core import (
    UsageTracker,
    llmfy_usage_tracker,
    start_process_tracker,
    stop_process_tracker,
)
from llmfy_core import tracker as tracker_module

from .servers import ONE_REPLY_COST, LoopbackLLM

# How long the paused thread waits for the other one. With the update under a
# lock, the other thread blocks until the paused one stores, so this wait
# times out and the paused thread goes on.
OTHER_THREAD_WAIT_S = 0.5


def store_offset(function: Callable[..., Any]) -> int:
    """Return the offset of the instruction of `function` that stores the tuple."""
    for instruction in dis.get_instructions(function):
        if (
            instruction.opname == "STORE_GLOBAL"
            and instruction.argval == "_process_trackers"
        ):
            return instruction.offset
    raise AssertionError(f"{function.__name__} stores no _process_trackers")


def pause_before_store(
    function: Callable[..., Any], other: Callable[[], None]
) -> Callable[[], None]:
    """Trace this thread, so that `other` runs in a thread before `function` stores.

    The paused thread waits for `other` for at most `OTHER_THREAD_WAIT_S`.
    Returns a function that joins the other thread.
    """
    code = function.__code__
    offset = store_offset(function)
    paused: list[threading.Thread] = []

    def trace(frame: FrameType, event: str, argument: object) -> Any:
        if event == "call":
            if frame.f_code is not code:
                return None
            frame.f_trace_opcodes = True
            return trace
        if event == "opcode" and frame.f_lasti == offset and not paused:
            thread = threading.Thread(target=other)
            paused.append(thread)
            thread.start()
            thread.join(OTHER_THREAD_WAIT_S)
        return trace

    def join_other() -> None:
        for thread in paused:
            thread.join()
        assert paused, f"{function.__name__} never reached its store"

    sys.settrace(trace)
    return join_other


@pytest.fixture
def process_trackers() -> Iterator[list[UsageTracker]]:
    """Collect process trackers that a test starts, and stop them after it."""
    started: list[UsageTracker] = []
    yield started
    for tracker in started:
        stop_process_tracker(tracker)


def ask(openai_client: Any) -> None:
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )


def test_concurrent_starts_keep_both(
    loopback: LoopbackLLM, openai_client: Any, process_trackers: list[UsageTracker]
) -> None:
    join_other = pause_before_store(
        start_process_tracker,
        lambda: process_trackers.append(start_process_tracker()),
    )
    try:
        first = start_process_tracker()
    finally:
        sys.settrace(None)
    process_trackers.append(first)
    join_other()
    ask(openai_client)

    assert len(process_trackers) == 2
    for tracker in process_trackers:
        assert tracker in tracker_module._process_trackers
        assert tracker.request_count == 1


def test_stop_during_start_stays_stopped(
    loopback: LoopbackLLM, openai_client: Any, process_trackers: list[UsageTracker]
) -> None:
    stopped = start_process_tracker()
    # Stopped again after the test, in case it was left running.
    process_trackers.append(stopped)
    join_other = pause_before_store(
        start_process_tracker, lambda: stop_process_tracker(stopped)
    )
    try:
        started = start_process_tracker()
    finally:
        sys.settrace(None)
    process_trackers.append(started)
    join_other()
    ask(openai_client)

    assert started in tracker_module._process_trackers
    assert stopped not in tracker_module._process_trackers
    assert stopped.request_count == 0
    assert started.request_count == 1


def test_process_tracker_as_block_counts_once(
    loopback: LoopbackLLM, openai_client: Any, process_trackers: list[UsageTracker]
) -> None:
    process = start_process_tracker()
    process_trackers.append(process)
    with process:
        ask(openai_client)

    assert process.request_count == 1
    assert process.total_cost == ONE_REPLY_COST
    assert process.active


def test_process_tracker_in_block_counts_once(
    loopback: LoopbackLLM, openai_client: Any, process_trackers: list[UsageTracker]
) -> None:
    process = start_process_tracker()
    process_trackers.append(process)
    with llmfy_usage_tracker() as outer, process:
        ask(openai_client)
        process.record("openai", "gpt-4o-mini", 60, 3)

    assert process.request_count == 2
    assert process.total_cost == 2 * ONE_REPLY_COST
    assert outer.request_count == 2
    assert outer.total_cost == 2 * ONE_REPLY_COST
