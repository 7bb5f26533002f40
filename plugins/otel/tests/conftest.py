"""Fixtures for the llmfy-otel tests: in-memory OpenTelemetry SDK and a loopback LLM.

The loopback server serves the OpenAI Chat Completions and the Bedrock
Converse APIs on 127.0.0.1, responding with bodies written for these tests, in the shape
of real responses, so that the real `openai` and `boto3` clients run over real
HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import llmfy_otel
import pytest
from llmfy_otel import process
from llmfy_otel.exporter import EXPORTER, FaultLog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import llmfy_core
from llmfy_core import Price

# A Chat Completions response with cached input tokens: 1,200 prompt tokens of
# which 1,024 cached, and 80 completion tokens.
CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-llmfyotel0001",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Ok.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 80,
        "total_tokens": 1280,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_llmfyotel",
}

# A Bedrock Converse response: 30 uncached input tokens, 2,000 read from the
# cache, 12 output tokens. Bedrock's inputTokens leaves the cached ones out.
CONVERSE: dict[str, Any] = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Ok."}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 30,
        "outputTokens": 12,
        "totalTokens": 2042,
        "cacheReadInputTokens": 2000,
        "cacheWriteInputTokens": 0,
    },
    "metrics": {"latencyMs": 321},
}

# A Responses body whose request ran Code Interpreter once, which is billed
# per container and so has no bundled price: 500 input and 40 output tokens.
RESPONSE_WITH_CODE_INTERPRETER: dict[str, Any] = {
    "id": "resp_llmfyotel0001",
    "object": "response",
    "created_at": 1767225600,
    "status": "completed",
    "model": "gpt-4o-mini-2024-07-18",
    "output": [
        {
            "id": "ci_llmfyotel0001",
            "type": "code_interpreter_call",
            "status": "completed",
            "code": "1 + 1",
            "container_id": "cntr_llmfyotel0001",
            "outputs": [],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "service_tier": "default",
    "usage": {
        "input_tokens": 500,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 540,
    },
}

_CONVERSE_PATH = re.compile(r"^/model/[^/]+/converse$")


def chat_completion_chunks() -> list[dict[str, Any]]:
    """Return `CHAT_COMPLETION` as the chunks of a stream with `include_usage`."""
    common = {
        key: CHAT_COMPLETION[key]
        for key in ("id", "created", "model", "service_tier", "system_fingerprint")
    }
    common["object"] = "chat.completion.chunk"
    choice = {"index": 0, "delta": {"role": "assistant", "content": "Ok."}}
    finish = {"index": 0, "delta": {}, "finish_reason": "stop"}
    return [
        {**common, "choices": [{**choice, "finish_reason": None}]},
        {**common, "choices": [finish]},
        {**common, "choices": [], "usage": CHAT_COMPLETION["usage"]},
    ]


class LoopbackLLM:
    """A running loopback server and the requests it has served."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.paths: list[str] = []

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"


def _handler(llm: LoopbackLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            llm.paths.append(self.path)
            if self.path == "/v1/chat/completions" and request.get("stream"):
                self._send_chat_stream()
            elif self.path == "/v1/chat/completions":
                self._send_json(CHAT_COMPLETION, {"x-request-id": "req_llmfyotel"})
            elif self.path == "/v1/responses":
                headers = {"x-request-id": "req_llmfyotel_responses"}
                self._send_json(RESPONSE_WITH_CODE_INTERPRETER, headers)
            elif _CONVERSE_PATH.match(self.path):
                self._send_json(CONVERSE, {"x-amzn-requestid": "llmfy-otel-0001"})
            else:
                self._send_json({"error": {"message": "not found"}}, {}, 404)

        def _send_json(
            self, body: Mapping[str, Any], headers: Mapping[str, str], status: int = 200
        ) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _send_chat_stream(self) -> None:
            """Send `CHAT_COMPLETION` as a stream that ends with its usage chunk."""
            payload = b"".join(
                f"data: {json.dumps(chunk)}\n\n".encode()
                for chunk in chat_completion_chunks()
            )
            payload += b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output free of access logs."""

    return Handler


@pytest.fixture
def loopback_llm() -> Iterator[LoopbackLLM]:
    """Serve the Chat Completions (also streamed), Responses and Converse bodies."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    llm = LoopbackLLM(server)
    server.RequestHandlerClass = _handler(llm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def reset_otel_plugin() -> Iterator[None]:
    """Leave the process-wide mode off and the global meter provider in use."""
    process.reset_environment_check()
    yield
    llmfy_otel.disable()
    llmfy_otel.use_meter_provider(None)
    process.reset_environment_check()
    EXPORTER.faults = FaultLog()


@pytest.fixture
def metric_reader() -> Iterator[InMemoryMetricReader]:
    """Export the plugin's metrics to an in-memory reader for this test."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    llmfy_otel.use_meter_provider(provider)
    yield reader
    llmfy_otel.use_meter_provider(None)
    provider.shutdown()


@pytest.fixture
def span_exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """Return a tracer provider whose finished spans land in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


# Prices of the test provider "acme", in USD per million tokens.
ACME_LARGE = Price(
    input=Decimal("2"),
    output=Decimal("8"),
    cache_read=Decimal("0.5"),
    cache_write=Decimal("2.5"),
    other={"input_audio": Decimal("40")},
    per_call={"web_search": Decimal("0.01")},
)
ACME_SMALL = Price(input=Decimal("1"), output=Decimal("4"))


class AcmePrices:
    """A test pricing plugin for the provider "acme"; other models are unpriced."""

    llmfy_price_rank = llmfy_core.PriceRank.PROVIDER

    @llmfy_core.hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        if provider != "acme":
            return None
        return {"acme-large": ACME_LARGE, "acme-small": ACME_SMALL}.get(model)


@pytest.fixture
def acme_prices() -> Iterator[None]:
    """Register the "acme" test prices for this test."""
    name = llmfy_core.register_plugin(AcmePrices(), "acme-prices")
    yield
    llmfy_core.unregister_plugin(name)


def metrics_by_name(reader: InMemoryMetricReader) -> dict[str, Metric]:
    """Collect the reader's metrics, keyed by metric name."""
    data = reader.get_metrics_data()
    found: dict[str, Metric] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = metric
    return found


def points(metric: Metric | None, **attributes: Any) -> list[Any]:
    """Return the metric's data points whose attributes include `attributes`."""
    if metric is None:
        return []
    matching = []
    for point in metric.data.data_points:
        point_attributes = dict(point.attributes or {})
        if all(point_attributes.get(key) == value for key, value in attributes.items()):
            matching.append(point)
    return matching


def total(metric: Metric | None, **attributes: Any) -> float:
    """Sum a counter's values, or a histogram's sums, over matching points."""
    result: float = 0
    for point in points(metric, **attributes):
        if isinstance(point, HistogramDataPoint):
            result += point.sum
        elif isinstance(point, NumberDataPoint):
            result += point.value
    return result


def count(metric: Metric | None, **attributes: Any) -> int:
    """Sum a histogram's counts over matching points."""
    return sum(point.count for point in points(metric, **attributes))
