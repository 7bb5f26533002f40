"""Conformance with real recorded Bedrock traffic.

Set LLMFY_REAL_DATA to a folder that contains `bedrock/` with the recorded
cassettes and `MANIFEST.md`. Each recorded response is served from 127.0.0.1
and replayed through a real boto3 client created in the recorded Region, inside
a tracker. The token counts below are the manifest's; the costs are worked out
by hand from the bundled table (USD per million tokens; cost = tokens x rate /
1,000,000) and written next to each. An InvokeModel body read in pieces or
left unread records the same, and a stream stopped before its last event
counts once, with unknown usage.

The cassette formats handled: vcrpy YAML with `interactions:` (a body in
`body.string`, text or `!!binary`, or a mapping in `parsed_body`), and
gzip-compressed YAML with parallel `requests:` and `responses:` lists.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import re
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

import pytest
import yaml
from llmfy_bedrock import usage_from_invocation_log

from llmfy_core import PricingWarning, llmfy_usage_tracker
from llmfy_core.recording import record_usage

from .botocore_support import CACHE_TOKENS, skip_unless_declared
from .conftest import split_frames

pytestmark = pytest.mark.conformance

REAL_DATA = os.environ.get("LLMFY_REAL_DATA")
SKIP_REASON = (
    "LLMFY_REAL_DATA is not set: point it at the folder of real recorded traffic "
    "(with bedrock/ and MANIFEST.md) to run the Bedrock conformance tests"
)
needs_real_data = pytest.mark.skipif(not REAL_DATA, reason=SKIP_REASON)

_URI = re.compile(
    r"^https://bedrock-runtime\.([a-z0-9-]+)\.amazonaws\.com/model/(.+)/([a-z-]+)$"
)
_FORWARDED_HEADERS = ("x-amzn-bedrock-", "x-amzn-requestid")
MESSAGES = [{"role": "user", "content": [{"text": "replayed request"}]}]


class Expected(NamedTuple):
    """One interaction as the manifest gives it; `input` excludes cache tokens."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    cost: str | None = None


EXPECTED: dict[str, list[Expected]] = {
    # amazon.titan-text-lite-v1, us-east-1: 0.15 in, 0.2 out.
    # 8*0.15 + 10*0.2 = 3.2
    "converse-titan-text-lite.yaml": [Expected(8, 10, cost="0.0000032")],
    # amazon.nova-micro-v1:0, us-east-1: 0.035 in, 0.14 out.
    # #0 415*0.035 + 190*0.14 = 14.525 + 26.6 = 41.125
    # #1 553*0.035 + 59*0.14 = 19.355 + 8.26 = 27.615
    "converse-nova-micro-tool-call.yaml": [
        Expected(415, 190, cost="0.000041125"),
        Expected(553, 59, cost="0.000027615"),
    ],
    # meta.llama3-2-1b-instruct-v1:0, us-east-1: 0.1 in, 0.1 out. 52*0.1 + 30*0.1 = 8.2
    "converse-meta-llama3-2-1b.yaml": [Expected(52, 30, cost="0.0000082")],
    # us. profile of Claude Sonnet 4.5 from us-east-1, regional rate: 3.3 in,
    # 0.33 cache read, 4.125 cache write (5 minutes), 16.5 out.
    # #0 2*3.3 + 1322*4.125 + 5*16.5 = 6.6 + 5453.25 + 82.5 = 5542.35
    # #1 2*3.3 + 1322*0.33 + 5*16.5 = 6.6 + 436.26 + 82.5 = 525.36
    "converse-us-claude-sonnet-4-5-cache-write-then-read.yaml": [
        Expected(2, 5, 0, 1322, cost="0.00554235"),
        Expected(2, 5, 1322, 0, cost="0.00052536"),
    ],
    # Same rates. #0 3*3.3 + 1712*4.125 + 227*16.5 = 9.9 + 7062 + 3745.5 = 10817.4
    # #1 3*3.3 + 1712*0.33 + 236*4.125 + 121*16.5 = 9.9 + 564.96 + 973.5 + 1996.5
    # = 3544.86
    "converse-us-claude-sonnet-4-5-cache-read-and-write.yaml": [
        Expected(3, 227, 0, 1712, cost="0.0108174"),
        Expected(3, 121, 1712, 236, cost="0.00354486"),
    ],
    # us. profile of Nova Lite from us-east-1: 0.06 in and cache write, 0.015 cache
    # read, 0.24 out.
    # #0 22*0.06 + 2492*0.06 + 13*0.24 = 1.32 + 149.52 + 3.12 = 153.96
    # #1 64*0.06 + 2492*0.06 + 4*0.24 = 3.84 + 149.52 + 0.96 = 154.32
    # #2 22*0.06 + 2492*0.015 + 13*0.24 = 1.32 + 37.38 + 3.12 = 41.82
    # #3 458*0.06 + 2098*0.015 + 4*0.24 = 27.48 + 31.47 + 0.96 = 59.91
    "converse-us-nova-lite-cache.yaml": [
        Expected(22, 13, 0, 2492, cost="0.00015396"),
        Expected(64, 4, 0, 2492, cost="0.00015432"),
        Expected(22, 13, 2492, 0, cost="0.00004182"),
        Expected(458, 4, 2098, 0, cost="0.00005991"),
    ],
    # An application inference profile names no model: unpriced, with a warning.
    "converse-application-inference-profile-arn.yaml": [Expected(8, 2, cost=None)],
    # Titan Text Lite as above: 8*0.15 + 10*0.2 = 3.2
    "converse-stream-titan-text-lite.yaml": [Expected(8, 10, cost="0.0000032")],
    # Nova Micro as above. #0 415*0.035 + 202*0.14 = 14.525 + 28.28 = 42.805
    # #1 565*0.035 + 52*0.14 = 19.775 + 7.28 = 27.055
    "converse-stream-nova-micro-tool-call.yaml": [
        Expected(415, 202, cost="0.000042805"),
        Expected(565, 52, cost="0.000027055"),
    ],
    # us. profile of Claude Sonnet 4 from us-east-1: 3 in, 15 out.
    # 36*3 + 73*15 = 108 + 1095 = 1203
    "converse-stream-us-claude-sonnet-4-thinking.yaml": [
        Expected(36, 73, cost="0.001203")
    ],
    # us. profile of Claude Sonnet 5 from us-west-2, regional rate: 3.3 in, 16.5 out.
    # #0 446*3.3 + 55*16.5 = 1471.8 + 907.5 = 2379.3
    # #1 512*3.3 + 25*16.5 = 1689.6 + 412.5 = 2102.1
    "converse-and-stream-us-claude-sonnet-5-us-west-2.yaml.gz": [
        Expected(446, 55, cost="0.0023793"),
        Expected(512, 25, cost="0.0021021"),
    ],
    # Claude 3 Haiku, us-east-1: 0.25 in, 1.25 out. 38*0.25 + 246*1.25 = 9.5 + 307.5
    # = 317
    "invoke-anthropic-claude-3-haiku-messages.yaml": [
        Expected(38, 246, cost="0.000317")
    ],
    # Claude 3.5 Haiku, us-east-1: 0.8 in, 1 cache write, 0.08 cache read, 4 out.
    # #0 4*0.8 + 18131*1 + 50*4 = 3.2 + 18131 + 200 = 18334.2
    # #1 4*0.8 + 18131*0.08 + 50*4 = 3.2 + 1450.48 + 200 = 1653.68
    "invoke-anthropic-claude-3-5-haiku-prompt-cache.yaml": [
        Expected(4, 50, 0, 18131, cost="0.0183342"),
        Expected(4, 50, 18131, 0, cost="0.00165368"),
    ],
    # eu. profile of Claude Haiku 4.5 from eu-central-1, regional rate: 1.1 in,
    # 0.11 cache read, 1.375 cache write (5 minutes), 5.5 out.
    # #0 3*1.1 + 9511*0.11 + 1944*5.5 = 3.3 + 1046.21 + 10692 = 11741.51
    # #1 3*1.1 + 9511*0.11 + 1956*1.375 + 44*5.5 = 3.3 + 1046.21 + 2689.5 + 242
    # = 3981.01
    "invoke-eu-anthropic-claude-haiku-4-5-eu-central-1-cache.yaml": [
        Expected(3, 1944, 9511, 0, cost="0.01174151"),
        Expected(3, 44, 9511, 1956, cost="0.00398101"),
    ],
    # Titan Text Lite: 5*0.15 + 10*0.2 = 0.75 + 2 = 2.75
    "invoke-amazon-titan-text-lite.yaml": [Expected(5, 10, cost="0.00000275")],
    # Nova Micro: 5*0.035 + 10*0.14 = 0.175 + 1.4 = 1.575
    "invoke-amazon-nova-micro.yaml": [Expected(5, 10, cost="0.000001575")],
    # us. profile of Nova Lite from us-east-1: 7*0.06 + 53*0.24 = 0.42 + 12.72 = 13.14
    "invoke-us-amazon-nova-lite-cross-region.yaml": [
        Expected(7, 53, cost="0.00001314")
    ],
    # Llama 3.1 70B, us-east-1: 0.72 in, 0.72 out. 5*0.72 + 10*0.72 = 10.8
    "invoke-meta-llama3-1-70b.yaml": [Expected(5, 10, cost="0.0000108")],
    # Cohere Command R, us-east-1: 0.5 in, 1.5 out. 5*0.5 + 10*1.5 = 17.5
    "invoke-cohere-command-r.yaml": [Expected(5, 10, cost="0.0000175")],
    # Mistral 7B, us-east-1: 0.15 in, 0.2 out. 6*0.15 + 10*0.2 = 2.9
    "invoke-mistral-7b-instruct.yaml": [Expected(6, 10, cost="0.0000029")],
    # Titan Text Embeddings V2, us-east-1: 0.02 in. 5*0.02 = 0.1
    "invoke-amazon-titan-embed-text-v2.yaml": [Expected(5, 0, cost="0.0000001")],
    # Cohere Embed v4, us-east-1: 0.12 in. 4*0.12 = 0.48
    "invoke-cohere-embed-v4.yaml": [Expected(4, 0, cost="0.00000048")],
    # The invocation metrics win over message_delta's 134 output tokens.
    # us. profile of Claude 3.5 Sonnet from us-east-1: 3 in, 15 out.
    # #0 392*3 + 90*15 = 1176 + 1350 = 2526
    # #1 603*3 + 146*15 = 1809 + 2190 = 3999
    "invoke-stream-us-anthropic-claude-3-5-sonnet-tool-call.yaml": [
        Expected(392, 90, cost="0.002526"),
        Expected(603, 146, cost="0.003999"),
    ],
    # Nova Micro: 5*0.035 + 10*0.14 = 1.575
    "invoke-stream-amazon-nova-micro.yaml": [Expected(5, 10, cost="0.000001575")],
    # Titan Text Lite: 5*0.15 + 10*0.2 = 2.75
    "invoke-stream-amazon-titan-text-lite.yaml": [Expected(5, 10, cost="0.00000275")],
}

# amazon.nova-lite-v1:0, us-east-1: 4*0.06 + 38*0.24 = 0.24 + 9.12 = 9.36
INVOCATION_LOG = "invocation-log-conversestream-nova-lite.json"
INVOCATION_LOG_EXPECTED = Expected(4, 38, cost="0.00000936")


class Interaction(NamedTuple):
    """One recorded request and response."""

    region: str
    model: str
    operation: str
    request_body: bytes
    status: int
    headers: dict[str, str]
    body: bytes


def bedrock_folder() -> Path:
    assert REAL_DATA is not None
    return Path(REAL_DATA) / "bedrock"


def load_cassette(path: Path) -> list[Interaction]:
    """Read every interaction of a cassette in any of the recorded formats."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    data = yaml.safe_load(raw)
    if "interactions" in data:
        pairs = [(item["request"], item["response"]) for item in data["interactions"]]
    else:
        pairs = list(zip(data["requests"], data["responses"], strict=True))
    return [_interaction(request, response) for request, response in pairs]


def _interaction(request: dict[str, Any], response: dict[str, Any]) -> Interaction:
    match = _URI.match(request["uri"])
    assert match is not None, request["uri"]
    region, model, action = match.groups()
    operation = {
        "converse": "Converse",
        "converse-stream": "ConverseStream",
        "invoke": "InvokeModel",
        "invoke-with-response-stream": "InvokeModelWithResponseStream",
    }[action]
    headers = {
        name.lower(): value[0] if isinstance(value, list) else value
        for name, value in (response.get("headers") or {}).items()
    }
    body = _response_body(response, headers)
    status = response["status"]["code"]
    return Interaction(
        region,
        unquote(model),
        operation,
        _bytes(request.get("body")),
        status,
        headers,
        body,
    )


def _response_body(response: dict[str, Any], headers: dict[str, str]) -> bytes:
    if "parsed_body" in response:
        return json.dumps(response["parsed_body"]).encode()
    body = _bytes(response["body"]["string"])
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return body


def _bytes(value: Any) -> bytes:
    if value is None:
        return b"{}"
    return value if isinstance(value, bytes) else str(value).encode()


def served_headers(interaction: Interaction, stream: bool) -> dict[str, str]:
    """Keep the headers a Bedrock client reads; set the content type by operation."""
    headers = {
        name: value
        for name, value in interaction.headers.items()
        if name.startswith(_FORWARDED_HEADERS)
    }
    headers["Content-Type"] = (
        "application/vnd.amazon.eventstream" if stream else "application/json"
    )
    return headers


def queue_interaction(server: Any, interaction: Interaction) -> None:
    """Queue the recorded response of `interaction` for one request."""
    stream = interaction.operation.endswith("Stream")
    server.queue_recorded(
        interaction.status,
        served_headers(interaction, stream),
        interaction.body,
        stream,
    )


def replay(client: Any, interaction: Interaction) -> None:
    """Send the recorded request through boto3 and consume the response fully."""
    operation = interaction.operation
    model = interaction.model
    if operation == "Converse":
        client.converse(modelId=model, messages=MESSAGES)
    elif operation == "ConverseStream":
        response = client.converse_stream(modelId=model, messages=MESSAGES)
        assert list(response["stream"])
    elif operation == "InvokeModel":
        response = client.invoke_model(modelId=model, body=interaction.request_body)
        assert response["body"].read() == interaction.body
    else:
        response = client.invoke_model_with_response_stream(
            modelId=model, body=interaction.request_body
        )
        assert list(response["body"])


@needs_real_data
def test_every_file_has_expectations() -> None:
    files = {
        path.name for path in bedrock_folder().iterdir() if path.name != "MANIFEST.md"
    }

    assert files == set(EXPECTED) | {INVOCATION_LOG}


@needs_real_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cassette_counts_and_cost(
    name: str, bedrock_server: Any, make_client: Any
) -> None:
    interactions = load_cassette(bedrock_folder() / name)
    expected = EXPECTED[name]
    if name.startswith("converse") and any(
        want.cache_read or want.cache_write for want in expected
    ):
        skip_unless_declared("TokenUsage", "cacheReadInputTokens", CACHE_TOKENS)
    assert len(interactions) == len(expected)
    for interaction in interactions:
        stream = interaction.operation.endswith("Stream")
        bedrock_server.queue_recorded(
            interaction.status,
            served_headers(interaction, stream),
            interaction.body,
            stream,
        )

    with llmfy_usage_tracker() as usage:
        for interaction in interactions:
            client = make_client(interaction.region)
            if expected[0].cost is None:
                with pytest.warns(
                    PricingWarning, match="application inference profile"
                ):
                    replay(client, interaction)
            else:
                replay(client, interaction)

    assert len(usage.records) == len(expected)
    for index, (interaction, record, want) in enumerate(
        zip(interactions, usage.records, expected, strict=True)
    ):
        assert_recorded(record, interaction, want, f"{name} #{index}")


@needs_real_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cassette_replayed_again_records_alike(
    name: str, bedrock_server: Any, make_client: Any
) -> None:
    # The first responses of a kind are read by usage_extract; later ones
    # take the reader and slot path where one applies. All must record alike.
    interactions = load_cassette(bedrock_folder() / name)
    times = 3
    for interaction in interactions:
        stream = interaction.operation.endswith("Stream")
        headers = served_headers(interaction, stream)
        for _ in range(times):
            bedrock_server.queue_recorded(
                interaction.status, headers, interaction.body, stream
            )

    with llmfy_usage_tracker() as usage, warnings.catch_warnings():
        warnings.simplefilter("ignore", PricingWarning)
        for interaction in interactions:
            client = make_client(interaction.region)
            for _ in range(times):
                replay(client, interaction)

    records = usage.records
    assert len(records) == times * len(interactions)
    for index in range(len(interactions)):
        first, *again = records[times * index : times * (index + 1)]
        for repeat, record in enumerate(again, start=2):
            where = f"{name} #{index}, request {repeat}"
            assert record.usage == first.usage, where
            assert record.price == first.price, where
            assert record.cost == first.cost, where
            assert record.fault == first.fault, where


# Ways to take an InvokeModel body other than one `read()`. Bedrock bills
# the token headers, whether and however the caller reads the body.
BODY_READS = ("read_in_pieces", "iter_chunks", "iter_lines", "left_unread", "closed")
# Ways to stop reading a response stream before its last event.
EARLY_STOPS = ("close_after_first_event", "drop_unread")


@needs_real_data
@pytest.mark.parametrize(
    "name",
    sorted(
        name
        for name in EXPECTED
        if name.startswith("invoke-") and "-stream-" not in name
    ),
)
def test_invoke_body_read_any_way(
    name: str, bedrock_server: Any, make_client: Any
) -> None:
    interactions = load_cassette(bedrock_folder() / name)

    for index, interaction in enumerate(interactions):
        client = make_client(interaction.region)
        for way in BODY_READS:
            queue_interaction(bedrock_server, interaction)
            with llmfy_usage_tracker() as usage:
                response = client.invoke_model(
                    modelId=interaction.model, body=interaction.request_body
                )
                read = read_body(response["body"], way)

            where = f"{name} #{index} {way}"
            if way in ("read_in_pieces", "iter_chunks"):
                assert read == interaction.body, where
            assert len(usage.records) == 1, where
            assert_recorded(usage.records[0], interaction, EXPECTED[name][index], where)


# A stream dropped unread leaves its socket open, as it does without llmfy.
@pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")
@needs_real_data
@pytest.mark.parametrize("name", sorted(name for name in EXPECTED if "stream" in name))
def test_stream_stopped_early_counts_once(
    name: str, bedrock_server: Any, make_client: Any, wait_for: Any
) -> None:
    # The usage comes in the last event, so a stream stopped before it counts
    # once with unknown usage, unless its only event carries the usage.
    streams = [
        (index, interaction)
        for index, interaction in enumerate(load_cassette(bedrock_folder() / name))
        if interaction.operation.endswith("Stream")
    ]
    assert streams

    for index, interaction in streams:
        client = make_client(interaction.region)
        for stop in EARLY_STOPS:
            queue_interaction(bedrock_server, interaction)
            with llmfy_usage_tracker() as usage:
                stop_early(client, interaction, stop)
            wait_for(lambda: usage.request_count == 1)

            where = f"{name} #{index} {stop}"
            single = len(split_frames(interaction.body)) == 1
            assert len(usage.records) == 1, where
            if single and stop == "close_after_first_event":
                assert_recorded(
                    usage.records[0], interaction, EXPECTED[name][index], where
                )
                continue
            got = usage.records[0].usage
            assert got.model == interaction.model, where
            assert got.region == interaction.region, where
            assert got.input_tokens is None, where
            assert got.output_tokens is None, where


@needs_real_data
def test_invocation_log_offline() -> None:
    record = json.loads((bedrock_folder() / INVOCATION_LOG).read_text())
    want = INVOCATION_LOG_EXPECTED

    usage = usage_from_invocation_log(record)
    with llmfy_usage_tracker() as tracker:
        record_usage(usage, [tracker])

    assert usage.model == "amazon.nova-lite-v1:0"
    assert usage.region == "us-east-1"
    assert usage.operation == "ConverseStream"
    assert usage.input_tokens == want.input
    assert usage.output_tokens == want.output
    assert usage.cache_read_tokens == 0
    assert tracker.records[0].cost is not None
    assert tracker.records[0].cost.total == Decimal(str(want.cost))


def test_skip_reason_names_the_setting() -> None:
    assert "LLMFY_REAL_DATA" in SKIP_REASON


def assert_recorded(
    record: Any, interaction: Interaction, want: Expected, where: str
) -> None:
    """Check a record against the manifest's counts and the hand-worked cost."""
    got = record.usage
    assert got.model == interaction.model, where
    assert got.region == interaction.region, where
    assert got.input_tokens == want.input + want.cache_read + want.cache_write, where
    assert got.output_tokens == want.output, where
    assert got.cache_read_tokens == want.cache_read, where
    assert got.cache_write_tokens == want.cache_write, where
    if want.cost is None:
        assert record.cost is None, where
        assert record.unpriced_reason is not None, where
        return
    assert record.price_origin == "bedrock", where
    assert record.cost is not None, where
    assert record.cost.total == Decimal(want.cost), where


def read_body(body: Any, way: str) -> bytes:
    """Read an InvokeModel `StreamingBody` the `way` named and return its bytes."""
    if way == "read_in_pieces":
        return b"".join(iter(lambda: body.read(100), b""))
    if way == "iter_chunks":
        return b"".join(body.iter_chunks(100))
    if way == "iter_lines":
        return b"\n".join(body.iter_lines())
    if way == "closed":
        body.close()
    elif way != "left_unread":
        raise ValueError(f"invalid way to take a body: {way!r}")
    return b""


def stop_early(client: Any, interaction: Interaction, stop: str) -> None:
    """Send a recorded stream request and stop reading its response as `stop` names."""
    if interaction.operation == "ConverseStream":
        response = client.converse_stream(modelId=interaction.model, messages=MESSAGES)
        stream = response["stream"]
    else:
        response = client.invoke_model_with_response_stream(
            modelId=interaction.model, body=interaction.request_body
        )
        stream = response["body"]
    if stop == "close_after_first_event":
        next(iter(stream))
        stream.close()
        return
    # A stream dropped unread is recorded from llmfy's recording thread once
    # the garbage collector frees it.
    del response, stream
    gc.collect()
