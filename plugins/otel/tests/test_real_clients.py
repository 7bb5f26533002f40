"""Metrics and span attributes for real openai and boto3 calls on loopback.

The llmfy-openai and llmfy-bedrock plugins record the calls. The server in
conftest responds with bodies written for these tests. Prices come from
override tables, so that the expected costs below follow from them by hand.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import llmfy_otel
import openai
import pytest
from llmfy_otel import names
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from llmfy_core import UsageTracker, llmfy_usage_tracker

from .conftest import LoopbackLLM, count, metrics_by_name, points, total

# USD per million tokens.
OPENAI_PRICING = {"gpt-4o-mini": {"input": 0.15, "output": 0.60, "cache_read": 0.075}}
# USD per 1,000 tokens, in us-east-1.
BEDROCK_PRICING = {
    "amazon.nova-micro-v1:0": {
        "us-east-1": {
            "region": "US East (N. Virginia)",
            "input": 0.000035,
            "output": 0.00014,
            "cache_read": 0.00000875,
        }
    }
}
NOVA_MICRO = "amazon.nova-micro-v1:0"

# The chat completion: 1,200 prompt tokens of which 1,024 cached, 80 output.
#   (1200 - 1024) x 0.15 / 1e6 + 1024 x 0.075 / 1e6 + 80 x 0.60 / 1e6
#   = 0.0000264 + 0.0000768 + 0.000048 = 0.0001512
CHAT_COST = Decimal("0.0001512")
# The Converse call: 30 uncached input, 2,000 cached, 12 output tokens.
#   30 x 0.000035 / 1e3 + 2000 x 0.00000875 / 1e3 + 12 x 0.00014 / 1e3
#   = 0.00000105 + 0.0000175 + 0.00000168 = 0.00002023
CONVERSE_COST = Decimal("0.00002023")

SpanFixture = tuple[TracerProvider, InMemorySpanExporter]


@pytest.fixture(autouse=True)
def no_aws_metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep boto3 away from the instance metadata service and local profiles."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    yield


def openai_client(llm: LoopbackLLM) -> openai.OpenAI:
    """Return a real openai client aimed at the loopback server."""
    return openai.OpenAI(base_url=f"{llm.url}/v1", api_key="test-key", max_retries=0)


def chat(llm: LoopbackLLM) -> None:
    """Send one Chat Completions request with the real openai client."""
    client = openai_client(llm)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say ok."}]
    )


def converse(llm: LoopbackLLM) -> None:
    """Send one Converse request with the real boto3 client."""
    client: Any = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=llm.url,
        aws_access_key_id="test-key-id",
        aws_secret_access_key="test-secret",
    )
    client.converse(
        modelId=NOVA_MICRO,
        messages=[{"role": "user", "content": [{"text": "Say ok."}]}],
    )


def tracked_calls(llm: LoopbackLLM) -> UsageTracker:
    """Make one call with each client inside one tracker."""
    with llmfy_usage_tracker(
        openai_pricing=OPENAI_PRICING, bedrock_pricing=BEDROCK_PRICING
    ) as usage:
        chat(llm)
        converse(llm)
    return usage


def test_calls_reach_loopback(loopback_llm: LoopbackLLM) -> None:
    usage = tracked_calls(loopback_llm)

    assert loopback_llm.paths == [
        "/v1/chat/completions",
        "/model/amazon.nova-micro-v1%3A0/converse",
    ]
    assert usage.request_count == 2
    assert usage.total_cost == CHAT_COST + CONVERSE_COST


def test_token_usage_matches_tracker(
    loopback_llm: LoopbackLLM, metric_reader: InMemoryMetricReader
) -> None:
    usage = tracked_calls(loopback_llm)

    histogram = metrics_by_name(metric_reader)[names.TOKEN_USAGE]

    # 1,200 + 2,030 input tokens and 80 + 12 output tokens.
    assert usage.input_tokens == 3230
    assert usage.output_tokens == 92
    assert total(histogram, **{names.TOKEN_TYPE: "input"}) == usage.input_tokens
    assert total(histogram, **{names.TOKEN_TYPE: "output"}) == usage.output_tokens
    assert count(histogram, **{names.TOKEN_TYPE: "input"}) == usage.request_count


def test_counters_match_tracker(
    loopback_llm: LoopbackLLM, metric_reader: InMemoryMetricReader
) -> None:
    usage = tracked_calls(loopback_llm)

    metrics = metrics_by_name(metric_reader)

    assert usage.cache_read_tokens == 1024 + 2000
    assert total(metrics[names.CACHE_READ_TOKENS]) == usage.cache_read_tokens
    assert total(metrics.get(names.CACHE_WRITE_TOKENS)) == usage.cache_write_tokens
    assert total(metrics.get(names.REASONING_TOKENS)) == usage.reasoning_tokens
    assert total(metrics[names.REQUESTS]) == usage.request_count
    assert total(metrics[names.REQUESTS], **{names.PRICED: True}) == 2
    assert total(metrics[names.COST]) == pytest.approx(
        float(usage.total_cost), rel=1e-12
    )


def test_openai_attributes(
    loopback_llm: LoopbackLLM, metric_reader: InMemoryMetricReader
) -> None:
    tracked_calls(loopback_llm)

    metrics = metrics_by_name(metric_reader)
    (cost,) = points(metrics[names.COST], **{names.PROVIDER_NAME: "openai"})

    assert dict(cost.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "llmfy.priced": True,
    }
    assert cost.value == pytest.approx(float(CHAT_COST), rel=1e-12)


def test_bedrock_attributes(
    loopback_llm: LoopbackLLM, metric_reader: InMemoryMetricReader
) -> None:
    tracked_calls(loopback_llm)

    metrics = metrics_by_name(metric_reader)
    (cost,) = points(metrics[names.COST], **{names.PROVIDER_NAME: "aws.bedrock"})
    output = points(
        metrics[names.TOKEN_USAGE],
        **{names.PROVIDER_NAME: "aws.bedrock", names.TOKEN_TYPE: "output"},
    )

    assert dict(cost.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": NOVA_MICRO,
        "cloud.region": "us-east-1",
        "llmfy.priced": True,
    }
    assert cost.value == pytest.approx(float(CONVERSE_COST), rel=1e-12)
    assert len(output) == 1
    assert output[0].sum == 12


def test_span_gets_both_calls(
    loopback_llm: LoopbackLLM, span_exporter: SpanFixture
) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("answer question"):
        usage = tracked_calls(loopback_llm)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes[names.USAGE_INPUT_TOKENS] == usage.input_tokens
    assert attributes[names.USAGE_OUTPUT_TOKENS] == usage.output_tokens
    assert attributes[names.USAGE_CACHE_READ_TOKENS] == usage.cache_read_tokens
    assert attributes[names.USAGE_CACHE_WRITE_TOKENS] == 0
    assert attributes[names.SPAN_COST] == pytest.approx(
        float(CHAT_COST + CONVERSE_COST), rel=1e-12
    )
    assert attributes[names.SPAN_REQUESTS] == 2


def test_span_cost_incomplete_for_unpriced_tool(
    loopback_llm: LoopbackLLM, span_exporter: SpanFixture
) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")
    client = openai_client(loopback_llm)

    with tracer.start_as_current_span("run code"):
        with llmfy_usage_tracker(openai_pricing=OPENAI_PRICING) as usage:
            client.responses.create(model="gpt-4o-mini", input="What is 1 + 1?")

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    # 500 x 0.15 / 1e6 + 40 x 0.60 / 1e6 = 0.000099, without Code Interpreter.
    assert usage.total_cost == Decimal("0.000099")
    assert usage.cost_complete is False
    assert attributes[names.SPAN_COST] == pytest.approx(0.000099, rel=1e-12)
    assert attributes[names.SPAN_COST_COMPLETE] is False


def test_collected_stream_leaves_other_span_alone(
    loopback_llm: LoopbackLLM,
    span_exporter: SpanFixture,
    wait_for: Callable[[Callable[[], bool]], None],
) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")
    client = openai_client(loopback_llm)

    # The SDK's stream refers to itself through its iterator, so only the
    # cyclic garbage collector frees it. Here it runs in another request's span.
    gc.disable()
    try:
        with llmfy_usage_tracker(openai_pricing=OPENAI_PRICING) as usage:
            with tracer.start_as_current_span("request A"):
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "Say ok."}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for chunk in stream:
                    if chunk.usage is not None:
                        break
                del stream, chunk
            recorded_before_collection = usage.request_count
            with tracer.start_as_current_span("request B"):
                gc.collect()
                wait_for(lambda: usage.request_count == 1)
    finally:
        gc.enable()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert recorded_before_collection == 0
    assert usage.request_count == 1
    assert usage.input_tokens == 1200
    assert usage.total_cost == CHAT_COST
    assert dict(spans["request B"].attributes or {}) == {}


def test_process_mode_counts_real_calls(
    loopback_llm: LoopbackLLM, metric_reader: InMemoryMetricReader
) -> None:
    tracker = llmfy_otel.enable(
        openai_pricing=OPENAI_PRICING, bedrock_pricing=BEDROCK_PRICING
    )

    chat(loopback_llm)
    with llmfy_usage_tracker(
        openai_pricing=OPENAI_PRICING, bedrock_pricing=BEDROCK_PRICING
    ) as usage:
        converse(loopback_llm)

    metrics = metrics_by_name(metric_reader)
    assert usage.request_count == 1
    assert tracker.request_count == 2
    assert total(metrics[names.REQUESTS]) == tracker.request_count
    assert tracker.total_cost == CHAT_COST + CONVERSE_COST
    assert total(metrics[names.COST]) == pytest.approx(
        float(tracker.total_cost), rel=1e-12
    )
    assert total(metrics[names.CACHE_READ_TOKENS]) == tracker.cache_read_tokens
