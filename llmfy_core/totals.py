"""Running totals of token counts and cost over a group of requests."""

from __future__ import annotations

from decimal import Decimal

import attrs

from llmfy_core.model import RequestRecord
from llmfy_core.pricing import DECIMAL_CONTEXT

_ZERO = Decimal(0)


@attrs.define(slots=True)
class ModelTotals:
    """Running totals for a group of requests (a tracker, or one model in it).

    Token totals cover only requests whose usage is known; `unknown_usage`
    counts the others. `cost` covers only priced requests; `unpriced` counts
    the requests with known usage but no price.
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    other_tokens: dict[str, int] = attrs.Factory(dict)
    tool_calls: dict[str, int] = attrs.Factory(dict)
    cost: Decimal = _ZERO
    unpriced: int = 0
    unknown_usage: int = 0
    # Requests priced without some of their billed tool calls, which have no price.
    unpriced_tool_calls: int = 0
    faults: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens of the requests with known usage."""
        return self.input_tokens + self.output_tokens

    @property
    def cost_complete(self) -> bool:
        """Whether `cost` covers every request and every billed tool call."""
        return not (self.unpriced or self.unknown_usage or self.unpriced_tool_calls)

    @property
    def known_cost(self) -> Decimal | None:
        """Cost in USD of the priced requests, or None when none is priced."""
        if self.requests and self.requests == self.unpriced + self.unknown_usage:
            return None
        return self.cost

    def add(self, record: RequestRecord) -> None:
        """Add one request to the totals."""
        usage = record.usage
        self.requests += 1
        if record.fault is not None:
            self.faults += 1
        if usage.input_tokens is None or usage.output_tokens is None:
            self.unknown_usage += 1
        else:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cache_read_tokens += usage.cache_read_tokens
            self.cache_write_tokens += usage.cache_write_tokens
            self.reasoning_tokens += usage.reasoning_tokens
            for kind, tokens in usage.other_tokens.items():
                self.other_tokens[kind] = self.other_tokens.get(kind, 0) + tokens
        for tool, calls in usage.tool_calls.items():
            self.tool_calls[tool] = self.tool_calls.get(tool, 0) + calls
        if record.cost is not None:
            self.cost = DECIMAL_CONTEXT.add(self.cost, record.cost.total)
            if record.cost.unpriced_tools:
                self.unpriced_tool_calls += 1
        elif usage.known:
            self.unpriced += 1

    def copy(self) -> ModelTotals:
        """Return an independent copy."""
        return attrs.evolve(
            self, other_tokens=dict(self.other_tokens), tool_calls=dict(self.tool_calls)
        )
