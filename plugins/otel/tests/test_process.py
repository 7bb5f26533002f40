"""The process-wide mode: `enable`, `disable` and `LLMFY_OTEL_ENABLE`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import llmfy_otel
import pytest
from llmfy_otel import names, process
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llmfy_core
from llmfy_core import Usage, llmfy_usage_tracker
from llmfy_core.recording import active_trackers, record_usage

from .conftest import AcmePrices, metrics_by_name, total

pytestmark = pytest.mark.usefixtures("acme_prices")


def send_request(input_tokens: int = 200, output_tokens: int = 50) -> None:
    """Record a request the way provider instrumentation does."""
    usage = Usage("acme", "acme-small", input_tokens, output_tokens)
    record_usage(usage, active_trackers())


def test_enable_counts_without_block(metric_reader: InMemoryMetricReader) -> None:
    tracker = llmfy_otel.enable()

    send_request(200, 50)
    send_request(100, 10)

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    histogram = metrics_by_name(metric_reader)[names.TOKEN_USAGE]
    assert tracker.request_count == 2
    assert total(requests) == 2
    assert total(histogram, **{names.TOKEN_TYPE: "input"}) == tracker.input_tokens
    assert tracker.input_tokens == 300


def test_enable_keeps_totals_only(metric_reader: InMemoryMetricReader) -> None:
    tracker = llmfy_otel.enable()

    send_request()

    assert tracker.keep_requests is False
    assert tracker.records == []
    assert tracker.request_count == 1


def test_block_and_process_export_once(metric_reader: InMemoryMetricReader) -> None:
    tracker = llmfy_otel.enable()

    with llmfy_usage_tracker() as usage:
        send_request(200, 50)
    send_request(100, 10)

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    assert usage.request_count == 1
    assert tracker.request_count == 2
    assert total(requests) == 2


def test_enable_sets_meter_provider(metric_reader: InMemoryMetricReader) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    other_reader = InMemoryMetricReader()
    other = MeterProvider(metric_readers=[other_reader])
    try:
        llmfy_otel.enable(meter_provider=other)
        send_request()
    finally:
        llmfy_otel.disable()
        other.shutdown()

    assert total(metrics_by_name(other_reader)[names.REQUESTS]) == 1
    assert total(metrics_by_name(metric_reader).get(names.REQUESTS)) == 0


def test_disable_stops_counting(metric_reader: InMemoryMetricReader) -> None:
    tracker = llmfy_otel.enable()
    send_request()

    stopped = llmfy_otel.disable()
    send_request()

    assert stopped is tracker
    assert tracker.request_count == 1
    assert llmfy_otel.process_tracker() is None
    assert total(metrics_by_name(metric_reader)[names.REQUESTS]) == 1


def test_disable_keeps_block_export(metric_reader: InMemoryMetricReader) -> None:
    llmfy_otel.enable()
    llmfy_otel.disable()

    with llmfy_usage_tracker() as usage:
        send_request()

    assert usage.request_count == 1
    assert total(metrics_by_name(metric_reader)[names.REQUESTS]) == 1


def test_disable_when_off_returns_none() -> None:
    assert llmfy_otel.disable() is None


def test_enable_twice_returns_same_tracker() -> None:
    first = llmfy_otel.enable()

    second = llmfy_otel.enable()

    assert second is first


def test_enable_twice_with_tags_raises() -> None:
    llmfy_otel.enable(tags={"service": "api"})

    with pytest.raises(RuntimeError, match=r"disable\(\) first"):
        llmfy_otel.enable(tags={"service": "worker"})


def test_enable_tags_reach_metrics(metric_reader: InMemoryMetricReader) -> None:
    llmfy_otel.enable(tags={"service": "api"})

    send_request()

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    assert total(requests, **{"llmfy.tag.service": "api"}) == 1


def test_manual_record_merges_enclosing_tags(
    metric_reader: InMemoryMetricReader,
) -> None:
    llmfy_otel.enable(tags={"service": "api", "team": "core"})

    with llmfy_usage_tracker(tags={"team": "search"}) as usage:
        usage.record("acme", "acme-small", 200, 50)

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    (point,) = requests.data.data_points
    assert point.attributes is not None
    assert point.attributes["llmfy.tag.service"] == "api"
    assert point.attributes["llmfy.tag.team"] == "search"


def test_manual_and_instrumented_tags_agree(
    metric_reader: InMemoryMetricReader,
) -> None:
    with llmfy_usage_tracker(tags={"service": "api", "team": "core"}):
        with llmfy_usage_tracker(tags={"team": "search"}) as usage:
            send_request()
            usage.record("acme", "acme-small", 200, 50)

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    merged = {"llmfy.tag.service": "api", "llmfy.tag.team": "search"}
    assert total(requests, **merged) == 2


@pytest.mark.parametrize("value", ["1", "true", "Yes", " on "])
def test_environment_enables_on_first_record(
    monkeypatch: pytest.MonkeyPatch, metric_reader: InMemoryMetricReader, value: str
) -> None:
    monkeypatch.setenv(process.ENABLE_VARIABLE, value)

    with llmfy_usage_tracker() as usage:
        send_request(200, 50)
    tracker = llmfy_otel.process_tracker()
    send_request(100, 10)

    assert usage.request_count == 1
    assert tracker is not None
    # The process-wide tracker starts after the first recorded request.
    assert tracker.request_count == 1
    assert total(metrics_by_name(metric_reader)[names.REQUESTS]) == 2


@pytest.mark.parametrize("value", ["", "0", "false", "off"])
def test_environment_off_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(process.ENABLE_VARIABLE, value)

    with llmfy_usage_tracker():
        send_request()

    assert llmfy_otel.process_tracker() is None


def test_environment_invalid_value_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(process.ENABLE_VARIABLE, "maybe")
    caplog.set_level(logging.WARNING, logger="llmfy.otel")

    with llmfy_usage_tracker():
        send_request()

    assert llmfy_otel.process_tracker() is None
    assert "Invalid LLMFY_OTEL_ENABLE='maybe'" in caplog.text


def test_import_llmfy_stays_cheap() -> None:
    script = (
        "import sys, llmfy; "
        "print(sorted(m for m in sys.modules if m.startswith(('llmfy_otel', "
        "'opentelemetry'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"LLMFY_OTEL_ENABLE": "1", "PATH": ""},
    )

    assert result.stdout.strip() == "[]"


def test_global_meter_provider_by_default() -> None:
    """With no call to llmfy_otel, metrics go to the global meter provider.

    It runs in its own interpreter, because OpenTelemetry lets a process set
    the global meter provider only once.
    """
    script = textwrap.dedent(
        """
        import json
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from llmfy import llmfy_usage_tracker

        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        with llmfy_usage_tracker() as usage:
            usage.record("openai", "gpt-4o-mini", 60, 3)
            usage.record("openai", "gpt-4o-mini", 107, 3)
        found = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "gen_ai.client.token.usage":
                        for point in metric.data.data_points:
                            kind = point.attributes["gen_ai.token.type"]
                            found[kind] = found.get(kind, 0) + point.sum
        print(json.dumps(found))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # 60 + 107 input and 3 + 3 output tokens.
    assert json.loads(result.stdout) == {"input": 167, "output": 6}


def test_core_totals_unchanged_by_plugin(metric_reader: InMemoryMetricReader) -> None:
    """The exporter reads records; the tracker's report is the same without it."""
    with llmfy_usage_tracker() as usage:
        send_request(200, 50)
    llmfy_core.load_plugins(block=["otel"])
    llmfy_core.register_plugin(AcmePrices(), "acme-prices")
    with llmfy_usage_tracker() as without:
        send_request(200, 50)

    assert usage.to_dict()["totals"] == without.to_dict()["totals"]
    assert total(metrics_by_name(metric_reader)[names.REQUESTS]) == 1
