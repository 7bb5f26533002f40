"""Usage and cost set on the span that is current when a request is recorded."""

from __future__ import annotations

import contextvars
import threading
from decimal import Decimal

import pytest
from llmfy_otel import names
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from llmfy_core import PricingWarning, llmfy_usage_tracker

pytestmark = pytest.mark.usefixtures("acme_prices")

SpanFixture = tuple[TracerProvider, InMemorySpanExporter]

# How long the first request's thread waits, inside `set_attributes`, for the
# second request to be recorded under the same span.
OVERTAKE_WAIT_SECONDS = 0.5


def test_span_gets_request_usage(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("answer question"):
        with llmfy_usage_tracker() as usage:
            usage.record(
                "acme",
                "acme-large",
                1000,
                300,
                cache_read_tokens=400,
                cache_write_tokens=100,
                reasoning_tokens=120,
            )

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    # (1000 - 400 - 100) plain input x 2 / 1e6 + 400 cached x 0.5 / 1e6
    # + 100 written x 2.5 / 1e6 + 300 output x 8 / 1e6
    # = 0.001 + 0.0002 + 0.00025 + 0.0024 = 0.00385
    assert usage.total_cost == Decimal("0.00385")
    assert attributes[names.USAGE_INPUT_TOKENS] == usage.input_tokens == 1000
    assert attributes[names.USAGE_OUTPUT_TOKENS] == usage.output_tokens == 300
    assert attributes[names.USAGE_CACHE_READ_TOKENS] == usage.cache_read_tokens
    assert attributes[names.USAGE_CACHE_WRITE_TOKENS] == usage.cache_write_tokens
    assert attributes[names.USAGE_REASONING_TOKENS] == usage.reasoning_tokens
    assert attributes[names.SPAN_COST] == float(usage.total_cost)
    assert attributes[names.SPAN_COST_COMPLETE] is True
    assert attributes[names.SPAN_REQUESTS] == 1


def test_span_sums_its_requests(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("two calls"):
        with llmfy_usage_tracker() as usage:
            usage.record("acme", "acme-small", 200, 50)
            usage.record("acme", "acme-small", 100, 25, cache_read_tokens=60)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    # 200 x 1 / 1e6 + 50 x 4 / 1e6 = 0.0004, and 100 x 1 / 1e6 + 25 x 4 / 1e6
    # = 0.0002 (acme-small has no cache price, so cached tokens cost the input
    # rate); together 0.0006.
    assert attributes[names.USAGE_INPUT_TOKENS] == usage.input_tokens == 300
    assert attributes[names.USAGE_OUTPUT_TOKENS] == usage.output_tokens == 75
    assert attributes[names.USAGE_CACHE_READ_TOKENS] == 60
    assert attributes[names.SPAN_COST] == pytest.approx(0.0006, rel=1e-12)
    assert attributes[names.SPAN_REQUESTS] == 2


def test_span_marks_incomplete_cost(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("unpriced call"):
        with llmfy_usage_tracker() as usage:
            with pytest.warns(PricingWarning):
                usage.record("acme", "acme-unpriced", 10, 5)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes[names.USAGE_INPUT_TOKENS] == 10
    assert attributes[names.SPAN_COST_COMPLETE] is False
    assert names.SPAN_COST not in attributes


def test_unknown_usage_sets_no_tokens(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("stream without usage"):
        with llmfy_usage_tracker() as usage:
            usage.record("acme", "acme-small", None, None)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert usage.request_count == 1
    assert names.USAGE_INPUT_TOKENS not in attributes
    assert names.USAGE_OUTPUT_TOKENS not in attributes
    assert attributes[names.USAGE_UNKNOWN] == ("input", "output")
    assert attributes[names.SPAN_REQUESTS] == 1
    assert attributes[names.SPAN_COST_COMPLETE] is False


def test_half_known_usage_sets_known_tokens(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("stream cut short"):
        with llmfy_usage_tracker() as usage:
            usage.record("acme", "acme-small", 200, 50)
            usage.record("acme", "acme-small", 120, None, cache_read_tokens=100)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert usage.request_count == 2
    assert attributes[names.USAGE_INPUT_TOKENS] == 320
    assert attributes[names.USAGE_CACHE_READ_TOKENS] == 100
    # The output count leaves out the request whose output is unknown.
    assert attributes[names.USAGE_OUTPUT_TOKENS] == 50
    assert attributes[names.USAGE_UNKNOWN] == ("output",)
    assert attributes[names.SPAN_COST_COMPLETE] is False


def test_known_usage_sets_no_unknown_mark(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("one call"):
        with llmfy_usage_tracker() as usage:
            usage.record("acme", "acme-small", 200, 50)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert usage.request_count == 1
    assert names.USAGE_UNKNOWN not in attributes


def test_no_span_no_attributes(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with llmfy_usage_tracker() as usage:
        usage.record("acme", "acme-small", 200, 50)
    with tracer.start_as_current_span("after the request"):
        pass

    (span,) = exporter.get_finished_spans()
    assert trace.get_current_span().is_recording() is False
    assert usage.request_count == 1
    assert dict(span.attributes or {}) == {}


def test_span_attributes_hold_no_content(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("call"):
        with llmfy_usage_tracker(tags={"feature": "faq"}) as usage:
            usage.record("acme", "acme-small", 200, 50)

    (span,) = exporter.get_finished_spans()
    keys = set((span.attributes or {}).keys())
    assert keys == {
        names.USAGE_INPUT_TOKENS,
        names.USAGE_OUTPUT_TOKENS,
        names.USAGE_CACHE_READ_TOKENS,
        names.USAGE_CACHE_WRITE_TOKENS,
        names.USAGE_REASONING_TOKENS,
        names.SPAN_COST,
        names.SPAN_COST_COMPLETE,
        names.SPAN_REQUESTS,
    }
    assert span.events == ()


def test_overtaken_request_keeps_latest_totals(span_exporter: SpanFixture) -> None:
    provider, exporter = span_exporter
    tracer = provider.get_tracer("test")
    first_setting = threading.Event()
    second_recorded = threading.Event()
    calls = 0

    with llmfy_usage_tracker() as usage, tracer.start_as_current_span("batch") as span:
        set_attributes = span.set_attributes

        def pause_first_set_attributes(attributes: dict[str, object]) -> None:
            # The first request's totals reach the span only after the second
            # request has been recorded, unless the second waits for them.
            nonlocal calls
            calls += 1
            if calls == 1:
                first_setting.set()
                second_recorded.wait(timeout=OVERTAKE_WAIT_SECONDS)
            set_attributes(attributes)  # type: ignore[arg-type]

        span.set_attributes = pause_first_set_attributes  # type: ignore[method-assign]

        def record_small() -> None:
            usage.record("acme", "acme-small", 100, 10)

        def record_second() -> None:
            record_small()
            second_recorded.set()

        first = threading.Thread(
            target=contextvars.copy_context().run, args=(record_small,)
        )
        first.start()
        assert first_setting.wait(timeout=10)
        second = threading.Thread(
            target=contextvars.copy_context().run, args=(record_second,)
        )
        second.start()
        first.join(timeout=10)
        second.join(timeout=10)

    (finished,) = exporter.get_finished_spans()
    attributes = dict(finished.attributes or {})
    assert usage.request_count == 2
    assert attributes[names.SPAN_REQUESTS] == 2
    assert attributes[names.USAGE_INPUT_TOKENS] == 200
    assert attributes[names.USAGE_OUTPUT_TOKENS] == 20
    # 2 x (100 input x 1 / 1e6 + 10 output x 4 / 1e6) = 2 x 0.00014 = 0.00028
    assert usage.total_cost == Decimal("0.00028")
    assert attributes[names.SPAN_COST] == float(Decimal("0.00028"))
