"""Metrics exported for recorded requests, checked against the tracker's totals.

Requests are recorded by hand (`usage.record`) and through the core's
recording path, for a test provider "acme" whose prices the `acme_prices`
fixture registers.
"""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal

import pytest
from llmfy_otel import names
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llmfy_core
from llmfy_core import PricingWarning, Usage, llmfy_usage_tracker
from llmfy_core.recording import active_trackers, record_usage

from .conftest import count, metrics_by_name, points, total

pytestmark = pytest.mark.usefixtures("acme_prices")

# The expected costs, from the prices in conftest (USD per million tokens):
#
# acme-large, input 1,000 of which 400 cached, 100 cache write and 50 input
# audio; output 300 of which 120 reasoning; 2 web searches:
#   plain input  (1000 - 400 - 100 - 50) x 2   / 1e6 = 0.0009
#   cache read    400 x 0.5 / 1e6                   = 0.0002
#   cache write   100 x 2.5 / 1e6                   = 0.00025
#   input audio    50 x 40  / 1e6                   = 0.002
#   output        300 x 8   / 1e6                   = 0.0024
#   web search      2 x 0.01                        = 0.02
#   total                                           = 0.02575
LARGE_COST = Decimal("0.02575")
# acme-small, input 200, output 50: 200 x 1 / 1e6 + 50 x 4 / 1e6 = 0.0004
SMALL_COST = Decimal("0.0004")


def record_four_requests() -> llmfy_core.UsageTracker:
    """Record a large, a small, an unpriced and an unknown-usage request."""
    with llmfy_usage_tracker(tags={"team": "search"}) as usage:
        usage.record(
            "acme",
            "acme-large",
            1000,
            300,
            cache_read_tokens=400,
            cache_write_tokens=100,
            reasoning_tokens=120,
            other_tokens={"input_audio": 50},
            tool_calls={"web_search": 2},
            region="eu-west-1",
            served_model="acme-large-2026-01-01",
        )
        usage.record("acme", "acme-small", 200, 50)
        with pytest.warns(PricingWarning, match="acme-unpriced"):
            usage.record("acme", "acme-unpriced", 10, 5)
        usage.record("acme", "acme-small", None, None)
    return usage


def test_token_usage_matches_tracker(metric_reader: InMemoryMetricReader) -> None:
    usage = record_four_requests()

    histogram = metrics_by_name(metric_reader)[names.TOKEN_USAGE]

    assert usage.input_tokens == 1210
    assert usage.output_tokens == 355
    assert total(histogram, **{names.TOKEN_TYPE: "input"}) == usage.input_tokens
    assert total(histogram, **{names.TOKEN_TYPE: "output"}) == usage.output_tokens
    # One input and one output observation per request with known usage.
    assert count(histogram, **{names.TOKEN_TYPE: "input"}) == 3
    assert count(histogram, **{names.TOKEN_TYPE: "output"}) == 3


def test_token_usage_follows_conventions(metric_reader: InMemoryMetricReader) -> None:
    record_four_requests()

    histogram = metrics_by_name(metric_reader)[names.TOKEN_USAGE]
    large_input = points(
        histogram,
        **{names.REQUEST_MODEL: "acme-large", names.TOKEN_TYPE: "input"},
    )

    assert histogram.unit == "{token}"
    assert len(large_input) == 1
    assert list(large_input[0].explicit_bounds) == [
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
        16777216, 67108864,
    ]  # fmt: skip
    assert dict(large_input[0].attributes or {}) == {
        "gen_ai.operation.name": "unknown",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": "acme-large",
        "gen_ai.response.model": "acme-large-2026-01-01",
        "gen_ai.token.type": "input",
        "cloud.region": "eu-west-1",
        "llmfy.tag.team": "search",
    }


def test_cache_and_reasoning_counters(metric_reader: InMemoryMetricReader) -> None:
    usage = record_four_requests()

    metrics = metrics_by_name(metric_reader)

    assert total(metrics[names.CACHE_READ_TOKENS]) == usage.cache_read_tokens
    assert total(metrics[names.CACHE_WRITE_TOKENS]) == usage.cache_write_tokens
    assert total(metrics[names.REASONING_TOKENS]) == usage.reasoning_tokens
    assert usage.cache_read_tokens == 400
    assert usage.cache_write_tokens == 100
    assert usage.reasoning_tokens == 120
    assert metrics[names.CACHE_READ_TOKENS].unit == "{token}"


def test_other_tokens_and_tool_calls(metric_reader: InMemoryMetricReader) -> None:
    usage = record_four_requests()

    metrics = metrics_by_name(metric_reader)
    totals = usage.totals

    audio = total(
        metrics[names.OTHER_TOKENS], **{names.OTHER_TOKEN_TYPE: "input_audio"}
    )
    searches = total(metrics[names.TOOL_CALLS], **{names.TOOL_NAME: "web_search"})
    assert audio == totals.other_tokens["input_audio"] == 50
    assert searches == totals.tool_calls["web_search"] == 2


def test_request_counter_marks_priced(metric_reader: InMemoryMetricReader) -> None:
    usage = record_four_requests()

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    totals = usage.totals

    assert total(requests) == usage.request_count == 4
    assert total(requests, **{names.PRICED: True}) == 2
    unpriced = {names.PRICED: False, names.USAGE_KNOWN: True}
    assert total(requests, **unpriced) == totals.unpriced == 1
    assert total(requests, **{names.USAGE_KNOWN: False}) == totals.unknown_usage == 1


def record_half_known_requests() -> llmfy_core.UsageTracker:
    """Record one request with only input known and one with only output known."""
    with llmfy_usage_tracker() as usage:
        usage.record("acme", "acme-large", 900, None, cache_read_tokens=300)
        usage.record("acme", "acme-large", None, 70, reasoning_tokens=20)
    return usage


def test_half_known_usage_exports_known_counts(
    metric_reader: InMemoryMetricReader,
) -> None:
    usage = record_half_known_requests()

    metrics = metrics_by_name(metric_reader)
    histogram = metrics[names.TOKEN_USAGE]
    input_type = {names.TOKEN_TYPE: "input"}
    output_type = {names.TOKEN_TYPE: "output"}

    assert usage.request_count == 2
    assert total(histogram, **input_type) == 900
    assert count(histogram, **input_type) == 1
    assert total(histogram, **output_type) == 70
    assert count(histogram, **output_type) == 1
    assert total(metrics[names.CACHE_READ_TOKENS]) == 300
    assert total(metrics[names.REASONING_TOKENS]) == 20


def test_half_known_usage_marks_unknown_counts(
    metric_reader: InMemoryMetricReader,
) -> None:
    record_half_known_requests()

    metrics = metrics_by_name(metric_reader)
    unknown = metrics[names.UNKNOWN_TOKEN_REQUESTS]
    requests = metrics[names.REQUESTS]

    assert total(unknown, **{names.TOKEN_TYPE: "input"}) == 1
    assert total(unknown, **{names.TOKEN_TYPE: "output"}) == 1
    assert unknown.unit == "{request}"
    assert total(requests, **{names.USAGE_KNOWN: False}) == 2


def test_unknown_counts_complete_histogram_count(
    metric_reader: InMemoryMetricReader,
) -> None:
    usage = record_four_requests()

    metrics = metrics_by_name(metric_reader)
    histogram = metrics[names.TOKEN_USAGE]
    unknown = metrics[names.UNKNOWN_TOKEN_REQUESTS]

    # Each request is either an observation of the histogram or an unknown count.
    for token_type in ("input", "output"):
        attributes = {names.TOKEN_TYPE: token_type}
        observed = count(histogram, **attributes)
        assert observed + total(unknown, **attributes) == usage.request_count


def test_cost_counter_matches_tracker(metric_reader: InMemoryMetricReader) -> None:
    usage = record_four_requests()

    cost = metrics_by_name(metric_reader)[names.COST]
    priced = total(cost, **{names.PRICED: True})

    assert usage.total_cost == LARGE_COST + SMALL_COST
    # The counter sums floats; the exact decimal stays in the report.
    assert priced == pytest.approx(float(usage.total_cost), rel=1e-12)
    assert total(cost, **{names.REQUEST_MODEL: "acme-large"}) == pytest.approx(
        float(LARGE_COST), rel=1e-12
    )
    assert cost.unit == "USD"


def test_cost_counter_attributes(metric_reader: InMemoryMetricReader) -> None:
    record_four_requests()

    cost = metrics_by_name(metric_reader)[names.COST]
    large = points(cost, **{names.REQUEST_MODEL: "acme-large"})
    unpriced = points(cost, **{names.PRICED: False})

    assert len(large) == 1
    assert dict(large[0].attributes or {}) == {
        "gen_ai.operation.name": "unknown",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": "acme-large",
        "gen_ai.response.model": "acme-large-2026-01-01",
        "cloud.region": "eu-west-1",
        "llmfy.tag.team": "search",
        "llmfy.priced": True,
    }
    # The unpriced and the unknown-usage request add zero on a priced=false series.
    assert sorted(point.attributes[names.REQUEST_MODEL] for point in unpriced) == [
        "acme-small",
        "acme-unpriced",
    ]
    assert total(cost, **{names.PRICED: False}) == 0


def test_nested_trackers_export_once(metric_reader: InMemoryMetricReader) -> None:
    with llmfy_usage_tracker() as outer:
        with llmfy_usage_tracker() as inner:
            record_usage(Usage("acme", "acme-small", 200, 50), active_trackers())

    metrics = metrics_by_name(metric_reader)

    assert outer.request_count == 1
    assert inner.request_count == 1
    assert total(metrics[names.REQUESTS]) == 1
    assert total(metrics[names.TOKEN_USAGE], **{names.TOKEN_TYPE: "input"}) == 200


def test_operation_and_provider_names(metric_reader: InMemoryMetricReader) -> None:
    chat = Usage(
        "bedrock",
        "us.amazon.nova-lite-v1:0",
        22,
        13,
        region="us-east-1",
        operation="ConverseStream",
    )
    embedding = Usage("openai", "text-embedding-3-small", 8, 0, operation="embeddings")
    # Whether these models have bundled prices does not matter here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PricingWarning)
        with llmfy_usage_tracker():
            record_usage(chat, active_trackers())
            record_usage(embedding, active_trackers())

    requests = metrics_by_name(metric_reader)[names.REQUESTS]
    bedrock = points(requests, **{names.PROVIDER_NAME: "aws.bedrock"})
    openai = points(requests, **{names.PROVIDER_NAME: "openai"})

    assert len(bedrock) == 1
    assert bedrock[0].attributes[names.OPERATION_NAME] == "chat"
    assert bedrock[0].attributes[names.CLOUD_REGION] == "us-east-1"
    assert len(openai) == 1
    assert openai[0].attributes[names.OPERATION_NAME] == "embeddings"


def test_record_time_does_not_matter(metric_reader: InMemoryMetricReader) -> None:
    """A stream sent inside a block and finished after it is exported when it ends."""
    with llmfy_usage_tracker() as usage:
        trackers = active_trackers()
        sent_at = dt.datetime.now(dt.UTC)

    assert total(metrics_by_name(metric_reader).get(names.REQUESTS)) == 0
    record_usage(Usage("acme", "acme-small", 200, 50), trackers, sent_at)

    assert usage.request_count == 1
    assert total(metrics_by_name(metric_reader)[names.REQUESTS]) == 1
