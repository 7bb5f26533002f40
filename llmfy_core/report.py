"""The usage report: `str(usage)` for people and `usage.to_dict()` for programs."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llmfy_core.model import NO_PRICE_FOUND, Price, RequestRecord
from llmfy_core.pricing import ESTIMATED_PREFIX, format_decimal

if TYPE_CHECKING:
    from llmfy_core.totals import ModelTotals
    from llmfy_core.tracker import UsageTracker

SCHEMA = "llmfy.usage/1"
RULE = "------------------"


def format_report(tracker: UsageTracker) -> str:
    """Render the report that `print(usage)` shows."""
    snapshot = tracker.snapshot()
    totals = snapshot.totals
    lines = [RULE, "USAGE: ", ""]
    lines += _total_lines(totals)
    open_streams = tracker.open_streams
    if open_streams:
        lines.append(
            f"Open Streams: {open_streams} (not counted yet: a stream is counted "
            "when it ends, is closed or is garbage-collected)"
        )
    pending_requests = tracker.pending_requests
    if pending_requests:
        lines.append(
            f"Pending Requests: {pending_requests} (not counted yet: a background "
            "request is counted when its result is fetched, or with unknown usage "
            "when its trackers have all ended)"
        )
    lines.append("")
    if tracker.keep_requests:
        lines.append("Request Details:")
        for number, record in enumerate(snapshot.records, start=1):
            lines += _request_lines(number, record)
            lines.append("")
    else:
        lines.append("Totals by Model:")
        groups = snapshot.by_model.items()
        for number, ((provider, model, region), group) in enumerate(groups, start=1):
            lines += _group_lines(number, provider, model, region, group)
            lines.append("")
    lines.append(RULE)
    return "\n" + "\n".join(lines) + "\n"


def _total_lines(totals: ModelTotals) -> list[str]:
    incomplete_usage = ""
    if totals.unknown_usage:
        incomplete_usage = (
            f" (incomplete: {_requests(totals.unknown_usage)} with unknown usage)"
        )
    lines = []
    if totals.unknown_usage == totals.requests and totals.requests:
        lines.append("Total Tokens: unknown")
    else:
        lines.append(f"Total Tokens: {totals.total_tokens}{incomplete_usage}")
        lines.append(f"\tInput Tokens: {totals.input_tokens}")
        if totals.cache_read_tokens:
            lines.append(f"\t\tCached Input Tokens: {totals.cache_read_tokens}")
        if totals.cache_write_tokens:
            lines.append(f"\t\tCache Write Tokens: {totals.cache_write_tokens}")
        lines.append(f"\tOutput Tokens: {totals.output_tokens}")
        if totals.reasoning_tokens:
            lines.append(f"\t\tReasoning Tokens: {totals.reasoning_tokens}")
    for tool, calls in sorted(totals.tool_calls.items()):
        lines.append(f"Tool Calls ({tool}): {calls}")
    lines.append(f"Total Requests: {totals.requests}")
    if totals.unknown_usage:
        lines.append(f"Requests With Unknown Usage: {totals.unknown_usage}")
    if totals.unpriced:
        lines.append(f"Unpriced Requests: {totals.unpriced}")
    if totals.unpriced_tool_calls:
        lines.append(f"Requests With Unpriced Tool Calls: {totals.unpriced_tool_calls}")
    if totals.faults:
        lines.append(f"Recording Faults: {totals.faults}")
    lines += _cost_lines(totals)
    return lines


def _cost_lines(totals: ModelTotals) -> list[str]:
    cost = totals.known_cost
    if cost is None:
        return ["Total Cost (USD): unknown", "Total Cost (USD formatted): unknown"]
    suffix = "" if totals.cost_complete else " (incomplete)"
    return [
        f"Total Cost (USD): ${float(cost)}{suffix}",
        f"Total Cost (USD formatted): ${format_decimal(cost)}{suffix}",
    ]


def _requests(count: int) -> str:
    return f"{count} request" if count == 1 else f"{count} requests"


def _request_lines(number: int, record: RequestRecord) -> list[str]:
    usage = record.usage
    details = [f"provider: {usage.provider.upper()}"]
    if usage.region:
        details.append(f"region: {usage.region}")
    if usage.service_tier and usage.service_tier != "default":
        details.append(f"service_tier: {usage.service_tier}")
    if usage.batch:
        details.append("batch: yes")
    if usage.input_tokens is None or usage.output_tokens is None:
        # The count that is known is shown, as `to_dict()` gives it.
        details.append(f"input_tokens: {_count_or_unknown(usage.input_tokens)}")
        details.append(f"output_tokens: {_count_or_unknown(usage.output_tokens)}")
    else:
        details.append(f"input_tokens: {usage.input_tokens}")
        if usage.cache_read_tokens:
            details.append(f"cache_read_tokens: {usage.cache_read_tokens}")
        if usage.cache_write_tokens:
            details.append(f"cache_write_tokens: {usage.cache_write_tokens}")
        details.append(f"output_tokens: {usage.output_tokens}")
        if usage.reasoning_tokens:
            details.append(f"reasoning_tokens: {usage.reasoning_tokens}")
        for kind, tokens in sorted(usage.other_tokens.items()):
            details.append(f"{kind}_tokens: {tokens}")
        details.append(f"total_tokens: {usage.total_tokens}")
    for tool, calls in sorted(usage.tool_calls.items()):
        details.append(f"{tool}_calls: {calls}")
    details += _price_lines(record)
    if record.fault:
        details.append(f"fault: {record.fault}")
    lines = [f"{number}. {usage.model} "]
    lines += [f"\t{detail} " for detail in details[:-1]]
    lines.append(f"\t{details[-1]}")
    return lines


def _count_or_unknown(count: int | None) -> str:
    return "unknown" if count is None else str(count)


def _price_lines(record: RequestRecord) -> list[str]:
    price = record.price
    if price is None:
        reason = record.unpriced_reason or NO_PRICE_FOUND
        lines = [f"price: unknown ({reason})"]
        if record.usage.known:
            lines += [
                "total_cost (USD): unknown",
                "total_cost (USD formatted): unknown",
            ]
        else:
            lines += ["total_cost (USD): unknown"]
        return lines
    effective = price.for_input_tokens(record.usage.input_tokens)
    lines = [
        f"input_price: {format_decimal(effective.input)}",
        f"output_price: {format_decimal(effective.output)}",
    ]
    if record.usage.cache_read_tokens and effective.cache_read is not None:
        lines.append(f"cache_read_price: {format_decimal(effective.cache_read)}")
    if record.usage.cache_write_tokens and effective.cache_write is not None:
        lines.append(f"cache_write_price: {format_decimal(effective.cache_write)}")
    lines.append(f"price_per_tokens: {effective.price_per_tokens}")
    if record.cost is None:
        lines += ["total_cost (USD): unknown (usage unknown)"]
        return lines
    parts = record.cost.parts
    unpriced_tools = record.cost.unpriced_tools
    estimated = [part for part in parts if part.startswith(ESTIMATED_PREFIX)]
    notes = []
    if unpriced_tools:
        names = ", ".join(unpriced_tools)
        notes.append(f"incomplete: no price for {names}")
    if estimated:
        kinds = ", ".join(part.removeprefix(ESTIMATED_PREFIX) for part in estimated)
        notes.append(f"estimate: no rate for {kinds}")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    total = record.cost.total
    lines += [
        f"total_cost (USD): {float(total)}{suffix}",
        f"total_cost (USD formatted): {format_decimal(total)}{suffix}",
    ]
    return lines


def _group_lines(
    number: int, provider: str, model: str, region: str | None, group: ModelTotals
) -> list[str]:
    details = [f"provider: {provider.upper()}"]
    if region:
        details.append(f"region: {region}")
    details.append(f"requests: {group.requests}")
    details += _group_token_lines(group)
    for tool, calls in sorted(group.tool_calls.items()):
        details.append(f"{tool}_calls: {calls}")
    if group.unknown_usage:
        details.append(f"requests_with_unknown_usage: {group.unknown_usage}")
    if group.unpriced:
        details.append(f"unpriced_requests: {group.unpriced}")
    if group.unpriced_tool_calls:
        calls = group.unpriced_tool_calls
        details.append(f"requests_with_unpriced_tool_calls: {calls}")
    cost = group.known_cost
    if cost is None:
        details.append("total_cost (USD formatted): unknown")
    else:
        suffix = "" if group.cost_complete else " (incomplete)"
        details.append(f"total_cost (USD formatted): {format_decimal(cost)}{suffix}")
    lines = [f"{number}. {model} "]
    lines += [f"\t{detail} " for detail in details[:-1]]
    lines.append(f"\t{details[-1]}")
    return lines


def _group_token_lines(group: ModelTotals) -> list[str]:
    """Return the lines of a model's token counts, which `to_dict()` has in `by_model`.

    A group whose every request had unknown usage shows `unknown`, as the
    totals do, rather than counts of 0.
    """
    if group.unknown_usage == group.requests:
        return ["input_tokens: unknown", "output_tokens: unknown"]
    lines = [f"input_tokens: {group.input_tokens}"]
    if group.cache_read_tokens:
        lines.append(f"cache_read_tokens: {group.cache_read_tokens}")
    if group.cache_write_tokens:
        lines.append(f"cache_write_tokens: {group.cache_write_tokens}")
    lines.append(f"output_tokens: {group.output_tokens}")
    if group.reasoning_tokens:
        lines.append(f"reasoning_tokens: {group.reasoning_tokens}")
    for kind, tokens in sorted(group.other_tokens.items()):
        lines.append(f"{kind}_tokens: {tokens}")
    return lines


def report_dict(tracker: UsageTracker) -> dict[str, Any]:
    """Build the JSON-serializable report; see the schema in the docs."""
    snapshot = tracker.snapshot()
    return {
        "schema": SCHEMA,
        "tags": dict(tracker.tags),
        "totals": totals_dict(snapshot.totals),
        "open_streams": tracker.open_streams,
        "pending_requests": tracker.pending_requests,
        "by_model": [
            {
                "provider": provider,
                "model": model,
                "region": region,
                **totals_dict(group),
            }
            for (provider, model, region), group in snapshot.by_model.items()
        ],
        "requests": [record_dict(record) for record in snapshot.records],
    }


def totals_dict(totals: ModelTotals) -> dict[str, Any]:
    """Convert totals to JSON-serializable data."""
    return {
        "requests": totals.requests,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "total_tokens": totals.total_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "other_tokens": dict(totals.other_tokens),
        "tool_calls": dict(totals.tool_calls),
        "cost_usd": None if totals.known_cost is None else format_decimal(totals.cost),
        "cost_complete": totals.cost_complete,
        "unpriced_requests": totals.unpriced,
        "unknown_usage_requests": totals.unknown_usage,
        "unpriced_tool_call_requests": totals.unpriced_tool_calls,
        "faults": totals.faults,
    }


def record_dict(record: RequestRecord) -> dict[str, Any]:
    """Convert one request record to JSON-serializable data."""
    usage = record.usage
    # Cached and cache write tokens are part of the input, and reasoning tokens
    # part of the output, so a count that was not reported leaves its parts
    # unreported too: their default of 0 shows as null, like the count.
    input_part = None if usage.input_tokens is None else 0
    output_part = None if usage.output_tokens is None else 0
    return {
        "provider": usage.provider,
        "model": usage.model,
        "served_model": usage.served_model,
        "region": usage.region,
        "service_tier": usage.service_tier,
        "operation": usage.operation,
        "batch": usage.batch,
        "request_id": usage.request_id,
        "sent_at": record.sent_at.isoformat(),
        "tags": dict(record.tags),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cache_read_tokens": usage.cache_read_tokens or input_part,
        "cache_write_tokens": usage.cache_write_tokens or input_part,
        "reasoning_tokens": usage.reasoning_tokens or output_part,
        "other_tokens": dict(usage.other_tokens),
        "tool_calls": dict(usage.tool_calls),
        "price": price_dict(record.price),
        "price_origin": record.price_origin,
        "unpriced_reason": record.unpriced_reason,
        "cost_usd": None if record.cost is None else format_decimal(record.cost.total),
        "cost_parts_usd": (
            None
            if record.cost is None
            else {
                kind: format_decimal(amount)
                for kind, amount in record.cost.parts.items()
            }
        ),
        "fault": record.fault,
    }


def price_dict(price: Price | None) -> dict[str, Any] | None:
    """Convert a price to JSON-serializable data, or None."""
    if price is None:
        return None
    return {
        "input": _decimal_or_none(price.input),
        "output": _decimal_or_none(price.output),
        "cache_read": _decimal_or_none(price.cache_read),
        "cache_write": _decimal_or_none(price.cache_write),
        "other": {kind: str(rate) for kind, rate in price.other.items()},
        "per_call": {tool: str(rate) for tool, rate in price.per_call.items()},
        "price_per_tokens": price.price_per_tokens,
        "long_context": [
            {
                "above_input_tokens": tier.above_input_tokens,
                "price": price_dict(tier.price),
            }
            for tier in price.long_context
        ],
        "source": price.source,
        "checked": None if price.checked is None else price.checked.isoformat(),
    }


def _decimal_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
