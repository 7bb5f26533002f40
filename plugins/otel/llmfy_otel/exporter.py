"""Export of recorded requests as OpenTelemetry metrics and span attributes.

Only the OpenTelemetry API is used: the meter provider that the application
configured (or the one given to `use_meter_provider`) decides where the
metrics go, and the span that is current when a request is recorded gets its
usage and cost. Without a configured provider the API's no-op provider makes
every call here free of effect. Nothing about prompts or completions is
exported.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from llmfy_core import RequestRecord, Usage
from llmfy_core.locks import new_lock
from llmfy_core.model import INPUT_SUBSET_KINDS, OUTPUT_SUBSET_KINDS
from llmfy_otel import names

logger = logging.getLogger("llmfy.otel")

SCOPE_NAME = "llmfy_otel"
SCOPE_VERSION = "0.1.0"

Attributes = dict[str, AttributeValue]

# Bounds on the caches, so that a process that records an unbounded number of
# models or tag values keeps flat memory. A full cache is emptied and refilled.
_MAX_ATTRIBUTE_SETS = 4096
_MAX_PROVIDERS = 8
_FAULT_LOG_INTERVAL_SECONDS = 60.0


class Instruments:
    """The instruments of one meter provider, created once and reused."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "cost",
        "other_tokens",
        "reasoning",
        "requests",
        "token_usage",
        "tool_calls",
        "unknown_requests",
    )

    def __init__(self, meter_provider: metrics.MeterProvider) -> None:
        meter = meter_provider.get_meter(SCOPE_NAME, SCOPE_VERSION)
        self.token_usage = meter.create_histogram(
            names.TOKEN_USAGE,
            unit=names.TOKEN_UNIT,
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=names.TOKEN_USAGE_BUCKETS,
        )
        self.cache_read = meter.create_counter(
            names.CACHE_READ_TOKENS,
            unit=names.TOKEN_UNIT,
            description="Cached input tokens, a part of the input tokens.",
        )
        self.cache_write = meter.create_counter(
            names.CACHE_WRITE_TOKENS,
            unit=names.TOKEN_UNIT,
            description="Cache write tokens, a part of the input tokens.",
        )
        self.reasoning = meter.create_counter(
            names.REASONING_TOKENS,
            unit=names.TOKEN_UNIT,
            description="Reasoning tokens, a part of the output tokens.",
        )
        self.other_tokens = meter.create_counter(
            names.OTHER_TOKENS,
            unit=names.TOKEN_UNIT,
            description=(
                "Tokens of a separately priced kind (input_audio, cache_write_1h, "
                "...), most a part of the input or output tokens. Those of "
                "OpenAI's image generation tool are billed besides them."
            ),
        )
        self.unknown_requests = meter.create_counter(
            names.UNKNOWN_TOKEN_REQUESTS,
            unit="{request}",
            description=(
                "Requests whose input or output token count is unknown, which "
                "gen_ai.client.token.usage leaves out."
            ),
        )
        self.tool_calls = meter.create_counter(
            names.TOOL_CALLS,
            unit="{call}",
            description="Calls of built-in tools billed per call.",
        )
        self.requests = meter.create_counter(
            names.REQUESTS,
            unit="{request}",
            description="Requests recorded by llmfy.",
        )
        self.cost = meter.create_counter(
            names.COST,
            unit=names.COST_UNIT,
            description=(
                "Cost of the priced requests in USD, as a floating-point sum; "
                "the in-process report keeps the exact decimal."
            ),
        )


class AttributeSets:
    """The attribute dicts of one kind of request, built once and reused.

    A kind is a provider, requested and served model, region, operation, tag
    set, and whether the request was priced and its usage known.
    """

    __slots__ = ("_other", "_tools", "base", "cost", "input", "output", "request")

    def __init__(self, base: Attributes, *, priced: bool, known: bool) -> None:
        self.base = base
        self.input: Attributes = {**base, names.TOKEN_TYPE: "input"}
        self.output: Attributes = {**base, names.TOKEN_TYPE: "output"}
        self.cost: Attributes = {**base, names.PRICED: priced}
        self.request: Attributes = {**self.cost, names.USAGE_KNOWN: known}
        self._other: dict[str, Attributes] = {}
        self._tools: dict[str, Attributes] = {}

    def other(self, kind: str) -> Attributes:
        """Return the attributes for one kind of `other_tokens`."""
        found = self._other.get(kind)
        if found is None:
            found = self._other[kind] = {**self.base, names.OTHER_TOKEN_TYPE: kind}
        return found

    def tool(self, tool: str) -> Attributes:
        """Return the attributes for calls of one built-in tool."""
        found = self._tools.get(tool)
        if found is None:
            found = self._tools[tool] = {**self.base, names.TOOL_NAME: tool}
        return found


def base_attributes(record: RequestRecord) -> Attributes:
    """Build the attributes that every metric of `record` carries."""
    usage = record.usage
    attributes: Attributes = {
        names.OPERATION_NAME: names.operation_name(usage.operation, usage.model),
        names.PROVIDER_NAME: names.provider_name(usage.provider),
        names.REQUEST_MODEL: usage.model,
    }
    if usage.served_model:
        attributes[names.RESPONSE_MODEL] = usage.served_model
    if usage.region:
        attributes[names.CLOUD_REGION] = usage.region
    for key, value in record.tags.items():
        attributes[names.TAG_PREFIX + key] = value
    return attributes


def _part_of_known_count(usage: Usage, kind: str) -> bool:
    """Return False for a subset kind whose input or output count is unknown.

    The subset kinds are parts of the input or output tokens, so they are left
    out with that count. Other kinds are billed besides both and are exported.
    """
    if kind in INPUT_SUBSET_KINDS:
        return usage.input_tokens is not None
    if kind in OUTPUT_SUBSET_KINDS:
        return usage.output_tokens is not None
    return True


class SpanTotals:
    """The usage and cost of the requests recorded while one span was current."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "complete",
        "cost",
        "input_known",
        "input_tokens",
        "output_known",
        "output_tokens",
        "priced",
        "reasoning_tokens",
        "requests",
    )

    def __init__(self) -> None:
        self.requests = 0
        # The requests with a known input count, and those with a known output count.
        self.input_known = 0
        self.output_known = 0
        self.priced = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.cost = Decimal(0)
        self.complete = True

    def add(self, record: RequestRecord) -> None:
        """Add one request, counting its input and output tokens where known."""
        usage = record.usage
        self.requests += 1
        if usage.input_tokens is not None:
            self.input_known += 1
            self.input_tokens += usage.input_tokens
            self.cache_read_tokens += usage.cache_read_tokens
            self.cache_write_tokens += usage.cache_write_tokens
        if usage.output_tokens is not None:
            self.output_known += 1
            self.output_tokens += usage.output_tokens
            self.reasoning_tokens += usage.reasoning_tokens
        if record.cost is None:
            self.complete = False
        else:
            self.priced += 1
            self.cost += record.cost.total
            if record.cost.unpriced_tools:
                # The cost leaves out billed tool calls that have no price.
                self.complete = False

    def attributes(self) -> Attributes:
        """Return the span attributes for these totals."""
        attributes: Attributes = {
            names.SPAN_REQUESTS: self.requests,
            names.SPAN_COST_COMPLETE: self.complete,
        }
        if self.input_known:
            attributes[names.USAGE_INPUT_TOKENS] = self.input_tokens
            attributes[names.USAGE_CACHE_READ_TOKENS] = self.cache_read_tokens
            attributes[names.USAGE_CACHE_WRITE_TOKENS] = self.cache_write_tokens
        if self.output_known:
            attributes[names.USAGE_OUTPUT_TOKENS] = self.output_tokens
            attributes[names.USAGE_REASONING_TOKENS] = self.reasoning_tokens
        unknown = []
        if self.input_known < self.requests:
            unknown.append("input")
        if self.output_known < self.requests:
            unknown.append("output")
        if unknown:
            attributes[names.USAGE_UNKNOWN] = unknown
        if self.priced:
            attributes[names.SPAN_COST] = float(self.cost)
        return attributes


class FaultLog:
    """A rate limit on the WARNING logged for export failures: one per interval."""

    def __init__(
        self,
        interval: float = _FAULT_LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._clock = clock
        # Reentrant: a stream finalizer run by garbage collection can export.
        self._lock = new_lock()
        self._last: float | None = None
        self._suppressed = 0

    def report(self, signal: str, record: RequestRecord, error: BaseException) -> None:
        """Log one failure unless another was logged within the interval."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self.interval:
                self._suppressed += 1
                return
            suppressed = self._suppressed
            self._suppressed = 0
            self._last = now
        message = (
            "OpenTelemetry export of the %s for %s model %s failed: %r. The "
            "request is missing from the exported %s but stays in the llmfy report."
        )
        arguments: list[object] = [
            signal,
            record.usage.provider,
            record.usage.model,
            error,
            signal,
        ]
        if suppressed:
            message += " %d more failures since the last one logged were not logged."
            arguments.append(suppressed)
        logger.warning(message, *arguments)


class Exporter:
    """The export of recorded requests to OpenTelemetry, which never raises."""

    def __init__(self) -> None:
        # Reentrant: a stream finalizer run by garbage collection can export.
        self._lock = new_lock()
        self._meter_provider: metrics.MeterProvider | None = None
        self._instruments: dict[int, tuple[metrics.MeterProvider, Instruments]] = {}
        self._attribute_sets: dict[tuple[Any, ...], AttributeSets] = {}
        self._span_totals: weakref.WeakKeyDictionary[trace.Span, SpanTotals] = (
            weakref.WeakKeyDictionary()
        )
        self.faults = FaultLog()

    @property
    def meter_provider(self) -> metrics.MeterProvider | None:
        """The meter provider in use, or None for the global one."""
        return self._meter_provider

    def use_meter_provider(self, meter_provider: metrics.MeterProvider | None) -> None:
        """Export metrics to `meter_provider`, or to the global one when None."""
        with self._lock:
            self._meter_provider = meter_provider

    def export(self, record: RequestRecord) -> None:
        """Export one request's metrics and annotate the current span."""
        try:
            self._record_metrics(record)
        except Exception as error:
            self.faults.report("metrics", record, error)
        try:
            self._annotate_span(record)
        except Exception as error:
            self.faults.report("span attributes", record, error)

    def _record_metrics(self, record: RequestRecord) -> None:
        instruments = self._current_instruments()
        attributes = self._attributes_for(record)
        usage = record.usage
        instruments.requests.add(1, attributes.request)
        if record.cost is not None:
            instruments.cost.add(float(record.cost.total), attributes.cost)
        else:
            # A zero on the unpriced series shows that the cost is incomplete.
            instruments.cost.add(0.0, attributes.cost)
        for tool, calls in usage.tool_calls.items():
            instruments.tool_calls.add(calls, attributes.tool(tool))
        if usage.input_tokens is not None:
            instruments.token_usage.record(usage.input_tokens, attributes.input)
            if usage.cache_read_tokens:
                instruments.cache_read.add(usage.cache_read_tokens, attributes.base)
            if usage.cache_write_tokens:
                instruments.cache_write.add(usage.cache_write_tokens, attributes.base)
        else:
            instruments.unknown_requests.add(1, attributes.input)
        if usage.output_tokens is not None:
            instruments.token_usage.record(usage.output_tokens, attributes.output)
            if usage.reasoning_tokens:
                instruments.reasoning.add(usage.reasoning_tokens, attributes.base)
        else:
            instruments.unknown_requests.add(1, attributes.output)
        for kind, tokens in usage.other_tokens.items():
            if tokens and _part_of_known_count(usage, kind):
                instruments.other_tokens.add(tokens, attributes.other(kind))

    def _current_instruments(self) -> Instruments:
        provider = self._meter_provider or metrics.get_meter_provider()
        cached = self._instruments.get(id(provider))
        if cached is not None and cached[0] is provider:
            return cached[1]
        with self._lock:
            cached = self._instruments.get(id(provider))
            if cached is not None and cached[0] is provider:
                return cached[1]
            if len(self._instruments) >= _MAX_PROVIDERS:
                self._instruments.clear()
            instruments = Instruments(provider)
            self._instruments[id(provider)] = (provider, instruments)
            return instruments

    def _attributes_for(self, record: RequestRecord) -> AttributeSets:
        usage = record.usage
        priced = record.cost is not None
        key = (
            usage.provider,
            usage.model,
            usage.served_model,
            usage.region,
            usage.operation,
            priced,
            usage.known,
            tuple(sorted(record.tags.items())) if record.tags else (),
        )
        found = self._attribute_sets.get(key)
        if found is not None:
            return found
        found = AttributeSets(base_attributes(record), priced=priced, known=usage.known)
        with self._lock:
            if len(self._attribute_sets) >= _MAX_ATTRIBUTE_SETS:
                self._attribute_sets.clear()
            self._attribute_sets[key] = found
        return found

    def _annotate_span(self, record: RequestRecord) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        with self._lock:
            try:
                totals = self._span_totals.get(span)
                if totals is None:
                    totals = self._span_totals[span] = SpanTotals()
            except TypeError:
                # NOTE: a span type that refuses weak references gets only the
                # usage of the last request recorded under it.
                totals = SpanTotals()
            totals.add(record)
            # Set under the lock: a thread that added its request earlier must
            # not overwrite the totals that a later one already set.
            span.set_attributes(totals.attributes())


EXPORTER = Exporter()
"""The process-wide exporter that the plugin's `request_recorded` hook feeds."""
