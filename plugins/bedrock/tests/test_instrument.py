"""The boto3 instrumentation, driven through real clients over HTTP on 127.0.0.1.

Costs are worked out by hand from the bundled table (USD per million tokens)
in the comments; a cost is tokens x rate / 1,000,000.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
import datetime as dt
import gc
import json
import logging
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError, EventStreamError
from botocore.response import StreamingBody
from llmfy_bedrock import instrument, streams
from llmfy_bedrock.extract import INVOCATION_METRICS

from llmfy_core import UsageWarning, llmfy_usage_tracker
from llmfy_core.tracker import UNTRACKED

from .botocore_support import cache_ttl, latency_optimized, prompt_caching, requires

MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]
SONNET_45_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
# An inference profile billed in eu-west-1, whichever Region the client is in.
EU_PROFILE = (
    "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-micro-v1:0"
)


def converse_body(usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Return a Converse response body with the given usage."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
        "stopReason": "end_turn",
        "usage": usage,
        "metrics": {"latencyMs": 120},
        **extra,
    }


def converse_stream_frames(frames: Any, usage: dict[str, Any]) -> list[bytes]:
    """Return the frames of a short ConverseStream response ending with `usage`."""
    return [
        frames.event("messageStart", {"role": "assistant"}),
        frames.event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}
        ),
        frames.event("contentBlockStop", {"contentBlockIndex": 0}),
        frames.event("messageStop", {"stopReason": "end_turn"}),
        frames.event("metadata", {"usage": usage, "metrics": {"latencyMs": 300}}),
    ]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    """Poll until `condition()` is true (for recording done in another thread)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


# Converse


def test_worker_thread_converse_warns_once(
    bedrock_server: Any, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(UNTRACKED, "warned", False)
    monkeypatch.setattr(UNTRACKED, "blocks", {})
    client = make_client()
    usage_counts = {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12}
    for _ in range(2):
        bedrock_server.queue_json(converse_body(usage_counts))

    def ask() -> None:
        client.converse(modelId="amazon.nova-lite-v1:0", messages=[])

    with (
        llmfy_usage_tracker() as usage,
        pytest.warns(UsageWarning) as warned,
        ThreadPoolExecutor(1, thread_name_prefix="worker") as pool,
    ):
        # Submitted from a context without trackers, as by another thread.
        for _ in range(2):
            contextvars.Context().run(pool.submit, ask).result()

    messages = [str(warning.message) for warning in warned]
    assert len(messages) == 1
    assert "bedrock Converse request was sent in thread 'worker_0'" in messages[0]
    assert usage.request_count == 0


def test_converse_in_threads_of_block_counted(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    for input_tokens in (100, 200, 400):
        usage_counts = {
            "inputTokens": input_tokens,
            "outputTokens": 10,
            "totalTokens": input_tokens + 10,
        }
        bedrock_server.queue_json(converse_body(usage_counts))

    def ask() -> None:
        client.converse(modelId="amazon.nova-lite-v1:0", messages=[])

    async def ask_in_executor() -> None:
        await asyncio.get_running_loop().run_in_executor(None, ask)

    with llmfy_usage_tracker() as usage:
        thread = threading.Thread(target=ask)
        thread.start()
        thread.join()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(ask).result()
        asyncio.run(ask_in_executor())

    assert usage.request_count == 3
    assert usage.input_tokens == 700
    assert usage.output_tokens == 30
    # Nova Lite in us-east-1: 0.06 USD per million input tokens and 0.24 per
    # million output tokens.
    assert usage.total_cost == Decimal("0.000049200")


def run_thread(started_by: str, target: Any, name: str) -> None:
    """Run `target` in a new thread started by `started_by`, and wait for it."""
    if started_by == "threading":
        thread = threading.Thread(target=target, name=name)
        # Started from a context without trackers, so that it inherits none.
        contextvars.Context().run(thread.start)
        thread.join()
        return
    done = threading.Event()

    def run() -> None:
        try:
            target()
        finally:
            done.set()

    _thread.start_new_thread(run, ())
    assert done.wait(5)
    # The thread sets `done` shortly before it ends, so its id may still be in
    # use when the next one starts.
    time.sleep(0.01)


@pytest.mark.parametrize("started_by", ["threading", "_thread"])
def test_reused_thread_id_still_warns(
    bedrock_server: Any,
    make_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    started_by: str,
) -> None:
    # Threads started by `_thread`, as a C extension starts them, are not
    # `threading.Thread`s. CPython 3.11 gives a later such thread with the
    # id of an ended one the same `threading.current_thread()` object.
    monkeypatch.setattr(UNTRACKED, "warned", False)
    monkeypatch.setattr(UNTRACKED, "blocks", {})
    client = make_client()
    usage_counts = {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12}
    bedrock_server.queue_json(converse_body(usage_counts))
    ended_ids: list[int] = []
    sent: list[bool] = []

    def open_block_and_end() -> None:
        # The block stays open after its thread has ended.
        llmfy_usage_tracker().__enter__()
        ended_ids.append(threading.get_ident())

    def ask_if_id_reused() -> None:
        if threading.get_ident() in ended_ids:
            client.converse(modelId="amazon.nova-lite-v1:0", messages=[])
            sent.append(True)

    with llmfy_usage_tracker(), pytest.warns(UsageWarning) as warned:
        run_thread(started_by, open_block_and_end, "opener")
        # Linux hands an ended thread's id to a later thread, usually the next.
        for attempt in range(50):
            run_thread(started_by, ask_if_id_reused, f"worker_{attempt}")
            if sent:
                break
        if not sent:
            pytest.skip("no new thread got the id of the ended thread")

    messages = [str(warning.message) for warning in warned]
    requester = "worker_" if started_by == "threading" else "Dummy-"
    assert len(messages) == 1
    assert f"bedrock Converse request was sent in thread '{requester}" in messages[0]
    assert "a tracker block is open in thread 'MainThread'" in messages[0]


@prompt_caching
def test_converse_cache_read_and_write(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    usage_body = {
        "inputTokens": 3,
        "outputTokens": 121,
        "totalTokens": 2072,
        "cacheReadInputTokens": 1712,
        "cacheWriteInputTokens": 236,
        "cacheDetails": [{"ttl": "5m", "inputTokens": 236}],
    }
    bedrock_server.queue_json(converse_body(usage_body), {"x-amzn-RequestId": "req-1"})

    with llmfy_usage_tracker() as usage:
        response = client.converse(modelId=SONNET_45_US, messages=MESSAGES)

    record = usage.records[0]
    assert response["usage"]["inputTokens"] == 3
    assert record.usage.input_tokens == 3 + 1712 + 236
    assert record.usage.output_tokens == 121
    assert record.usage.cache_read_tokens == 1712
    assert record.usage.cache_write_tokens == 236
    assert record.usage.region == "us-east-1"
    assert record.usage.request_id == "req-1"
    assert record.usage.operation == "Converse"
    # us. profile from us-east-1 bills the regional rate: 3.3 in, 16.5 out,
    # 0.33 cache read, 4.125 cache write (5 minutes).
    # 3*3.3 + 1712*0.33 + 236*4.125 + 121*16.5 = 9.9 + 564.96 + 973.5 + 1996.5
    # = 3544.86 -> 0.00354486 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00354486")


@cache_ttl
def test_converse_one_hour_cache_write(bedrock_server: Any, make_client: Any) -> None:
    client = make_client("us-west-2")
    usage_body = {
        "inputTokens": 10,
        "outputTokens": 20,
        "totalTokens": 1030,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 1000,
        "cacheDetails": [
            {"ttl": "1h", "inputTokens": 600},
            {"ttl": "5m", "inputTokens": 400},
        ],
    }
    bedrock_server.queue_json(
        converse_body(usage_body, serviceTier={"type": "default"})
    )

    with llmfy_usage_tracker() as usage:
        client.converse(
            modelId="global.anthropic.claude-haiku-4-5-20251001-v1:0", messages=MESSAGES
        )

    record = usage.records[0]
    assert record.usage.input_tokens == 1010
    assert record.usage.other_tokens["cache_write_1h"] == 600
    assert record.usage.service_tier == "default"
    # global. rate of Haiku 4.5: 1 in, 5 out, 1.25 cache write 5m, 2 cache write 1h.
    # 10*1 + 400*1.25 + 600*2 + 20*5 = 10 + 500 + 1200 + 100 = 1810 -> 0.00181
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00181")


@cache_ttl
def test_converse_long_context_counts_cache_tokens(
    bedrock_server: Any, make_client: Any
) -> None:
    # Bedrock's inputTokens leaves out cache reads and writes, but the
    # long-context tier is chosen by the whole input, cached tokens included.
    # Both requests send 1,000 uncached input tokens, and only their cache
    # reads differ.
    client = make_client()
    for cache_read in (150_000, 100_000):
        usage_body = {
            "inputTokens": 1000,
            "outputTokens": 2000,
            "totalTokens": 1000 + cache_read + 60_000 + 2000,
            "cacheReadInputTokens": cache_read,
            "cacheWriteInputTokens": 60_000,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 60_000}],
        }
        bedrock_server.queue_json(converse_body(usage_body))

    with llmfy_usage_tracker() as usage:
        client.converse(modelId=SONNET_45_US, messages=MESSAGES)
        client.converse(modelId=SONNET_45_US, messages=MESSAGES)

    above, below = usage.records
    assert above.usage.input_tokens == 211_000
    assert below.usage.input_tokens == 161_000
    # 211,000 input tokens exceed 200,000, so the regional long-context rates
    # apply to the whole request: 6.6 in, 0.66 cache read, 13.2 cache write
    # (1 hour), 24.75 out.
    # 1000*6.6 + 150000*0.66 + 60000*13.2 + 2000*24.75
    # = 6600 + 99000 + 792000 + 49500 = 947100 -> 0.9471 USD
    assert above.cost is not None
    assert above.cost.total == Decimal("0.9471")
    # 161,000 input tokens keep the regional base rates: 3.3 in, 0.33 cache
    # read, 6.6 cache write (1 hour), 16.5 out.
    # 1000*3.3 + 100000*0.33 + 60000*6.6 + 2000*16.5
    # = 3300 + 33000 + 396000 + 33000 = 465300 -> 0.4653 USD
    assert below.cost is not None
    assert below.cost.total == Decimal("0.4653")


def test_converse_guardrail_counts_model_tokens(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    units = {"topicPolicyUnits": 1, "contentPolicyUnits": 1}
    assessment = {"g1": {"invocationMetrics": {"usage": units}}}
    body = converse_body(
        {"inputTokens": 50, "outputTokens": 7, "totalTokens": 57},
        stopReason="guardrail_intervened",
        trace={"guardrail": {"inputAssessment": assessment}},
    )
    bedrock_server.queue_json(body)

    with llmfy_usage_tracker() as usage:
        client.converse(modelId="amazon.nova-lite-v1:0", messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.input_tokens == 50
    assert record.usage.output_tokens == 7
    # Nova Lite in us-east-1: 0.06 in, 0.24 out per million tokens, and no
    # guardrail units. 50 * 0.06 + 7 * 0.24 = 3 + 1.68 = 4.68 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00000468")


def test_converse_stream_metadata(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(
        converse_stream_frames(frames, usage_body), {"x-amzn-RequestId": "req-s1"}
    )

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.titan-text-lite-v1", messages=MESSAGES
        )
        events = list(response["stream"])

    assert len(events) == 5
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 8
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 8
    assert record.usage.output_tokens == 10
    assert record.usage.operation == "ConverseStream"
    assert record.usage.region == "us-east-1"
    assert record.usage.request_id == "req-s1"
    # Titan Text Lite in us-east-1: 0.15 in, 0.2 out.
    # 8*0.15 + 10*0.2 = 1.2 + 2 = 3.2 -> 0.0000032
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000032")


@cache_ttl
def test_converse_stream_one_hour_cache_write(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    # botocore parses a stream's metadata event with its own shape, not the
    # Converse body's, so this checks that the 1-hour writes survive that parse.
    client = make_client()
    usage_body = {
        "inputTokens": 3,
        "outputTokens": 44,
        "totalTokens": 3 + 9613 + 44,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 9613,
        "cacheDetails": [
            {"ttl": "1h", "inputTokens": 9000},
            {"ttl": "5m", "inputTokens": 613},
        ],
    }
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="us.anthropic.claude-opus-4-6-v1", messages=MESSAGES
        )
        events = list(response["stream"])

    assert events[-1]["metadata"]["usage"]["cacheDetails"][0]["ttl"] == "1h"
    record = usage.records[0]
    assert record.usage.operation == "ConverseStream"
    assert record.usage.input_tokens == 3 + 9613
    assert record.usage.cache_write_tokens == 9613
    assert record.usage.other_tokens["cache_write_1h"] == 9000
    # us. profile of Opus 4.6 from us-east-1, regional rate: 5.5 in, 6.875
    # cache write 5m, 11 cache write 1h, 27.5 out.
    # 3*5.5 + 613*6.875 + 9000*11 + 44*27.5
    # = 16.5 + 4214.375 + 99000 + 1210 = 104440.875 -> 0.104440875 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.104440875")


def test_converse_stream_billed_in_arn_region(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    # The stream's billing Region is found when it is recorded: the Region of
    # the profile's ARN, not the client's.
    client = make_client("us-east-1")
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(modelId=EU_PROFILE, messages=MESSAGES)
        events = list(response["stream"])

    assert len(events) == 5
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.region == "eu-west-1"
    assert record.usage.model == EU_PROFILE
    assert record.usage.input_tokens == 8
    assert record.fault is None


@requires(
    "ConverseTrace",
    "promptRouter",
    "it drops the model that a prompt router chose, and llmfy counts the request "
    "without a price",
)
def test_converse_prompt_router_served_model(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    router = (
        "arn:aws:bedrock:us-east-1:123456789012:"
        "default-prompt-router/anthropic.claude:1"
    )
    invoked = (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
        "us.anthropic.claude-3-haiku-20240307-v1:0"
    )
    usage_body = {"inputTokens": 100, "outputTokens": 10, "totalTokens": 110}
    trace = {"promptRouter": {"invokedModelId": invoked}}
    bedrock_server.queue_json(converse_body(usage_body, trace=trace))

    with llmfy_usage_tracker() as usage:
        client.converse(modelId=router, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.model == router
    assert record.usage.served_model == invoked
    # Claude 3 Haiku in us-east-1: 0.25 in, 1.25 out.
    # 100*0.25 + 10*1.25 = 25 + 12.5 = 37.5 -> 0.0000375 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000375")


# InvokeModel


def test_invoke_headers_only_cohere(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    body = {"response_id": "r1", "text": "Hi there", "finish_reason": "COMPLETE"}
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "5",
        "X-Amzn-Bedrock-Output-Token-Count": "10",
    }
    bedrock_server.queue_json(body, headers)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="cohere.command-r-v1:0", body=b'{"message": "Hi"}'
        )
        read_back = json.loads(response["body"].read())

    assert read_back == body
    record = usage.records[0]
    assert record.usage.input_tokens == 5
    assert record.usage.output_tokens == 10
    # Command R in us-east-1: 0.5 in, 1.5 out. 5*0.5 + 10*1.5 = 17.5 -> 0.0000175
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000175")


def test_invoke_headers_only_mistral(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    body = {"outputs": [{"text": "Hi", "stop_reason": "stop"}]}
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "6",
        "X-Amzn-Bedrock-Output-Token-Count": "10",
    }
    bedrock_server.queue_json(body, headers)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="mistral.mistral-7b-instruct-v0:2", body=b"{}"
        )

    assert isinstance(response["body"], StreamingBody)
    assert json.loads(response["body"].read()) == body
    record = usage.records[0]
    assert record.usage.input_tokens == 6
    assert record.usage.output_tokens == 10
    # Mistral 7B in us-east-1: 0.15 in, 0.2 out. 6*0.15 + 10*0.2 = 2.9 -> 0.0000029
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000029")


def test_invoke_headers_win_over_body(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    body = {"generation": "Hi", "prompt_token_count": 99, "generation_token_count": 99}
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "5",
        "X-Amzn-Bedrock-Output-Token-Count": "10",
    }
    bedrock_server.queue_json(body, headers)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="meta.llama3-1-70b-instruct-v1:0", body=b"{}"
        )

    assert json.loads(response["body"].read()) == body
    assert usage.records[0].usage.input_tokens == 5
    assert usage.records[0].usage.output_tokens == 10


def test_invoke_body_only_anthropic(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": {
            "input_tokens": 4,
            "cache_creation_input_tokens": 18131,
            "cache_read_input_tokens": 0,
            "output_tokens": 50,
        },
    }
    bedrock_server.queue_json(body)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="anthropic.claude-3-5-haiku-20241022-v1:0", body=b"{}"
        )
        first = response["body"].read(10)
        rest = response["body"].read()

    assert json.loads(first + rest) == body
    record = usage.records[0]
    assert record.usage.input_tokens == 4 + 18131
    assert record.usage.cache_write_tokens == 18131
    assert record.usage.output_tokens == 50
    # Claude 3.5 Haiku in us-east-1: 0.8 in, 1 cache write, 4 out.
    # 4*0.8 + 18131*1 + 50*4 = 3.2 + 18131 + 200 = 18334.2 -> 0.0183342
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0183342")


def test_invoke_body_only_titan_and_llama(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    titan = {
        "inputTextTokenCount": 5,
        "results": [
            {"tokenCount": 10, "outputText": "Hi", "completionReason": "FINISH"}
        ],
    }
    llama = {"generation": "Hi", "prompt_token_count": 52, "generation_token_count": 30}
    bedrock_server.queue_json(titan)
    bedrock_server.queue_json(llama)

    with llmfy_usage_tracker() as usage:
        client.invoke_model(modelId="amazon.titan-text-express-v1", body=b"{}")
        client.invoke_model(modelId="meta.llama3-2-1b-instruct-v1:0", body=b"{}")

    titan_usage, llama_usage = (record.usage for record in usage.records)
    assert (titan_usage.input_tokens, titan_usage.output_tokens) == (5, 10)
    assert (llama_usage.input_tokens, llama_usage.output_tokens) == (52, 30)


def test_invoke_one_hour_cache_from_body(bedrock_server: Any, make_client: Any) -> None:
    client = make_client("eu-central-1")
    body = {
        "type": "message",
        "usage": {
            "input_tokens": 3,
            "cache_read_input_tokens": 9511,
            "cache_creation_input_tokens": 1956,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 956,
                "ephemeral_1h_input_tokens": 1000,
            },
            "output_tokens": 44,
        },
    }
    headers = {
        "x-amzn-bedrock-input-token-count": "3",
        "x-amzn-bedrock-output-token-count": "44",
        "x-amzn-bedrock-cache-read-input-token-count": "9511",
        "x-amzn-bedrock-cache-write-input-token-count": "1956",
    }
    bedrock_server.queue_json(body, headers)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="eu.anthropic.claude-haiku-4-5-20251001-v1:0", body=b"{}"
        )

    assert json.loads(response["body"].read()) == body
    record = usage.records[0]
    assert record.usage.input_tokens == 3 + 9511 + 1956
    assert record.usage.other_tokens["cache_write_1h"] == 1000
    # eu. profile from eu-central-1, Haiku 4.5 regional rate: 1.1 in, 0.11 cache
    # read, 1.375 cache write 5m, 2.2 cache write 1h, 5.5 out.
    # 3*1.1 + 9511*0.11 + 956*1.375 + 1000*2.2 + 44*5.5
    # = 3.3 + 1046.21 + 1314.5 + 2200 + 242 = 4806.01 -> 0.00480601
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00480601")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            {
                "x-amzn-bedrock-input-token-count": "4",
                "x-amzn-bedrock-output-token-count": "50",
                "x-amzn-bedrock-cache-write-input-token-count": "100",
            },
            id="cache-write-header",
        ),
        pytest.param({}, id="no-headers"),
    ],
)
def test_invoke_read_body_takes_socket_timeout(
    bedrock_server: Any, make_client: Any, headers: dict[str, str]
) -> None:
    # llmfy reads these bodies itself. A caller that sets a read timeout on
    # the body, as botocore's StreamingBody allows, must still get its bytes.
    client = make_client()
    body = {
        "type": "message",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": {
            "input_tokens": 4,
            "cache_creation_input_tokens": 100,
            "output_tokens": 50,
        },
    }
    bedrock_server.queue_json(body, headers)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="anthropic.claude-3-5-haiku-20241022-v1:0", body=b"{}"
        )
        response["body"].set_socket_timeout(5)
        data = response["body"].read()

    assert data == json.dumps(body).encode()
    record = usage.records[0]
    assert record.usage.input_tokens == 4 + 100
    assert record.usage.output_tokens == 50
    # Claude 3.5 Haiku in us-east-1: 0.8 in, 1 cache write, 4 out.
    # 4*0.8 + 100*1 + 50*4 = 3.2 + 100 + 200 = 303.2 -> 0.0003032
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0003032")


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("amazon.titan-image-generator-v2:0", {"images": ["aW1n"], "error": None}),
        ("amazon.nova-canvas-v1:0", {"images": ["aW1n"]}),
        (
            "stability.sd3-5-large-v1:0",
            {"seeds": [7], "finish_reasons": [None], "images": ["aW1n"]},
        ),
    ],
)
def test_invoke_image_generation_not_counted(
    bedrock_server: Any,
    make_client: Any,
    caplog: pytest.LogCaptureFixture,
    model: str,
    body: dict[str, Any],
) -> None:
    # AWS bills these models per image, and their responses report no tokens.
    client = make_client()
    bedrock_server.queue_json(body)

    with caplog.at_level(logging.WARNING), llmfy_usage_tracker() as usage:
        response = client.invoke_model(modelId=model, body=b"{}")

    assert json.loads(response["body"].read()) == body
    assert usage.request_count == 0
    assert usage.cost_complete
    assert caplog.records == []


def test_invoke_image_bytes_not_counted(
    bedrock_server: Any, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Stability AI models return the image itself when asked for image/png.
    client = make_client()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    bedrock_server.queue_recorded(200, {"Content-Type": "image/png"}, png, stream=False)

    with caplog.at_level(logging.WARNING), llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId="stability.stable-image-core-v1:1", body=b"{}", accept="image/png"
        )

    assert response["body"].read() == png
    assert usage.request_count == 0
    assert caplog.records == []


def test_invoke_image_model_with_token_headers(
    bedrock_server: Any, make_client: Any
) -> None:
    # A response that reports tokens is counted, whatever its body.
    client = make_client()
    bedrock_server.queue_json(
        {"images": ["aW1n"]}, {"X-Amzn-Bedrock-Input-Token-Count": "12"}
    )

    with llmfy_usage_tracker() as usage:
        client.invoke_model(modelId="amazon.nova-canvas-v1:0", body=b"{}")

    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 12


def test_invoke_image_body_with_token_count(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    bedrock_server.queue_json({"images": ["aW1n"], "inputTextTokenCount": 9})

    with llmfy_usage_tracker() as usage:
        client.invoke_model(modelId="amazon.nova-canvas-v1:0", body=b"{}")

    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 9


# InvokeModelWithResponseStream


def test_invoke_stream_metrics_win(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    chunks = [
        {
            "type": "message_start",
            "message": {
                "role": "assistant",
                "usage": {"input_tokens": 392, "output_tokens": 4},
            },
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hi"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 134},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 392,
                "outputTokenCount": 90,
                "invocationLatency": 3722,
                "firstByteLatency": 779,
            },
        },
    ]
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(
            modelId="us.anthropic.claude-3-5-sonnet-20240620-v1:0", body=b"{}"
        )
        received = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]

    assert received == chunks
    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 392
    assert record.usage.output_tokens == 90
    # Claude 3.5 Sonnet in us-east-1: 3 in, 15 out. 392*3 + 90*15 = 1176 + 1350
    # = 2526 -> 0.002526
    assert record.cost is not None
    assert record.cost.total == Decimal("0.002526")


ANTHROPIC_CACHED_STREAM = [
    {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 300,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 100,
                    "ephemeral_1h_input_tokens": 200,
                },
                "output_tokens": 1,
            }
        },
    },
    {"type": "message_delta", "usage": {"output_tokens": 50}},
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 10,
            "outputTokenCount": 50,
        },
    },
]
NOVA_CACHED_STREAM = [
    {"messageStart": {"role": "assistant"}},
    {
        "metadata": {
            "usage": {
                "inputTokens": 10,
                "outputTokens": 50,
                "cacheReadInputTokenCount": 2000,
                "cacheWriteInputTokenCount": 300,
            }
        },
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 10,
            "outputTokenCount": 50,
        },
    },
]


@pytest.mark.parametrize(
    ("model", "chunks", "cache_write_1h", "cost"),
    [
        # us. profile of Sonnet 4.5 from us-east-1, regional rate: 3.3 in, 0.33
        # cache read, 4.125 cache write 5m, 6.6 cache write 1h, 16.5 out.
        # 10*3.3 + 2000*0.33 + 100*4.125 + 200*6.6 + 50*16.5
        # = 33 + 660 + 412.5 + 1320 + 825 = 3250.5 -> 0.0032505
        (SONNET_45_US, ANTHROPIC_CACHED_STREAM, 200, "0.0032505"),
        # Nova Micro in us-east-1: 0.035 in, 0.00875 cache read, 0.035 cache
        # write, 0.14 out. 10*0.035 + 2000*0.00875 + 300*0.035 + 50*0.14
        # = 0.35 + 17.5 + 10.5 + 7 = 35.35 -> 0.00003535
        ("amazon.nova-micro-v1:0", NOVA_CACHED_STREAM, 0, "0.00003535"),
    ],
    ids=["anthropic", "nova"],
)
def test_invoke_stream_cache_counts_beside_metrics(
    bedrock_server: Any,
    make_client: Any,
    frames: Any,
    model: str,
    chunks: list[dict[str, Any]],
    cache_write_1h: int,
    cost: str,
) -> None:
    # Metrics without cache counts must not drop the cache tokens that the
    # model's own usage reports.
    client = make_client()
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(modelId=model, body=b"{}")
        received = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]

    assert received == chunks
    record = usage.records[0]
    assert record.usage.input_tokens == 10 + 2000 + 300
    assert record.usage.cache_read_tokens == 2000
    assert record.usage.cache_write_tokens == 300
    assert record.usage.other_tokens.get("cache_write_1h", 0) == cache_write_1h
    assert record.usage.output_tokens == 50
    assert record.cost is not None
    assert record.cost.total == Decimal(cost)


QUOTED_METRICS = '{"amazon-bedrock-invocationMetrics": {"outputTokenCount": 1}}'


@pytest.mark.parametrize(
    "middle",
    [
        pytest.param(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": QUOTED_METRICS},
            },
            id="text-quoting-key",
        ),
        pytest.param(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
                "amazon-bedrock-invocationMetrics": None,
            },
            id="null-metrics",
        ),
    ],
)
def test_invoke_stream_chunk_without_metrics(
    bedrock_server: Any, make_client: Any, frames: Any, middle: dict[str, Any]
) -> None:
    # Neither chunk carries metrics, so the usage goes on to the last chunk.
    client = make_client()
    chunks = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 500, "output_tokens": 1}},
        },
        middle,
        {"type": "message_delta", "usage": {"output_tokens": 300}},
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 500,
                "outputTokenCount": 300,
            },
        },
    ]
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-3-haiku-20240307-v1:0", body=b"{}"
        )
        received = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]

    assert received == chunks
    record = usage.records[0]
    assert record.usage.input_tokens == 500
    assert record.usage.output_tokens == 300
    # Claude 3 Haiku in us-east-1: 0.25 in, 1.25 out. 500*0.25 + 300*1.25
    # = 125 + 375 = 500 -> 0.0005
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0005")


def test_invoke_stream_model_usage_fallback(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    chunks = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 20, "output_tokens": 1}},
        },
        {"type": "message_delta", "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-3-haiku-20240307-v1:0", body=b"{}"
        )
        list(response["body"])

    assert usage.records[0].usage.input_tokens == 20
    assert usage.records[0].usage.output_tokens == 7


def test_invoke_stream_delta_counts_win(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    # A message_delta's counts are cumulative, and here it is the only chunk
    # that has the real input and cache read counts.
    chunks = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 0, "output_tokens": 1}},
        },
        {
            "type": "message_delta",
            "usage": {
                "input_tokens": 25,
                "cache_read_input_tokens": 100,
                "output_tokens": 15,
            },
        },
        {"type": "message_stop"},
    ]
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-3-5-haiku-20241022-v1:0", body=b"{}"
        )
        list(response["body"])

    record = usage.records[0]
    assert record.usage.input_tokens == 25 + 100
    assert record.usage.cache_read_tokens == 100
    assert record.usage.output_tokens == 15
    # Claude 3.5 Haiku in us-east-1: 0.8 in, 0.08 cache read, 4 out.
    # 25*0.8 + 100*0.08 + 15*4 = 20 + 8 + 60 = 88 -> 0.000088
    assert record.cost is not None
    assert record.cost.total == Decimal("0.000088")


def test_anthropic_stream_closed_after_delta(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    metrics = {"inputTokenCount": 20, "outputTokenCount": 7}
    chunks = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 20, "output_tokens": 1}},
        },
        {"type": "message_delta", "usage": {"output_tokens": 7}},
        {"type": "message_stop", INVOCATION_METRICS: metrics},
    ]
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-3-haiku-20240307-v1:0", body=b"{}"
        )
        events = iter(response["body"])
        next(events)
        next(events)
        response["body"].close()

    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.input_tokens == 20
    assert record.usage.output_tokens == 7
    # Claude 3 Haiku in us-east-1: 0.25 in, 1.25 out per million tokens.
    # 20 * 0.25 + 7 * 1.25 = 5 + 8.75 = 13.75 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00001375")


def test_llama_stream_closed_early_unknown(
    bedrock_server: Any, make_client: Any, frames: Any, llama_chunks: list[Any]
) -> None:
    # Every Llama chunk counts the output so far. Only the last one, with its
    # stop reason and the invocation metrics, gives what Bedrock bills.
    client = make_client()
    metrics = {"inputTokenCount": 20, "outputTokenCount": 9}
    chunks = [*llama_chunks[:-1], {**llama_chunks[-1], INVOCATION_METRICS: metrics}]
    bedrock_server.queue_stream([frames.chunk(chunk) for chunk in chunks])

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model_with_response_stream(
            modelId="meta.llama3-2-1b-instruct-v1:0", body=b"{}"
        )
        events = iter(response["body"])
        next(events)
        next(events)
        response["body"].close()

    assert usage.request_count == 1
    assert usage.open_streams == 0
    record = usage.records[0]
    assert not record.usage.known
    assert record.cost is None


# Latency-optimized inference


NOVA_MICRO = "amazon.nova-micro-v1:0"
THOUSAND_EACH = {"inputTokens": 1000, "outputTokens": 1000, "totalTokens": 2000}


@latency_optimized
def test_latency_optimized_converse_unpriced(
    bedrock_server: Any, make_client: Any
) -> None:
    # AWS bills latency-optimized inference at its own rates, which the
    # bundled table does not have: the request is counted without a cost.
    client = make_client()
    bedrock_server.queue_json(
        converse_body(THOUSAND_EACH, performanceConfig={"latency": "optimized"})
    )

    with llmfy_usage_tracker() as usage:
        client.converse(
            modelId=NOVA_MICRO,
            messages=MESSAGES,
            performanceConfig={"latency": "optimized"},
        )

    record = usage.records[0]
    assert record.usage.service_tier == "latency-optimized"
    assert record.usage.input_tokens == 1000
    assert record.cost is None
    assert record.unpriced_reason is not None
    assert "'latency-optimized'" in record.unpriced_reason
    assert not usage.cost_complete


def test_standard_latency_converse_priced(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    bedrock_server.queue_json(
        converse_body(THOUSAND_EACH, performanceConfig={"latency": "standard"})
    )

    with llmfy_usage_tracker() as usage:
        client.converse(modelId=NOVA_MICRO, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.service_tier is None
    # Nova Micro in us-east-1: 0.035 in, 0.14 out.
    # 1000*0.035 + 1000*0.14 = 175 -> 0.000175
    assert record.cost is not None
    assert record.cost.total == Decimal("0.000175")


@latency_optimized
def test_latency_optimized_wins_over_service_tier(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    bedrock_server.queue_json(
        converse_body(
            THOUSAND_EACH,
            serviceTier={"type": "default"},
            performanceConfig={"latency": "optimized"},
        )
    )

    with llmfy_usage_tracker() as usage:
        client.converse(modelId=NOVA_MICRO, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.service_tier == "latency-optimized"
    assert record.cost is None


@latency_optimized
def test_latency_optimized_converse_stream(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    stream_frames = converse_stream_frames(frames, THOUSAND_EACH)
    stream_frames[-1] = frames.event(
        "metadata",
        {
            "usage": THOUSAND_EACH,
            "metrics": {"latencyMs": 300},
            "performanceConfig": {"latency": "optimized"},
        },
    )
    bedrock_server.queue_stream(stream_frames)

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(modelId=NOVA_MICRO, messages=MESSAGES)
        events = list(response["stream"])

    assert events[-1]["metadata"]["performanceConfig"] == {"latency": "optimized"}
    record = usage.records[0]
    assert record.usage.service_tier == "latency-optimized"
    assert record.usage.output_tokens == 1000
    assert record.cost is None


@latency_optimized
def test_latency_optimized_invoke_header(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    body = {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}}
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "1000",
        "X-Amzn-Bedrock-Output-Token-Count": "1000",
        "X-Amzn-Bedrock-PerformanceConfig-Latency": "optimized",
    }
    bedrock_server.queue_json(body, headers)

    with llmfy_usage_tracker() as usage:
        response = client.invoke_model(
            modelId=NOVA_MICRO, body=b"{}", performanceConfigLatency="optimized"
        )

    assert response["performanceConfigLatency"] == "optimized"
    record = usage.records[0]
    assert record.usage.service_tier == "latency-optimized"
    assert record.usage.input_tokens == 1000
    assert record.cost is None


def test_latency_optimized_priced_by_override(
    bedrock_server: Any, make_client: Any
) -> None:
    client = make_client()
    bedrock_server.queue_json(
        converse_body(THOUSAND_EACH, performanceConfig={"latency": "optimized"})
    )
    # Override rates are USD per 1,000 tokens.
    prices = {NOVA_MICRO: {"us-east-1": {"input": 0.001, "output": 0.005}}}

    with llmfy_usage_tracker(bedrock_pricing=prices) as usage:
        client.converse(modelId=NOVA_MICRO, messages=MESSAGES)

    record = usage.records[0]
    # 1000*0.001/1000 + 1000*0.005/1000 = 0.001 + 0.005 = 0.006
    assert record.cost is not None
    assert record.cost.total == Decimal("0.006")


# Stream lifecycle


def test_stream_first_event_before_last(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    release = threading.Event()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    stream_frames = converse_stream_frames(frames, usage_body)
    bedrock_server.queue_stream(
        stream_frames, wait_before={len(stream_frames) - 1: release}
    )

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=MESSAGES
        )
        events = iter(response["stream"])
        first = next(events)
        last_sent_before_first = len(stream_frames) - 1 in bedrock_server.sent_frames
        recorded_before_end = usage.request_count
        release.set()
        rest = list(events)

    assert first == {"messageStart": {"role": "assistant"}}
    assert not last_sent_before_first
    assert recorded_before_end == 0
    assert len(rest) == 4
    assert usage.request_count == 1


def test_stream_closed_early_counted_once(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    release = threading.Event()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(
        converse_stream_frames(frames, usage_body), wait_before={2: release}
    )

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=MESSAGES
        )
        stream = response["stream"]
        iterator = iter(stream)
        next(iterator)
        open_before_close = usage.open_streams
        stream.close()
        stream.close()
        release.set()

    assert open_before_close == 1
    assert usage.open_streams == 0
    assert usage.to_dict()["open_streams"] == 0
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None
    assert usage.totals.unknown_usage == 1


def test_stream_raising_counted_once(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    stream_frames = [
        frames.event("messageStart", {"role": "assistant"}),
        frames.exception("modelStreamErrorException", "The model failed."),
    ]
    bedrock_server.queue_stream(stream_frames)

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=MESSAGES
        )
        received = []
        with pytest.raises(EventStreamError):
            for event in response["stream"]:
                received.append(event)
        response["stream"].close()

    assert received == [{"messageStart": {"role": "assistant"}}]
    assert usage.request_count == 1


# The abandoned stream leaves its connection unclosed, as it would without llmfy.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_stream_abandoned_counted_once(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=MESSAGES
        )
        for _ in response["stream"]:
            break
        del response, _
        gc.collect()
        wait_for(lambda: usage.request_count == 1)

    assert usage.request_count == 1


# Drops a stream after its first event while the thread holds
# `threading._shutdown_locks_lock`, as when a collection starts inside
# `Thread.join()`. A new non-daemon thread takes that lock before
# `Thread.start()` returns. The name is private to CPython 3.11's threading
# module and used here only to hold the lock. Prints the requests then
# counted and their output tokens.
DROP_IN_THREADING_LOCK = """
import gc, sys, threading, time
import boto3
from llmfy import llmfy_usage_tracker

client = boto3.client(
    "bedrock-runtime",
    region_name="us-east-1",
    endpoint_url=sys.argv[1],
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
with llmfy_usage_tracker() as usage:
    response = client.converse_stream(
        modelId="amazon.nova-micro-v1:0",
        messages=[{"role": "user", "content": [{"text": "Hello"}]}],
    )
    for _ in response["stream"]:
        break
    with threading._shutdown_locks_lock:
        del response, _
        gc.collect()
    deadline = time.monotonic() + 5
    while usage.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
print(usage.request_count, usage.output_tokens)
"""


def test_stream_dropped_inside_threading_lock(bedrock_server: Any, frames: Any) -> None:
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))

    # In another interpreter, because a thread blocked on `threading`'s lock
    # would stop every later thread start of this one.
    result = subprocess.run(
        [sys.executable, "-c", DROP_IN_THREADING_LOCK, bedrock_server.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    # Dropped after its first event, before the metadata event with the usage.
    assert result.stdout.split() == ["1", "0"]


def test_stream_finished_after_block_counts(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=MESSAGES
        )
    list(response["stream"])

    assert usage.request_count == 1
    assert usage.records[0].usage.output_tokens == 10


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
@pytest.mark.parametrize(
    "operation", ["ConverseStream", "InvokeModelWithResponseStream"]
)
def test_finished_stream_freed_at_once(
    bedrock_server: Any, make_client: Any, frames: Any, operation: str, tracked: bool
) -> None:
    # botocore frees an EventStream read to its end as soon as it is dropped.
    # A reference cycle would keep it, with its HTTP response, until the
    # garbage collector runs.
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    metrics = {"inputTokenCount": 8, "outputTokenCount": 10}
    if operation == "ConverseStream":
        stream_frames = converse_stream_frames(frames, usage_body)
    else:
        stream_frames = [
            frames.chunk({"type": "content_block_delta", "delta": {"text": "Hi"}}),
            frames.chunk({"type": "message_stop", INVOCATION_METRICS: metrics}),
        ]
    bedrock_server.queue_stream(stream_frames)

    usage = llmfy_usage_tracker()
    gc.collect()
    gc.disable()
    try:
        with usage if tracked else contextlib.nullcontext():
            if operation == "ConverseStream":
                response = client.converse_stream(
                    modelId="amazon.nova-micro-v1:0", messages=MESSAGES
                )
                stream = response["stream"]
            else:
                response = client.invoke_model_with_response_stream(
                    modelId="amazon.titan-text-lite-v1", body=b"{}"
                )
                stream = response["body"]
            received = list(stream)
            dropped = weakref.ref(stream)
            del response, stream
            freed = dropped() is None
    finally:
        gc.enable()

    assert len(received) == len(stream_frames)
    assert freed
    assert usage.request_count == (1 if tracked else 0)


# Which clients are covered


def test_clients_before_and_after_tracker(
    bedrock_server: Any, make_client: Any
) -> None:
    usage_body = {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}
    before = make_client()
    for _ in range(4):
        bedrock_server.queue_json(converse_body(usage_body))

    with llmfy_usage_tracker() as usage:
        after = make_client()
        other_session = make_client("us-west-2", session=boto3.session.Session())
        raw_session = botocore.session.get_session().create_client(
            "bedrock-runtime",
            region_name="us-east-2",
            endpoint_url=bedrock_server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for client in (before, after, other_session, raw_session):
            client.converse(modelId="amazon.nova-micro-v1:0", messages=MESSAGES)

    assert usage.request_count == 4
    assert [record.usage.region for record in usage.records] == [
        "us-east-1",
        "us-east-1",
        "us-west-2",
        "us-east-2",
    ]


def test_no_tracker_leaves_responses_alone(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    client = make_client()
    body = {
        "inputTextTokenCount": 5,
        "results": [{"tokenCount": 10, "outputText": "Hi"}],
    }
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_json(body)
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))
    with llmfy_usage_tracker():
        pass  # installs the instrumentation

    response = client.invoke_model(modelId="amazon.titan-text-lite-v1", body=b"{}")
    stream_response = client.converse_stream(
        modelId="amazon.nova-micro-v1:0", messages=MESSAGES
    )
    stream = stream_response["stream"]

    assert instrument.is_installed()
    assert type(response["body"]) is StreamingBody
    assert json.loads(response["body"].read()) == body
    assert "_parse_event" not in vars(stream)
    assert "close" not in vars(stream)
    assert len(list(stream)) == 5


def test_other_operations_pass_through_uncounted(
    bedrock_server: Any, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # None of them reports billed tokens: CountTokens is free, the guardrail
    # operations report text units, and an async job runs after its response.
    client = make_client()
    job = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/a1b2c3d4e5f6"
    reel = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:1"
    replies = [
        {"inputTokens": 12},
        {"usage": {"contentPolicyUnits": 1}, "action": "NONE", "outputs": []},
        {"results": {}, "usage": {"contentFilter": {"textUnits": 1}}},
        {"invocationArn": job},
        {
            "invocationArn": job,
            "modelArn": reel,
            "status": "Completed",
            "submitTime": "2026-12-01T00:00:00Z",
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}},
        },
        {"asyncInvokeSummaries": []},
    ]
    for reply in replies:
        bedrock_server.queue_json(reply)
    output = {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}}

    with caplog.at_level(logging.WARNING), llmfy_usage_tracker() as usage:
        counted = client.count_tokens(
            modelId="anthropic.claude-3-haiku-20240307-v1:0",
            input={"converse": {"messages": MESSAGES}},
        )
        guarded = client.apply_guardrail(
            guardrailIdentifier="g1",
            guardrailVersion="1",
            source="INPUT",
            content=[{"text": {"text": "Hello"}}],
        )
        checked = client.invoke_guardrail_checks(
            messages=[{"role": "user", "content": [{"text": "Hello"}]}],
            checks={"contentFilter": {"categories": [{"category": "HATE"}]}},
        )
        started = client.start_async_invoke(
            modelId="amazon.nova-reel-v1:1", modelInput={}, outputDataConfig=output
        )
        fetched = client.get_async_invoke(invocationArn=job)
        listed = client.list_async_invokes()

    assert counted["inputTokens"] == 12
    assert guarded["usage"] == {"contentPolicyUnits": 1}
    assert checked["usage"] == {"contentFilter": {"textUnits": 1}}
    assert started["invocationArn"] == job
    assert fetched["status"] == "Completed"
    assert listed["asyncInvokeSummaries"] == []
    assert [request.method for request in bedrock_server.received] == [
        "POST",
        "POST",
        "POST",
        "POST",
        "GET",
        "GET",
    ]
    assert usage.request_count == 0
    assert caplog.records == []


def test_client_error_is_not_recorded(bedrock_server: Any, make_client: Any) -> None:
    client = make_client()
    bedrock_server.queue_error(400, "ValidationException", "Malformed input request")

    with llmfy_usage_tracker() as usage, pytest.raises(ClientError) as raised:
        client.converse(modelId="amazon.nova-micro-v1:0", messages=MESSAGES)

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert usage.request_count == 0


def test_llmfy_fault_never_reaches_caller(
    bedrock_server: Any,
    make_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(instrument, "_observe", broken)
    client = make_client()
    usage_body = {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}
    bedrock_server.queue_json(converse_body(usage_body))

    with caplog.at_level(logging.WARNING, logger="llmfy.bedrock"):
        with llmfy_usage_tracker() as usage:
            response = client.converse(
                modelId="amazon.nova-micro-v1:0", messages=MESSAGES
            )

    assert response["usage"]["inputTokens"] == 1
    assert usage.request_count == 1
    assert usage.records[0].fault is not None
    assert "amazon.nova-micro-v1:0" in caplog.text
    assert "us-east-1" in caplog.text


def test_stream_watch_finishes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[Any] = []
    monkeypatch.setattr(streams, "record_response", lambda *args: recorded.append(1))
    watch = streams.StreamWatch(
        "ConverseStream",
        "amazon.nova-micro-v1:0",
        "us-east-1",
        {},
        (),
        dt.datetime.now(dt.UTC),
    )
    threads = [threading.Thread(target=watch.finish) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert recorded == [1]


class _WrappedStream:
    """An event stream whose parser another library already replaced."""

    def __init__(self) -> None:
        self._event_generator = iter([b"metadata frame"])
        self._parse_event = self.wrapped_parse

    def wrapped_parse(self, event: bytes) -> dict[str, Any]:
        return {"metadata": {"usage": {"inputTokens": 8, "outputTokens": 10}}}

    def close(self) -> None:
        pass


def test_stream_watch_restores_wrapped_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The watch sets back a parser that was the stream's own attribute, and
    # uncovers `close`, a method of the stream's class.
    recorded: list[Any] = []
    monkeypatch.setattr(streams, "record_response", lambda *args: recorded.append(1))
    stream = _WrappedStream()
    wrapped_parse = stream._parse_event
    watch = streams.StreamWatch(
        "ConverseStream", "amazon.nova-micro-v1:0", "us-east-1", {}, (), 0
    )

    attached = watch.attach(stream)
    replaced = stream._parse_event
    for event in stream._event_generator:
        stream._parse_event(event)

    assert attached
    assert replaced != wrapped_parse
    assert recorded == [1]
    assert stream._parse_event == wrapped_parse
    assert "close" not in vars(stream)
    assert stream._event_generator is watch._events


class _ReadOnlyStream:
    """A stream object that refuses the attributes a stream watch replaces."""

    __slots__ = ()
    _parse_event = property(lambda self: lambda event: event)
    _event_generator = property(lambda self: iter(()))
    close = property(lambda self: lambda: None)


def test_stream_fault_counted_once_in_billing_region(
    bedrock_server: Any,
    make_client: Any,
    frames: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stream that cannot be watched is counted as a fault, in the region
    # that the model's ARN bills, not the client's region. Its watch must not
    # count it again when collected. Logging is off so that no log record
    # keeps the watch alive.
    monkeypatch.setattr(logging.getLogger("llmfy.bedrock"), "disabled", True)
    client = make_client("us-east-1")
    replaced: list[Any] = []

    def replace_stream(parsed: dict[str, Any], **_: Any) -> None:
        replaced.append(parsed["stream"])
        parsed["stream"] = _ReadOnlyStream()

    client.meta.events.register(
        "after-call.bedrock-runtime.ConverseStream", replace_stream
    )
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))

    with llmfy_usage_tracker() as usage:
        client.converse_stream(modelId=EU_PROFILE, messages=MESSAGES)
        for stream in replaced:
            stream.close()
        gc.collect()
        for thread in threading.enumerate():
            if thread.name == "llmfy-bedrock-stream":
                thread.join(5)

    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.region == "eu-west-1"
    assert record.usage.operation == "ConverseStream"
    assert record.fault is not None


def test_exit_with_unread_stream_does_not_hang(
    bedrock_server: Any, frames: Any
) -> None:
    # A stream never read is collected at interpreter exit, where starting a
    # thread to record it waited forever on Python 3.11.7.
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))
    script = (
        "import boto3\n"
        "from llmfy import llmfy_usage_tracker\n"
        "client = boto3.client('bedrock-runtime', region_name='us-east-1',\n"
        f"    endpoint_url={bedrock_server.url!r},\n"
        "    aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "with llmfy_usage_tracker() as usage:\n"
        "    response = client.converse_stream(modelId='amazon.nova-micro-v1:0',\n"
        "        messages=[{'role': 'user', 'content': [{'text': 'Hi'}]}])\n"
        "print(usage.request_count)\n"
    )

    result = run_script(script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"]
    assert "Traceback" not in result.stderr


def test_stream_watch_records_odd_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Headers that a botocore hook replaced with a list: the request is still
    # recorded once, without them.
    contexts: list[Any] = []
    monkeypatch.setattr(
        streams, "record_response", lambda _, context, *rest: contexts.append(context)
    )
    headers: Any = [("x-amzn-requestid", "req-1")]
    watch = streams.StreamWatch(
        "ConverseStream",
        "amazon.nova-micro-v1:0",
        "us-east-1",
        headers,
        (),
        dt.datetime.now(dt.UTC),
    )
    watch.finish()

    assert len(contexts) == 1
    assert contexts[0].region == "us-east-1"
    assert dict(contexts[0].headers) == {}


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh interpreter, where botocore is not imported yet."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )


def test_call_without_plugin_warns(
    bedrock_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when llmfy-bedrock is not installed: the call is not counted, and the
    # tracker that counted nothing warns with the reason, once per process.
    monkeypatch.setenv("LLMFY_DISABLED_PLUGINS", "bedrock")
    for _ in range(2):
        bedrock_server.queue_json(converse_body({"inputTokens": 5, "outputTokens": 2}))
    script = (
        "import warnings\n"
        "import boto3\n"
        "from llmfy_core import llmfy_usage_tracker\n"
        "client = boto3.client('bedrock-runtime', region_name='us-east-1', "
        f"endpoint_url={bedrock_server.url!r})\n"
        "messages = [{'role': 'user', 'content': [{'text': 'Hi'}]}]\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(2):\n"
        "        with llmfy_usage_tracker() as usage:\n"
        "            client.converse(modelId='amazon.nova-lite-v1:0', "
        "messages=messages)\n"
        "        print(usage.request_count)\n"
        "for warning in caught:\n"
        "    print(warning.category.__name__, warning.message)\n"
    )
    result = run_script(script)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert len(lines) == 3
    assert lines[2].startswith("PluginWarning The tracker counted no request.")
    assert "no loaded llmfy plugin counts bedrock calls" in lines[2]
    assert "pip install ./plugins/bedrock" in lines[2]


def test_install_does_not_import_botocore() -> None:
    script = (
        "import sys\n"
        "from llmfy_bedrock import instrument\n"
        "instrument.install()\n"
        "assert 'botocore' not in sys.modules, 'botocore imported early'\n"
        "assert not instrument.is_installed()\n"
        "import boto3\n"
        "assert instrument.is_installed(), 'not patched after import'\n"
        "print('ok')\n"
    )

    result = run_script(script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_install_covers_existing_client() -> None:
    script = (
        "import boto3\n"
        "client = boto3.client('bedrock-runtime', region_name='us-east-1',\n"
        "    endpoint_url='http://127.0.0.1:9', aws_access_key_id='testing',\n"
        "    aws_secret_access_key='testing')\n"
        "from llmfy_bedrock import instrument\n"
        "instrument.install()\n"
        "assert instrument.is_installed()\n"
        "method = type(client)._make_api_call\n"
        "assert hasattr(method, '__llmfy_bedrock_original__'), 'client not covered'\n"
        "print('ok')\n"
    )

    result = run_script(script)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_uninstall_restores_botocore() -> None:
    from botocore.client import BaseClient

    instrument.install()
    patched = BaseClient._make_api_call
    try:
        instrument.uninstall()
        restored = BaseClient._make_api_call

        assert not instrument.is_installed()
        assert restored is patched.__llmfy_bedrock_original__
    finally:
        instrument.install()

    assert instrument.is_installed()


def test_stream_read_by_two_threads_keeps_usage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second thread that calls the stream while the first is inside it gets
    # "generator already executing". The request is not recorded then: the
    # stream goes on, and its usage event is still counted.
    recorded: list[Any] = []
    monkeypatch.setattr(
        streams, "record_response", lambda response, *rest: recorded.append(response)
    )
    metadata = {"usage": {"inputTokens": 8, "outputTokens": 2}}

    class RawMessages:
        """Raw messages whose second read finds the generator busy."""

        def __init__(self) -> None:
            self.messages = iter([{"messageStart": {}}, None, {"metadata": metadata}])

        def __iter__(self) -> RawMessages:
            return self

        def __next__(self) -> Any:
            message = next(self.messages)
            if message is None:
                raise ValueError("generator already executing")
            return message

    class Stream:
        _parse_event = staticmethod(lambda event: event)
        _event_generator = RawMessages()

        def close(self) -> None:
            return None

    stream = Stream()
    watch = streams.StreamWatch(
        "ConverseStream", "amazon.nova-micro-v1:0", "us-east-1", {}, (), 0
    )
    assert watch.attach(stream)
    stream._parse_event(next(stream._event_generator))
    with pytest.raises(ValueError, match="already executing"):
        next(stream._event_generator)
    assert recorded == []
    stream._parse_event(next(stream._event_generator))

    assert recorded == [metadata]


def test_stream_keeps_attributes_set_after_watch(
    bedrock_server: Any, make_client: Any, frames: Any
) -> None:
    # Another library may wrap the stream's `close` and parser after llmfy
    # attached its watch. Giving the stream its attributes back must not undo
    # that library's wrappers.
    client = make_client()
    usage_body = {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    bedrock_server.queue_stream(converse_stream_frames(frames, usage_body))
    closed: list[bool] = []
    parsed: list[Any] = []

    with llmfy_usage_tracker() as usage:
        response = client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=MESSAGES
        )
        stream = response["stream"]
        watched_close = stream.close
        watched_parse = stream._parse_event

        def close() -> None:
            closed.append(True)
            watched_close()

        def parse_event(event: Any) -> Any:
            parsed.append(event)
            return watched_parse(event)

        stream.close = close
        stream._parse_event = parse_event
        received = list(stream)
        stream.close()

    assert len(received) == 5
    assert len(parsed) == 5
    assert closed == [True]
    assert stream.close is close
    assert stream._parse_event is parse_event
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens == 8
