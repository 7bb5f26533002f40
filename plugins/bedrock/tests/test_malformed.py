"""Malformed Bedrock responses, sent to a real boto3 client over HTTP on 127.0.0.1.

Each case serves the same reply twice: once with no tracker active and once
inside a tracker. The caller must get the same response (or the same
exception) both times, the tracker must count the request once with the
counts that could be read, and `llmfy.bedrock` must log the operation,
model, region and field at fault.

Costs are worked out from the bundled table, in USD per million tokens.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError
from llmfy_bedrock import checks

from llmfy_core import llmfy_usage_tracker

from .botocore_support import cache_ttl, prompt_caching

MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]
NOVA_MICRO = "amazon.nova-micro-v1:0"
HAIKU_3 = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def fresh_log_memory() -> Iterator[None]:
    """Forget which problems were logged, so that each test gets its WARNING."""
    checks._logged.clear()
    yield
    checks._logged.clear()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="llmfy")
    return caplog


def warnings_of(logs: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage()
        for record in logs.records
        if record.name == "llmfy.bedrock" and record.levelno == logging.WARNING
    )


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """Run `call` and return what the caller saw, without per-response metadata."""
    try:
        result = call()
    except Exception as error:
        return ("raised", type(error), str(error))
    if isinstance(result, dict):
        result = {
            key: value for key, value in result.items() if key != "ResponseMetadata"
        }
    return ("returned", result)


def untracked_then_tracked(
    call: Callable[[], Any],
) -> tuple[tuple[Any, ...], tuple[Any, ...], Any]:
    """Run `call` without a tracker, then inside one; return both outcomes."""
    untracked = outcome(call)
    with llmfy_usage_tracker() as usage:
        tracked = outcome(call)
    return untracked, tracked, usage


def converse_body(usage: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
        "stopReason": "end_turn",
        "metrics": {"latencyMs": 120},
    }
    if usage is not None:
        body["usage"] = usage
    return body


# Converse


@pytest.mark.parametrize(
    ("usage_body", "input_tokens", "output_tokens", "problem"),
    [
        pytest.param(
            {"inputTokens": 8, "outputTokens": -3, "totalTokens": 5},
            None,
            None,
            "field usage.outputTokens is invalid (-3)",
            id="negative",
        ),
        pytest.param(
            {"outputTokens": 3, "totalTokens": 3},
            None,
            None,
            "field usage.inputTokens is missing",
            id="count-missing",
        ),
        pytest.param(None, None, None, "field usage is missing", id="usage-missing"),
        pytest.param(
            {"inputTokens": 8, "outputTokens": 10, "cacheReadInputTokens": -100},
            8,
            10,
            "field usage.cacheReadInputTokens is invalid (-100)",
            id="negative-cache-read",
            marks=prompt_caching,
        ),
    ],
)
def test_converse_malformed_usage(
    bedrock_server: Any,
    make_client: Any,
    logs: pytest.LogCaptureFixture,
    usage_body: Any,
    input_tokens: int | None,
    output_tokens: int | None,
    problem: str,
) -> None:
    client = make_client()
    for _ in range(2):
        bedrock_server.queue_json(converse_body(usage_body))

    untracked, tracked, usage = untracked_then_tracked(
        lambda: client.converse(modelId=NOVA_MICRO, messages=MESSAGES)
    )

    assert tracked == untracked
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == input_tokens
    assert record.usage.output_tokens == output_tokens
    assert record.usage.cache_read_tokens == 0
    warned = warnings_of(logs)
    assert problem in warned
    assert "bedrock Converse" in warned
    assert NOVA_MICRO in warned
    assert "us-east-1" in warned


def test_converse_negative_cache_read_still_priced(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "cacheReadInputTokens": -100}
    bedrock_server.queue_json(converse_body(usage_body))

    with llmfy_usage_tracker() as usage:
        client.converse(modelId=NOVA_MICRO, messages=MESSAGES)

    # Nova Micro in us-east-1: 0.035 in, 0.14 out; the invalid cache count is 0.
    # 8 * 0.035 + 10 * 0.14 = 0.28 + 1.4 = 1.68 -> 0.00000168 USD
    assert usage.total_cost == Decimal("0.00000168")


def test_converse_unknown_fields_ignored(
    bedrock_server: Any, make_client: Any, logs: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    usage_body = {
        "inputTokens": 8,
        "outputTokens": 10,
        "totalTokens": 18,
        "futureTokens": {"kind": 4},
    }
    body = {**converse_body(usage_body), "billing": {"plan": "new"}}
    for _ in range(2):
        bedrock_server.queue_json(body)

    untracked, tracked, usage = untracked_then_tracked(
        lambda: client.converse(modelId=NOVA_MICRO, messages=MESSAGES)
    )

    assert tracked == untracked
    assert usage.records[0].usage.input_tokens == 8
    assert usage.total_cost == Decimal("0.00000168")
    assert warnings_of(logs) == ""


@pytest.mark.parametrize(
    "usage_body",
    [
        pytest.param({"inputTokens": "eight", "outputTokens": 10}, id="text-count"),
        pytest.param(
            {"inputTokens": 8, "outputTokens": 10, "cacheDetails": 5},
            id="cache-details-not-list",
            marks=cache_ttl,
        ),
    ],
)
def test_converse_botocore_cannot_parse(
    bedrock_server: Any,
    make_client: Any,
    logs: pytest.LogCaptureFixture,
    usage_body: Any,
) -> None:
    client = make_client()
    for _ in range(2):
        bedrock_server.queue_json(converse_body(usage_body))

    untracked, tracked, usage = untracked_then_tracked(
        lambda: client.converse(modelId=NOVA_MICRO, messages=MESSAGES)
    )

    assert untracked[0] == "raised"
    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert "botocore could not parse" in (usage.records[0].fault or "")
    assert "botocore could not parse the response" in warnings_of(logs)


def test_converse_truncated_json(
    bedrock_server: Any, make_client: Any, logs: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    whole = json.dumps(converse_body({"inputTokens": 8, "outputTokens": 10})).encode()
    for _ in range(2):
        bedrock_server.queue_recorded(
            200, {"Content-Type": "application/json"}, whole[:-25], stream=False
        )

    untracked, tracked, usage = untracked_then_tracked(
        lambda: client.converse(modelId=NOVA_MICRO, messages=MESSAGES)
    )

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert "field usage is missing" in warnings_of(logs)


def test_converse_error_status_not_counted(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    bedrock_server.queue_error(429, "ThrottlingException", "Too many requests")

    with llmfy_usage_tracker() as usage, pytest.raises(Exception, match="Too many"):
        client.converse(modelId=NOVA_MICRO, messages=MESSAGES)

    assert usage.request_count == 0


# InvokeModel: token headers are strings


ANTHROPIC_BODY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 20, "output_tokens": 7},
}


def invoke(client: Any, model: str = HAIKU_3) -> Callable[[], Any]:
    def call() -> dict[str, Any]:
        response = client.invoke_model(modelId=model, body=b'{"messages": []}')
        return {"body": response["body"].read(), "type": response["contentType"]}

    return call


@pytest.mark.parametrize(
    ("header", "value", "shown"),
    [
        pytest.param("Input", "abc", "a string of 3 characters", id="text"),
        pytest.param("Input", "-5", "a string of 2 characters", id="negative"),
        pytest.param("Input", "12.0", "a string of 4 characters", id="decimal"),
        pytest.param("Input", "\u00b2", "a string of 1 characters", id="superscript"),
        pytest.param("Input", "9" * 5000, "a string of 5000 characters", id="huge"),
        pytest.param("Output", "ten", "a string of 3 characters", id="output-text"),
        pytest.param(
            "Cache-Read-Input", "x", "a string of 1 characters", id="cache-read-text"
        ),
    ],
)
def test_invoke_garbage_header_falls_back_to_body(
    bedrock_server: Any,
    make_client: Any,
    logs: pytest.LogCaptureFixture,
    header: str,
    value: str,
    shown: str,
) -> None:
    client = make_client()
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "20",
        "X-Amzn-Bedrock-Output-Token-Count": "7",
        f"X-Amzn-Bedrock-{header}-Token-Count": value,
    }
    for _ in range(2):
        bedrock_server.queue_json(ANTHROPIC_BODY, headers)

    untracked, tracked, usage = untracked_then_tracked(invoke(client))

    assert tracked == untracked
    assert json.loads(tracked[1]["body"]) == ANTHROPIC_BODY
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 20
    assert record.usage.output_tokens == 7
    # Claude 3 Haiku in us-east-1: 0.25 in, 1.25 out, from the body's counts.
    # 20 * 0.25 + 7 * 1.25 = 5 + 8.75 = 13.75 -> 0.00001375 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00001375")
    warned = warnings_of(logs)
    expected = f"header x-amzn-bedrock-{header.lower()}-token-count is invalid"
    assert f"{expected} ({shown})" in warned
    assert HAIKU_3 in warned


def test_invoke_garbage_headers_and_truncated_body(
    bedrock_server: Any, make_client: Any, logs: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    cut = json.dumps(ANTHROPIC_BODY).encode()[:-30]
    headers = {
        "Content-Type": "application/json",
        "X-Amzn-Bedrock-Input-Token-Count": "lots",
    }
    for _ in range(2):
        bedrock_server.queue_recorded(200, headers, cut, stream=False)

    untracked, tracked, usage = untracked_then_tracked(invoke(client))

    assert tracked == untracked
    assert tracked[1]["body"] == cut
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    warned = warnings_of(logs)
    assert "field body is not valid JSON" in warned
    assert "token counts are missing" in warned


def test_invoke_body_cut_short_reads_the_same(
    bedrock_server: Any, make_client: Any
) -> None:
    # With a cache write header, llmfy reads the body for the 1-hour writes.
    # A caller reading in pieces must then get the same bytes, then the same
    # error, as without llmfy.
    client = make_client()
    body = json.dumps(ANTHROPIC_BODY).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Amzn-Bedrock-Input-Token-Count": "20",
        "X-Amzn-Bedrock-Output-Token-Count": "7",
        "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": "100",
    }
    for _ in range(2):
        bedrock_server.queue_cut(headers, body, cut_at=40)

    def read_in_pieces() -> tuple[Any, ...]:
        response = client.invoke_model(modelId=HAIKU_3, body=b'{"messages": []}')
        received = b""
        try:
            while piece := response["body"].read(16):
                received += piece
        except Exception as error:
            return (received, type(error).__name__)
        return (received, None)

    def read_all() -> str:
        response = client.invoke_model(modelId=HAIKU_3, body=b'{"messages": []}')
        try:
            response["body"].read()
        except BotoCoreError as error:
            return type(error).__name__
        return "no error"

    untracked, tracked, usage = untracked_then_tracked(read_in_pieces)

    assert tracked == untracked
    received, piece_error = tracked[1]
    assert received == body[:40]
    # botocore 1.44 raises IncompleteReadError here, and botocore 1.35.0,
    # 1.36.0, 1.38.0 and 1.40.0 with urllib3 2.8 raise ResponseStreamingError.
    assert piece_error in ("IncompleteReadError", "ResponseStreamingError")
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 120
    # Read at once, the body raises botocore's error of a read in pieces.
    for _ in range(2):
        bedrock_server.queue_cut(headers, body, cut_at=40)
    untracked, tracked, _ = untracked_then_tracked(read_all)
    assert untracked == ("returned", "ResponseStreamingError")
    assert tracked == ("returned", piece_error)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(
            {**ANTHROPIC_BODY, "usage": {"input_tokens": -20, "output_tokens": 7}},
            "field usage.input_tokens is invalid (-20)",
            id="anthropic-negative",
        ),
        pytest.param(
            {"inputTextTokenCount": "five", "results": [{"tokenCount": 3}]},
            "field inputTextTokenCount is invalid (a string of 4 characters)",
            id="titan-text",
        ),
        pytest.param(
            {"inputTextTokenCount": 5, "results": [{"outputText": "Hi"}]},
            "field results[].tokenCount is missing",
            id="titan-output-missing",
        ),
        pytest.param(
            {"inputTextTokenCount": 5, "results": "Hi"},
            "field results is invalid (a string of 2 characters)",
            id="titan-results-text",
        ),
        pytest.param(
            {
                "generation": "Hi",
                "prompt_token_count": 1.5,
                "generation_token_count": 3,
            },
            "field body.prompt_token_count is invalid (1.5)",
            id="llama-float",
        ),
        pytest.param([1, 2], "field body is invalid (a list)", id="body-list"),
    ],
)
def test_invoke_malformed_body_without_headers(
    bedrock_server: Any,
    make_client: Any,
    logs: pytest.LogCaptureFixture,
    body: Any,
    problem: str,
) -> None:
    client = make_client()
    for _ in range(2):
        bedrock_server.queue_recorded(
            200, {"Content-Type": "application/json"}, json.dumps(body).encode(), False
        )

    untracked, tracked, usage = untracked_then_tracked(invoke(client))

    assert tracked == untracked
    assert json.loads(tracked[1]["body"]) == body
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert problem in warnings_of(logs)


# Streams


def converse_stream(client: Any) -> Callable[[], Any]:
    def call() -> list[Any]:
        response = client.converse_stream(modelId=NOVA_MICRO, messages=MESSAGES)
        return list(response["stream"])

    return call


def invoke_stream(client: Any) -> Callable[[], Any]:
    def call() -> list[Any]:
        response = client.invoke_model_with_response_stream(
            modelId=HAIKU_3, body=b'{"messages": []}'
        )
        return [event["chunk"]["bytes"] for event in response["body"]]

    return call


def stream_frames(frames: Any, usage_body: Any) -> list[bytes]:
    return [
        frames.event("messageStart", {"role": "assistant"}),
        frames.event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}
        ),
        frames.event("messageStop", {"stopReason": "end_turn"}),
        frames.event("metadata", {"usage": usage_body, "metrics": {"latencyMs": 1}}),
    ]


def test_converse_stream_negative_usage(
    bedrock_server: Any, make_client: Any, frames: Any, logs: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    usage_body = {"inputTokens": -8, "outputTokens": 10, "totalTokens": 2}
    for _ in range(2):
        bedrock_server.queue_stream(stream_frames(frames, usage_body))

    untracked, tracked, usage = untracked_then_tracked(converse_stream(client))

    assert tracked == untracked
    assert len(tracked[1]) == 4
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert "field usage.inputTokens is invalid (-8)" in warnings_of(logs)


@pytest.mark.parametrize("broken_at", [1, 3])
def test_converse_stream_broken_frame(
    bedrock_server: Any,
    make_client: Any,
    frames: Any,
    logs: pytest.LogCaptureFixture,
    broken_at: int,
) -> None:
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    sent = stream_frames(frames, usage_body)
    broken = bytearray(sent[broken_at])
    broken[-1] ^= 0xFF  # the message checksum no longer matches
    sent[broken_at] = bytes(broken)
    for _ in range(2):
        bedrock_server.queue_stream(sent)

    untracked, tracked, usage = untracked_then_tracked(converse_stream(client))

    assert untracked[0] == "raised"
    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    warned = warnings_of(logs)
    assert "broken event-stream frame (ChecksumMismatch)" in warned
    assert NOVA_MICRO in warned


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [
        pytest.param(
            {"inputTokenCount": "twenty", "outputTokenCount": 7},
            "field amazon-bedrock-invocationMetrics.inputTokenCount is invalid "
            "(a string of 6 characters)",
            id="input-text",
        ),
        pytest.param(
            {"inputTokenCount": 20},
            "field amazon-bedrock-invocationMetrics.outputTokenCount is missing",
            id="output-missing",
        ),
        pytest.param(
            {"inputTokenCount": 20, "outputTokenCount": "seven"},
            "field amazon-bedrock-invocationMetrics.outputTokenCount is invalid "
            "(a string of 5 characters)",
            id="output-text",
        ),
    ],
)
def test_invoke_stream_garbage_metrics(
    bedrock_server: Any,
    make_client: Any,
    frames: Any,
    logs: pytest.LogCaptureFixture,
    metrics: dict[str, Any],
    problem: str,
) -> None:
    # The model's own message_start and message_delta give the counts instead.
    client = make_client()
    chunks = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 20}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "message_delta",
            "usage": {"output_tokens": 7},
            "amazon-bedrock-invocationMetrics": metrics,
        },
    ]
    for _ in range(2):
        bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    untracked, tracked, usage = untracked_then_tracked(invoke_stream(client))

    assert tracked == untracked
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 20
    assert record.usage.output_tokens == 7
    # Claude 3 Haiku in us-east-1: 0.25 in, 1.25 out.
    # 20 * 0.25 + 7 * 1.25 = 5 + 8.75 = 13.75 -> 0.00001375 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00001375")
    warned = warnings_of(logs)
    assert problem in warned
    assert HAIKU_3 in warned


def test_invoke_stream_chunk_nested_too_deep(
    bedrock_server: Any, make_client: Any, frames: Any, logs: pytest.LogCaptureFixture
) -> None:
    # Decoding this chunk raises RecursionError, not ValueError. botocore
    # passes its bytes on undecoded, so the caller must get them as without
    # llmfy, and the request is counted with unknown usage.
    client = make_client()
    nested = b"[" * 100_000 + b"]" * 100_000
    deep = b'{"amazon-bedrock-invocationMetrics": {}, "x": %s}' % nested
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 20}}}
    sent = [
        frames.chunk(start),
        frames.event("chunk", {"bytes": base64.b64encode(deep).decode(), "p": "a"}),
    ]
    for _ in range(2):
        bedrock_server.queue_stream(sent)

    untracked, tracked, usage = untracked_then_tracked(invoke_stream(client))

    assert untracked[0] == "returned"
    assert tracked == untracked
    assert tracked[1][1] == deep
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert HAIKU_3 in warnings_of(logs)


def test_invoke_stream_chunk_not_json(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    metrics = {"inputTokenCount": 20, "outputTokenCount": 7}
    cut = base64.b64encode(b'{"type": "content_block_del').decode()
    sent = [
        frames.event("chunk", {"bytes": cut, "p": "abc"}),
        frames.chunk(
            {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}
        ),
    ]
    for _ in range(2):
        bedrock_server.queue_stream(sent)

    untracked, tracked, usage = untracked_then_tracked(invoke_stream(client))

    assert tracked == untracked
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 20
    assert usage.records[0].usage.output_tokens == 7
