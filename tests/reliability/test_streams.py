"""Streams used in every way an application can: each request is counted once.

The real `openai` and `boto3` clients stream from the loopback server. The
plugins' own tests cover streams that raise half-way or are closed early in
the thread that sent them. These add streams read from another thread or
task, never read, closed before their first event, and many at once.

Every stream reports 60 input and 3 output tokens.
"""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llmfy_core import UsageTracker, bind_trackers, llmfy_usage_tracker

from .servers import LoopbackLLM

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "Capital of France?"}]}]
NOVA_MICRO = "amazon.nova-micro-v1:0"
INCLUDE_USAGE = {"include_usage": True}

# Seconds to wait for a recording done in another thread (garbage collection).
WAIT_SECONDS = 5.0


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def open_chat_stream(client: Any) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options=INCLUDE_USAGE,
    )


def open_converse_stream(client: Any) -> Any:
    response = client.converse_stream(modelId=NOVA_MICRO, messages=BEDROCK_MESSAGES)
    return response["stream"]


def read_in_thread(stream: Any) -> list[Any]:
    events: list[Any] = []
    reader = threading.Thread(target=lambda: events.extend(stream))
    reader.start()
    reader.join(timeout=WAIT_SECONDS)
    assert not reader.is_alive()
    return events


def test_openai_stream_read_in_another_thread(
    loopback: LoopbackLLM, openai_client: Any
) -> None:
    with llmfy_usage_tracker() as usage:
        stream = open_chat_stream(openai_client)
    chunks = read_in_thread(stream)

    assert len(chunks) == 3
    assert usage.request_count == 1
    assert usage.input_tokens == 60
    assert usage.output_tokens == 3


def test_bedrock_stream_read_in_another_thread(
    loopback: LoopbackLLM, bedrock_client: Any
) -> None:
    with llmfy_usage_tracker() as usage:
        stream = open_converse_stream(bedrock_client)
    events = read_in_thread(stream)

    assert len(events) == 5
    assert usage.request_count == 1
    assert usage.input_tokens == 60


def test_openai_stream_closed_before_reading(
    loopback: LoopbackLLM, openai_client: Any
) -> None:
    with llmfy_usage_tracker() as usage:
        stream = open_chat_stream(openai_client)
        stream.close()
        stream.close()
        del stream
        gc.collect()

    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


def test_bedrock_stream_closed_before_reading(
    loopback: LoopbackLLM, bedrock_client: Any
) -> None:
    with llmfy_usage_tracker() as usage:
        stream = open_converse_stream(bedrock_client)
        stream.close()
        stream.close()

    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


# A stream never read leaves its connection open, as it would without llmfy.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_bedrock_stream_never_read(loopback: LoopbackLLM, bedrock_client: Any) -> None:
    with llmfy_usage_tracker() as usage:
        stream = open_converse_stream(bedrock_client)
        del stream
        gc.collect()
        wait_for(lambda: usage.request_count == 1)

    time.sleep(0.05)
    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


def test_async_stream_read_in_another_task(loopback: LoopbackLLM) -> None:
    import openai

    async def main() -> tuple[UsageTracker, list[Any]]:
        client = openai.AsyncOpenAI(
            base_url=loopback.openai_base_url, api_key="test-key", max_retries=0
        )
        with llmfy_usage_tracker() as usage:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options=INCLUDE_USAGE,
            )

        async def read() -> list[Any]:
            return [chunk async for chunk in stream]

        chunks = await asyncio.create_task(read())
        await client.close()
        return usage, chunks

    usage, chunks = asyncio.run(main())

    assert len(chunks) == 3
    assert usage.request_count == 1
    assert usage.input_tokens == 60


def test_async_stream_closed_before_reading(loopback: LoopbackLLM) -> None:
    import openai

    async def main() -> UsageTracker:
        client = openai.AsyncOpenAI(
            base_url=loopback.openai_base_url, api_key="test-key", max_retries=0
        )
        with llmfy_usage_tracker() as usage:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            await stream.close()
            await stream.close()
        await client.close()
        return usage

    with pytest.warns(UserWarning, match="include_usage"):
        usage = asyncio.run(main())

    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


def test_many_streams_at_once_each_counted_once(
    loopback: LoopbackLLM, openai_client: Any, bedrock_client: Any
) -> None:
    # 16 threads each open 6 streams, OpenAI or Bedrock, read 0 to 6 events
    # of each (all of a stream, part of it, or none) and close it.
    choices = random.Random(8)
    plans = [[choices.randint(0, 6) for _ in range(6)] for _ in range(16)]

    def work(plan: list[int]) -> int:
        opened = 0
        for stop_after in plan:
            use_openai = stop_after % 2 == 0
            if use_openai:
                stream = open_chat_stream(openai_client)
            else:
                stream = open_converse_stream(bedrock_client)
            opened += 1
            if stop_after:
                for count, _ in enumerate(stream, start=1):
                    if count >= stop_after:
                        break
            stream.close()
        return opened

    with llmfy_usage_tracker() as usage, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(bind_trackers(work), plan) for plan in plans]
        opened = sum(future.result(timeout=60) for future in futures)

    assert opened == 96
    assert usage.request_count == 96
