"""Serve OpenAI and Bedrock replies on 127.0.0.1, for the documentation's examples.

Run it, then point the SDKs at it through their environment variables:

    python examples/serve_replies.py --port 8000
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=test
    export AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:8000
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    export AWS_DEFAULT_REGION=us-east-1

Each request gets a reply of its own kind with the token counts of
`DEFAULT_REPLIES`, such as 60 input and 3 output tokens for a Chat
Completion. As from OpenAI, a Chat Completions stream has a usage chunk only
when the request sets `stream_options={"include_usage": True}`. Reply names
given on the command line are served first, in order,
per provider. The names are these: `openai:IN/OUT` is a Chat Completions body
for gpt-4o-mini,
`openai-stream:IN/OUT` its stream with the usage chunk, `openai-stream:none`
a stream without usage, `responses:IN/OUT` and `responses-stream:IN/OUT` a
Responses API body and stream, `embeddings:IN` an Embeddings body,
`decisions:IN/OUT` a Decisions body of gpt-6-luna with 400 input tokens cached,
`bedrock:IN/OUT` a Converse body, `bedrock-stream:IN/OUT` a ConverseStream,
`invoke:IN/OUT` an InvokeModel reply of Mistral 7B Instruct whose token
counts are only in the headers, `invoke-stream:IN/OUT` an
InvokeModelWithResponseStream reply of Amazon Nova Lite, and `fixture:NAME`
the file `examples/fixtures/NAME.json`. The documentation's tests build their
replies with `make_reply`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import time
from typing import Any

from replay_server import FIXTURES, RecordedRequest, ReplayServer, Reply, load_fixture

# How long the server runs unless stopped with Ctrl-C, in minutes.
DEFAULT_MINUTES = 15.0

# Dummy credentials and a Region for boto3. Without them it raises
# NoRegionError, or looks for credentials elsewhere, such as the EC2
# instance metadata service.
AWS_TEST_SETTINGS = (
    "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
)

# The reply to each kind of request when none is queued, by route and
# operation: the last part of the request's path, with "-stream" added for
# a streamed OpenAI request.
DEFAULT_REPLIES = {
    "chat/completions": "openai:60/3",
    "chat/completions-stream": "openai-stream:14/2",
    "responses": "responses:12/2",
    "responses-stream": "responses-stream:15/2",
    "embeddings": "embeddings:8",
    "decisions": "decisions:900/12",
    "converse": "bedrock:50/8",
    "converse-stream": "bedrock-stream:52/9",
    "invoke": "invoke:19/3",
    "invoke-with-response-stream": "invoke-stream:21/3",
}


CREATED = 1767225600


def chat_body(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-docs{prompt}x{completion}",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris."},
                "finish_reason": "stop",
            }
        ],
        "usage": chat_usage(prompt, completion),
    }


def chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def chat_chunks(usage: tuple[int, int] | None) -> list[dict[str, Any]]:
    """A Chat Completions stream; the last chunk carries `usage` when given."""

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-docs-stream",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": None,
        }

    chunks = [
        chunk({"role": "assistant", "content": ""}, None),
        chunk({"content": "Paris"}, None),
        chunk({"content": "."}, None),
        chunk({}, "stop"),
    ]
    if usage is not None:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = chat_usage(*usage)
        chunks.append(final)
    return chunks


def responses_body(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "id": "resp_docs",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": "gpt-4o-mini-2024-07-18",
        "output": [
            {
                "id": "msg_docs",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Paris.", "annotations": []}
                ],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def responses_events(input_tokens: int, output_tokens: int) -> list[dict[str, Any]]:
    """A Responses API stream: created, one text delta, then completed."""
    final = responses_body(input_tokens, output_tokens)
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    return [
        {"type": "response.created", "sequence_number": 0, "response": started},
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_docs",
            "output_index": 0,
            "content_index": 0,
            "delta": "Paris.",
        },
        {"type": "response.completed", "sequence_number": 2, "response": final},
    ]


def embeddings_body(input_tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0125, -0.5]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    }


def converse_body(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
        "stopReason": "end_turn",
        "usage": converse_usage(input_tokens, output_tokens),
        "metrics": {"latencyMs": 312},
    }


def converse_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }


def converse_stream(input_tokens: int, output_tokens: int) -> Reply:
    return Reply.bedrock_event_stream(
        [
            ("messageStart", {"role": "assistant"}),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"text": "Paris."}},
            ),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            ("messageStop", {"stopReason": "end_turn"}),
            (
                "metadata",
                {
                    "usage": converse_usage(input_tokens, output_tokens),
                    "metrics": {"latencyMs": 290},
                },
            ),
        ]
    )


def invoke_reply(input_tokens: int, output_tokens: int) -> Reply:
    """An InvokeModel reply of Mistral 7B Instruct: its body has no token counts."""
    body = {"outputs": [{"text": " Paris.", "stop_reason": "stop"}]}
    reply = Reply.bedrock_json(body)
    reply.headers["x-amzn-bedrock-input-token-count"] = str(input_tokens)
    reply.headers["x-amzn-bedrock-output-token-count"] = str(output_tokens)
    return reply


def invoke_stream(input_tokens: int, output_tokens: int) -> Reply:
    """An InvokeModelWithResponseStream reply of Amazon Nova Lite.

    Nova's own `metadata` event counts one output token less than the
    invocation metrics of the last chunk, which Bedrock bills.
    """
    chunks: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Paris."}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {
                    "inputTokens": input_tokens,
                    "outputTokens": output_tokens - 1,
                }
            },
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": input_tokens,
                "outputTokenCount": output_tokens,
                "invocationLatency": 301,
                "firstByteLatency": 120,
            },
        },
    ]
    events = [
        ("chunk", {"bytes": base64.b64encode(json.dumps(each).encode()).decode()})
        for each in chunks
    ]
    return Reply.bedrock_event_stream(events)


def decision_body(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A Decisions body of gpt-6-luna with one answer, 400 input tokens cached."""
    return {
        "answers": [{"type": "predicate", "name": "refund", "probability": 0.93}],
        "model": "gpt-6-luna",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


# The reply kinds named KIND:IN/OUT, with input and output token counts.
COUNTED_KINDS = (
    "openai",
    "openai-stream",
    "responses",
    "responses-stream",
    "decisions",
    "bedrock",
    "bedrock-stream",
    "invoke",
    "invoke-stream",
)


def fixture_names() -> str:
    """List the `fixture:NAME` replies, one per file in `examples/fixtures`."""
    return ", ".join(f"fixture:{path.stem}" for path in sorted(FIXTURES.glob("*.json")))


def fixture_reply(name: str, fixture: str) -> Reply:
    """Build the reply of `fixture:NAME`, the file `examples/fixtures/NAME.json`."""
    if not (FIXTURES / f"{fixture}.json").is_file():
        raise ValueError(
            f"unknown reply {name!r}: {FIXTURES} has no {fixture}.json. "
            f"Valid fixture names: {fixture_names()}"
        )
    body = load_fixture(f"{fixture}.json")
    if fixture.startswith("bedrock"):
        return Reply.bedrock_json(body)
    return Reply.openai_json(body)


def make_reply(name: str) -> Reply:
    """Build the reply that `name` names, or raise ValueError listing valid names."""
    kind, _, value = name.partition(":")
    if kind == "fixture":
        return fixture_reply(name, value)
    if kind == "openai-stream" and value == "none":
        return Reply.openai_stream(chat_chunks(None))
    if kind == "embeddings":
        if not value.isdigit():
            raise ValueError(
                f"invalid reply {name!r}: expected embeddings:IN with one token "
                "count, such as embeddings:8"
            )
        return Reply.openai_json(embeddings_body(int(value)))

    try:
        first, second = (int(count) for count in value.split("/"))
    except ValueError:
        raise ValueError(
            f"invalid reply {name!r}: expected KIND:IN/OUT with two token counts, "
            "such as openai:60/3"
        ) from None
    if kind == "openai":
        return Reply.openai_json(chat_body(first, second))
    if kind == "decisions":
        return Reply.openai_json(decision_body(first, second))
    if kind == "openai-stream":
        return Reply.openai_stream(chat_chunks((first, second)))
    if kind == "responses":
        return Reply.openai_json(responses_body(first, second))
    if kind == "responses-stream":
        return Reply.openai_stream(responses_events(first, second))
    if kind == "bedrock":
        return Reply.bedrock_json(converse_body(first, second))
    if kind == "bedrock-stream":
        return converse_stream(first, second)
    if kind == "invoke":
        return invoke_reply(first, second)
    if kind == "invoke-stream":
        return invoke_stream(first, second)

    counted = ", ".join(f"{each_kind}:IN/OUT" for each_kind in COUNTED_KINDS)
    raise ValueError(
        f"unknown reply {name!r}. Valid names: {counted}, openai-stream:none, "
        f"embeddings:IN and {fixture_names()}"
    )


def default_reply(request: RecordedRequest) -> Reply:
    """Return the reply of `DEFAULT_REPLIES` for the kind of `request`."""
    if request.route == "bedrock":
        kind = request.path.rsplit("/", 1)[-1]
    else:
        kind = request.path.strip("/").removeprefix("v1/")
        try:
            body = request.json()
            streamed = body.get("stream") is True
            options = body.get("stream_options") or {}
            include_usage = options.get("include_usage") is True
        except (ValueError, AttributeError):
            streamed = include_usage = False
        if streamed:
            kind += "-stream"
        # OpenAI sends a Chat Completions stream's usage only when asked to.
        if kind == "chat/completions-stream" and not include_usage:
            return make_reply("openai-stream:none")
    return make_reply(DEFAULT_REPLIES.get(kind, "openai:60/3"))


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve OpenAI and Bedrock replies on 127.0.0.1."
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default 8000)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=DEFAULT_MINUTES,
        help=f"minutes to serve before stopping (default {DEFAULT_MINUTES:g})",
    )
    parser.add_argument(
        "replies",
        nargs="*",
        metavar="REPLY",
        help="replies to serve first, in order per provider, such as openai:60/3",
    )
    options = parser.parse_args(arguments)
    try:
        queued = [make_reply(name) for name in options.replies]
    except ValueError as error:
        parser.error(str(error))
    try:
        server = ReplayServer(queued, port=options.port, fallback=default_reply)
    except OSError as error:
        parser.error(f"cannot listen on 127.0.0.1:{options.port}: {error}")
    with server:
        print(
            f"Serving on {server.url} (stops after {options.minutes:g} min, "
            "or on Ctrl-C)\n"
            f"  export OPENAI_BASE_URL={server.openai_base_url} OPENAI_API_KEY=test\n"
            f"  export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={server.url}\n"
            f"  export {AWS_TEST_SETTINGS}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(options.minutes * 60)


if __name__ == "__main__":
    sys.exit(main())
