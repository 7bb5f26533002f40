"""The SDK instrumentation, driving the real openai client over HTTP on 127.0.0.1.

Each test queues response bodies on the local server and checks that the
request is recorded exactly once, with the right counts, while the objects the
caller receives are the SDK's own.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import contextvars
import gc
import logging
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import openai
import pydantic
import pytest
from llmfy_openai import (
    clear_azure_deployments,
    extract,
    instrument,
    map_azure_deployments,
)
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

import llmfy
from llmfy import (
    PriceRank,
    PricingWarning,
    RequestRecord,
    UsageWarning,
    bind_trackers,
    hookimpl,
    llmfy_usage_tracker,
    register_plugin,
)
from llmfy_core import deferred
from llmfy_core.pricing import STANDARD_TIERS
from llmfy_core.tracker import UNTRACKED

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
RESPONSES = "/v1/responses"
COMPACT = "/v1/responses/compact"
DECISIONS = "/v1/decisions"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
IMAGES = "/v1/images/generations"
IMAGE_EDITS = "/v1/images/edits"
AUDIO_FILE = ("hello.wav", b"RIFF\x00\x00\x00\x00WAVE")
IMAGE_FILE = ("hat.png", b"\x89PNG\r\n\x1a\n")
# Prices for these tests, in USD per million tokens. The bundled table has no
# transcription or image model.
TRANSCRIBE_PRICE = {"input": 2.50, "output": 10.00, "input_audio": 6.00}
IMAGE_PRICE = {"input": 5.00, "output": 40.00, "output_image": 40.00}
EMBEDDINGS = "/v1/embeddings"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
INCLUDE_USAGE = {"include_usage": True}
# How long a test waits for its threads to meet before it goes on alone.
MEETING_TIMEOUT_S = 5.0


def chat_stream_events(bodies: Any, *, usage_last: bool = True) -> list[Any]:
    usage_chunk = bodies.chunk(None, usage=bodies.chunk_usage(12, 5))
    events = [
        bodies.chunk("Par"),
        bodies.chunk("is."),
        bodies.chunk(None, finish="stop"),
    ]
    if usage_last:
        return [*events, usage_chunk, "[DONE]"]
    trailing = bodies.chunk(None)
    return [*events, usage_chunk, trailing, "[DONE]"]


# Plain calls


def test_chat_create_recorded_once(server, client, bodies):
    server.add_json(
        CHAT, bodies.chat(prompt=60, completion=3), **{"x-request-id": "req_1"}
    )

    with llmfy_usage_tracker() as usage:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )

    assert type(completion) is ChatCompletion
    assert completion.choices[0].message.content == "Paris."
    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.model == "gpt-4o-mini"
    assert record.usage.served_model == "gpt-4o-mini-2024-07-18"
    assert record.usage.input_tokens == 60
    assert record.usage.output_tokens == 3
    assert record.usage.request_id == "req_1"
    assert record.usage.operation == "chat.completions"
    assert record.usage.service_tier == "default"
    # 60 x 0.15 + 3 x 0.60 = 9 + 1.8 = 10.8 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000108")


def test_price_lookup_gets_reported_tier(server, client, bodies):
    # OpenAI names the standard tier `default` in its responses, and a pricing
    # plugin receives it as reported, or None when the response names none.
    received = []

    class TierSpy:
        llmfy_price_rank = PriceRank.ORGANIZATION

        @hookimpl
        def price_lookup(self, service_tier: str | None) -> None:
            received.append(service_tier)

    server.add_json(CHAT, bodies.chat(service_tier="default"))
    server.add_json(CHAT, bodies.chat(service_tier=None))
    name = llmfy.register_plugin(TierSpy(), "tier-spy")
    try:
        with llmfy_usage_tracker():
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        llmfy.unregister_plugin(name)

    assert received[0] == "default"
    assert received[0] in STANDARD_TIERS
    assert received[-1] is None


def test_scale_tier_response_unpriced(server, client, bodies):
    # Requests served from Scale Tier units are not billed per token.
    server.add_json(CHAT, bodies.chat(prompt=60, completion=3, service_tier="scale"))

    with llmfy_usage_tracker() as usage, pytest.warns(PricingWarning, match="Scale"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.service_tier == "scale"
    assert record.usage.input_tokens == 60
    assert record.cost is None
    assert not usage.cost_complete


def test_no_tracker_records_nothing(server, client, bodies):
    body = bodies.chat()
    server.add_json(CHAT, body)
    server.add_sse(CHAT, chat_stream_events(bodies))
    usage = llmfy_usage_tracker()
    with usage:
        pass

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options=INCLUDE_USAGE,
    )
    chunks = list(stream)

    assert usage.request_count == 0
    assert type(completion) is ChatCompletion
    assert completion.to_dict() == body
    assert stream._iterator.gi_code.co_name == "__stream__"
    assert [type(chunk) for chunk in chunks] == [ChatCompletionChunk] * 4


@pytest.fixture
def untracked_warning(monkeypatch):
    """Let the warning about a request in an untracked thread be given again.

    The table of open blocks starts empty, so that a block an earlier test
    left open in another thread cannot change what these tests see.
    """
    monkeypatch.setattr(UNTRACKED, "warned", False)
    monkeypatch.setattr(UNTRACKED, "blocks", {})


def test_worker_thread_request_warns_once(server, client, bodies, untracked_warning):
    for _ in range(3):
        server.add_json(CHAT, bodies.chat(prompt=60, completion=3))

    def ask() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with (
        llmfy_usage_tracker() as usage,
        pytest.warns(UsageWarning) as warned,
        ThreadPoolExecutor(1, thread_name_prefix="worker") as pool,
    ):
        # Submitted from a context without trackers, as by another thread.
        for _ in range(2):
            contextvars.Context().run(pool.submit, ask).result()
        pool.submit(ask).result()

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    # The article fits every provider name: "An untracked openai", never "A openai".
    assert messages[0].startswith("An untracked openai chat.completions request")
    assert (
        "openai chat.completions request was sent in thread 'worker_0'" in (messages[0])
    )
    assert "block is open in thread 'MainThread'" in messages[0]
    assert "bind_trackers(function)" in messages[0]
    assert "start_process_tracker()" in messages[0]
    assert usage.request_count == 1


def test_threads_and_tasks_of_block_counted(server, client, bodies, untracked_warning):
    for prompt in (1000, 2000, 4000, 8000):
        server.add_json(CHAT, bodies.chat(prompt=prompt, completion=100))

    def ask() -> str:
        response = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        return response.choices[0].message.content

    async def ask_in_executor() -> str:
        return await asyncio.get_running_loop().run_in_executor(None, ask)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UsageWarning)
        with llmfy_usage_tracker() as usage:
            thread = threading.Thread(target=ask)
            thread.start()
            thread.join()
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda _: ask(), range(2)))
            answers.append(asyncio.run(ask_in_executor()))

    assert answers == [bodies.chat()["choices"][0]["message"]["content"]] * 3
    assert usage.request_count == 4
    assert usage.input_tokens == 15000
    assert usage.output_tokens == 400
    # gpt-4o-mini: 0.15 USD per million input tokens, 0.60 per million output.
    assert usage.total_cost == Decimal("0.00249")


def test_bound_or_same_thread_request_no_warning(
    server, client, bodies, untracked_warning
):
    for _ in range(3):
        server.add_json(CHAT, bodies.chat(prompt=60, completion=3))
    server.add_json("/v1/files", {"object": "list", "data": []})

    def ask() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UsageWarning)
        with llmfy_usage_tracker() as usage, ThreadPoolExecutor(1) as pool:
            pool.submit(bind_trackers(ask)).result()
            # A context without the trackers, in the thread of the block.
            contextvars.Context().run(ask)
            # Files are not billed per token, so a worker may list them.
            pool.submit(client.files.list).result()
        ask()

    assert usage.request_count == 1
    assert not UNTRACKED.warned


class City(pydantic.BaseModel):
    city: str


def test_parse_recorded_once(server, client, bodies):
    body = bodies.chat(prompt=40, completion=6)
    body["choices"][0]["message"]["content"] = '{"city": "Paris"}'
    server.add_json(CHAT, body)

    with llmfy_usage_tracker() as usage:
        completion = client.chat.completions.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=City
        )

    assert completion.choices[0].message.parsed == City(city="Paris")
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 40
    assert usage.records[0].usage.output_tokens == 6


# Completions that OpenAI bills but that `parse()` raises for, with the error
# the SDK raises.
UNPARSABLE_COMPLETIONS = [
    pytest.param("length", '{"city": "Pa', openai.LengthFinishReasonError, id="length"),
    pytest.param(
        "content_filter",
        '{"city": "Pa',
        openai.ContentFilterFinishReasonError,
        id="content-filter",
    ),
    pytest.param("stop", '{"city": null}', pydantic.ValidationError, id="invalid-json"),
]


@pytest.mark.parametrize("raw", [False, True], ids=["parse", "raw-parse"])
@pytest.mark.parametrize(("finish", "content", "error"), UNPARSABLE_COMPLETIONS)
def test_parse_error_still_counted(server, client, bodies, finish, content, error, raw):
    body = bodies.chat(prompt=40, completion=6)
    body["choices"][0]["finish_reason"] = finish
    body["choices"][0]["message"]["content"] = content
    server.add_json(CHAT, body)
    completions = client.chat.completions

    with llmfy_usage_tracker() as usage, pytest.raises(error):
        if raw:
            completions.with_raw_response.parse(
                model="gpt-4o-mini", messages=MESSAGES, response_format=City
            ).parse()
        else:
            completions.parse(
                model="gpt-4o-mini", messages=MESSAGES, response_format=City
            )

    assert len(server.requests) == 1
    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 40
    assert record.usage.output_tokens == 6
    # 40 x 0.15 + 6 x 0.60 = 6 + 3.6 = 9.6 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000096")


def test_async_responses_parse_error_still_counted(server, async_client, bodies):
    body = bodies.response(input_tokens=100, output_tokens=50)
    body["output"][0]["content"][0]["text"] = '{"city": null}'
    server.add_json(RESPONSES, body)

    async def main():
        with llmfy_usage_tracker() as usage, pytest.raises(pydantic.ValidationError):
            await async_client.responses.parse(
                model="gpt-5", input="Capital of France?", text_format=City
            )
        await async_client.close()
        return usage

    usage = asyncio.run(main())

    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.operation == "responses"
    assert record.usage.input_tokens == 100
    assert record.usage.output_tokens == 50
    # gpt-5: 100 x 1.25 + 50 x 10 = 125 + 500 = 625 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.000625")


def test_undecodable_embedding_still_counted(server, client, bodies):
    # The SDK requests base64 embeddings and decodes them in its post-parser.
    body = bodies.embeddings(model="text-embedding-3-small", prompt=8)
    body["data"][0]["embedding"] = "!!not base64"
    server.add_json(EMBEDDINGS, body)

    with llmfy_usage_tracker() as usage, pytest.raises(binascii.Error):
        client.embeddings.create(model="text-embedding-3-small", input="Paris")

    assert server.requests[0][1]["encoding_format"] == "base64"
    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.operation == "embeddings"
    assert record.usage.input_tokens == 8
    # 8 x 0.02 = 0.16 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00000016")


def test_raw_response_recorded_before_parse(server, client, bodies):
    server.add_json(
        CHAT, bodies.chat(prompt=50, completion=4), **{"x-request-id": "req_raw"}
    )

    with llmfy_usage_tracker() as usage:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        recorded_before_parse = len(usage.records)
        completion = raw.parse()

    assert recorded_before_parse == 1
    assert type(completion) is ChatCompletion
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 50
    assert usage.records[0].usage.request_id == "req_raw"


def create_chat_stream(completions: Any) -> Any:
    """Send a chat stream that requests its usage, through `completions.create`."""
    return completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options=INCLUDE_USAGE,
    )


def create_raw_stream(client: openai.OpenAI) -> Any:
    """Send a chat stream through `with_raw_response`, unparsed."""
    return create_chat_stream(client.chat.completions.with_raw_response)


def test_raw_stream_read_by_hand_counted_when_collected(
    server, client, bodies, wait_for
):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        raw = create_raw_stream(client)
        lines = list(raw.http_response.iter_lines())
        open_while_alive = usage.open_streams
        del raw
        gc.collect()
        wait_for(lambda: usage.request_count == 1)

    assert lines
    assert open_while_alive == 1
    assert usage.open_streams == 0
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None


def test_raw_stream_parsed_counted_once(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        raw = create_raw_stream(client)
        stream = raw.parse()
        del raw
        gc.collect()
        open_while_reading = usage.open_streams
        chunks = list(stream)

    assert chunks
    assert open_while_reading == 1
    assert usage.open_streams == 0
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 12


def test_streaming_response_parse(server, client, bodies):
    server.add_json(CHAT, bodies.chat(prompt=30, completion=2))

    with (
        llmfy_usage_tracker() as usage,
        client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        ) as response,
    ):
        recorded_before_parse = len(usage.records)
        completion = response.parse()

    assert recorded_before_parse == 0
    assert type(completion) is ChatCompletion
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 30


def test_streaming_response_json_without_parse(server, client, bodies):
    server.add_json(CHAT, bodies.chat(prompt=31, completion=2))

    with (
        llmfy_usage_tracker() as usage,
        client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        ) as response,
    ):
        open_while_reading = usage.open_streams
        data = response.json()

    assert open_while_reading == 1
    assert usage.open_streams == 0
    assert data["usage"]["prompt_tokens"] == 31
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 31


def test_streaming_response_of_stream(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with (
        llmfy_usage_tracker() as usage,
        create_chat_stream(client.chat.completions.with_streaming_response) as response,
    ):
        chunks = list(response.parse())

    assert len(chunks) == 4
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 12
    assert usage.records[0].usage.output_tokens == 5


@pytest.mark.parametrize("read", ["read", "text"])
def test_stream_body_read_whole(server, client, bodies, read, caplog):
    # The events read as one body are not parsed, as with iter_lines().
    server.add_sse(CHAT, chat_stream_events(bodies))

    with (
        llmfy_usage_tracker() as usage,
        create_chat_stream(client.chat.completions.with_streaming_response) as response,
    ):
        content = getattr(response, read)()

    assert "data: [DONE]" in (content if read == "text" else content.decode())
    assert usage.open_streams == 0
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.records[0].usage.output_tokens is None
    assert usage.totals.unknown_usage == 1
    assert not [
        record for record in caplog.records if record.levelno >= logging.WARNING
    ]


# Streams


def test_stream_iterated(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        chunks = list(stream)

    assert [chunk.choices[0].delta.content for chunk in chunks[:2]] == ["Par", "is."]
    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 12
    assert record.usage.output_tokens == 5
    assert record.usage.served_model == "gpt-4o-mini-2024-07-18"
    assert record.usage.request_id == "req_sse"


def test_stream_usage_chunk_not_last(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies, usage_last=False))

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        chunks = list(stream)

    assert chunks[-1].usage is None
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 12
    assert usage.records[0].usage.output_tokens == 5


def test_stream_context_manager(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with (
        llmfy_usage_tracker() as usage,
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        ) as stream,
    ):
        for _ in stream:
            pass

    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 12


def test_stream_closed_early(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        first = next(iter(stream))
        stream.close()
        recorded_at_close = len(usage.records)
        del stream
        gc.collect()

    assert first.choices[0].delta.content == "Par"
    assert recorded_at_close == 1
    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.input_tokens is None
    assert record.usage.output_tokens is None
    assert record.usage.served_model == "gpt-4o-mini-2024-07-18"
    assert record.cost is None


def test_concurrent_close_records_once(server, client, bodies, monkeypatch):
    """Two threads closing one stream at once record it once.

    Each thread is held where it records the stream with unknown usage, after
    the unlocked check that the stream is not recorded yet, until the other
    thread gets there too. Without a lock both then record it.
    """
    server.add_sse(CHAT, chat_stream_events(bodies))
    both_closing = threading.Barrier(2)
    record_unknown = instrument._Call._record_unknown

    def record_unknown_together(call: Any, served: Any, tier: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_closing.wait(MEETING_TIMEOUT_S)
        return record_unknown(call, served, tier)

    monkeypatch.setattr(instrument._Call, "_record_unknown", record_unknown_together)

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        first = next(iter(stream))
        closers = [threading.Thread(target=stream.close) for _ in range(2)]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join()

    assert first.choices[0].delta.content == "Par"
    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


def test_stream_break_then_collected(server, client, bodies, wait_for):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        for _ in stream:
            break
        recorded_before_collection = len(usage.records)
        open_before_collection = usage.open_streams
        report_before_collection = str(usage)
        data_before_collection = usage.to_dict()
        del stream
        gc.collect()
        wait_for(lambda: usage.request_count == 1)

    assert recorded_before_collection == 0
    assert open_before_collection == 1
    assert "Open Streams: 1 (not counted yet" in report_before_collection
    assert data_before_collection["open_streams"] == 1
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.open_streams == 0
    assert "Open Streams" not in str(usage)


def test_stream_never_read_then_collected(server, client, bodies, wait_for):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        del stream
        gc.collect()
        wait_for(lambda: usage.request_count == 1)

    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None
    # The request id comes from the headers, read when the stream is recorded.
    assert usage.records[0].usage.request_id == "req_sse"


def test_collected_stream_outside_plugin_lock(server, client, bodies, wait_for):
    # A `request_recorded` plugin, or the OpenTelemetry SDK that llmfy-otel
    # calls, may hold a lock that is not reentrant when an allocation starts
    # a garbage collection, which frees a stream dropped unread.
    server.add_sse(CHAT, chat_stream_events(bodies))
    lock = threading.Lock()
    exported: list[str | None] = []

    class Exporter:
        @hookimpl
        def request_recorded(self, record: RequestRecord) -> None:
            with lock:
                exported.append(record.usage.model)

    register_plugin(Exporter(), "exporter")
    trackers: list[Any] = []

    def drop_stream_and_collect() -> None:
        with llmfy_usage_tracker() as usage:
            stream = create_chat_stream(client.chat.completions)
            next(iter(stream))
            del stream
            with lock:
                gc.collect()
        trackers.append(usage)

    # llmfy's recording thread is kept busy until the collection is over, so
    # that it cannot record the stream first, which would hide a recording
    # made inside the collection.
    release = threading.Event()
    deferred.start_worker()
    deferred.run_later(lambda: release.wait(MEETING_TIMEOUT_S), "test-hold")
    # In a thread, so that a deadlock fails the test instead of hanging it.
    worker = threading.Thread(target=drop_stream_and_collect, daemon=True)
    worker.start()
    worker.join(MEETING_TIMEOUT_S)
    release.set()
    wait_for(lambda: len(exported) == 1)

    assert not worker.is_alive()
    assert exported == ["gpt-4o-mini"]
    assert trackers[0].request_count == 1
    assert trackers[0].totals.unknown_usage == 1


# Drops a stream after its first chunk and collects it while the thread holds
# `threading._shutdown_locks_lock`, as when a collection starts inside
# `Thread.join()`. A new non-daemon thread takes that lock before
# `Thread.start()` returns. The name is private to CPython 3.11's threading
# module and used here only to hold the lock. Prints the requests then
# counted and those with unknown usage.
COLLECT_IN_THREADING_LOCK = """
import gc, sys, threading, time
import openai
from llmfy import llmfy_usage_tracker

client = openai.OpenAI(base_url=sys.argv[1], api_key="test-key", max_retries=0)
with llmfy_usage_tracker() as usage:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Capital of France?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    next(iter(stream))
    with threading._shutdown_locks_lock:
        del stream
        gc.collect()
    deadline = time.monotonic() + 5
    while usage.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
print(usage.request_count, usage.totals.unknown_usage)
"""


def test_collected_stream_inside_threading_lock(server, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    # In another interpreter, because a thread blocked on `threading`'s lock
    # would stop every later thread start of this one.
    result = subprocess.run(
        [sys.executable, "-c", COLLECT_IN_THREADING_LOCK, server.base_url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]


def test_stream_error_midway(server, client, bodies):
    server.add_sse(
        CHAT,
        [bodies.chunk("Par"), {"error": {"message": "The server is overloaded."}}],
    )

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        received = []
        with pytest.raises(openai.APIError, match="overloaded"):
            for chunk in stream:
                received.append(chunk)

    assert len(received) == 1
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None


def test_stream_without_usage_warns(server, client, bodies):
    events = [bodies.chunk("Par"), bodies.chunk(None, finish="stop"), "[DONE]"]
    server.add_sse(CHAT, events)

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4.1", messages=MESSAGES, stream=True
        )
        with pytest.warns(UsageWarning, match="include_usage"):
            chunks = list(stream)

    assert len(chunks) == 2
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.records[0].usage.output_tokens is None
    assert usage.totals.unknown_usage == 1
    assert "stream_options" not in server.requests[-1][1]


def test_stream_options_in_extra_body(server, client, bodies):
    # The SDK sends `extra_body` as part of the request, so the stream asked
    # for its usage: closing it early gives unknown usage and no advice to
    # pass an option the request already has.
    server.add_sse(CHAT, chat_stream_events(bodies))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with llmfy_usage_tracker() as usage:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                extra_body={"stream_options": INCLUDE_USAGE},
            )
            next(iter(stream))
            stream.close()

    usage_warnings = [w for w in caught if issubclass(w.category, UsageWarning)]
    assert server.requests[-1][1]["stream_options"] == INCLUDE_USAGE
    assert usage_warnings == []
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None


def completion_chunk(text: str | None, usage: dict[str, int] | None = None) -> Any:
    """A legacy Completions stream chunk; `text=None` gives a `choices: []` chunk."""
    choices = []
    if text is not None:
        choices = [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}]
    return {
        "id": "cmpl-test",
        "object": "text_completion",
        "created": 1_780_000_000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": choices,
        "usage": usage,
    }


def test_completion_stream_without_usage_warns(server, client):
    server.add_sse(COMPLETIONS, [completion_chunk("Paris."), "[DONE]"])
    usage_chunk = completion_chunk(
        None, {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    )
    server.add_sse(COMPLETIONS, [completion_chunk("Paris."), usage_chunk, "[DONE]"])

    with llmfy_usage_tracker() as usage:
        stream = client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="The capital of France:", stream=True
        )
        with pytest.warns(UsageWarning, match=r"completions\.create\(\)"):
            list(stream)
        stream = client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="The capital of France:",
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        list(stream)

    assert len(usage.records) == 2
    assert usage.records[0].usage.operation == "completions"
    assert usage.records[0].usage.input_tokens is None
    assert usage.records[1].usage.input_tokens == 9
    assert usage.records[1].usage.output_tokens == 2


def test_chat_and_completion_streams_each_warn(server, client, bodies):
    server.add_sse(CHAT, [bodies.chunk("Paris.", finish="stop"), "[DONE]"])
    server.add_sse(COMPLETIONS, [completion_chunk("Paris."), "[DONE]"])

    with (
        warnings.catch_warnings(record=True) as caught,
        llmfy_usage_tracker() as usage,
    ):
        warnings.simplefilter("always")
        list(
            client.chat.completions.create(
                model="gpt-4.1", messages=MESSAGES, stream=True
            )
        )
        list(
            client.completions.create(
                model="gpt-3.5-turbo-instruct", prompt="Paris is", stream=True
            )
        )

    messages = [str(warning.message) for warning in caught]
    assert usage.totals.unknown_usage == 2
    assert len(messages) == 2
    assert "to chat.completions.create()" in messages[0]
    assert "to completions.create()" in messages[1]


def test_stream_first_chunk_before_last_is_sent(server, client, bodies):
    gate = threading.Event()
    events = chat_stream_events(bodies)
    reply = server.add_sse(CHAT, [events[0], gate, *events[1:]])

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        iterator = iter(stream)
        first = next(iterator)
        last_sent_before_first_chunk = reply.sent.is_set()
        gate.set()
        rest = list(iterator)

    assert first.choices[0].delta.content == "Par"
    assert last_sent_before_first_chunk is False
    # The server marks the last event sent just after writing it.
    assert reply.sent.wait(timeout=5)
    assert len(rest) == 3
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 12


def test_stream_finished_after_block_counts_there(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
    recorded_at_block_end = len(usage.records)
    list(stream)

    assert recorded_at_block_end == 0
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 12


def test_nested_trackers_both_count(server, client, bodies):
    server.add_json(CHAT, bodies.chat(prompt=10, completion=1))

    with llmfy_usage_tracker() as outer, llmfy_usage_tracker() as inner:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert outer.request_count == 1
    assert inner.request_count == 1


def test_totals_only_report_per_model(server, client, bodies):
    server.add_json(CHAT, bodies.chat(prompt=1370, completion=155, cached=1280))
    o3_mini = bodies.chat(
        model="o3-mini-2025-01-31", prompt=7, completion=87, reasoning=64
    )
    server.add_json(CHAT, o3_mini)
    no_usage = [bodies.chunk("Par"), bodies.chunk(None, finish="stop"), "[DONE]"]
    server.add_sse(CHAT, no_usage)

    with llmfy_usage_tracker(keep_requests=False) as usage:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="o3-mini", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-4.1", messages=MESSAGES, stream=True
        )
        with pytest.warns(UsageWarning, match="include_usage"):
            list(stream)

    report = str(usage)
    by_model = {group["model"]: group for group in usage.to_dict()["by_model"]}

    # 90 x 0.15 + 1,280 x 0.075 + 155 x 0.60 = 202.5 USD per million tokens.
    assert by_model["gpt-4o-mini"]["cache_read_tokens"] == 1280
    assert (
        "\tinput_tokens: 1370 \n\tcache_read_tokens: 1280 \n\toutput_tokens: 155 \n"
        "\ttotal_cost (USD formatted): 0.0002025\n"
    ) in report
    # 7 x 1.10 + 87 x 4.40 = 390.5 USD per million tokens.
    assert by_model["o3-mini"]["reasoning_tokens"] == 64
    assert (
        "\tinput_tokens: 7 \n\toutput_tokens: 87 \n\treasoning_tokens: 64 \n"
        "\ttotal_cost (USD formatted): 0.0003905\n"
    ) in report
    assert by_model["gpt-4.1"]["unknown_usage_requests"] == 1
    assert (
        "\tinput_tokens: unknown \n\toutput_tokens: unknown \n"
        "\trequests_with_unknown_usage: 1 \n"
    ) in report


# Async


def test_async_create_and_stream(server, async_client, bodies):
    server.add_json(CHAT, bodies.chat(prompt=20, completion=2))
    server.add_sse(CHAT, chat_stream_events(bodies))

    async def run() -> tuple[Any, list[Any], Any]:
        async with llmfy_usage_tracker() as usage:
            completion = await async_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
            stream = await async_client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options=INCLUDE_USAGE,
            )
            chunks = [chunk async for chunk in stream]
        await async_client.close()
        return completion, chunks, usage

    completion, chunks, usage = asyncio.run(run())

    assert type(completion) is ChatCompletion
    assert len(chunks) == 4
    assert [record.usage.input_tokens for record in usage.records] == [20, 12]


def test_async_stream_closed_early(server, async_client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    async def run() -> Any:
        async with llmfy_usage_tracker() as usage:
            stream = await async_client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options=INCLUDE_USAGE,
            )
            async with stream:
                async for _ in stream:
                    break
        await async_client.close()
        return usage

    usage = asyncio.run(run())

    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None


async def read_one_async_chunk(async_client: openai.AsyncOpenAI) -> Any:
    """Send a chat stream request, leave its chunks with break, return the stream."""
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options=INCLUDE_USAGE,
    )
    async for _ in stream:
        break
    return stream


def test_async_stream_dropped_logs_nothing(server, async_client, bodies, wait_for):
    # A stream left with break and dropped is closed by asyncio's finalizer,
    # with no error in the loop's exception handler, as without llmfy.
    server.add_sse(CHAT, chat_stream_events(bodies))
    loop_errors: list[dict[str, Any]] = []

    async def run() -> Any:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: loop_errors.append(context)
        )
        async with llmfy_usage_tracker() as usage:
            await read_one_async_chunk(async_client)
            for _ in range(3):
                gc.collect()
                await asyncio.sleep(0.05)
        await async_client.close()
        return usage

    usage = asyncio.run(run())
    wait_for(lambda: usage.request_count == 1)

    assert loop_errors == []
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens is None


def test_async_stream_closed_with_its_loop(server, async_client, bodies):
    # asyncio.run() closes the generators of a stream left with break when
    # it closes its loop. The stream is still referenced, so the garbage
    # collector has not freed it, and it is counted before asyncio.run()
    # returns. llmfy's recording thread is kept busy meanwhile, so that a
    # recording queued there is not counted yet.
    server.add_sse(CHAT, chat_stream_events(bodies))
    release = threading.Event()
    deferred.start_worker()
    deferred.run_later(lambda: release.wait(MEETING_TIMEOUT_S), "test-hold")
    try:
        with llmfy_usage_tracker() as usage:
            stream = asyncio.run(read_one_async_chunk(async_client))
        counted = usage.request_count
    finally:
        release.set()

    assert stream is not None
    assert counted == 1
    assert usage.records[0].usage.input_tokens is None


def test_async_raw_response(server, async_client, bodies):
    server.add_json(CHAT, bodies.chat(prompt=21, completion=2))

    async def run() -> Any:
        async with llmfy_usage_tracker() as usage:
            raw = await async_client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
            raw.parse()
        await async_client.close()
        return usage

    usage = asyncio.run(run())

    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 21


# Responses API and embeddings


def test_responses_create_with_tools(server, client, bodies):
    output = [
        {
            "id": "ws_1",
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": "x"},
        },
        {
            "id": "ws_2",
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "open_page", "url": "https://example.com"},
        },
        {
            "id": "fs_1",
            "type": "file_search_call",
            "status": "completed",
            "queries": ["x"],
        },
        {
            "id": "ci_1",
            "type": "code_interpreter_call",
            "status": "completed",
            "code": "1+1",
            "container_id": "cntr_1",
            "outputs": [],
        },
        {
            "id": "ci_2",
            "type": "code_interpreter_call",
            "status": "completed",
            "code": "2+2",
            "container_id": "cntr_1",
            "outputs": [],
        },
    ]
    body = bodies.response(
        input_tokens=1000, cached=200, output_tokens=500, reasoning=100, output=output
    )
    server.add_json(RESPONSES, body)

    with llmfy_usage_tracker() as usage:
        response = client.responses.create(model="gpt-5", input="Find it.")

    assert type(response) is Response
    record = usage.records[0]
    assert record.usage.operation == "responses"
    assert record.usage.cache_read_tokens == 200
    assert record.usage.reasoning_tokens == 100
    assert dict(record.usage.tool_calls) == {
        "web_search": 1,
        "file_search": 1,
        "code_interpreter": 1,
    }
    # gpt-5: (1000 - 200) x 1.25 + 200 x 0.125 + 500 x 10 = 1000 + 25 + 5000 = 6025
    # USD per million = 0.006025; plus one web search (0.01) and one file search
    # (0.0025); the Code Interpreter container has no bundled price.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.018525")
    assert record.cost.parts["unpriced:code_interpreter"] == 0


DECISION_QUESTIONS = [
    {"type": "predicate", "name": "is_refund", "instructions": "Asks for a refund."},
    {"type": "predicate", "instructions": "Mentions a competitor."},
]


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_decision_counted(server, client, bodies, raw):
    body = bodies.decision(input_tokens=900, cached=400, output_tokens=12)
    server.add_json(DECISIONS, body, **{"x-request-id": "req_decision"})
    decisions = client.decisions
    if raw:
        decisions = decisions.with_raw_response

    # gpt-6-luna's token rates, in USD per million tokens.
    price = {"input": "0.10", "cache_read": "0.01", "output": "0.50"}

    with llmfy_usage_tracker(openai_pricing={"gpt-6-luna": price}) as usage:
        decisions.create(
            model="gpt-6-luna", input="Refund me.", questions=DECISION_QUESTIONS
        )

    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.operation == "decisions"
    assert record.usage.model == "gpt-6-luna"
    assert record.usage.served_model == "gpt-6-luna"
    assert record.usage.request_id == "req_decision"
    # OpenAI bills a Decisions call by its input tokens alone, cached ones at
    # the full input rate, and not its output tokens.
    assert record.usage.input_tokens == 900
    assert record.usage.cache_read_tokens == 0
    assert record.usage.output_tokens == 0
    # 900 x 0.10 = 90 USD per million tokens, at gpt-6-luna's input rate.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00009")


def test_decision_counted_async(server, async_client, bodies):
    server.add_json(DECISIONS, bodies.decision(input_tokens=700, output_tokens=9))

    async def run():
        with llmfy_usage_tracker() as usage:
            await async_client.decisions.create(
                model="gpt-6-luna", input="Refund me.", questions=DECISION_QUESTIONS
            )
        await async_client.close()
        return usage

    usage = asyncio.run(run())

    assert usage.request_count == 1
    assert usage.records[0].usage.operation == "decisions"
    assert usage.records[0].usage.input_tokens == 700
    assert usage.records[0].usage.output_tokens == 0


def test_decision_streaming_response_counted(server, client, bodies):
    server.add_json(DECISIONS, bodies.decision(input_tokens=800, output_tokens=7))

    with llmfy_usage_tracker() as usage:
        with client.decisions.with_streaming_response.create(
            model="gpt-6-luna", input="Refund me.", questions=DECISION_QUESTIONS
        ) as response:
            decision = response.parse()

    assert decision.answers[0].type == "predicate"
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 800
    assert usage.records[0].usage.output_tokens == 0


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_responses_compact_counted(server, client, bodies, raw):
    body = bodies.compaction(input_tokens=120_000, cached=20_000, output_tokens=3000)
    server.add_json(COMPACT, body, **{"x-request-id": "req_compact"})

    with llmfy_usage_tracker() as usage:
        if raw:
            client.responses.with_raw_response.compact(model="gpt-5.4", input="Hi")
        else:
            client.responses.compact(model="gpt-5.4", input="Hi")

    assert server.requests[-1][0] == COMPACT
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.operation == "responses.compact"
    assert record.usage.model == "gpt-5.4"
    assert record.usage.served_model is None
    assert record.usage.request_id == "req_compact"
    assert record.usage.input_tokens == 120_000
    assert record.usage.cache_read_tokens == 20_000
    assert record.usage.output_tokens == 3000
    # gpt-5.4 (2.50 input, 0.25 cached input, 15 output per million tokens):
    # 100,000 x 2.50 + 20,000 x 0.25 + 3,000 x 15 = 250,000 + 5,000 + 45,000
    # = 300,000 USD per million = 0.3
    assert record.cost is not None
    assert record.cost.total == Decimal("0.3")
    assert usage.cost_complete


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_responses_image_generation_incomplete(server, client, bodies, stream):
    output = [
        {
            "id": "ig_1",
            "type": "image_generation_call",
            "status": "completed",
            "result": "aGVsbG8=",
        },
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Here.", "annotations": []}],
        },
    ]
    body = bodies.response(
        input_tokens=2000,
        output_tokens=100,
        output=output,
        tool_usage=bodies.image_gen_usage(50, 4160),
    )
    if stream:
        server.add_sse(RESPONSES, bodies.response_events(body))
    else:
        server.add_json(RESPONSES, body)
    tools = [{"type": "image_generation"}]

    with llmfy_usage_tracker() as usage:
        if stream:
            for _ in client.responses.create(
                model="gpt-5", input="Draw a cat.", tools=tools, stream=True
            ):
                pass
        else:
            client.responses.create(model="gpt-5", input="Draw a cat.", tools=tools)

    record = usage.records[0]
    assert record.usage.input_tokens == 2000
    assert record.usage.output_tokens == 100
    assert dict(record.usage.other_tokens) == {
        "image_generation_input": 50,
        "image_generation_output": 4160,
    }
    assert dict(record.usage.tool_calls) == {"image_generation": 1}
    # gpt-5 text tokens only: 2000 x 1.25 + 100 x 10 = 2500 + 1000 = 3500 USD
    # per million. The image tokens are billed at the image model's rates,
    # which llmfy does not bundle.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0035")
    assert record.cost.unpriced_tools == ["image_generation"]
    assert not usage.cost_complete
    totals = usage.to_dict()["totals"]
    assert totals["unpriced_tool_call_requests"] == 1
    assert totals["other_tokens"] == {
        "image_generation_input": 50,
        "image_generation_output": 4160,
    }


# Prices for the search model tests, in USD per million tokens. The bundled
# table has no search model.
SEARCH_MODEL_PRICE = {"input": 0.15, "output": 0.60}


@pytest.mark.parametrize("stream", [False, True])
def test_search_model_chat_incomplete(server, client, bodies, stream):
    served = "gpt-4o-mini-search-preview-2025-03-11"
    if stream:
        usage_chunk = bodies.chunk(
            None, model=served, usage=bodies.chunk_usage(1000, 100)
        )
        events = [bodies.chunk("Paris.", model=served), usage_chunk, "[DONE]"]
        server.add_sse(CHAT, events)
    else:
        server.add_json(CHAT, bodies.chat(model=served, prompt=1000, completion=100))
    prices = {"gpt-4o-mini-search-preview": SEARCH_MODEL_PRICE}

    with llmfy_usage_tracker(openai_pricing=prices) as usage:
        if stream:
            for _ in client.chat.completions.create(
                model="gpt-4o-mini-search-preview",
                messages=MESSAGES,
                web_search_options={},
                stream=True,
                stream_options=INCLUDE_USAGE,
            ):
                pass
        else:
            client.chat.completions.create(
                model="gpt-4o-mini-search-preview",
                messages=MESSAGES,
                web_search_options={},
            )

    record = usage.records[0]
    assert dict(record.usage.tool_calls) == {"chat_web_search": 1}
    # Tokens only: 1000 x 0.15 + 100 x 0.60 = 150 + 60 = 210 USD per million.
    # OpenAI adds a per-request search fee that llmfy does not bundle.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00021")
    assert record.cost.unpriced_tools == ["chat_web_search"]
    assert not usage.cost_complete
    assert usage.to_dict()["totals"]["unpriced_tool_call_requests"] == 1


def test_beta_responses_counted(server, client, bodies):
    final = bodies.response(input_tokens=53, output_tokens=469, reasoning=448)
    server.add_json(RESPONSES, bodies.response(input_tokens=22, output_tokens=6))
    server.add_sse(RESPONSES, bodies.response_events(final))
    server.add_json(COMPACT, bodies.compaction(input_tokens=9000, output_tokens=700))

    with llmfy_usage_tracker() as usage:
        client.beta.responses.create(model="gpt-5", input="Hi")
        for _ in client.beta.responses.create(model="gpt-5", input="Hi", stream=True):
            pass
        client.beta.responses.compact(model="gpt-5", input="Hi")

    assert [path for path, _ in server.requests] == [RESPONSES, RESPONSES, COMPACT]
    operations = [record.usage.operation for record in usage.records]
    assert operations == ["responses", "responses", "responses.compact"]
    assert [record.usage.input_tokens for record in usage.records] == [22, 53, 9000]
    assert [record.usage.output_tokens for record in usage.records] == [6, 469, 700]
    # gpt-5 (1.25 input, 10 output per million tokens):
    # 22 x 1.25 + 6 x 10 = 27.5 + 60 = 87.5
    # 53 x 1.25 + 469 x 10 = 66.25 + 4690 = 4756.25
    # 9000 x 1.25 + 700 x 10 = 11250 + 7000 = 18250
    # in all 23093.75 USD per million
    assert usage.total_cost == Decimal("0.02309375")


def test_responses_tool_usage_wins_over_items(server, client, bodies):
    output = [
        {
            "id": "ws_1",
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search"},
        }
    ]
    body = bodies.response(
        output=output, tool_usage={"web_search": {"num_requests": 3}}
    )
    server.add_json(RESPONSES, body)

    with llmfy_usage_tracker() as usage:
        client.responses.create(model="gpt-5", input="Find it.")

    assert dict(usage.records[0].usage.tool_calls) == {"web_search": 3}


@pytest.mark.parametrize(
    "final_type", ["response.completed", "response.incomplete", "response.failed"]
)
def test_responses_stream(server, client, bodies, final_type):
    final = bodies.response(input_tokens=53, output_tokens=469, reasoning=448)
    server.add_sse(RESPONSES, bodies.response_events(final, final_type=final_type))

    with llmfy_usage_tracker() as usage:
        stream = client.responses.create(model="gpt-5", input="Hi", stream=True)
        events = [event.type for event in stream]

    assert events[-1] == final_type
    assert len(usage.records) == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 53
    assert record.usage.output_tokens == 469
    assert record.usage.reasoning_tokens == 448
    assert record.usage.served_model == "gpt-5-2025-08-07"


def test_responses_stream_helper(server, client, bodies):
    final = bodies.response(
        input_tokens=22, output_tokens=6, model="gpt-4o-mini-2024-07-18"
    )
    server.add_sse(RESPONSES, bodies.response_events(final))

    with (
        llmfy_usage_tracker() as usage,
        client.responses.stream(model="gpt-4o-mini", input="Hi") as stream,
    ):
        for _ in stream:
            pass
        final_response = stream.get_final_response()

    assert final_response.usage is not None
    assert len(usage.records) == 1
    assert usage.records[0].usage.input_tokens == 22


def test_chat_stream_helper_closed_early(server, client, bodies):
    server.add_sse(CHAT, chat_stream_events(bodies))

    with llmfy_usage_tracker() as usage:
        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=MESSAGES, stream_options=INCLUDE_USAGE
        ) as stream:
            for _ in stream:
                break
        recorded_at_exit = len(usage.records)

    assert recorded_at_exit == 1
    assert usage.records[0].usage.input_tokens is None


# Transcriptions and images


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "raw"])
def test_transcription_counted(server, client, bodies, raw):
    body = bodies.transcription(audio=100, text=20, output_tokens=8)
    server.add_json(TRANSCRIPTIONS, body, **{"x-request-id": "req_audio"})
    transcriptions = client.audio.transcriptions
    if raw:
        transcriptions = transcriptions.with_raw_response

    with llmfy_usage_tracker(
        openai_pricing={"gpt-4o-transcribe": TRANSCRIBE_PRICE}
    ) as usage:
        transcriptions.create(file=AUDIO_FILE, model="gpt-4o-transcribe")

    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.operation == "audio.transcriptions"
    assert record.usage.model == "gpt-4o-transcribe"
    assert record.usage.request_id == "req_audio"
    assert record.usage.input_tokens == 120
    assert record.usage.output_tokens == 8
    assert dict(record.usage.other_tokens) == {"input_audio": 100}
    # 20 text x 2.50 + 100 audio x 6.00 + 8 x 10.00 = 50 + 600 + 80 = 730 USD
    # per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00073")


def test_transcription_stream_counted(server, client, bodies):
    done = {"type": "transcript.text.done", **bodies.transcription(audio=90)}
    server.add_sse(
        TRANSCRIPTIONS,
        [
            {"type": "transcript.text.delta", "delta": "Hel"},
            {"type": "transcript.text.delta", "delta": "lo."},
            done,
        ],
    )

    with llmfy_usage_tracker() as usage:
        stream = client.audio.transcriptions.create(
            file=AUDIO_FILE, model="gpt-4o-transcribe", stream=True
        )
        events = [event.type for event in stream]

    assert events[-1] == "transcript.text.done"
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 110
    assert dict(usage.records[0].usage.other_tokens) == {"input_audio": 90}


@pytest.mark.parametrize(
    "response_format", ["json", "text"], ids=["duration usage", "text"]
)
def test_transcription_without_token_usage_ignored(
    server, client, caplog, response_format
):
    # whisper-1 is billed by the duration of the audio, which llmfy does not
    # price.
    if response_format == "json":
        body = {"text": "Hello.", "usage": {"type": "duration", "seconds": 3}}
        server.add_json(TRANSCRIPTIONS, body)
    else:
        headers = {"content-type": "text/plain"}
        server.add_raw(TRANSCRIPTIONS, status=200, headers=headers, body=b"Hello.")
    caplog.set_level(logging.DEBUG, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        transcription = client.audio.transcriptions.create(
            file=AUDIO_FILE, model="whisper-1", response_format=response_format
        )

    assert "Hello." in str(transcription)
    assert usage.request_count == 0
    assert usage.open_streams == 0
    assert usage.cost_complete
    assert [record.message for record in caplog.records] == []


def test_whisper_transcription_stream_ignored(server, client, caplog):
    # OpenAI ignores `stream` for whisper-1 and sends the JSON body, which
    # contains no server-sent event, so the SDK's stream yields nothing.
    body = {"text": "Hello.", "usage": {"type": "duration", "seconds": 3}}
    server.add_json(TRANSCRIPTIONS, body)
    caplog.set_level(logging.DEBUG, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        stream = client.audio.transcriptions.create(
            file=AUDIO_FILE, model="whisper-1", stream=True
        )
        events = list(stream)

    assert events == []
    assert usage.request_count == 0
    assert usage.open_streams == 0
    assert usage.cost_complete
    assert [record.message for record in caplog.records] == []


def image_completed_event(event_type: str, usage: dict[str, Any]) -> dict[str, Any]:
    """Return the last event of an image generation or edit stream."""
    return {
        "type": event_type,
        "b64_json": "aGVsbG8=",
        "background": "opaque",
        "created_at": 1_780_000_000,
        "output_format": "png",
        "quality": "high",
        "size": "1024x1024",
        "usage": usage,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_image_generation_counted(server, client, bodies, stream):
    body = bodies.images(text=50, output_tokens=4160)
    if stream:
        completed = image_completed_event("image_generation.completed", body["usage"])
        partial = {
            "type": "image_generation.partial_image",
            "b64_json": "aGVs",
            "background": "opaque",
            "created_at": 1_780_000_000,
            "output_format": "png",
            "partial_image_index": 0,
            "quality": "high",
            "size": "1024x1024",
        }
        server.add_sse(IMAGES, [partial, completed])
    else:
        server.add_json(IMAGES, body)

    with llmfy_usage_tracker(openai_pricing={"gpt-image-1": IMAGE_PRICE}) as usage:
        result = client.images.generate(
            model="gpt-image-1", prompt="A cat.", stream=stream
        )
        if stream:
            for _ in result:
                pass

    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.operation == "images.generations"
    assert record.usage.input_tokens == 50
    assert record.usage.output_tokens == 4160
    # 50 x 5.00 + 4160 x 40.00 = 250 + 166,400 = 166,650 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.16665")


@pytest.mark.parametrize(
    ("path", "event_type"),
    [
        (IMAGES, "image_generation.completed"),
        (IMAGE_EDITS, "image_edit.completed"),
    ],
    ids=["generation", "edit"],
)
def test_image_stream_output_priced_as_image(server, client, path, event_type):
    # A completed event's usage has no output details: the SDK documents its
    # `output_tokens` as the image tokens of the output image.
    usage_of_event = {
        "input_tokens": 50,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
        "output_tokens": 4160,
        "total_tokens": 4210,
    }
    completed = image_completed_event(event_type, usage_of_event)
    server.add_sse(path, [completed])
    # A GPT Image model with text and image output rates.
    price = {"input": 5.00, "output": 10.00, "input_image": 8.00, "output_image": 32.00}

    with llmfy_usage_tracker(openai_pricing={"gpt-image-1.5": price}) as usage:
        if path == IMAGES:
            stream = client.images.generate(
                model="gpt-image-1.5", prompt="A cat.", stream=True
            )
        else:
            stream = client.images.edit(
                model="gpt-image-1.5", prompt="A hat.", image=IMAGE_FILE, stream=True
            )
        for _ in stream:
            pass

    record = usage.records[0]
    assert record.usage.output_tokens == 4160
    assert dict(record.usage.other_tokens) == {"output_image": 4160}
    # 50 text in x 5.00 + 4160 image out x 32.00 = 250 + 133,120 = 133,370 USD
    # per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.13337")


def test_image_edit_priced_image_input(server, client, bodies):
    server.add_json(IMAGE_EDITS, bodies.images(text=50, image=300, output_tokens=4160))
    price = {**IMAGE_PRICE, "input_image": 10.00}

    with llmfy_usage_tracker(openai_pricing={"gpt-image-1": price}) as usage:
        client.images.edit(model="gpt-image-1", prompt="A hat.", image=IMAGE_FILE)

    record = usage.records[0]
    assert record.usage.operation == "images.edits"
    assert record.usage.other_tokens["input_image"] == 300
    assert record.price is not None
    assert record.price.other["input_image"] == Decimal("10.00")
    # 50 text x 5.00 + 300 image x 10.00 + 4160 x 40.00 = 250 + 3,000 + 166,400
    # = 169,650 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.16965")


def test_image_output_image_tokens_priced(server, client, bodies):
    body = bodies.images(text=50, output_tokens=4160)
    body["usage"]["output_tokens"] = 4200
    body["usage"]["output_tokens_details"] = {"image_tokens": 4160, "text_tokens": 40}
    body["usage"]["total_tokens"] = 4250
    server.add_json(IMAGES, body)
    # A GPT Image model with text and image output rates.
    price = {"input": 5.00, "output": 10.00, "input_image": 8.00, "output_image": 32.00}

    with llmfy_usage_tracker(openai_pricing={"gpt-image-1.5": price}) as usage:
        client.images.generate(model="gpt-image-1.5", prompt="A cat.")

    record = usage.records[0]
    assert record.usage.output_tokens == 4200
    assert dict(record.usage.other_tokens) == {"output_image": 4160}
    # 50 text in x 5.00 + 40 text out x 10.00 + 4160 image out x 32.00
    # = 250 + 400 + 133,120 = 133,770 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.13377")


@pytest.mark.parametrize("path", [IMAGES, IMAGE_EDITS])
def test_image_output_without_details_priced_as_image(server, client, path):
    # The Images API leaves `output_tokens_details` out of a GPT Image
    # response: its output tokens are the tokens of the output image.
    body = {
        "created": 1_780_000_000,
        "data": [{"b64_json": "aGVsbG8="}],
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
            "output_tokens": 4160,
            "total_tokens": 4210,
        },
    }
    server.add_json(path, body)
    # A GPT Image model with text and image output rates.
    price = {"input": 5.00, "output": 10.00, "input_image": 8.00, "output_image": 32.00}

    with llmfy_usage_tracker(openai_pricing={"gpt-image-1.5": price}) as usage:
        if path == IMAGES:
            client.images.generate(model="gpt-image-1.5", prompt="A cat.")
        else:
            client.images.edit(model="gpt-image-1.5", prompt="A hat.", image=IMAGE_FILE)

    record = usage.records[0]
    assert record.usage.output_tokens == 4160
    assert dict(record.usage.other_tokens) == {"output_image": 4160}
    # 50 text in x 5.00 + 4160 image out x 32.00 = 250 + 133,120 = 133,370 USD
    # per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.13337")


def test_image_without_usage_ignored(server, client):
    # DALL-E images are billed per image and report no usage.
    server.add_json(IMAGES, {"created": 1_780_000_000, "data": [{"url": "u"}]})

    with llmfy_usage_tracker() as usage:
        client.images.generate(model="dall-e-3", prompt="A cat.")

    assert usage.request_count == 0
    assert usage.cost_complete


def test_first_audio_snapshot_priced_at_launch_rates(server, client, bodies):
    body = bodies.chat(
        model="gpt-4o-audio-preview-2024-10-01", prompt=64, completion=9, input_audio=44
    )
    server.add_json(CHAT, body)

    with llmfy_usage_tracker() as usage:
        client.chat.completions.create(model="gpt-4o-audio-preview", messages=MESSAGES)

    record = usage.records[0]
    assert dict(record.usage.other_tokens) == {"input_audio": 44}
    # The 2024-10-01 snapshot bills audio at 100 in and 200 out per million
    # tokens, the later snapshots at 40 and 80. Text stays at 2.50 and 10.
    # 20 text x 2.50 + 44 audio x 100 + 9 x 10 = 50 + 4400 + 90 = 4540 USD
    # per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00454")


def test_mini_audio_tokens_priced_at_audio_rates(server, client, bodies):
    body = bodies.chat(
        model="gpt-4o-mini-audio-preview-2024-12-17",
        prompt=64,
        completion=30,
        input_audio=44,
        output_audio=20,
    )
    server.add_json(CHAT, body)

    with llmfy_usage_tracker() as usage:
        client.chat.completions.create(
            model="gpt-4o-mini-audio-preview", messages=MESSAGES
        )

    record = usage.records[0]
    assert dict(record.usage.other_tokens) == {"input_audio": 44, "output_audio": 20}
    # Text costs 0.15 in and 0.60 out, audio 10 in and 20 out, per million
    # tokens: 20 x 0.15 + 44 x 10 + 10 x 0.60 + 20 x 20 = 3 + 440 + 6 + 400
    # = 849 USD per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.000849")
    assert record.price_origin == "openai"


def azure_client(server):
    """Return an Azure OpenAI client of the local server, without retries."""
    return openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{server.port}",
        api_key="test-key",
        api_version="2024-10-21",
        max_retries=0,
    )


def test_embeddings_create(server, client, bodies):
    server.add_json(EMBEDDINGS, bodies.embeddings(prompt=8))

    with llmfy_usage_tracker() as usage:
        result = client.embeddings.create(model="text-embedding-3-small", input="hello")

    assert type(result) is CreateEmbeddingResponse
    record = usage.records[0]
    assert record.usage.input_tokens == 8
    assert record.usage.output_tokens == 0
    assert record.usage.operation == "embeddings"
    # 8 x 0.02 = 0.16 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00000016")


def test_azure_client_recorded(server, bodies):
    server.add_json(
        "/openai/deployments/prod-chat/chat/completions",
        bodies.chat(prompt=60, completion=3),
    )
    azure = azure_client(server)

    with llmfy_usage_tracker() as usage:
        azure.chat.completions.create(model="prod-chat", messages=MESSAGES)
    azure.close()

    record = usage.records[0]
    assert record.usage.model == "prod-chat"
    assert record.usage.served_model == "gpt-4o-mini-2024-07-18"
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000108")


# (mapped model, model the response names, cost of 1000 input and 1000 output
# tokens by hand, in USD per million tokens)
AZURE_MAPPINGS = [
    # The mapping extends the served name, so it wins: gpt-4-turbo at 10 and
    # 30, not gpt-4 at 30 and 60.
    ("gpt-4-turbo", "gpt-4", "0.04"),
    # The dated snapshot is more precise: gpt-4o-2024-05-13 at 5 and 15, not
    # gpt-4o at 2.50 and 10.
    ("gpt-4o", "gpt-4o-2024-05-13", "0.02"),
    # A model router names the model that answered: gpt-5-nano at 0.05 and
    # 0.40, not gpt-4.1 at 2 and 8.
    ("gpt-4.1", "gpt-5-nano-2025-08-07", "0.00045"),
]


def test_azure_ada_embeddings_priced_as_ada_002(server, bodies):
    # Azure names text-embedding-ada-002 "ada" in its embeddings responses.
    # OpenAI's retired completions model `ada` costs 0.40 USD per million
    # tokens in genai-prices, four times ada-002's rate.
    server.add_json(
        "/openai/deployments/embed-prod/embeddings",
        bodies.embeddings(model="ada", prompt=1000),
    )
    azure = azure_client(server)

    with llmfy_usage_tracker() as usage:
        azure.embeddings.create(model="embed-prod", input="hello")
    azure.close()

    record = usage.records[0]
    assert record.usage.served_model == "text-embedding-ada-002"
    # 1000 x 0.10 = 100 USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0001")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # 1000 x 0.05 = 50 USD per million tokens
        ({"ada": {"input": "0.05", "output": "0"}}, Decimal("0.00005")),
        # The entry under the id the plugin reads wins over the Azure name.
        (
            {
                "ada": {"input": "0.05", "output": "0"},
                "text-embedding-ada-002": {"input": "0.02", "output": "0"},
            },
            Decimal("0.00002"),
        ),
    ],
)
def test_azure_ada_embeddings_use_ada_override(server, bodies, table, expected):
    server.add_json(
        "/openai/deployments/embed-prod/embeddings",
        bodies.embeddings(model="ada", prompt=1000),
    )
    azure = azure_client(server)

    with llmfy_usage_tracker(openai_pricing=table) as usage:
        azure.embeddings.create(model="embed-prod", input="hello")
    azure.close()

    record = usage.records[0]
    assert record.price_origin == "override"
    assert record.cost is not None
    assert record.cost.total == expected


@pytest.mark.parametrize("where", ["process", "tracker"])
@pytest.mark.parametrize(("mapped", "served", "expected"), AZURE_MAPPINGS)
def test_azure_mapping_against_served_model(
    server, bodies, mapped, served, expected, where
):
    server.add_json(
        "/openai/deployments/prod/chat/completions",
        bodies.chat(model=served, prompt=1000, completion=1000),
    )
    azure = azure_client(server)
    # The same mapping, made for the process or as an alias entry of the
    # tracker's override table.
    pricing = {}
    if where == "process":
        map_azure_deployments({"prod": mapped})
    else:
        pricing = {"prod": mapped}
    try:
        with llmfy_usage_tracker(openai_pricing=pricing) as usage:
            azure.chat.completions.create(model="prod", messages=MESSAGES)
    finally:
        clear_azure_deployments()
        azure.close()

    record = usage.records[0]
    assert record.usage.served_model == served
    assert record.cost is not None
    assert record.cost.total == Decimal(expected)


@pytest.mark.parametrize("mapped_first", [True, False])
def test_azure_mapping_of_one_tracker_only(server, bodies, mapped_first):
    # Deployment `prod` returns responses that name gpt-4. One tracker maps it
    # to gpt-4-turbo, the other leaves it alone, and neither price reaches the
    # other tracker.
    for _ in range(2):
        server.add_json(
            "/openai/deployments/prod/chat/completions",
            bodies.chat(model="gpt-4", prompt=1000, completion=1000),
        )
    azure = azure_client(server)
    pricings = [{"prod": "gpt-4-turbo"}, {}]
    if not mapped_first:
        pricings.reverse()
    costs = {}
    try:
        for pricing in pricings:
            with llmfy_usage_tracker(openai_pricing=pricing) as usage:
                azure.chat.completions.create(model="prod", messages=MESSAGES)
            costs["mapped" if pricing else "unmapped"] = usage.total_cost
    finally:
        azure.close()

    # gpt-4-turbo: 1000 x 10 + 1000 x 30 per million; gpt-4: 1000 x 30 + 1000 x 60.
    assert costs["mapped"] == Decimal("0.04")
    assert costs["unmapped"] == Decimal("0.09")


# Faults and import


def test_extraction_fault_never_reaches_caller(server, client, bodies, monkeypatch):
    def broken(response: Any, context: Any) -> Any:
        raise RuntimeError("broken extractor")

    monkeypatch.setitem(extract._EXTRACTORS, ChatCompletion, broken)
    server.add_json(CHAT, bodies.chat())

    with llmfy_usage_tracker() as usage:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )

    assert completion.choices[0].message.content == "Paris."
    assert len(usage.records) == 1
    assert "broken extractor" in (usage.records[0].fault or "")
    assert usage.records[0].usage.input_tokens is None


def test_recording_fault_is_logged(server, client, bodies, monkeypatch, caplog):
    from llmfy_openai import instrument

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recording broke")

    monkeypatch.setattr(instrument, "record_response", broken)
    server.add_json(CHAT, bodies.chat())

    with caplog.at_level(logging.WARNING, logger="llmfy.openai"), llmfy_usage_tracker():
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )

    assert completion.choices[0].message.content == "Paris."
    assert "recording broke" in caplog.text
    assert "gpt-4o-mini" in caplog.text


def run_python(code: str, warnings: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with the warnings filter `warnings`."""
    return subprocess.run(
        [sys.executable, "-W", warnings, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_patch_waits_for_openai_import():
    code = (
        "import sys\n"
        "from llmfy import llmfy_usage_tracker\n"
        "with llmfy_usage_tracker():\n"
        "    pass\n"
        "print('openai' in sys.modules)\n"
        "import openai\n"
        "from openai._base_client import SyncAPIClient\n"
        "print(getattr(SyncAPIClient.request, '__llmfy_openai_patch__', False))\n"
    )
    result = run_python(code, warnings="ignore")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    "read",
    ["", "for stream in streams:\n    next(iter(stream))\n"],
    ids=["unread", "one_chunk_read"],
)
def test_streams_alive_at_exit_leave_no_error(server, bodies, read):
    # Streams still referenced when the interpreter exits, unread or left
    # after a chunk, are collected during module teardown, where recording
    # could fail noisily and a new thread never runs. faulthandler ends the
    # process if exit blocks.
    for _ in range(3):
        server.add_sse(
            CHAT,
            [
                bodies.chunk("Paris."),
                bodies.chunk(None, usage=bodies.chunk_usage(14, 2)),
                "[DONE]",
            ],
        )
    code = (
        "import faulthandler, logging, openai\n"
        "from llmfy import llmfy_usage_tracker\n"
        "faulthandler.dump_traceback_later(20, exit=True)\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        f"client = openai.OpenAI(base_url={server.base_url!r}, api_key='k',"
        " max_retries=0)\n"
        "usage = llmfy_usage_tracker()\n"
        "usage.__enter__()\n"
        "streams = [\n"
        "    client.chat.completions.create(\n"
        "        model='gpt-4o-mini', stream=True,\n"
        "        messages=[{'role': 'user', 'content': 'Capital of France?'}],\n"
        "        stream_options={'include_usage': True},\n"
        "    )\n"
        "    for _ in range(3)\n"
        "]\n"
        f"{read}"
        "print(usage.request_count)\n"
    )
    result = run_python(code, warnings="error")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"]
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert "llmfy" not in result.stderr
