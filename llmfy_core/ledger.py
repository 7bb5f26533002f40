"""The tracker's storage: token sums per model and price, costed when read.

Cost is linear in the tokens of each kind, so a tracker does not price each
request as it arrives. It adds the request's billable tokens to a bucket per
(provider, model, region, price) and multiplies the sums by the price's
per-token rates when the totals are read. Decimal multiplication distributes
over these sums exactly, so the total equals the sum of the per-request
costs to the last digit. Requests that the linear form cannot price (priced
token subsets, tool calls, long-context tiers, units that are not a power of
ten) are costed one by one, as they arrive, into the same bucket.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from llmfy_core.model import Cost, Price, RequestRecord, Usage
from llmfy_core.pricing import (
    DECIMAL_CONTEXT,
    Rates,
    compute_cost,
    per_token_rates,
    tidy_decimal,
)
from llmfy_core.totals import ModelTotals

if TYPE_CHECKING:
    from collections.abc import Mapping

    from llmfy_core.resolver import Resolution

GroupKey = tuple[str, str, str | None]

_ZERO = Decimal(0)


class Bucket:
    """Sums over the requests of one model, region and price.

    For a price with long-context tiers, the caller keys buckets by the price
    that applies to each request (`Price.for_input_tokens`), so that every
    request in a bucket is charged at the bucket's flat rates.
    """

    __slots__ = (
        "billable_cache_read",
        "billable_cache_write",
        "billable_input",
        "billable_output",
        "cache_read_tokens",
        "cache_write_tokens",
        "extra_cost",
        "faults",
        "input_tokens",
        "other_tokens",
        "output_tokens",
        "price",
        "rates",
        "reasoning_tokens",
        "requests",
        "tool_calls",
        "unknown_usage",
        "unpriced",
    )

    def __init__(self, price: Price | None) -> None:
        self.price = price
        self.rates: Rates | None = None if price is None else per_token_rates(price)
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.billable_input = 0
        self.billable_cache_read = 0
        self.billable_cache_write = 0
        self.billable_output = 0
        self.extra_cost = _ZERO
        self.other_tokens: dict[str, int] | None = None
        self.tool_calls: dict[str, int] | None = None
        self.unpriced = 0
        self.unknown_usage = 0
        self.faults = 0

    def add(self, usage: Usage, fault: str | None) -> None:
        """Add one request; the caller holds the ledger's lock."""
        self.requests += 1
        if fault is not None:
            self.faults += 1
        if usage.tool_calls:
            self.tool_calls = _add_counts(self.tool_calls, usage.tool_calls)
        input_tokens = usage.input_tokens
        output_tokens = usage.output_tokens
        if input_tokens is None or output_tokens is None:
            self.unknown_usage += 1
            return
        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read
        self.cache_write_tokens += cache_write
        self.reasoning_tokens += usage.reasoning_tokens
        if usage.other_tokens:
            self.other_tokens = _add_counts(self.other_tokens, usage.other_tokens)
        price = self.price
        if price is None:
            self.unpriced += 1
        elif self.rates is None or usage.other_tokens or usage.tool_calls:
            cost = compute_cost(usage, price).total
            self.extra_cost = DECIMAL_CONTEXT.add(self.extra_cost, cost)
        else:
            self.billable_input += max(input_tokens - cache_read - cache_write, 0)
            self.billable_cache_read += cache_read
            self.billable_cache_write += max(cache_write, 0)
            self.billable_output += output_tokens

    def cost(self) -> Decimal:
        """Return the exact cost of the priced requests in this bucket."""
        rates = self.rates
        if rates is None:
            return self.extra_cost
        multiply = DECIMAL_CONTEXT.multiply
        add = DECIMAL_CONTEXT.add
        input_rate, cache_read_rate, cache_write_rate, output_rate = rates
        total = self.extra_cost
        total = add(total, multiply(input_rate, self.billable_input))
        total = add(total, multiply(cache_read_rate, self.billable_cache_read))
        total = add(total, multiply(cache_write_rate, self.billable_cache_write))
        return add(total, multiply(output_rate, self.billable_output))

    def add_to(self, totals: ModelTotals) -> None:
        """Add this bucket's sums to `totals`."""
        totals.requests += self.requests
        totals.input_tokens += self.input_tokens
        totals.output_tokens += self.output_tokens
        totals.cache_read_tokens += self.cache_read_tokens
        totals.cache_write_tokens += self.cache_write_tokens
        totals.reasoning_tokens += self.reasoning_tokens
        for kind, tokens in (self.other_tokens or {}).items():
            totals.other_tokens[kind] = totals.other_tokens.get(kind, 0) + tokens
        for tool, calls in (self.tool_calls or {}).items():
            totals.tool_calls[tool] = totals.tool_calls.get(tool, 0) + calls
        totals.cost = DECIMAL_CONTEXT.add(totals.cost, self.cost())
        totals.unpriced += self.unpriced
        totals.unknown_usage += self.unknown_usage
        totals.faults += self.faults


def _add_counts(
    counts: dict[str, int] | None, more: Mapping[str, int]
) -> dict[str, int]:
    counts = {} if counts is None else counts
    for name, count in more.items():
        counts[name] = counts.get(name, 0) + count
    return counts


# One kept request: its usage, the price resolution, the send time, the fault.
Entry = tuple[Usage, "Resolution", dt.datetime, str | None]


def build_record(entry: Entry, tags: Mapping[str, str]) -> RequestRecord:
    """Price one kept request and return its record."""
    usage, resolution, sent_at, fault = entry
    price = resolution.price
    cost = None
    if price is not None and usage.known:
        exact = compute_cost(usage, price)
        parts = {kind: tidy_decimal(amount) for kind, amount in exact.parts.items()}
        cost = Cost(tidy_decimal(exact.total), parts)
    return RequestRecord(
        usage=usage,
        price=price,
        cost=cost,
        sent_at=sent_at,
        tags=tags,
        unpriced_reason=resolution.reason if price is None else None,
        price_origin=resolution.origin,
        fault=fault,
    )
