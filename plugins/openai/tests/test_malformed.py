"""Malformed OpenAI responses, sent to the real SDK over HTTP on 127.0.0.1.

Each case serves the same reply twice: once with no tracker active and once
inside a tracker. The caller must get the same object (or the same
exception) both times, the tracker must count the request once with the
counts that could be read, and `llmfy.openai` must log the provider, the
model and the field at fault.

Costs use the bundled gpt-4o-mini price: 0.15 input, 0.075 cached input and
0.60 output, in USD per million tokens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import openai
import pydantic
import pytest
from llmfy_openai import extract, usage_from_body

from llmfy import CallContext, llmfy_usage_tracker

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
INCLUDE_USAGE = {"include_usage": True}


@pytest.fixture(autouse=True)
def fresh_log_memory() -> Iterator[None]:
    """Forget which fields were logged, so that each test gets its WARNING."""
    extract._logged.clear()
    yield
    extract._logged.clear()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="llmfy")
    return caplog


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """Run `call` and return what the caller saw, in a comparable form."""
    try:
        result = call()
    except Exception as error:
        return ("raised", type(error), str(error))
    if isinstance(result, pydantic.BaseModel):
        return ("returned", type(result), dump(result))
    return ("returned", type(result), result)


def dump(model: pydantic.BaseModel) -> dict[str, Any]:
    """Return the fields of an SDK object as plain data, under pydantic 2 or 1."""
    if pydantic.VERSION.startswith("1."):
        # openai 3.x accepts pydantic 1, whose models have no `model_dump`.
        return model.dict()
    return model.model_dump(warnings=False)


def untracked_then_tracked(
    call: Callable[[], Any],
) -> tuple[tuple[Any, ...], tuple[Any, ...], Any]:
    """Run `call` without a tracker, then inside one; return both outcomes."""
    untracked = outcome(call)
    with llmfy_usage_tracker() as usage:
        tracked = outcome(call)
    return untracked, tracked, usage


def warnings_of(logs: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in logs.records
        if record.name == "llmfy.openai" and record.levelno == logging.WARNING
    ]


def chat_with_usage(bodies: Any, usage: Any) -> dict[str, Any]:
    body = bodies.chat()
    body["usage"] = usage
    return body


def create_chat(client: openai.OpenAI) -> Callable[[], Any]:
    return lambda: client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )


# Chat Completions: the usage object


MALFORMED_CHAT_USAGE = [
    pytest.param(
        {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": -2},
        None,
        3,
        "usage.prompt_tokens is invalid (-5)",
        id="negative",
    ),
    pytest.param(
        {"prompt_tokens": 60, "completion_tokens": "three", "total_tokens": 63},
        60,
        None,
        "usage.completion_tokens is invalid (a string of 5 characters)",
        id="string",
    ),
    pytest.param(
        {"prompt_tokens": 12.5, "completion_tokens": 3, "total_tokens": 15.5},
        None,
        3,
        "usage.prompt_tokens is invalid (12.5)",
        id="non-integer",
    ),
    pytest.param(
        {"completion_tokens": 3, "total_tokens": 3},
        None,
        3,
        "usage.prompt_tokens is missing",
        id="count-missing",
    ),
    pytest.param(
        None,
        None,
        None,
        "usage is missing",
        id="usage-null",
    ),
    pytest.param(
        [60, 3],
        None,
        None,
        "usage is invalid (a list)",
        id="usage-list",
    ),
    pytest.param(
        "60 prompt tokens",
        None,
        None,
        "usage is invalid (a string of 16 characters)",
        id="usage-string",
    ),
]


@pytest.mark.parametrize(
    ("usage_body", "input_tokens", "output_tokens", "problem"), MALFORMED_CHAT_USAGE
)
def test_chat_malformed_usage(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    usage_body: Any,
    input_tokens: int | None,
    output_tokens: int | None,
    problem: str,
) -> None:
    body = chat_with_usage(bodies, usage_body)
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == input_tokens
    assert record.usage.output_tokens == output_tokens
    assert record.cost is None
    assert usage.totals.unknown_usage == 1
    warned = warnings_of(logs)
    assert any(problem in message for message in warned)
    assert any("openai" in message for message in warned)
    assert any("gpt-4o-mini" in message for message in warned)


def test_chat_usage_key_absent(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.chat()
    del body["usage"]
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert any("usage is missing" in message for message in warnings_of(logs))


def test_chat_cached_larger_than_input(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.chat(prompt=10, completion=3, cached=50)
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    record = usage.records[0]
    assert record.usage.input_tokens == 10
    assert record.usage.cache_read_tokens == 10
    # The 50 cached tokens are cut to the 10 input tokens they are part of:
    # 10 * 0.075 + 3 * 0.60 = 2.55 USD per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00000255")
    assert any(
        "cached_tokens is 50, more than the 10 tokens" in message
        for message in warnings_of(logs)
    )


def test_chat_reasoning_larger_than_output(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.chat(prompt=60, completion=3, reasoning=40)
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    assert usage.records[0].usage.reasoning_tokens == 3
    assert usage.records[0].usage.output_tokens == 3
    assert any("reasoning_tokens is 40" in message for message in warnings_of(logs))


def test_chat_details_of_wrong_type(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.chat(prompt=60, completion=3)
    body["usage"]["prompt_tokens_details"] = "cached"
    body["usage"]["completion_tokens_details"] = 7
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    record = usage.records[0]
    assert record.usage.input_tokens == 60
    assert record.usage.output_tokens == 3
    # 60 * 0.15 + 3 * 0.60 = 10.8 USD per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000108")
    warned = warnings_of(logs)
    assert any("usage.prompt_tokens_details is invalid" in text for text in warned)
    assert any("usage.completion_tokens_details is invalid" in text for text in warned)


def test_chat_detail_counts_malformed(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.chat(prompt=60, completion=3)
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = -4
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = "one"
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    record = usage.records[0]
    assert record.usage.cache_read_tokens == 0
    assert record.usage.reasoning_tokens == 0
    assert record.usage.input_tokens == 60
    warned = warnings_of(logs)
    assert any("cached_tokens is invalid (-4)" in text for text in warned)
    assert any("reasoning_tokens is invalid" in text for text in warned)


def test_chat_unknown_fields_ignored(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.chat(prompt=60, completion=3)
    body["usage"]["future_tokens"] = {"kind": 9}
    body["usage"]["prompt_tokens_details"]["image_tokens"] = 5
    body["billing"] = {"plan": "new"}
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    assert usage.records[0].usage.input_tokens == 60
    assert usage.records[0].cost is not None
    assert usage.records[0].cost.total == Decimal("0.0000108")
    assert warnings_of(logs) == []


def test_warning_logged_once_per_model_and_field(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = chat_with_usage(bodies, {"prompt_tokens": -1, "completion_tokens": 3})
    for _ in range(3):
        server.add_json(CHAT, body)

    with llmfy_usage_tracker() as usage:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    repeats = [
        record
        for record in logs.records
        if "usage.prompt_tokens is invalid" in record.getMessage()
    ]
    assert usage.request_count == 3
    assert [record.levelno for record in repeats] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(True, "is invalid (True)", id="boolean"),
        pytest.param("60", "is invalid (a string of 2 characters)", id="digits"),
        pytest.param(-1, "is invalid (-1)", id="negative"),
        pytest.param(1e3, "is invalid (1000.0)", id="float"),
    ],
)
def test_body_count_malformed(
    bodies: Any, logs: pytest.LogCaptureFixture, value: object, problem: str
) -> None:
    # Plain JSON bodies (Batch API output lines) are read without the SDK,
    # which would have converted "60" and True to integers.
    body = bodies.chat(prompt=60, completion=3)
    body["usage"]["prompt_tokens"] = value
    context = CallContext("openai", model="gpt-4o-mini")

    usage = usage_from_body(body, context)

    assert usage is not None
    assert usage.input_tokens is None
    assert usage.output_tokens == 3
    assert any(f"usage.prompt_tokens {problem}" in t for t in warnings_of(logs))


# Bodies the SDK cannot turn into a response object


def test_truncated_json_body(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    truncated = json.dumps(bodies.chat()).encode()[:-40]
    headers = {"content-type": "application/json", "x-request-id": "req_cut"}
    server.add_raw(CHAT, status=200, headers=headers, body=truncated)
    server.add_raw(CHAT, status=200, headers=headers, body=truncated)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert untracked[0] == "raised"
    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    warned = warnings_of(logs)
    assert any("could not be parsed: JSONDecodeError" in text for text in warned)
    assert any("gpt-4o-mini" in text for text in warned)


def parse_raw_chat(client: openai.OpenAI) -> Any:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    return raw.parse()


def parse_streamed_chat(client: openai.OpenAI) -> Any:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        return response.parse()


def read_streamed_chat(client: openai.OpenAI) -> Any:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        return response.read()


@pytest.mark.parametrize(
    "send", [parse_raw_chat, parse_streamed_chat, read_streamed_chat]
)
def test_truncated_json_body_in_wrapper(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    send: Callable[[openai.OpenAI], Any],
) -> None:
    truncated = json.dumps(bodies.chat()).encode()[:-40]
    headers = {"content-type": "application/json"}
    server.add_raw(CHAT, status=200, headers=headers, body=truncated)
    server.add_raw(CHAT, status=200, headers=headers, body=truncated)

    untracked, tracked, usage = untracked_then_tracked(lambda: send(client))

    assert tracked == untracked
    assert len(server.requests) == 2
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.records[0].usage.output_tokens is None
    assert usage.totals.unknown_usage == 1
    warned = warnings_of(logs)
    assert any("could not be parsed: JSONDecodeError" in text for text in warned)


def test_body_not_json_object(
    server: Any, client: openai.OpenAI, logs: pytest.LogCaptureFixture
) -> None:
    server.add_raw(
        CHAT, status=200, headers={"content-type": "application/json"}, body=b"[1, 2]"
    )
    server.add_raw(
        CHAT, status=200, headers={"content-type": "application/json"}, body=b"[1, 2]"
    )

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked == ("returned", list, [1, 2])
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert any("body of type list" in text for text in warnings_of(logs))


@pytest.mark.parametrize(
    ("value", "converted"),
    [
        pytest.param(True, 1, id="boolean"),
        pytest.param("12", 12, id="digits"),
        pytest.param(12.0, 12, id="whole-float"),
    ],
)
@pytest.mark.skipif(
    pydantic.VERSION.startswith("1."),
    reason="with pydantic 1 the SDK keeps each count as sent, and llmfy reports "
    "it as invalid, as test_chat_malformed_usage checks",
)
def test_chat_count_converted_by_sdk(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    value: object,
    converted: int,
) -> None:
    # The SDK converts these values before llmfy reads its object, so llmfy
    # counts the number that the application receives and cannot warn.
    body = bodies.chat(prompt=60, completion=20, cached=0, reasoning=0)
    body["usage"]["prompt_tokens"] = value
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = value
    server.add_json(CHAT, body)
    server.add_json(CHAT, body)

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert tracked == untracked
    assert untracked[2]["usage"]["prompt_tokens"] == converted
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == converted
    assert usage.records[0].usage.reasoning_tokens == converted
    assert warnings_of(logs) == []


def long_count_body(bodies: Any) -> bytes:
    """Return a chat body whose prompt_tokens has 5,000 digits.

    Python's JSON decoder rejects an integer of more than 4,300 digits (the
    default of `sys.set_int_max_str_digits`) with a plain ValueError.
    """
    body = json.dumps(bodies.chat(prompt=60)).encode()
    return body.replace(b'"prompt_tokens": 60', b'"prompt_tokens": ' + b"9" * 5000)


def test_json_integer_too_long(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    headers = {"content-type": "application/json", "x-request-id": "req_long"}
    server.add_raw(CHAT, status=200, headers=headers, body=long_count_body(bodies))
    server.add_raw(CHAT, status=200, headers=headers, body=long_count_body(bodies))

    untracked, tracked, usage = untracked_then_tracked(create_chat(client))

    assert untracked[0] == "raised"
    assert untracked[1] is ValueError
    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.cost_complete is False
    warned = warnings_of(logs)
    assert any("could not be parsed: ValueError" in text for text in warned)


def test_error_status_not_counted(server: Any, client: openai.OpenAI) -> None:
    error = {"error": {"message": "Rate limit reached", "type": "requests"}}
    server.add_raw(
        CHAT,
        status=429,
        headers={"content-type": "application/json"},
        body=json.dumps(error).encode(),
    )

    with llmfy_usage_tracker() as usage, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert usage.request_count == 0


@pytest.mark.parametrize(
    ("body_of", "error"),
    [
        pytest.param(
            lambda bodies: json.dumps(bodies.chat()).encode()[:-40],
            json.JSONDecodeError,
            id="truncated",
        ),
        pytest.param(long_count_body, ValueError, id="integer-too-long"),
    ],
)
def test_async_unparsed_json_body(
    server: Any,
    async_client: openai.AsyncOpenAI,
    bodies: Any,
    body_of: Callable[[Any], bytes],
    error: type[Exception],
) -> None:
    import asyncio

    server.add_raw(
        CHAT,
        status=200,
        headers={"content-type": "application/json"},
        body=body_of(bodies),
    )

    async def main() -> Any:
        with llmfy_usage_tracker() as usage:
            with pytest.raises(error):
                await async_client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )
        await async_client.close()
        return usage

    usage = asyncio.run(main())

    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None


# Streams


def stream_chat(client: openai.OpenAI) -> Callable[[], Any]:
    def run() -> list[Any]:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        return [dump(chunk) for chunk in stream]

    return run


def test_stream_usage_chunk_malformed(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    bad_usage = {"prompt_tokens": "twelve", "completion_tokens": 5}
    events = [
        bodies.chunk("Par"),
        bodies.chunk(None, finish="stop"),
        bodies.chunk(None, usage=bad_usage),
        "[DONE]",
    ]
    server.add_sse(CHAT, events)
    server.add_sse(CHAT, events)

    untracked, tracked, usage = untracked_then_tracked(stream_chat(client))

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.records[0].usage.output_tokens == 5
    assert any("usage.prompt_tokens is invalid" in text for text in warnings_of(logs))


def test_stream_truncated_event(
    server: Any, client: openai.OpenAI, bodies: Any
) -> None:
    cut = json.dumps(bodies.chunk(None, usage=bodies.chunk_usage(12, 5)))[:-30]
    events = [bodies.chunk("Par"), cut, "[DONE]"]
    server.add_sse(CHAT, events)
    server.add_sse(CHAT, events)

    untracked, tracked, usage = untracked_then_tracked(stream_chat(client))

    assert untracked[0] == "raised"
    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None


# Responses and Embeddings


def test_responses_parts_larger_than_totals(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.response(input_tokens=100, output_tokens=50, reasoning=80)
    body["usage"]["input_tokens_details"]["cached_tokens"] = -1
    server.add_json(RESPONSES, body)
    server.add_json(RESPONSES, body)

    def create() -> Any:
        return client.responses.create(model="gpt-5", input="What is 2+2?")

    untracked, tracked, usage = untracked_then_tracked(create)

    assert tracked == untracked
    record = usage.records[0].usage
    assert record.input_tokens == 100
    assert record.cache_read_tokens == 0
    assert record.reasoning_tokens == 50
    # gpt-5: 100 * 1.25 + 50 * 10.00 = 625 USD per million tokens.
    assert usage.total_cost == Decimal("0.000625")
    warned = warnings_of(logs)
    assert any("input_tokens_details.cached_tokens is invalid" in t for t in warned)
    assert any("reasoning_tokens is 80, more than the 50" in t for t in warned)


def test_responses_negative_tool_count_ignored(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    search = {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search"},
    }
    body = bodies.response(
        output=[search], tool_usage={"web_search": {"num_requests": -3}}
    )
    server.add_json(RESPONSES, body)
    server.add_json(RESPONSES, body)

    def create() -> Any:
        return client.responses.create(model="gpt-5", input="Search the news")

    untracked, tracked, usage = untracked_then_tracked(create)

    assert tracked == untracked
    # The invalid reported count is ignored and the one search item counts.
    assert dict(usage.records[0].usage.tool_calls) == {"web_search": 1}
    assert any(
        "tool_usage.web_search.num_requests is invalid (-3)" in text
        for text in warnings_of(logs)
    )


def test_embeddings_count_malformed(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    body = bodies.embeddings()
    body["usage"]["prompt_tokens"] = "8"
    server.add_json(EMBEDDINGS, body)
    server.add_json(EMBEDDINGS, body)

    def create() -> Any:
        return client.embeddings.create(model="text-embedding-3-small", input="hi")

    untracked, tracked, usage = untracked_then_tracked(create)

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert any("text-embedding-3-small" in text for text in warnings_of(logs))


# Responses streams


def stream_responses(client: openai.OpenAI) -> Callable[[], Any]:
    def run() -> list[Any]:
        stream = client.responses.create(model="gpt-5", input="Hi", stream=True)
        return [(type(event), getattr(event, "type", None)) for event in stream]

    return run


def stream_responses_async(server: Any) -> Callable[[], Any]:
    import asyncio

    async def read() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="test", max_retries=0
        ) as client:
            stream = await client.responses.create(
                model="gpt-5", input="Hi", stream=True
            )
            return [
                (type(event), getattr(event, "type", None)) async for event in stream
            ]

    return lambda: asyncio.run(read())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    "event_type",
    [["response.created"], {"name": "response.created"}],
    ids=["list", "object"],
)
def test_responses_event_type_unhashable(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    event_type: object,
    is_async: bool,
) -> None:
    # The SDK passes an event whose `type` is not a string to the caller unchanged.
    events = bodies.response_events(bodies.response())
    events.insert(1, {"type": event_type, "sequence_number": 1})
    server.add_sse(RESPONSES, events)
    server.add_sse(RESPONSES, events)
    run = stream_responses_async(server) if is_async else stream_responses(client)

    untracked, tracked, usage = untracked_then_tracked(run)

    assert untracked[0] == "returned"
    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 100
    assert usage.records[0].usage.output_tokens == 50


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", 123),
        ("model", ["gpt-4o-mini"]),
        ("service_tier", 5),
        ("service_tier", {"name": "default"}),
    ],
    ids=repr,
)
def test_stream_invalid_model_or_tier(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    field: str,
    value: object,
) -> None:
    # A stream without usage drops and logs an invalid `model` or
    # `service_tier`, as a whole response does, and the request is counted.
    chunks = [bodies.chunk("Par"), bodies.chunk(None, finish="stop")]
    for chunk in chunks:
        chunk[field] = value
    server.add_sse(CHAT, [*chunks, "[DONE]"])
    server.add_sse(CHAT, [*chunks, "[DONE]"])

    untracked, tracked, usage = untracked_then_tracked(stream_chat(client))

    assert tracked == untracked
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.fault is None
    assert record.usage.operation == "chat.completions"
    assert record.usage.input_tokens is None
    served = None if field == "model" else "gpt-4o-mini-2024-07-18"
    tier = None if field == "service_tier" else "default"
    assert record.usage.served_model == served
    assert record.usage.service_tier == tier
    assert not any("price_lookup" in text for text in logs.messages)
    assert any(f"field {field} is invalid" in text for text in warnings_of(logs))


def test_stream_ended_without_usage_chunk(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    # The request sets include_usage, and the stream ends without the usage
    # chunk, as through a proxy or an API version that drops it.
    events = [bodies.chunk("Par"), bodies.chunk(None, finish="stop"), "[DONE]"]
    server.add_sse(CHAT, events)
    server.add_sse(CHAT, events)

    untracked, tracked, usage = untracked_then_tracked(stream_chat(client))

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    warned = [text for text in warnings_of(logs) if "gpt-4o-mini" in text]
    assert any("ended without the usage chunk" in text for text in warned)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_responses_stream_without_final_event(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    is_async: bool,
) -> None:
    events = bodies.response_events(bodies.response())[:-1]
    server.add_sse(RESPONSES, events)
    server.add_sse(RESPONSES, events)
    run = stream_responses_async(server) if is_async else stream_responses(client)

    untracked, tracked, usage = untracked_then_tracked(run)

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    warned = [text for text in warnings_of(logs) if "gpt-5" in text]
    assert any("ended without its final event" in text for text in warned)


def test_stream_closed_early_not_warned(
    server: Any, client: openai.OpenAI, bodies: Any, logs: pytest.LogCaptureFixture
) -> None:
    # Closing a stream before its end is the caller's choice, so only the
    # record shows the unknown usage.
    events = [bodies.chunk("Par"), bodies.chunk(None, finish="stop"), "[DONE]"]
    server.add_sse(CHAT, events)

    with llmfy_usage_tracker() as usage:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options=INCLUDE_USAGE,
        )
        with stream:
            next(iter(stream))

    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert warnings_of(logs) == []


@pytest.mark.parametrize("output", [1.5, 7, True, "message"], ids=repr)
@pytest.mark.parametrize("raw", [False, True], ids=["object", "raw"])
def test_responses_output_not_list(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    output: object,
    raw: bool,
) -> None:
    body = bodies.response(input_tokens=100, output_tokens=50)
    body["output"] = output
    server.add_json(RESPONSES, body)
    server.add_json(RESPONSES, body)
    responses = client.responses.with_raw_response if raw else client.responses

    def create() -> Any:
        return responses.create(model="gpt-5", input="What is 2+2?")

    untracked, tracked, usage = untracked_then_tracked(create)

    assert tracked[0] == untracked[0]
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.fault is None
    assert record.usage.input_tokens == 100
    assert record.usage.output_tokens == 50
    assert dict(record.usage.tool_calls) == {}
    warned = [text for text in warnings_of(logs) if "gpt-5" in text]
    assert any("field output is invalid" in text for text in warned)


def completion_body() -> dict[str, Any]:
    return {
        "id": "cmpl-test",
        "object": "text_completion",
        "created": 1_780_000_000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [
            {"text": "Paris.", "index": 0, "logprobs": None, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 3, "total_tokens": 63},
    }


@pytest.mark.parametrize("object_field", ["missing", None, "chat.completion.v2", 5])
@pytest.mark.parametrize("operation", ["chat", "completions", "embeddings"])
def test_raw_body_without_known_object(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    object_field: object,
    operation: str,
) -> None:
    # A parsed response is read by its SDK type, whatever its `object`, so a
    # raw body is read by the operation of the request's path.
    if operation == "chat":
        body, path = bodies.chat(prompt=60, completion=3), CHAT
    elif operation == "completions":
        body, path = completion_body(), "/v1/completions"
    else:
        body, path = bodies.embeddings(prompt=60), EMBEDDINGS
    if object_field == "missing":
        del body["object"]
    else:
        body["object"] = object_field
    server.add_json(path, body)
    server.add_json(path, body)

    with llmfy_usage_tracker() as usage:
        for sdk in (client, client.with_raw_response):
            if operation == "chat":
                sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            elif operation == "completions":
                sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
            else:
                sdk.embeddings.create(
                    model="text-embedding-3-small", input="Hi", encoding_format="float"
                )

    plain, raw = usage.records
    assert raw.fault is None
    assert raw.usage.operation == plain.usage.operation
    assert raw.usage.input_tokens == 60
    assert raw.usage.output_tokens == plain.usage.output_tokens
    assert raw.cost == plain.cost


@pytest.mark.parametrize("event_type", [["chat"], {"name": "chat"}], ids=repr)
def test_raw_body_with_unhashable_type(
    server: Any, client: openai.OpenAI, bodies: Any, event_type: object
) -> None:
    # usage_from_body checks `type` to find a Responses stream event read as a body.
    body = bodies.chat(prompt=60, completion=3)
    body["type"] = event_type
    server.add_json(CHAT, body)

    with llmfy_usage_tracker() as usage:
        client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )

    record = usage.records[0]
    assert record.fault is None
    assert record.usage.input_tokens == 60
    assert record.usage.output_tokens == 3


@pytest.mark.parametrize("answers", [None, 5, "yes", {}], ids=repr)
def test_raw_decision_with_invalid_answers(
    server: Any, client: openai.OpenAI, bodies: Any, answers: object
) -> None:
    body = bodies.decision(input_tokens=900, output_tokens=12)
    body["answers"] = answers
    server.add_json("/v1/decisions", body)

    with llmfy_usage_tracker() as usage:
        client.decisions.with_raw_response.create(
            model="gpt-6-luna", input="I want my money back.", questions=[]
        )

    record = usage.records[0]
    assert record.fault is None
    assert record.usage.operation == "decisions"
    assert record.usage.input_tokens == 900
    assert record.usage.output_tokens == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", 123), ("model", ["gpt-4o-mini"]), ("service_tier", 5)],
    ids=repr,
)
@pytest.mark.parametrize("operation", ["chat", "responses", "embeddings"])
@pytest.mark.parametrize("raw", [False, True], ids=["object", "raw"])
def test_invalid_model_or_tier_logged(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    field: str,
    value: object,
    operation: str,
    raw: bool,
) -> None:
    if operation == "chat":
        body, path = bodies.chat(prompt=60, completion=3), CHAT
    elif operation == "responses":
        body, path = bodies.response(input_tokens=60, output_tokens=3), RESPONSES
    else:
        body, path = bodies.embeddings(prompt=60), EMBEDDINGS
    body[field] = value
    server.add_json(path, body)
    sdk = client.with_raw_response if raw else client

    with llmfy_usage_tracker() as usage:
        if operation == "chat":
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        elif operation == "responses":
            sdk.responses.create(model="gpt-4o-mini", input="Hi")
        else:
            sdk.embeddings.create(
                model="text-embedding-3-small", input="Hi", encoding_format="float"
            )

    record = usage.records[0]
    assert record.fault is None
    assert record.usage.input_tokens == 60
    assert record.usage.served_model != value
    assert record.usage.service_tier != value
    warned = warnings_of(logs)
    assert any(f"field {field} is invalid" in text for text in warned)


@pytest.mark.parametrize("final_response", ["done", 7, [1, 2]], ids=repr)
def test_responses_final_event_not_object(
    server: Any,
    client: openai.OpenAI,
    bodies: Any,
    logs: pytest.LogCaptureFixture,
    final_response: object,
) -> None:
    events = bodies.response_events(bodies.response())
    events[-1]["response"] = final_response
    server.add_sse(RESPONSES, events)
    server.add_sse(RESPONSES, events)

    untracked, tracked, usage = untracked_then_tracked(stream_responses(client))

    assert tracked == untracked
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.fault is None
    assert record.usage.input_tokens is None
    kind = type(final_response).__name__
    warned = [text for text in warnings_of(logs) if "gpt-5" in text]
    assert any(f"response of type {kind}" in text for text in warned)
