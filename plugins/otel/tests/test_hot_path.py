"""The per-request work: instruments created once, attribute sets reused."""

from __future__ import annotations

import llmfy_otel
import pytest
from llmfy_otel.exporter import EXPORTER
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.util.types import Attributes

from llmfy_core import llmfy_usage_tracker

pytestmark = pytest.mark.usefixtures("acme_prices")


class CountingMeterProvider(metrics.MeterProvider):
    """Delegates to an SDK meter provider and counts `get_meter` calls."""

    def __init__(self, delegate: MeterProvider) -> None:
        self.delegate = delegate
        self.meters_created = 0

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> metrics.Meter:
        self.meters_created += 1
        return self.delegate.get_meter(name, version, schema_url, attributes)


def test_instruments_created_once() -> None:
    delegate = MeterProvider(metric_readers=[InMemoryMetricReader()])
    provider = CountingMeterProvider(delegate)
    llmfy_otel.use_meter_provider(provider)

    with llmfy_usage_tracker() as usage:
        for _ in range(100):
            usage.record("acme", "acme-small", 200, 50)

    delegate.shutdown()
    assert usage.request_count == 100
    assert provider.meters_created == 1


def test_new_provider_gets_instruments() -> None:
    first = CountingMeterProvider(MeterProvider())
    second = CountingMeterProvider(MeterProvider())

    with llmfy_usage_tracker() as usage:
        llmfy_otel.use_meter_provider(first)
        usage.record("acme", "acme-small", 200, 50)
        llmfy_otel.use_meter_provider(second)
        usage.record("acme", "acme-small", 200, 50)
        llmfy_otel.use_meter_provider(first)
        usage.record("acme", "acme-small", 200, 50)

    assert first.meters_created == 1
    assert second.meters_created == 1


def test_attribute_sets_reused() -> None:
    with llmfy_usage_tracker(tags={"team": "search"}) as usage:
        first = usage.record("acme", "acme-small", 200, 50)
        second = usage.record("acme", "acme-small", 100, 10)
        other_region = usage.record("acme", "acme-small", 100, 10, region="us-east-1")

    assert EXPORTER._attributes_for(first) is EXPORTER._attributes_for(second)
    assert EXPORTER._attributes_for(first) is not EXPORTER._attributes_for(other_region)
