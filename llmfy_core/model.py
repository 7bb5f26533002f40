"""The data model: the usage of one request, its price, its cost and its record.

Which counts include which, stated once for the whole project:

- `input_tokens` is every input token of the request. It includes the cached
  input tokens (`cache_read_tokens`), the cache write tokens
  (`cache_write_tokens`) and input audio or image tokens.
- `output_tokens` is every output token. It includes `reasoning_tokens` and
  output audio tokens.
- `other_tokens` breaks out subsets that have a price of their own, such as
  `input_audio` or `cache_write_1h`. A token in a subset is still counted in
  `input_tokens` or `output_tokens`, and the cost charges it once, at the
  subset's rate. A kind that is not a subset (see `INPUT_SUBSET_KINDS` and
  `OUTPUT_SUBSET_KINDS`) counts tokens billed besides the input and output
  tokens, such as those of OpenAI's image generation tool. The cost charges
  them only at a rate of their own in `Price.other`, and leaves them out
  when the price has none.

Providers report these differently (Bedrock's `inputTokens` excludes cached
tokens, OpenAI's `prompt_tokens` includes them): each provider plugin
normalizes to the rules above.

A count of `None` means the provider did not report it, which is not the same
as zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import attrs

MILLION = 1_000_000

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not value:
        return _EMPTY
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


# Token kinds that `other_tokens` may carry, with the count they are part of.
INPUT_SUBSET_KINDS = frozenset({"input_audio", "input_image", "cache_write_1h"})
OUTPUT_SUBSET_KINDS = frozenset({"output_audio", "output_image"})
# The count that each subset is part of, whose rate it takes when a price has
# no rate for the subset.
SUBSET_PARENTS = MappingProxyType(
    {
        **{kind: "input" for kind in INPUT_SUBSET_KINDS - {"cache_write_1h"}},
        "cache_write_1h": "cache write",
        **{kind: "output" for kind in OUTPUT_SUBSET_KINDS},
    }
)


def subset_totals(
    input_tokens: int | None, output_tokens: int | None, cache_write_tokens: int
) -> dict[str, tuple[str, int | None]]:
    """Return the field name and count of each parent of `SUBSET_PARENTS`."""
    return {
        "input": ("input_tokens", input_tokens),
        "output": ("output_tokens", output_tokens),
        "cache write": ("cache_write_tokens", cache_write_tokens),
    }


@attrs.frozen(slots=True)
class CallContext:
    """The facts about a request that its caller has besides the response.

    `model` is the model id as the caller requested it; `headers` are the HTTP
    response headers with lower-case names.
    """

    provider: str
    operation: str | None = None
    model: str | None = None
    region: str | None = None
    service_tier: str | None = None
    headers: Mapping[str, str] = attrs.field(default=_EMPTY, converter=_frozen_mapping)
    batch: bool = False


@attrs.frozen(slots=True)
class Usage:
    """The normalized token usage of one request.

    `model` is the model id as requested and `served_model` the id the provider
    reports having served, where it reports one. Token counts follow the
    inclusion rules in this module's docstring; `None` means unknown.
    `tool_calls` counts calls of built-in tools billed per call, by tool name.
    """

    provider: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    other_tokens: Mapping[str, int] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping
    )
    tool_calls: Mapping[str, int] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping
    )
    served_model: str | None = None
    region: str | None = None
    service_tier: str | None = None
    operation: str | None = None
    request_id: str | None = None
    batch: bool = False

    @property
    def known(self) -> bool:
        """Whether both input and output token counts were reported."""
        return self.input_tokens is not None and self.output_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens, or None when either is unknown."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens


# The usage of one well-formed response as a plain tuple, which the recording
# path stores without building a `Usage`: provider, model, served_model,
# region, service_tier, operation, batch, request_id, input_tokens,
# output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens. It
# is the `Usage` with those fields and no `other_tokens` or `tool_calls`; the
# first seven fields identify what the requests of a price bucket share.
UsageCounts = tuple[
    str,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    bool,
    str | None,
    int,
    int,
    int,
    int,
    int,
]

# How many leading fields of `UsageCounts` identify the request's kind.
USAGE_KEY_FIELDS = 7
# The index of input_tokens in `UsageCounts`, after the key and request id
# (USAGE_KEY_FIELDS + 1, as a literal so that type checkers see its type).
INPUT_TOKENS_INDEX: Final = 8


# The `unpriced_reason` of a request with known usage whose price sources
# gave neither a price nor a reason.
NO_PRICE_FOUND = "no installed price source lists this model"


def usage_from_counts(counts: UsageCounts) -> Usage:
    """Build the `Usage` that a `UsageCounts` tuple stands for."""
    (
        provider,
        model,
        served_model,
        region,
        service_tier,
        operation,
        batch,
        request_id,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
    ) = counts
    return Usage(
        provider,
        model,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        served_model=served_model,
        region=region,
        service_tier=service_tier,
        operation=operation,
        request_id=request_id,
        batch=batch,
    )


def counts_of_usage(usage: Usage) -> UsageCounts | None:
    """Return `usage` as a `UsageCounts` tuple, or None when it does not fit one.

    It does not fit when a count is unknown or when it has `other_tokens` or
    `tool_calls`.
    """
    input_tokens = usage.input_tokens
    output_tokens = usage.output_tokens
    if input_tokens is None or output_tokens is None:
        return None
    if usage.other_tokens or usage.tool_calls:
        return None
    return (
        usage.provider,
        usage.model,
        usage.served_model,
        usage.region,
        usage.service_tier,
        usage.operation,
        usage.batch,
        usage.request_id,
        input_tokens,
        output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


@attrs.frozen(slots=True)
class LongContextTier:
    """A price that replaces the base price for a whole request.

    It applies when the request's input tokens exceed `above_input_tokens`.
    """

    above_input_tokens: int
    price: Price


@attrs.frozen(slots=True)
class Price:
    """The price of a model in USD per `price_per_tokens` tokens.

    `cache_read` and `cache_write` of `None` mean those tokens are charged at the
    `input` rate. `other` prices a token subset (see the module docstring) at its
    own rate. `per_call` is USD per call of a built-in tool. `long_context`
    lists the long-context tiers in any order (see `for_input_tokens`).
    `source` and `checked` give where the price was published and when it was
    last compared with that page.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    other: Mapping[str, Decimal] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping
    )
    per_call: Mapping[str, Decimal] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping
    )
    price_per_tokens: int = MILLION
    long_context: tuple[LongContextTier, ...] = ()
    source: str = ""
    checked: dt.date | None = None

    def for_input_tokens(self, input_tokens: int | None) -> Price:
        """Return the price that applies to a request with that many input tokens.

        Of the tiers whose threshold the request exceeds, the one with the
        highest threshold applies, and the first listed of equal thresholds.
        """
        if not self.long_context or input_tokens is None:
            return self
        chosen = self
        highest = -1
        for tier in self.long_context:
            threshold = tier.above_input_tokens
            if highest < threshold < input_tokens:
                chosen = tier.price
                highest = threshold
        return chosen


@attrs.frozen(slots=True)
class Unpriced:
    """A price lookup result stating that a model has no per-token price.

    `reason` tells the user why and how to add a price. When `final` is true,
    no lower-ranked price source is asked (provisioned throughput, for example,
    is billed by the hour and never per token).
    """

    reason: str
    final: bool = False


# `Cost.parts` names a billed tool without a price as `unpriced:<tool>`, with a
# zero amount, because the cost leaves that tool's calls out.
UNPRICED_PREFIX = "unpriced:"


@attrs.frozen(slots=True)
class Cost:
    """The cost of one request in USD, with its parts by token kind or tool."""

    total: Decimal
    parts: Mapping[str, Decimal] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping
    )

    @property
    def unpriced_tools(self) -> list[str]:
        """Names of the billed tools without a price, left out of the cost."""
        return [
            part.removeprefix(UNPRICED_PREFIX)
            for part in self.parts
            if part.startswith(UNPRICED_PREFIX)
        ]


@attrs.frozen(slots=True)
class RequestRecord:
    """One counted request: its usage, the price used, and its cost.

    `cost` is `None` when the request could not be priced (then
    `unpriced_reason` gives the reason) or when its usage is unknown. `sent_at` is the
    time the request was sent, in UTC.
    """

    usage: Usage
    price: Price | None
    cost: Cost | None
    sent_at: dt.datetime
    tags: Mapping[str, str] = attrs.field(default=_EMPTY, converter=_frozen_mapping)
    unpriced_reason: str | None = None
    price_origin: str | None = None
    fault: str | None = None
