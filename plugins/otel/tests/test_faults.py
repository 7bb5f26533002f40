"""Export failures never reach the application and never lose the report."""

from __future__ import annotations

import logging
from typing import Any

import llmfy_otel
import pytest
from llmfy_otel import names
from llmfy_otel.exporter import EXPORTER, FaultLog
from opentelemetry import metrics, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.util.types import Attributes

from llmfy_core import llmfy_usage_tracker

from .conftest import metrics_by_name, total

pytestmark = pytest.mark.usefixtures("acme_prices")


class BrokenMeterProvider(NoOpMeterProvider):
    """A meter provider whose meters cannot be created."""

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> metrics.Meter:
        raise RuntimeError("meter provider is shut down")


class BrokenSpan(trace.NonRecordingSpan):
    """A span that claims to record but raises on every attribute."""

    def is_recording(self) -> bool:
        return True

    def set_attributes(self, attributes: Any) -> None:
        raise RuntimeError("span processor failed")


def test_broken_meter_keeps_report(caplog: pytest.LogCaptureFixture) -> None:
    llmfy_otel.use_meter_provider(BrokenMeterProvider())
    EXPORTER.faults = FaultLog()
    caplog.set_level(logging.WARNING, logger="llmfy.otel")

    with llmfy_usage_tracker() as usage:
        record = usage.record("acme", "acme-small", 200, 50)

    assert record.cost is not None
    assert usage.request_count == 1
    assert usage.input_tokens == 200
    assert "OpenTelemetry export of the metrics for acme model acme-small" in (
        caplog.text
    )
    assert "meter provider is shut down" in caplog.text


def test_failures_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    llmfy_otel.use_meter_provider(BrokenMeterProvider())
    EXPORTER.faults = FaultLog(interval=3600)
    caplog.set_level(logging.WARNING, logger="llmfy.otel")

    with llmfy_usage_tracker() as usage:
        for _ in range(5):
            usage.record("acme", "acme-small", 200, 50)

    otel_records = [r for r in caplog.records if r.name == "llmfy.otel"]
    assert usage.request_count == 5
    assert len(otel_records) == 1


def test_suppressed_failures_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    llmfy_otel.use_meter_provider(BrokenMeterProvider())
    now = [1000.0]
    EXPORTER.faults = FaultLog(interval=60, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="llmfy.otel")

    with llmfy_usage_tracker() as usage:
        usage.record("acme", "acme-small", 200, 50)
        now[0] += 30
        usage.record("acme", "acme-small", 200, 50)
        usage.record("acme", "acme-small", 200, 50)
        now[0] += 31
        usage.record("acme", "acme-small", 200, 50)

    messages = [r.getMessage() for r in caplog.records if r.name == "llmfy.otel"]
    assert usage.request_count == 4
    assert len(messages) == 2
    assert "more failures" not in messages[0]
    assert "2 more failures since the last one logged" in messages[1]


def test_broken_span_keeps_metrics(
    metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    EXPORTER.faults = FaultLog()
    caplog.set_level(logging.WARNING, logger="llmfy.otel")
    span = BrokenSpan(trace.INVALID_SPAN_CONTEXT)

    with trace.use_span(span):
        with llmfy_usage_tracker() as usage:
            usage.record("acme", "acme-small", 200, 50)

    assert usage.request_count == 1
    assert total(metrics_by_name(metric_reader)[names.REQUESTS]) == 1
    assert "span attributes" in caplog.text
    assert "span processor failed" in caplog.text


def test_broken_meter_keeps_span_attributes(
    span_exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    llmfy_otel.use_meter_provider(BrokenMeterProvider())
    EXPORTER.faults = FaultLog()
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("call"):
        with llmfy_usage_tracker() as usage:
            usage.record("acme", "acme-small", 200, 50)

    (finished,) = exporter.get_finished_spans()
    assert dict(finished.attributes or {})[names.USAGE_INPUT_TOKENS] == 200
