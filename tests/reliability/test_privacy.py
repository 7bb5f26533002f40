"""Secrets in requests and responses never reach reports, logs or exported data.

The real SDKs send an API key, AWS credentials and a prompt, and receive a
completion, each holding a marker string. Malformed usage and unpriced
models make llmfy log and warn along the way. No marker may appear in
`str(usage)`, `usage.to_dict()`, the records, the `llmfy` logs at DEBUG,
the warnings, the records given to `request_recorded`, or the
OpenTelemetry metrics and span attributes that llmfy-otel exports.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import boto3
import llmfy_otel
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import llmfy_core
from llmfy_core import RequestRecord, hookimpl, llmfy_usage_tracker

from .servers import LoopbackLLM

API_KEY = "sk-llmfy-secret-api-key-7f3a"
AWS_SECRET = "llmfy-secret-aws-key-9c1d"
AWS_TOKEN = "llmfy-secret-session-token-4e2b"
PROMPT = "llmfy-secret-prompt-5d8e"
COMPLETION = "llmfy-secret-completion-1a6f"
SECRETS = (API_KEY, AWS_SECRET, AWS_TOKEN, PROMPT, COMPLETION)


class CapturingExporter:
    """A `request_recorded` plugin that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def request_recorded(self, record: RequestRecord) -> None:
        self.records.append(record)


Exported = tuple[InMemoryMetricReader, TracerProvider, InMemorySpanExporter]


@pytest.fixture
def exported() -> Iterator[Exported]:
    """Export llmfy-otel's metrics and the spans of a tracer to memory."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    llmfy_otel.use_meter_provider(meter_provider)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    yield reader, tracer_provider, spans
    llmfy_otel.use_meter_provider(None)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def run_application(loopback: LoopbackLLM, tracer_provider: TracerProvider) -> Any:
    """Make OpenAI and Bedrock calls that carry the secrets; return the tracker."""
    chat = openai.OpenAI(
        base_url=loopback.openai_base_url, api_key=API_KEY, max_retries=0
    )
    bedrock = boto3.session.Session().client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=loopback.url,
        aws_access_key_id="AKIALLMFYTEST",
        aws_secret_access_key=AWS_SECRET,
        aws_session_token=AWS_TOKEN,
    )
    messages = [{"role": "user", "content": PROMPT}]
    converse_messages = [{"role": "user", "content": [{"text": PROMPT}]}]
    tracer = tracer_provider.get_tracer("privacy-test")
    seen = []

    with tracer.start_as_current_span("answer"), llmfy_usage_tracker() as usage:
        reply = chat.chat.completions.create(model="gpt-4o-mini", messages=messages)
        seen.append(reply.choices[0].message.content)
        stream = chat.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        )
        seen.append("".join(c.choices[0].delta.content or "" for c in stream))
        answer = bedrock.converse(
            modelId="amazon.nova-micro-v1:0", messages=converse_messages
        )
        seen.append(answer["output"]["message"]["content"][0]["text"])
        events = bedrock.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=converse_messages
        )
        seen.extend(
            event["contentBlockDelta"]["delta"]["text"]
            for event in events["stream"]
            if "contentBlockDelta" in event
        )
        # A model without a price, and malformed usage, so that llmfy warns.
        loopback.replies.served_model = None
        loopback.replies.output_tokens = -1
        chat.chat.completions.create(model="model-without-price", messages=messages)
        bedrock.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages)
    chat.close()
    return usage, seen


def test_secrets_never_stored_logged_or_exported(
    loopback: LoopbackLLM,
    exported: Exported,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader, tracer_provider, spans = exported
    capture = CapturingExporter()
    llmfy_core.register_plugin(capture, "capture")
    loopback.replies.text = COMPLETION
    caplog.set_level(logging.DEBUG, logger="llmfy")

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        usage, seen = run_application(loopback, tracer_provider)

    # Control: the secrets did travel, so their absence below means something.
    sent = b"".join(
        json.dumps(request.headers).encode() + request.body
        for request in loopback.received
    )
    assert API_KEY.encode() in sent
    assert AWS_TOKEN.encode() in sent
    assert PROMPT.encode() in sent
    assert seen[:4] == [COMPLETION] * 4
    assert usage.request_count == 6
    assert caplog.records
    assert warned

    places = {
        "str(usage)": str(usage),
        "repr(usage)": repr(usage),
        "usage.to_dict()": json.dumps(usage.to_dict()),
        "usage.records": repr(usage.records),
        "logs": "\n".join(
            f"{record.getMessage()} {record.exc_text or ''}"
            for record in caplog.records
        ),
        "warnings": "\n".join(str(warning.message) for warning in warned),
        "request_recorded": repr(capture.records),
        "metrics": reader.get_metrics_data().to_json(),
        "spans": "\n".join(span.to_json() for span in spans.get_finished_spans()),
    }
    for place, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {place}"
    assert len(capture.records) == 6
    assert spans.get_finished_spans()
