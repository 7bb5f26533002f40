"""Background Responses, driving the real openai client over HTTP on 127.0.0.1.

A `responses.create(..., background=True)` request is counted once, with
the trackers and send time of the create call, when a retrieve or cancel
returns its response in a final status, or with unknown usage when its
trackers have all ended first.

Costs are worked out by hand from the bundled gpt-5 price: 1.25 input, 0.125
cached input and 10 output USD per million tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from llmfy_openai import background, instrument

from llmfy import llmfy_usage_tracker
from llmfy_core import bind_trackers, start_process_tracker, stop_process_tracker

RESPONSES = "/v1/responses"
# How long a test waits for a request to reach the server or for a thread.
WAIT_TIMEOUT_S = 5.0


@pytest.fixture(autouse=True)
def no_pending_left() -> Iterator[None]:
    """Check that each test leaves no background response pending, then clear."""
    background.PENDING.clear()
    background.STREAMING.clear()
    yield
    left = list(background.PENDING)
    streaming = list(background.STREAMING)
    background.PENDING.clear()
    background.STREAMING.clear()
    assert left == []
    assert streaming == []


def running(bodies: Any, response_id: str, status: str = "queued") -> dict[str, Any]:
    """The body of a background response that is still running."""
    body: dict[str, Any] = bodies.response(status=status, usage=False)
    body["id"] = response_id
    body["background"] = True
    body["output"] = []
    return body


def ended(bodies: Any, response_id: str, **fields: Any) -> dict[str, Any]:
    """The body of a background response in a final status, with its usage."""
    body: dict[str, Any] = bodies.response(**fields)
    body["id"] = response_id
    body["background"] = True
    return body


def create(client: Any, **options: Any) -> Any:
    return client.responses.create(
        model="gpt-5", input="Plan a trip.", background=True, **options
    )


def test_background_in_extra_body_stays_pending(server, client, bodies):
    # The SDK merges `extra_body` into the request, so this is a background
    # request like one that names `background=True`.
    server.add_json(RESPONSES, running(bodies, "resp_1"))
    completed = ended(
        bodies, "resp_1", input_tokens=1000, cached=200, output_tokens=300
    )
    server.add_json(f"{RESPONSES}/resp_1", completed)

    with llmfy_usage_tracker() as usage:
        created = client.responses.create(
            model="gpt-5", input="Plan a trip.", extra_body={"background": True}
        )
        pending_after_create = usage.pending_requests
        client.responses.retrieve(created.id)

    assert server.requests[0][1]["background"] is True
    assert pending_after_create == 1
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 1000
    assert record.usage.output_tokens == 300
    # 800 x 1.25 + 200 x 0.125 + 300 x 10 = 1000 + 25 + 3000 = 4025 millionths
    assert record.cost is not None
    assert record.cost.total == Decimal("0.004025")


def test_retrieve_counts_create_once(server, client, bodies, caplog):
    server.add_json(
        RESPONSES, running(bodies, "resp_1"), **{"x-request-id": "req_create"}
    )
    path = f"{RESPONSES}/resp_1"
    server.add_json(path, running(bodies, "resp_1", status="in_progress"))
    completed = ended(
        bodies, "resp_1", input_tokens=1000, cached=200, output_tokens=300
    )
    server.add_json(path, completed, **{"x-request-id": "req_poll"})
    server.add_json(path, completed)
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        created = create(client)
        created_by = dt.datetime.now(dt.UTC)
        pending_after_create = usage.pending_requests
        report_after_create = str(usage)
        data_after_create = usage.to_dict()
        in_progress = client.responses.retrieve(created.id)
        counted_while_in_progress = usage.request_count
        done = client.responses.retrieve(created.id)
        again = client.responses.retrieve(created.id)

    assert created.status == "queued"
    assert in_progress.status == "in_progress"
    assert done.status == "completed"
    assert again.status == "completed"
    assert pending_after_create == 1
    assert "Pending Requests: 1 (not counted yet" in report_after_create
    assert data_after_create["pending_requests"] == 1
    assert data_after_create["totals"]["requests"] == 0
    assert counted_while_in_progress == 0
    assert usage.pending_requests == 0
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.operation == "responses"
    assert record.usage.model == "gpt-5"
    assert record.usage.input_tokens == 1000
    assert record.usage.cache_read_tokens == 200
    assert record.usage.output_tokens == 300
    assert record.usage.request_id == "req_create"
    assert record.sent_at <= created_by
    assert record.fault is None
    # (1000 - 200) x 1.25 + 200 x 0.125 + 300 x 10 = 1000 + 25 + 3000 = 4025
    # USD per million tokens
    assert record.cost is not None
    assert record.cost.total == Decimal("0.004025")
    assert usage.cost_complete
    assert caplog.text == ""


def test_async_retrieve_counts(server, async_client, bodies):
    server.add_json(RESPONSES, running(bodies, "resp_async"))
    server.add_json(RESPONSES, running(bodies, "resp_async_stream"))
    server.add_json(
        f"{RESPONSES}/resp_async",
        ended(bodies, "resp_async", input_tokens=100, output_tokens=50),
    )
    final = ended(bodies, "resp_async_stream", input_tokens=200, output_tokens=10)
    server.add_sse(f"{RESPONSES}/resp_async_stream", bodies.response_events(final))

    async def run() -> tuple[Any, Any, int, str]:
        async with llmfy_usage_tracker() as usage:
            for _ in range(2):
                await async_client.responses.create(
                    model="gpt-5", input="Plan a trip.", background=True
                )
            pending = usage.pending_requests
            done = await async_client.responses.retrieve("resp_async")
            stream = await async_client.responses.retrieve(
                "resp_async_stream", stream=True
            )
            kinds = [event.type async for event in stream]
        await async_client.close()
        return usage, done, pending, kinds[-1]

    usage, done, pending, last_kind = asyncio.run(run())

    assert done.status == "completed"
    assert last_kind == "response.completed"
    assert pending == 2
    assert usage.request_count == 2
    assert [record.usage.input_tokens for record in usage.records] == [100, 200]
    # 100 x 1.25 + 50 x 10 + 200 x 1.25 + 10 x 10 = 625 + 350 = 975 USD per
    # million tokens
    assert usage.total_cost == Decimal("0.000975")


@pytest.mark.parametrize("with_usage", [True, False], ids=["usage", "no-usage"])
def test_cancel_counts(server, client, bodies, with_usage):
    server.add_json(RESPONSES, running(bodies, "resp_cancel"))
    cancelled = ended(
        bodies, "resp_cancel", status="cancelled", usage=with_usage, output_tokens=20
    )
    server.add_json(f"{RESPONSES}/resp_cancel/cancel", cancelled)

    with llmfy_usage_tracker() as usage:
        created = create(client)
        pending_after_create = usage.pending_requests
        result = client.responses.cancel(created.id)

    assert result.status == "cancelled"
    assert pending_after_create == 1
    assert usage.request_count == 1
    assert usage.pending_requests == 0
    record = usage.records[0]
    if with_usage:
        # 100 x 1.25 + 20 x 10 = 325 USD per million tokens
        assert record.cost is not None
        assert record.cost.total == Decimal("0.000325")
    else:
        assert record.usage.input_tokens is None
        assert record.cost is None


@pytest.mark.parametrize(
    "final_type", ["response.completed", "response.incomplete", "response.failed"]
)
def test_streamed_retrieve_counts_at_final_event(server, client, bodies, final_type):
    server.add_json(RESPONSES, running(bodies, "resp_stream"))
    status = final_type.removeprefix("response.")
    final = ended(
        bodies, "resp_stream", status=status, input_tokens=100, output_tokens=50
    )
    events = bodies.response_events(final, final_type=final_type)
    server.add_sse(f"{RESPONSES}/resp_stream", events)

    with llmfy_usage_tracker() as usage:
        created = create(client)
        stream = client.responses.retrieve(created.id, stream=True)
        # Left at the final event, unclosed: it is counted all the same.
        for event in stream:
            if event.type == final_type:
                break

    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 100
    assert usage.records[0].usage.output_tokens == 50
    assert usage.total_cost == Decimal("0.000625")
    assert usage.open_streams == 0
    stream.close()
    assert usage.request_count == 1


def test_background_stream_counted_once(server, client, bodies):
    final = ended(bodies, "resp_bg_stream", input_tokens=100, output_tokens=50)
    server.add_sse(RESPONSES, bodies.response_events(final))
    server.add_json(f"{RESPONSES}/resp_bg_stream", final)

    with llmfy_usage_tracker() as usage:
        stream = create(client, stream=True)
        kinds = [event.type for event in stream]
        pending_after_stream = usage.pending_requests
        retrieved = client.responses.retrieve("resp_bg_stream")

    assert kinds[-1] == "response.completed"
    assert retrieved.status == "completed"
    assert pending_after_stream == 0
    assert usage.request_count == 1
    assert usage.total_cost == Decimal("0.000625")


def held_background_stream(
    server: Any, bodies: Any, response_id: str
) -> tuple[dict[str, Any], list[Any], threading.Event]:
    """Queue a background stream whose events after the first wait for a gate.

    Returns the final response (100 input and 50 output tokens), the stream's
    events and the gate.
    """
    final = ended(bodies, response_id, input_tokens=100, output_tokens=50)
    events = bodies.response_events(final)
    events[0]["response"]["status"] = "queued"
    gate = threading.Event()
    server.add_sse(RESPONSES, [events[0], gate, *events[1:]])
    return final, events, gate


def test_background_stream_closed_early_waits(server, client, bodies):
    _, events, gate = held_background_stream(server, bodies, "resp_resume")
    server.add_sse(f"{RESPONSES}/resp_resume", events[1:])

    with llmfy_usage_tracker() as usage:
        stream = create(client, stream=True)
        first = next(iter(stream))
        stream.close()
        gate.set()
        open_after_close = usage.open_streams
        pending_after_close = usage.pending_requests
        counted_after_close = usage.request_count
        resumed = client.responses.retrieve(
            "resp_resume", stream=True, starting_after=first.sequence_number
        )
        kinds = [event.type for event in resumed]

    assert first.type == "response.created"
    assert open_after_close == 0
    assert pending_after_close == 1
    assert counted_after_close == 0
    assert kinds[-1] == "response.completed"
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 100
    assert usage.total_cost == Decimal("0.000625")


def test_poll_while_stream_open_counts(server, client, bodies):
    # The caller leaves the background stream at its first event without
    # closing it, then polls: the polled response records the request.
    final, _, gate = held_background_stream(server, bodies, "resp_left_open")
    server.add_json(f"{RESPONSES}/resp_left_open", final)

    with llmfy_usage_tracker() as usage:
        stream = create(client, stream=True)
        for event in stream:
            response_id = event.response.id
            break
        retrieved = client.responses.retrieve(response_id)
        counted_after_poll = usage.request_count
        gate.set()
        stream.close()

    assert retrieved.status == "completed"
    assert counted_after_poll == 1
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 100
    assert record.fault is None
    # gpt-5: 100 x 1.25 + 50 x 10 = 625 USD per million tokens.
    assert usage.total_cost == Decimal("0.000625")


@pytest.mark.parametrize("close_first", [False, True], ids=["poll", "close"])
def test_async_stream_left_then_polled(server, async_client, bodies, close_first):
    # An async background stream left at its first event is polled while
    # still open, or after it was closed and its request became pending.
    final, _, gate = held_background_stream(server, bodies, "resp_async_left")
    server.add_json(f"{RESPONSES}/resp_async_left", final)

    async def run() -> tuple[Any, Any]:
        async with llmfy_usage_tracker() as usage:
            stream = await async_client.responses.create(
                model="gpt-5", input="Plan a trip.", background=True, stream=True
            )
            async for event in stream:
                response_id = event.response.id
                break
            if close_first:
                gate.set()
                await stream.close()
            retrieved = await async_client.responses.retrieve(response_id)
            if not close_first:
                gate.set()
                await stream.close()
        await async_client.close()
        return usage, retrieved

    usage, retrieved = asyncio.run(run())

    assert retrieved.status == "completed"
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 100
    assert record.fault is None
    # gpt-5: 100 x 1.25 + 50 x 10 = 625 USD per million tokens.
    assert usage.total_cost == Decimal("0.000625")


def test_poll_while_stream_closes_counts(server, client, bodies, monkeypatch):
    # Another thread retrieves the final response while this one closes the
    # background stream early: the poll runs while the closing thread builds
    # the call that keeps the request pending.
    final, _, gate = held_background_stream(server, bodies, "resp_closing")
    server.add_json(f"{RESPONSES}/resp_closing", final)
    copying = threading.Event()
    polled = threading.Event()
    build_copy = instrument._Call.pending_copy

    def pending_copy_after_poll(call: Any, response_id: str) -> Any:
        copying.set()
        polled.wait(WAIT_TIMEOUT_S)
        return build_copy(call, response_id)

    def poll() -> None:
        copying.wait(WAIT_TIMEOUT_S)
        try:
            client.responses.retrieve("resp_closing")
        finally:
            polled.set()

    monkeypatch.setattr(instrument._Call, "pending_copy", pending_copy_after_poll)
    poller = threading.Thread(target=poll)
    poller.start()
    with llmfy_usage_tracker() as usage:
        stream = create(client, stream=True)
        next(iter(stream))
        stream.close()
        gate.set()
        poller.join(WAIT_TIMEOUT_S)

    assert polled.is_set()
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.fault is None
    assert record.usage.input_tokens == 100
    assert usage.total_cost == Decimal("0.000625")


def test_poll_elsewhere_counts_in_create_trackers(server, client, bodies):
    server.add_json(RESPONSES, running(bodies, "resp_thread"))
    server.add_json(RESPONSES, running(bodies, "resp_other_tracker"))
    server.add_json(
        f"{RESPONSES}/resp_thread",
        ended(bodies, "resp_thread", input_tokens=100, output_tokens=50),
    )
    server.add_json(
        f"{RESPONSES}/resp_other_tracker",
        ended(bodies, "resp_other_tracker", input_tokens=200, output_tokens=10),
    )
    statuses = []

    with llmfy_usage_tracker() as usage:
        first = create(client)
        second = create(client)
        # A thread does not inherit the tracker: it polls with none active.
        poller = threading.Thread(
            target=lambda: statuses.append(client.responses.retrieve(first.id).status)
        )
        poller.start()
        poller.join(WAIT_TIMEOUT_S)
        with llmfy_usage_tracker() as other:
            statuses.append(client.responses.retrieve(second.id).status)

    assert statuses == ["completed", "completed"]
    assert other.request_count == 0
    assert usage.request_count == 2
    assert [record.usage.input_tokens for record in usage.records] == [100, 200]
    # 100 x 1.25 + 50 x 10 + 200 x 1.25 + 10 x 10 = 625 + 350 = 975 USD per
    # million tokens
    assert usage.total_cost == Decimal("0.000975")


def test_concurrent_polls_count_once(server, client, bodies):
    ids = [f"resp_race_{number}" for number in range(20)]
    for response_id in ids:
        server.add_json(RESPONSES, running(bodies, response_id))
        completed = ended(bodies, response_id, input_tokens=100, output_tokens=50)
        server.add_json(f"{RESPONSES}/{response_id}", completed)
        server.add_json(f"{RESPONSES}/{response_id}", completed)
    statuses: list[str] = []

    def poll(response_id: str, barrier: threading.Barrier) -> None:
        barrier.wait(WAIT_TIMEOUT_S)
        statuses.append(client.responses.retrieve(response_id).status)

    with llmfy_usage_tracker() as usage:
        for _ in ids:
            create(client)
        for response_id in ids:
            barrier = threading.Barrier(2)
            pollers = [
                threading.Thread(target=poll, args=(response_id, barrier))
                for _ in range(2)
            ]
            for poller in pollers:
                poller.start()
            for poller in pollers:
                poller.join(WAIT_TIMEOUT_S)

    assert statuses == ["completed"] * 40
    assert usage.request_count == 20
    assert usage.total_cost == 20 * Decimal("0.000625")


def test_unpolled_counted_when_trackers_end(server, client, bodies, caplog):
    server.add_json(RESPONSES, running(bodies, "resp_unpolled"))
    server.add_json(
        f"{RESPONSES}/resp_unpolled",
        ended(bodies, "resp_unpolled", input_tokens=100, output_tokens=50),
    )
    caplog.set_level(logging.WARNING, logger="llmfy.openai")

    with llmfy_usage_tracker() as outer:
        with llmfy_usage_tracker() as inner:
            created = create(client)
        pending_after_inner = inner.pending_requests
        counted_after_inner = inner.request_count

    late = client.responses.retrieve(created.id)

    assert pending_after_inner == 1
    assert counted_after_inner == 0
    assert late.status == "completed"
    for usage in (inner, outer):
        assert usage.pending_requests == 0
        assert usage.request_count == 1
        record = usage.records[0]
        assert record.usage.input_tokens is None
        assert record.cost is None
        assert record.fault is not None
        assert "resp_unpolled was not fetched in a final status" in record.fault
        assert not usage.cost_complete
    assert "counted with unknown usage" in caplog.text


def test_process_tracker_keeps_pending(server, client, bodies):
    server.add_json(RESPONSES, running(bodies, "resp_process"))
    process = start_process_tracker()
    try:
        with llmfy_usage_tracker() as usage:
            create(client)
        pending_after_block = usage.pending_requests
    finally:
        stop_process_tracker(process)

    assert pending_after_block == 1
    assert usage.request_count == 1
    assert process.request_count == 1
    assert usage.records[0].usage.input_tokens is None


def test_pending_overflow_counted_unknown(server, client, bodies, monkeypatch):
    monkeypatch.setattr(background, "MAX_PENDING", 2)
    # More than the 64 references a tracker keeps before it first prunes them.
    ids = [f"resp_{number}" for number in range(70)]
    for response_id in ids:
        server.add_json(RESPONSES, running(bodies, response_id))
    for response_id in ids[-2:]:
        completed = ended(bodies, response_id, input_tokens=100, output_tokens=50)
        server.add_json(f"{RESPONSES}/{response_id}", completed)

    with llmfy_usage_tracker() as usage:
        for _ in ids:
            create(client)
        pending_ids = list(background.PENDING)
        references = len(usage.pending_request_references)
        records = usage.records
        for response_id in ids[-2:]:
            client.responses.retrieve(response_id)

    assert pending_ids == ["resp_68", "resp_69"]
    assert references < 70
    assert len(records) == 68
    assert all(record.usage.input_tokens is None for record in records)
    fault = records[0].fault
    assert fault is not None
    assert "more than 2 background responses" in fault
    assert "resp_0," in fault
    assert usage.request_count == 70
    assert usage.total_cost == 2 * Decimal("0.000625")


@pytest.mark.parametrize("lock_owner", ["tracker", "pending"])
def test_collected_stream_no_deadlock(server, client, bodies, lock_owner, wait_for):
    # A background stream dropped unread is in a reference cycle, so garbage
    # collection finalizes it. A collection can start at any allocation, also
    # while this thread holds the tracker's lock (to prune its lists) or the
    # lock of the pending requests (when `add` evicts one).
    final = ended(bodies, "resp_collected", input_tokens=100, output_tokens=50)
    events = bodies.response_events(final)
    events[0]["response"]["status"] = "queued"
    gate = threading.Event()
    server.add_sse(RESPONSES, [events[0], gate, *events[1:]])
    trackers: list[Any] = []

    def drop_stream_and_collect() -> None:
        with llmfy_usage_tracker() as usage:
            # As when its list of pending requests reached the pruning size.
            usage.prune_pending_at = 1
            stream = create(client, stream=True)
            next(iter(stream))
            del stream
            lock = usage._lock if lock_owner == "tracker" else background._lock
            with lock:
                gc.collect()
        trackers.append(usage)

    # In a thread, so that a deadlock fails the test instead of hanging it.
    worker = threading.Thread(target=drop_stream_and_collect, daemon=True)
    worker.start()
    worker.join(WAIT_TIMEOUT_S)
    gate.set()
    wait_for(lambda: trackers and trackers[0].request_count == 1)

    assert not worker.is_alive()
    usage = trackers[0]
    assert usage.request_count == 1
    assert usage.pending_requests == 0
    assert usage.records[0].usage.input_tokens is None


def test_beta_and_stream_helper_polls(server, client, bodies):
    server.add_json(RESPONSES, running(bodies, "resp_beta"))
    server.add_json(RESPONSES, running(bodies, "resp_helper"))
    server.add_json(
        f"{RESPONSES}/resp_beta",
        ended(bodies, "resp_beta", input_tokens=100, output_tokens=50),
    )
    final = ended(bodies, "resp_helper", input_tokens=200, output_tokens=10)
    server.add_sse(f"{RESPONSES}/resp_helper", bodies.response_events(final))

    with llmfy_usage_tracker() as usage:
        client.beta.responses.create(
            model="gpt-5", input="Plan a trip.", background=True
        )
        create(client)
        beta = client.beta.responses.retrieve("resp_beta")
        with client.responses.stream(response_id="resp_helper") as stream:
            helper = stream.get_final_response()

    assert beta.status == "completed"
    assert helper.status == "completed"
    assert [record.usage.input_tokens for record in usage.records] == [100, 200]
    assert usage.total_cost == Decimal("0.000975")


def test_retrieve_of_unseen_id_not_counted(server, client, bodies):
    server.add_json(RESPONSES, running(bodies, "resp_seen"))
    unseen = ended(bodies, "resp_unseen", input_tokens=100, output_tokens=50)
    server.add_json(f"{RESPONSES}/resp_unseen", unseen)
    server.add_json(f"{RESPONSES}/resp_unseen", unseen)
    server.add_json(
        f"{RESPONSES}/resp_seen",
        ended(bodies, "resp_seen", input_tokens=100, output_tokens=50),
    )

    with llmfy_usage_tracker() as usage:
        client.responses.retrieve("resp_unseen")
        counted_before_create = usage.request_count
        create(client)
        # Without a tracker too, while another response is pending.
        thread = threading.Thread(
            target=lambda: client.responses.retrieve("resp_unseen")
        )
        thread.start()
        thread.join(WAIT_TIMEOUT_S)
        counted_after_unseen = usage.request_count
        client.responses.retrieve("resp_seen")

    assert counted_before_create == 0
    assert counted_after_unseen == 0
    assert usage.request_count == 1
    assert usage.total_cost == Decimal("0.000625")


def test_poll_of_escaped_id_counts(server, client, bodies):
    # The SDK percent-encodes an id in the path. OpenAI's own ids need no
    # escaping, but an OpenAI-compatible server may return such ids.
    server.add_json(RESPONSES, running(bodies, "resp a/1"))
    server.add_json(RESPONSES, running(bodies, "resp_é2"))
    server.add_json(
        f"{RESPONSES}/resp%20a%2F1",
        ended(bodies, "resp a/1", input_tokens=100, output_tokens=50),
    )
    cancelled = ended(
        bodies, "resp_é2", status="cancelled", input_tokens=200, output_tokens=10
    )
    server.add_json(f"{RESPONSES}/resp_%C3%A92/cancel", cancelled)

    with llmfy_usage_tracker() as usage:
        first = create(client)
        second = create(client)
        done = client.responses.retrieve(first.id)
        stopped = client.responses.cancel(second.id)

    assert done.status == "completed"
    assert stopped.status == "cancelled"
    assert usage.request_count == 2
    assert all(record.fault is None for record in usage.records)
    # 100 x 1.25 + 50 x 10 + 200 x 1.25 + 10 x 10 = 625 + 350 = 975 USD per
    # million tokens
    assert usage.total_cost == Decimal("0.000975")


def test_background_create_already_ended(server, client, bodies):
    server.add_json(
        RESPONSES, ended(bodies, "resp_fast", input_tokens=100, output_tokens=50)
    )

    with llmfy_usage_tracker() as usage:
        create(client)
        pending = usage.pending_requests
        counted = usage.request_count

    assert pending == 0
    assert counted == 1
    assert usage.total_cost == Decimal("0.000625")


def test_raw_response_create_and_retrieve(server, client, bodies):
    server.add_json(RESPONSES, running(bodies, "resp_raw"))
    server.add_json(
        f"{RESPONSES}/resp_raw",
        ended(bodies, "resp_raw", input_tokens=100, output_tokens=50),
    )

    with llmfy_usage_tracker() as usage:
        raw = client.responses.with_raw_response.create(
            model="gpt-5", input="Plan a trip.", background=True
        )
        pending = usage.pending_requests
        with client.responses.with_streaming_response.retrieve("resp_raw") as polled:
            done = polled.parse()

    assert raw.parse().status == "queued"
    assert done.status == "completed"
    assert pending == 1
    assert usage.request_count == 1
    assert usage.total_cost == Decimal("0.000625")


def test_create_returning_after_trackers_ended(server, client, bodies):
    # The create is in flight while the tracker ends in another thread, so it
    # returns to a request whose trackers have all ended: it is counted at
    # once, with unknown usage, not left pending.
    gate = threading.Event()
    server.add_held_json(RESPONSES, running(bodies, "resp_late"), gate)
    results: list[Any] = []

    with llmfy_usage_tracker() as usage:
        worker = threading.Thread(
            target=bind_trackers(lambda: results.append(create(client)))
        )
        worker.start()
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
    gate.set()
    worker.join(WAIT_TIMEOUT_S)

    assert [result.status for result in results] == ["queued"]
    assert usage.pending_requests == 0
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.records[0].fault is not None


@pytest.mark.parametrize("status", [["queued"], {"state": "queued"}], ids=repr)
def test_create_with_unhashable_status_counted(server, client, bodies, status):
    # The SDK passes a malformed status through. Such a response is not known
    # to be running, so the create is counted at once, with the usage it has.
    body = running(bodies, "resp_odd")
    body["status"] = status
    server.add_json(RESPONSES, body)

    with llmfy_usage_tracker() as usage:
        response = create(client)
        pending = usage.pending_requests

    assert response.status == status
    assert pending == 0
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
