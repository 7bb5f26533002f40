"""Conformance over real recorded OpenAI traffic, replayed through the real SDK.

Set LLMFY_REAL_DATA to a folder that contains `openai/` cassettes (vcrpy YAML)
and the Batch API output file. Each recorded response is served from a local
server on 127.0.0.1. The recorded request is sent again through the SDK's own
request path (same endpoint, same stream flag) inside a tracker. It must yield
the token counts listed in the folder's MANIFEST.md, and the cost of the
bundled table, worked out by hand below in USD per million tokens. The same
must come out of each typed SDK method (sync and async `create`, `parse`,
the `stream` helpers, `with_raw_response` and `with_streaming_response`),
and a stream stopped before its usage arrived counts once, with unknown usage.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pathlib
import warnings
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import attrs
import openai
import pytest
from llmfy_openai import read_batch_file, record_batch_usages
from openai import Stream
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from llmfy import UsageWarning, llmfy_usage_tracker

yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.conformance

REAL_DATA = os.environ.get("LLMFY_REAL_DATA")


@attrs.frozen
class Expected:
    """The counts the manifest lists for one interaction, and its cost in USD."""

    input: int | None
    output: int | None
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cost: str | None = None
    tools: dict[str, int] = attrs.field(factory=dict)
    input_audio: int = 0


# Prices used, in USD per million tokens at the standard tier (input, cached
# input, output):
#   gpt-4o-mini 0.15, 0.075, 0.60
#   gpt-4o-audio-preview 2.50 text input, 40 audio input, 10 output
#   gpt-5-nano 0.05, 0.005, 0.40
#   gpt-5.6-sol 4, 0.40, 20, and 5 per cache write token (its price since
#   2026-08-21: the recordings are older, but they are sent again now)
#   o3-mini 1.10, 0.55, 4.40
#   gpt-4 30 input, 60 output
#   gpt-5 1.25, 0.125, 10
#   gpt-5.4 2.50, 0.25, 15
#   text-embedding-3-small 0.02 input, text-embedding-ada-002 0.10 input
# Web search costs 0.01 USD per call.
EXPECTED: dict[str, list[Expected]] = {
    # (64 - 44) x 2.50 + 44 x 40 + 9 x 10 = 50 + 1760 + 90 = 1900
    "chat-nonstream-gpt-4o-audio-preview-audio-input.yaml": [
        Expected(64, 9, input_audio=44, cost="0.0019"),
    ],
    # #0: 1370 x 0.15 + 22 x 0.60 = 205.5 + 13.2 = 218.7
    # #1: 90 x 0.15 + 1280 x 0.075 + 155 x 0.60 = 13.5 + 96 + 93 = 202.5
    "chat-nonstream-gpt-4o-mini-cached-tokens.yaml": [
        Expected(1370, 22, cost="0.0002187"),
        Expected(1370, 155, cached=1280, cost="0.0002025"),
    ],
    # #0: 1149 x 0.15 + 315 x 0.60 = 172.35 + 189 = 361.35
    # #1: 125 x 0.15 + 1024 x 0.075 + 353 x 0.60 = 18.75 + 76.8 + 211.8 = 307.35
    # #2: 172.35 + 297 x 0.60 = 172.35 + 178.2 = 350.55
    # #3: 172.35 + 339 x 0.60 = 172.35 + 203.4 = 375.75
    "chat-nonstream-gpt-4o-mini-prompt-caching-gzip.yaml": [
        Expected(1149, 315, cost="0.00036135"),
        Expected(1149, 353, cached=1024, cost="0.00030735"),
        Expected(1149, 297, cost="0.00035055"),
        Expected(1149, 339, cost="0.00037575"),
    ],
    # #0: 75 x 0.15 + 51 x 0.60 = 11.25 + 30.6 = 41.85
    # #1: 99 x 0.15 + 25 x 0.60 = 14.85 + 15 = 29.85
    "chat-nonstream-gpt-4o-mini-tool-calls.yaml": [
        Expected(75, 51, cost="0.00004185"),
        Expected(99, 25, cost="0.00002985"),
    ],
    # #0: 11 x 0.05 + 228 x 0.40 = 0.55 + 91.2 = 91.75
    # #1: 0.55 + 202 x 0.40 = 0.55 + 80.8 = 81.35
    # #2: 0.55 + 138 x 0.40 = 0.55 + 55.2 = 55.75
    "chat-nonstream-gpt-5-nano-reasoning-gzip.yaml": [
        Expected(11, 228, reasoning=192, cost="0.00009175"),
        Expected(11, 202, reasoning=192, cost="0.00008135"),
        Expected(11, 138, reasoning=128, cost="0.00005575"),
    ],
    # #0: 8 x 4 + 4012 x 5 + 4 x 20 = 32 + 20060 + 80 = 20172
    # #1: 8 x 4 + 4012 x 0.40 + 4 x 20 = 32 + 1604.8 + 80 = 1716.8
    "chat-nonstream-gpt-5.6-sol-prompt-cache-write-then-read.yaml": [
        Expected(4020, 4, cache_write=4012, cost="0.020172"),
        Expected(4020, 4, cached=4012, cost="0.0017168"),
    ],
    # 7 x 1.10 + 87 x 4.40 = 7.7 + 382.8 = 390.5
    "chat-nonstream-o3-mini-reasoning.yaml": [
        Expected(7, 87, reasoning=64, cost="0.0003905"),
    ],
    # gpt-4-0613 at the gpt-4 price: 12 x 30 + 5 x 60 = 360 + 300 = 660
    "chat-stream-include-usage-gpt-4.yaml": [
        Expected(12, 5, cost="0.00066"),
    ],
    # 26 x 0.15 + 104 x 0.60 = 3.9 + 62.4 = 66.3
    "chat-stream-include-usage-gpt-4o-mini-n2.yaml": [
        Expected(26, 104, cost="0.0000663"),
    ],
    # 13 x 1.25 + 11 x 10 = 16.25 + 110 = 126.25
    "chat-stream-include-usage-gpt-5.yaml": [
        Expected(13, 11, cost="0.00012625"),
    ],
    # No usage anywhere: unknown tokens and cost, never zero.
    "chat-stream-no-usage-gpt-4.1.yaml": [
        Expected(None, None),
    ],
    # 8 x 0.02 = 0.16
    "embeddings-text-embedding-3-small-dimensions.yaml": [
        Expected(8, 0, cost="0.00000016"),
    ],
    # 8 x 0.10 = 0.8 each; #2 and #3 are served as text-embedding-ada-002-v2
    "embeddings-text-embedding-ada-002-gzip.yaml": [
        Expected(8, 0, cost="0.0000008"),
        Expected(8, 0, cost="0.0000008"),
        Expected(8, 0, cost="0.0000008"),
        Expected(8, 0, cost="0.0000008"),
    ],
    # #0: 13 x 1.10 + 1915 x 4.40 = 14.3 + 8426 = 8440.3
    # #1: 577 x 1.10 + 2320 x 4.40 = 634.7 + 10208 = 10842.7
    "responses-and-chat-nonstream-o3-mini-reasoning-high.yaml": [
        Expected(13, 1915, reasoning=1600, cost="0.0084403"),
        Expected(577, 2320, reasoning=1792, cost="0.0108427"),
    ],
    # 22 x 0.15 + 22 x 0.60 = 3.3 + 13.2 = 16.5
    "responses-nonstream-gpt-4o-mini.yaml": [
        Expected(22, 22, cost="0.0000165"),
    ],
    # #0: 851 x 1.25 + 8448 x 0.125 + 577 x 10 = 1063.75 + 1056 + 5770 = 7889.75,
    #     plus 1 web search x 0.01 USD: 0.00788975 + 0.01 = 0.01788975
    # #1: 930 x 1.25 + 8576 x 0.125 + 439 x 10 = 1162.5 + 1072 + 4390 = 6624.5,
    #     plus 1 web search: 0.0066245 + 0.01 = 0.0166245 (the other
    #     web_search_call in the file is part of the request's input)
    "responses-nonstream-gpt-5-web-search-cached.yaml": [
        Expected(
            9299,
            577,
            cached=8448,
            reasoning=512,
            cost="0.01788975",
            tools={"web_search": 1},
        ),
        Expected(
            9506,
            439,
            cached=8576,
            reasoning=384,
            cost="0.0166245",
            tools={"web_search": 1},
        ),
    ],
    # 44 x 2.50 + 288 x 15 = 110 + 4320 = 4430
    "responses-nonstream-gpt-5.4-reasoning.yaml": [
        Expected(44, 288, reasoning=9, cost="0.00443"),
    ],
    # Requested gpt-5.6, served and priced as gpt-5.6-sol:
    # 4158 x 4 + 4418 x 5 + 52 x 20 = 16632 + 22090 + 1040 = 39762,
    # plus 1 web search (tool_usage): 0.039762 + 0.01 = 0.049762
    "responses-nonstream-gpt-5.6-cache-write.yaml": [
        Expected(
            8576,
            52,
            cache_write=4418,
            reasoning=32,
            cost="0.049762",
            tools={"web_search": 1},
        ),
    ],
    # 22 x 0.15 + 6 x 0.60 = 3.3 + 3.6 = 6.9
    "responses-stream-gpt-4o-mini.yaml": [
        Expected(22, 6, cost="0.0000069"),
    ],
    # The response reports service_tier "flex", priced at the Batch API rates
    # (half of 1.25 and 10): 53 x 0.625 + 469 x 5 = 33.125 + 2345 = 2378.125
    "responses-stream-gpt-5-reasoning.yaml": [
        Expected(53, 469, reasoning=448, cost="0.002378125"),
    ],
    # 527 x 1.25 + 3200 x 0.125 + 347 x 10 = 658.75 + 400 + 3470 = 4528.75; the
    # one Code Interpreter container has no bundled price.
    "responses-stream-gpt-5-cached-code-interpreter.yaml": [
        Expected(
            3727,
            347,
            cached=3200,
            reasoning=128,
            cost="0.00452875",
            tools={"code_interpreter": 1},
        ),
    ],
}

BATCH_FILE = "batch-output-gpt-4o-2024-08-06.jsonl"

# Headers of the recording that are not replayed: the body is re-serialized
# (so lengths differ) and the local server frames it itself.
_DROPPED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "set-cookie"}
)


@pytest.fixture(scope="module")
def real_openai() -> pathlib.Path:
    if not REAL_DATA:
        pytest.skip(
            "LLMFY_REAL_DATA is not set; point it at the folder of real recorded "
            "traffic (holding openai/ and bedrock/) to run the conformance tests"
        )
    folder = pathlib.Path(REAL_DATA) / "openai"
    if not folder.is_dir():
        pytest.skip(f"LLMFY_REAL_DATA={REAL_DATA} has no openai/ folder")
    return folder


def test_every_cassette_has_expectations(real_openai):
    cassettes = {path.name for path in real_openai.glob("*.yaml")}

    assert cassettes == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cassette_replay(real_openai, server, client, name):
    interactions = yaml.safe_load((real_openai / name).read_text("utf-8"))[
        "interactions"
    ]
    expected = EXPECTED[name]
    assert len(interactions) == len(expected)

    for index, (interaction, want) in enumerate(
        zip(interactions, expected, strict=True)
    ):
        record = _replay(server, client, interaction)
        _assert_recorded(record, want, f"{name} #{index}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cassette_replayed_again_records_alike(real_openai, server, client, name):
    # The first responses of a type are read by usage_extract; later ones of
    # the same kind take the reader and slot path. All must record alike.
    interactions = yaml.safe_load((real_openai / name).read_text("utf-8"))[
        "interactions"
    ]

    for index, interaction in enumerate(interactions):
        first, *again = _replay(server, client, interaction, times=3)
        for repeat, record in enumerate(again, start=2):
            where = f"{name} #{index}, request {repeat}"
            assert record.usage == first.usage, where
            assert record.price == first.price, where
            assert record.cost == first.cost, where
            assert record.fault == first.fault, where


# The typed SDK methods that send a recorded request and read its whole
# response, by endpoint and stream flag. `client.post` above bypasses them.
_WHOLE_READS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("/chat/completions", False): (
        "create",
        "create_async",
        "with_raw_response",
        "with_streaming_response",
        "parse",
        "parse_async",
    ),
    ("/chat/completions", True): (
        "create",
        "create_async",
        "stream",
        "stream_async",
        "with_raw_response",
        "with_streaming_response",
    ),
    ("/embeddings", False): (
        "create",
        "create_async",
        "with_raw_response",
        "with_streaming_response",
    ),
}
_WHOLE_READS["/responses", False] = _WHOLE_READS["/chat/completions", False]
_WHOLE_READS["/responses", True] = _WHOLE_READS["/chat/completions", True]

# Ways to stop reading a stream before its usage arrives.
_EARLY_STOPS = (
    "close_after_first_event",
    "drop_unread",
    "break_from_stream",
    "break_async",
)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cassette_through_sdk_methods(real_openai, server, client, name):
    # Each method records what the plain replay records.
    interactions = yaml.safe_load((real_openai / name).read_text("utf-8"))[
        "interactions"
    ]

    for index, interaction in enumerate(interactions):
        recorded = _Recorded.of(interaction)
        for method in _WHOLE_READS[recorded.endpoint, recorded.stream]:
            recorded.serve(server)
            with llmfy_usage_tracker() as tracker, warnings.catch_warnings():
                warnings.simplefilter("ignore", UsageWarning)
                _call(client, server.base_url, recorded, method)

            where = f"{name} #{index} through {method}"
            assert len(tracker.records) == 1, where
            _assert_recorded(tracker.records[0], EXPECTED[name][index], where)


@pytest.mark.parametrize(
    "name", sorted(name for name in EXPECTED if "-stream-" in name)
)
def test_stream_stopped_early_counts_once(real_openai, server, client, name, wait_for):
    # No usage arrived, so the request counts once with unknown usage.
    interaction = yaml.safe_load((real_openai / name).read_text("utf-8"))[
        "interactions"
    ][0]
    recorded = _Recorded.of(interaction)
    assert recorded.stream

    for stop in _EARLY_STOPS:
        recorded.serve(server)
        with llmfy_usage_tracker() as tracker, warnings.catch_warnings():
            warnings.simplefilter("ignore", UsageWarning)
            _call(client, server.base_url, recorded, stop)
            gc.collect()
            # A collected stream is recorded from llmfy's recording thread.
            wait_for(lambda: tracker.request_count == 1)

        where = f"{name} {stop}"
        assert len(tracker.records) == 1, where
        record = tracker.records[0]
        assert record.usage.model == recorded.body["model"], where
        assert record.usage.input_tokens is None, where
        assert record.usage.output_tokens is None, where
        assert record.cost is None, where


def test_batch_output_file(real_openai):
    usages = read_batch_file(real_openai / BATCH_FILE)

    with llmfy_usage_tracker() as tracker:
        for usage in usages:
            tracker.add_usage(usage)

    assert len(usages) == 65
    assert (usages[0].input_tokens, usages[0].output_tokens) == (390, 223)
    assert sum(usage.input_tokens or 0 for usage in usages) == 36501
    assert sum(usage.output_tokens or 0 for usage in usages) == 11980
    assert sum(usage.cache_read_tokens for usage in usages) == 0
    assert all(usage.batch for usage in usages)
    assert all(usage.model == "gpt-4o-2024-08-06" for usage in usages)
    # gpt-4o at the Batch API rate (half of 2.50 and 10):
    # 36501 x 1.25 + 11980 x 5 = 45626.25 + 59900 = 105526.25 per million
    assert tracker.total_cost == Decimal("0.10552625")
    assert tracker.cost_complete


def test_batch_output_file_through_sdk(real_openai, server, client):
    # The file is downloaded as an application does it. The download itself is
    # not billed, so it is not counted.
    server.add_raw(
        "/v1/files/file-batch-output/content",
        status=200,
        headers={"content-type": "application/octet-stream"},
        body=(real_openai / BATCH_FILE).read_bytes(),
    )

    with llmfy_usage_tracker() as tracker:
        output = client.files.content("file-batch-output")
        count = record_batch_usages(output.text, tracker)

    assert count == 65
    assert tracker.request_count == 65
    assert tracker.input_tokens == 36501
    assert tracker.output_tokens == 11980
    # The same Batch API rates as above.
    assert tracker.total_cost == Decimal("0.10552625")


def _replay(
    server: Any, client: openai.OpenAI, interaction: dict[str, Any], times: int = 1
) -> Any:
    """Serve one recorded response `times` times, resending its request each time.

    Returns the record, or with `times` above 1 the list of records.
    """
    recorded = _Recorded.of(interaction)
    for _ in range(times):
        recorded.serve(server)

    with llmfy_usage_tracker() as tracker, warnings.catch_warnings():
        warnings.simplefilter("ignore", UsageWarning)
        for _ in range(times):
            _send(client, recorded.endpoint, recorded.body, recorded.stream)

    assert len(tracker.records) == times
    return tracker.records[0] if times == 1 else tracker.records


def _send(client: openai.OpenAI, path: str, body: dict[str, Any], stream: bool) -> None:
    kinds: dict[str, tuple[type, type]] = {
        "/chat/completions": (ChatCompletion, ChatCompletionChunk),
        "/responses": (Response, ResponseStreamEvent),
        "/embeddings": (CreateEmbeddingResponse, CreateEmbeddingResponse),
    }
    cast_to, chunk_type = kinds[path]
    if not stream:
        client.post(path, body=body, cast_to=cast_to)
        return
    with client.post(
        path, body=body, cast_to=cast_to, stream=True, stream_cls=Stream[chunk_type]
    ) as events:
        for _ in events:
            pass


def _request_body(request: dict[str, Any]) -> dict[str, Any]:
    if "parsed_body" in request:
        return dict(request["parsed_body"])
    raw = request["body"]
    if isinstance(raw, dict):
        raw = raw.get("string")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return dict(json.loads(raw))


def _response_content(response: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    headers = {
        name.lower(): values[0] if isinstance(values, list) else str(values)
        for name, values in response.get("headers", {}).items()
        if name.lower() not in _DROPPED_HEADERS
    }
    if "parsed_body" in response:
        headers.pop("content-encoding", None)
        return json.dumps(response["parsed_body"]).encode(), headers
    content = response["body"]["string"]
    if isinstance(content, bytes):
        # Served as recorded: a gzip body keeps its Content-Encoding header and
        # the client decompresses it.
        return content, headers
    headers.pop("content-encoding", None)
    return content.encode("utf-8"), headers


def _assert_recorded(record: Any, want: Expected, where: str) -> None:
    usage = record.usage
    assert usage.input_tokens == want.input, where
    assert usage.output_tokens == want.output, where
    assert usage.cache_read_tokens == want.cached, where
    assert usage.cache_write_tokens == want.cache_write, where
    assert usage.reasoning_tokens == want.reasoning, where
    assert usage.other_tokens.get("input_audio", 0) == want.input_audio, where
    assert dict(usage.tool_calls) == want.tools, where
    if want.cost is None:
        assert record.cost is None, where
    else:
        assert record.cost is not None, where
        assert record.cost.total == Decimal(want.cost), where


# The request fields that each endpoint's SDK methods take as named
# parameters. The other fields are sent as `extra_body`.
_NAMED_FIELDS = {
    "/chat/completions": ("model", "messages", "stream_options"),
    "/responses": ("model", "input"),
    "/embeddings": ("model", "input"),
}


@attrs.frozen
class _Recorded:
    """One recorded interaction: its request and the response to serve."""

    path: str
    body: dict[str, Any]
    status: int
    headers: dict[str, str]
    content: bytes

    @classmethod
    def of(cls, interaction: dict[str, Any]) -> _Recorded:
        request, response = interaction["request"], interaction["response"]
        path = "/" + request["uri"].split("://", 1)[1].split("/", 1)[1]
        content, headers = _response_content(response)
        status = response["status"]["code"]
        return cls(path, _request_body(request), status, headers, content)

    @property
    def endpoint(self) -> str:
        return self.path.removeprefix("/v1")

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def serve(self, server: Any) -> None:
        """Queue the recorded response for one request."""
        if self.stream:
            server.add_raw(
                self.path,
                status=self.status,
                headers=self.headers,
                chunks=[self.content],
            )
        else:
            server.add_raw(
                self.path, status=self.status, headers=self.headers, body=self.content
            )

    def arguments(self) -> dict[str, Any]:
        """Return the keyword arguments of an SDK method, without `stream`."""
        named = _NAMED_FIELDS[self.endpoint]
        arguments = {key: value for key, value in self.body.items() if key in named}
        extra = {
            key: value
            for key, value in self.body.items()
            if key not in named and key != "stream"
        }
        if extra:
            arguments["extra_body"] = extra
        return arguments


def _resource(client: Any, endpoint: str) -> Any:
    """Return the client's resource for `endpoint`, such as `client.responses`."""
    if endpoint == "/chat/completions":
        return client.chat.completions
    return getattr(client, endpoint.removeprefix("/"))


def _call(client: openai.OpenAI, base_url: str, recorded: _Recorded, way: str) -> None:
    """Send the recorded request through one SDK method and read it the `way` named."""
    if way.endswith("_async"):
        asyncio.run(_call_async(base_url, recorded, way.removesuffix("_async")))
        return
    resource = _resource(client, recorded.endpoint)
    arguments = recorded.arguments()
    if not recorded.stream:
        if way == "create":
            resource.create(**arguments)
        elif way == "parse":
            resource.parse(**arguments)
        elif way == "with_raw_response":
            resource.with_raw_response.create(**arguments).parse()
        elif way == "with_streaming_response":
            with resource.with_streaming_response.create(**arguments) as response:
                response.parse()
        else:
            raise ValueError(f"invalid way to read a response: {way!r}")
        return
    if way == "create":
        _read_all(resource.create(stream=True, **arguments))
    elif way == "stream":
        with resource.stream(**arguments) as events:
            _read_all(events)
    elif way == "with_raw_response":
        raw = resource.with_raw_response.create(stream=True, **arguments)
        _read_all(raw.parse())
    elif way == "with_streaming_response":
        with resource.with_streaming_response.create(
            stream=True, **arguments
        ) as response:
            _read_all(response.parse())
    elif way == "break_from_stream":
        with resource.stream(**arguments) as events:
            for _ in events:
                break
    elif way == "close_after_first_event":
        events = resource.create(stream=True, **arguments)
        next(iter(events))
        events.close()
    elif way == "drop_unread":
        # Recorded when the stream is garbage collected.
        resource.create(stream=True, **arguments)
    else:
        raise ValueError(f"invalid way to read a stream: {way!r}")


def _read_all(events: Iterable[Any]) -> None:
    for _ in events:
        pass


async def _call_async(base_url: str, recorded: _Recorded, way: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key="test-key", max_retries=0
    ) as client:
        resource = _resource(client, recorded.endpoint)
        arguments = recorded.arguments()
        if not recorded.stream:
            method = resource.parse if way == "parse" else resource.create
            await method(**arguments)
        elif way == "create":
            async for _ in await resource.create(stream=True, **arguments):
                pass
        elif way == "stream":
            async with resource.stream(**arguments) as events:
                async for _ in events:
                    pass
        elif way == "break":
            events = await resource.create(stream=True, **arguments)
            async for _ in events:
                break
            await events.close()
        else:
            raise ValueError(f"invalid way to read an async stream: {way!r}")
