"""Usage normalization for Bedrock Runtime responses.

Bedrock reports input tokens without the cached ones: Converse's `inputTokens`,
the `x-amzn-bedrock-input-token-count` header, the stream's
`amazon-bedrock-invocationMetrics` and Anthropic's `input_tokens` all exclude
cache reads and cache writes. llmfy's `input_tokens` includes them, so every
function here adds them back, once.

A count that is negative, not a whole number or not a number is taken as
missing: an input or output count makes the usage unknown, another count is
taken as 0. Each such field is noted through `llmfy_bedrock.checks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from llmfy_bedrock import checks
from llmfy_core import CallContext, Usage
from llmfy_core.model import UsageCounts, usage_from_counts

PROVIDER = "bedrock"

INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"
CACHE_READ_HEADER = "x-amzn-bedrock-cache-read-input-token-count"
CACHE_WRITE_HEADER = "x-amzn-bedrock-cache-write-input-token-count"
SERVICE_TIER_HEADER = "x-amzn-bedrock-service-tier"
LATENCY_HEADER = "x-amzn-bedrock-performanceconfig-latency"
# The pricing tier of a request sent with latency-optimized inference, which
# AWS bills at its own rates. It takes the place of the service tier.
LATENCY_OPTIMIZED_TIER = "latency-optimized"
REQUEST_ID_HEADER = "x-amzn-requestid"
_TOKEN_HEADERS = (INPUT_HEADER, OUTPUT_HEADER, CACHE_READ_HEADER, CACHE_WRITE_HEADER)
INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


class TokenCounts(NamedTuple):
    """Token counts as Bedrock reports them: `input` excludes cache tokens."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0


def to_usage(
    counts: TokenCounts | None,
    context: CallContext,
    service_tier: str | None = None,
    served_model: str | None = None,
) -> Usage:
    """Build the normalized `Usage`; input includes cache reads and writes."""
    headers = context.headers
    request_id = headers.get(REQUEST_ID_HEADER) if headers else None
    tier = service_tier or context.service_tier
    model_id = context.model or "unknown"
    if counts is None:
        return Usage(
            PROVIDER,
            model_id,
            None,
            None,
            region=context.region,
            served_model=served_model,
            service_tier=tier,
            operation=context.operation,
            request_id=request_id,
            batch=context.batch,
        )
    cache_write_1h = counts.cache_write_1h
    if cache_write_1h > counts.cache_write:
        checks.note_text(
            "the cache write tokens with a 1-hour TTL outnumber all cache write "
            "tokens; taken as all of them"
        )
        cache_write_1h = counts.cache_write
    return Usage(
        PROVIDER,
        model_id,
        counts.input + counts.cache_read + counts.cache_write,
        counts.output,
        cache_read_tokens=counts.cache_read,
        cache_write_tokens=counts.cache_write,
        other_tokens={"cache_write_1h": cache_write_1h} if cache_write_1h else {},
        served_model=served_model,
        region=context.region,
        service_tier=tier,
        operation=context.operation,
        request_id=request_id,
        batch=context.batch,
    )


# Longer digit strings are not token counts (and `int()` rejects strings of
# more than 4,300 digits).
_MAX_DIGITS = 18


def as_int(value: Any, field: str | None = None) -> int | None:
    """Return a token count: a whole number of at least 0, or its ASCII digits.

    Returns None for None and for anything else, noting `field` as invalid
    when it is given.
    """
    if type(value) is int and value >= 0:
        return value
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
            return int(text)
    if field is not None:
        checks.note_invalid(field, value)
    return None


def _required_int(mapping: Mapping[str, Any], name: str, where: str) -> int | None:
    value = mapping.get(name)
    if value is None:
        checks.note(f"{where}.{name}", "is missing")
        return None
    return as_int(value, f"{where}.{name}")


def _first_int(mapping: Mapping[str, Any], name: str, alias: str) -> int:
    """Return the count under `name`, or under its older spelling `alias`.

    An invalid count under `name` is noted, and a valid one under `alias`
    is taken instead.
    """
    value = mapping.get(name)
    if value is not None:
        count = as_int(value, f"usage.{name}")
        if count is not None:
            return count
    value = mapping.get(alias)
    if value is None:
        return 0
    return as_int(value, f"usage.{alias}") or 0


# Converse and ConverseStream


def counts_from_token_usage(usage: Mapping[str, Any]) -> TokenCounts | None:
    """Read a Converse `usage` (also Nova's InvokeModel and stream `usage`)."""
    input_tokens = _required_int(usage, "inputTokens", "usage")
    output_tokens = _required_int(usage, "outputTokens", "usage")
    if input_tokens is None or output_tokens is None:
        return None
    details = usage.get("cacheDetails")
    return TokenCounts(
        input_tokens,
        output_tokens,
        _first_int(usage, "cacheReadInputTokens", "cacheReadInputTokenCount"),
        _first_int(usage, "cacheWriteInputTokens", "cacheWriteInputTokenCount"),
        0 if details is None else one_hour_writes(details),
    )


def one_hour_writes(details: Any) -> int:
    """Return the cache write tokens that `cacheDetails` lists with a 1-hour TTL."""
    if not isinstance(details, list):
        checks.note_invalid("usage.cacheDetails", details)
        return 0
    total = 0
    for detail in details:
        if not isinstance(detail, Mapping):
            checks.note_invalid("usage.cacheDetails[]", detail)
            continue
        ttl = detail.get("ttl")
        if ttl == "1h":
            count = _required_int(detail, "inputTokens", "usage.cacheDetails[]")
            total += count or 0
        elif ttl is None:
            checks.note("usage.cacheDetails[].ttl", "is missing")
        elif ttl != "5m":
            # Bedrock documents only 5m and 1h, so these count as 5-minute writes.
            checks.note_invalid("usage.cacheDetails[].ttl", ttl)
    return total


def usage_from_converse(response: Mapping[str, Any], context: CallContext) -> Usage:
    """Normalize a Converse response or a ConverseStream `metadata` event.

    A prompt router's response names the model it invoked in
    `trace.promptRouter.invokedModelId`, which becomes the served model.
    """
    usage = response.get("usage")
    counts = None
    if isinstance(usage, Mapping):
        counts = counts_from_token_usage(usage)
    elif usage is not None:
        checks.note_invalid("usage", usage)
    elif context.operation != "ConverseStream":
        # A stream closed before its metadata event has no usage, normally.
        checks.note("usage", "is missing")
    trace = response.get("trace")
    served = _invoked_model(trace) if trace else None
    return to_usage(counts, context, converse_tier(response), served)


def converse_tier(response: Mapping[str, Any]) -> str | None:
    """Return the pricing tier of a Converse response, noting invalid fields.

    A latency-optimized request takes the latency tier, whatever its
    `serviceTier`.
    """
    tier = response.get("serviceTier")
    tier_type = tier.get("type") if isinstance(tier, Mapping) else None
    if tier is not None and not isinstance(tier, Mapping):
        checks.note_invalid("serviceTier", tier)
    elif tier_type is not None and not isinstance(tier_type, str):
        checks.note_invalid("serviceTier.type", tier_type)
        tier_type = None
    config = response.get("performanceConfig")
    if config is not None:
        if isinstance(config, Mapping):
            latency = config.get("latency")
            tier_type = latency_tier(latency, "performanceConfig.latency") or tier_type
        else:
            checks.note_invalid("performanceConfig", config)
    return tier_type


def latency_tier(latency: object, field: str) -> str | None:
    """Return the pricing tier of a latency setting, None for standard latency.

    A value other than `standard` and `optimized` gets a tier of its own,
    which no bundled price has, so that it is not charged at standard rates.
    """
    if latency is None or latency == "standard":
        return None
    if latency == "optimized":
        return LATENCY_OPTIMIZED_TIER
    if isinstance(latency, str) and latency:
        return f"latency-{latency}"
    checks.note_invalid(field, latency)
    return None


def _invoked_model(trace: Any) -> str | None:
    # NOTE: botocore before 1.35.75 drops `trace.promptRouter` from the
    # response, so there a prompt router's request is counted without a price
    # unless `bedrock_pricing` prices the router's ARN.
    router = trace.get("promptRouter") if isinstance(trace, Mapping) else None
    invoked = router.get("invokedModelId") if isinstance(router, Mapping) else None
    return invoked if isinstance(invoked, str) else None


def _five_minute_writes(details: Any) -> bool:
    """Return whether `cacheDetails` lists only writes kept for 5 minutes, or none."""
    if details is None:
        return True
    if type(details) is not list:
        return False
    return all(type(detail) is dict and detail.get("ttl") == "5m" for detail in details)


def read_response(response: Any, context: CallContext) -> UsageCounts | None:
    """Read a well-formed Converse, ConverseStream or InvokeModel response quickly.

    `response` is a dict, the type the plugin's `llmfy_usage_reader` offers
    this reader for. For ConverseStream it is the `metadata` event, and for
    InvokeModel botocore's response dict with the body unread. Returns the
    `UsageCounts` that `extract_usage` would normalize, and None for every
    response that needs its checks: another operation, a missing or
    malformed count, cache details other than a list of dicts of 5-minute
    writes, a trace or an unusual service tier.
    """
    operation = context.operation
    # Two string comparisons cost less than a set lookup (callgrind, Python 3.11).
    if operation != "Converse" and operation != "ConverseStream":
        if operation == "InvokeModel":
            return _read_invoke_headers(response, context)
        return None
    # Indexing and `in` cost less than `dict.get`, and this runs per request.
    # The counts are indexed after the usage's type check, so that no dict
    # subclass adds a missing key.
    try:
        usage = response["usage"]
    except KeyError:
        return None
    if type(usage) is not dict or "trace" in response:
        return None
    try:
        input_tokens = usage["inputTokens"]
        output_tokens = usage["outputTokens"]
    except KeyError:
        return None
    if "cacheDetails" in usage:
        # Recorded Claude responses that write to the cache list their writes
        # here by TTL, in one entry. Writes kept for 1 hour have their own
        # price, on the full path. Unpacking the one entry costs about half as
        # much as checking the list's type and length first (callgrind, Python
        # 3.11), so those checks run only for other shapes, which raise here.
        details = usage["cacheDetails"]
        try:
            (detail,) = details
            if detail["ttl"] != "5m":
                return None
        except Exception:
            if not _five_minute_writes(details):
                return None
    cache_read = usage.get("cacheReadInputTokens")
    if cache_read is None:
        cache_read = usage.get("cacheReadInputTokenCount", 0)
    cache_write = usage.get("cacheWriteInputTokens")
    if cache_write is None:
        cache_write = usage.get("cacheWriteInputTokenCount", 0)
    if not (
        type(input_tokens) is int
        and type(output_tokens) is int
        and type(cache_read) is int
        and type(cache_write) is int
        and input_tokens >= 0
        and output_tokens >= 0
        and cache_read >= 0
        and cache_write >= 0
    ):
        return None
    tier = context.service_tier
    if "serviceTier" in response:
        served_tier = response["serviceTier"]
        if type(served_tier) is not dict:
            # None, a mapping of another type or an invalid value.
            return None
        served_tier = served_tier.get("type")
        if served_tier is not None:
            if type(served_tier) is not str:
                return None
            tier = served_tier or tier
    if "performanceConfig" in response:
        # Latency-optimized requests have their own price, on the full path.
        return None
    # Bedrock sends the id with every response, so indexing alone costs about
    # 250 instructions less than `in` first, or `get` (callgrind, Python 3.11).
    try:
        request_id = context.headers[REQUEST_ID_HEADER]
    except KeyError:
        request_id = None
    return (
        PROVIDER,
        context.model or "unknown",
        None,
        context.region,
        tier,
        operation,
        context.batch,
        request_id,
        input_tokens + cache_read + cache_write,
        output_tokens,
        cache_read,
        cache_write,
        0,
    )


def _read_invoke_headers(response: Any, context: CallContext) -> UsageCounts | None:
    """Read the token headers of an InvokeModel response whose body was not read.

    Returns the `UsageCounts` that `usage_from_invoke` would normalize, and
    None when a header needs its checks: a missing input count, or a value
    that is not a string of ASCII digits.
    """
    headers = context.headers
    if type(response) is not dict or "ResponseMetadata" not in response or not headers:
        return None
    counts = []
    for name in _TOKEN_HEADERS:
        value = headers.get(name)
        if value is None and name != INPUT_HEADER:
            counts.append(0)
        elif type(value) is str and value.isascii() and value.isdigit():
            if len(value) > _MAX_DIGITS:
                return None
            counts.append(int(value))
        else:
            return None
    tier = headers.get(SERVICE_TIER_HEADER)
    if tier is not None and type(tier) is not str:
        return None
    latency = headers.get(LATENCY_HEADER)
    if latency is not None and latency != "standard":
        return None
    input_tokens, output_tokens, cache_read, cache_write = counts
    return (
        PROVIDER,
        context.model or "unknown",
        None,
        context.region,
        tier or context.service_tier,
        "InvokeModel",
        context.batch,
        headers.get(REQUEST_ID_HEADER),
        input_tokens + cache_read + cache_write,
        output_tokens,
        cache_read,
        cache_write,
        0,
    )


# InvokeModel


def counts_from_headers(headers: Mapping[str, str]) -> TokenCounts | None:
    """Read the `x-amzn-bedrock-*-token-count` headers, which Bedrock bills.

    Embeddings responses carry no output header: their output count is 0.
    Returns None when the input header is missing or any header is invalid,
    so that the body is read instead.
    """
    counts = []
    for name in _TOKEN_HEADERS:
        value = headers.get(name)
        count = as_int(value, f"header {name}")
        if count is None and (value is not None or name == INPUT_HEADER):
            return None
        counts.append(count or 0)
    return TokenCounts(*counts)


def counts_from_body(body: Mapping[str, Any]) -> TokenCounts | None:
    """Read the usage a model family reports in an InvokeModel response body.

    A saved final chunk of a response stream is read too: its invocation
    metrics win over the model's own counts.
    """
    if INVOCATION_METRICS in body:
        return counts_from_stream_chunks([body])
    usage = body.get("usage")
    if isinstance(usage, Mapping):
        if "input_tokens" in usage:
            return _anthropic_counts(usage)
        if "inputTokens" in usage:
            return counts_from_token_usage(usage)
        if "prompt_tokens" in usage:
            return _openai_counts(usage)
    if "inputTextTokenCount" in body:
        return _titan_counts(body)
    if "prompt_token_count" in body:
        prompt = _required_int(body, "prompt_token_count", "body")
        generated = _required_int(body, "generation_token_count", "body")
        if prompt is None or generated is None:
            return None
        return TokenCounts(prompt, generated)
    meta = body.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("billed_units"), Mapping):
        billed = meta["billed_units"]
        where = "meta.billed_units"
        input_tokens = _required_int(billed, "input_tokens", where)
        if input_tokens is not None:
            output = as_int(billed.get("output_tokens"), f"{where}.output_tokens")
            return TokenCounts(input_tokens, output or 0)
    return None


def _anthropic_counts(usage: Mapping[str, Any]) -> TokenCounts | None:
    input_tokens = _required_int(usage, "input_tokens", "usage")
    output_tokens = _required_int(usage, "output_tokens", "usage")
    if input_tokens is None or output_tokens is None:
        return None
    return TokenCounts(
        input_tokens,
        output_tokens,
        as_int(usage.get("cache_read_input_tokens"), "usage.cache_read_input_tokens")
        or 0,
        as_int(
            usage.get("cache_creation_input_tokens"),
            "usage.cache_creation_input_tokens",
        )
        or 0,
        anthropic_cache_write_1h(usage),
    )


def anthropic_cache_write_1h(usage: Mapping[str, Any]) -> int:
    """Return the cache write tokens an Anthropic `usage` gives a 1-hour TTL."""
    creation = usage.get("cache_creation")
    if not isinstance(creation, Mapping):
        return 0
    field = "usage.cache_creation.ephemeral_1h_input_tokens"
    return as_int(creation.get("ephemeral_1h_input_tokens"), field) or 0


def _openai_counts(usage: Mapping[str, Any]) -> TokenCounts | None:
    prompt = _required_int(usage, "prompt_tokens", "usage")
    completion = _required_int(usage, "completion_tokens", "usage")
    if prompt is None or completion is None:
        return None
    details = usage.get("prompt_tokens_details")
    field = "usage.prompt_tokens_details.cached_tokens"
    cached = (
        as_int(details.get("cached_tokens"), field)
        if isinstance(details, Mapping)
        else 0
    )
    # OpenAI-style prompt_tokens include the cached ones.
    cached = cached or 0
    if cached > prompt:
        checks.note(field, f"is {cached}, more than the {prompt} prompt tokens")
        cached = prompt
    return TokenCounts(prompt - cached, completion, cached)


def _titan_counts(body: Mapping[str, Any]) -> TokenCounts | None:
    input_tokens = as_int(body.get("inputTextTokenCount"), "inputTextTokenCount")
    if input_tokens is None:
        return None
    # An embeddings body has no results, and its output count is 0. A text
    # result without a valid count makes the output count unknown.
    results = body.get("results")
    output: int | None = 0
    if isinstance(results, list):
        for result in results:
            if isinstance(result, Mapping):
                count = _required_int(result, "tokenCount", "results[]")
            else:
                checks.note_invalid("results[]", result)
                count = None
            output = None if output is None or count is None else output + count
    elif results is not None:
        checks.note_invalid("results", results)
        output = None
    field = "totalOutputTextTokenCount"
    output = as_int(body.get(field), field) or output
    if output is None:
        return None
    return TokenCounts(input_tokens, output)


def decode_body(body: bytes | bytearray | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """Decode a JSON response body; a body that is not a JSON object gives {}."""
    if isinstance(body, Mapping):
        return body
    try:
        decoded = json.loads(body)
    except ValueError as error:
        # The error names a position; the body itself is never shown.
        checks.note("body", f"is not valid JSON ({type(error).__name__})")
        return {}
    if not isinstance(decoded, Mapping):
        checks.note_invalid("body", decoded)
        return {}
    return decoded


def is_image_response(data: bytes, headers: Mapping[str, str]) -> bool:
    """Return whether an InvokeModel response body is a generated image.

    Titan Image Generator, Nova Canvas and Stability AI models return their
    images in an `images` list, or as the body itself when the request asked
    for an `image/*` type. AWS bills them per image, and they report no token
    counts. A JSON body with a `usage` or any count that llmfy reads is not
    taken as an image response, so that it is still counted.
    """
    content_type = headers.get("content-type")
    if isinstance(content_type, str) and content_type.startswith("image/"):
        return True
    if b'"images"' not in data:
        return False
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return (
        isinstance(body, Mapping)
        and isinstance(body.get("images"), list)
        and "usage" not in body
        and counts_from_body(body) is None
    )


def usage_from_invoke(body: Mapping[str, Any] | None, context: CallContext) -> Usage:
    """Normalize an InvokeModel response: the token headers first, else the body.

    `body` is the decoded response body, or None when it was not read. The
    1-hour cache writes of an Anthropic model come from the body, since the
    headers give only the total cache writes.
    """
    headers = context.headers
    counts = counts_from_headers(headers) if headers else None
    if counts is None:
        counts = counts_from_body(body) if body is not None else None
        if counts is None:
            checks.note_text("the token counts are missing from headers and body")
    elif counts.cache_write and body is not None:
        usage = body.get("usage")
        if isinstance(usage, Mapping):
            counts = counts._replace(cache_write_1h=anthropic_cache_write_1h(usage))
    return to_usage(counts, context, _header_tier(headers))


def _header_tier(headers: Mapping[str, Any] | None) -> str | None:
    """Return the pricing tier that the headers name, noting invalid values.

    A latency-optimized request takes the latency tier, whatever its service tier.
    """
    if not headers:
        return None
    latency = latency_tier(headers.get(LATENCY_HEADER), LATENCY_HEADER)
    if latency is not None:
        return latency
    tier = headers.get(SERVICE_TIER_HEADER)
    if tier is None or isinstance(tier, str):
        return tier
    checks.note_invalid(SERVICE_TIER_HEADER, tier)
    return None


# InvokeModelWithResponseStream


def counts_from_stream_chunks(
    chunks: Iterable[Mapping[str, Any]],
) -> TokenCounts | None:
    """Read the usage of a response stream from its decoded chunks.

    The `amazon-bedrock-invocationMetrics` of the last chunk is what Bedrock
    bills and wins over the usage events of the model itself (Anthropic's
    `message_start` and `message_delta`, Nova's `metadata`, Titan's and Llama's
    counts). Those are used only when no chunk carries the metrics, when the
    metrics lack a valid input or output count, or for a cache count that the
    metrics lack. Titan and Llama count the output so far in every chunk, so
    only their last chunk, which names why the output stopped, gives the
    counts. Returns None when neither gives the counts, such as for a stream
    stopped early.
    """
    metrics: Mapping[str, Any] | None = None
    model_counts: TokenCounts | None = None
    anthropic_usage: Mapping[str, Any] | None = None
    cache_write_1h = 0
    # Kept from the chunk that has it: later Llama chunks may carry a null one.
    llama_prompt: int | None = None
    for chunk in chunks:
        found = chunk.get(INVOCATION_METRICS)
        if isinstance(found, Mapping):
            metrics = found
        kind = chunk.get("type")
        if kind == "message_start":
            message = chunk.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            if isinstance(usage, Mapping):
                anthropic_usage = usage
                cache_write_1h = anthropic_cache_write_1h(usage)
        elif kind == "message_delta" and anthropic_usage is not None:
            usage = chunk.get("usage")
            if isinstance(usage, Mapping) and usage.get("output_tokens") is not None:
                # The counts of a message_delta are cumulative, so each one it
                # gives, input and cache counts included, replaces the
                # message_start's.
                given = {
                    name: value for name, value in usage.items() if value is not None
                }
                merged = {**anthropic_usage, **given}
                model_counts = _anthropic_counts(merged)
                cache_write_1h = anthropic_cache_write_1h(merged)
        elif kind is None and "generation_token_count" in chunk:
            prompt = chunk.get("prompt_token_count")
            if prompt is not None:
                llama_prompt = as_int(prompt, "prompt_token_count")
            if chunk.get("stop_reason") is not None and llama_prompt is not None:
                generated = as_int(
                    chunk.get("generation_token_count"), "generation_token_count"
                )
                if generated is not None:
                    model_counts = TokenCounts(llama_prompt, generated)
        elif kind is None:
            model_counts = _other_stream_counts(chunk) or model_counts
    # Without a message_delta, an Anthropic stream stopped early: the output
    # count of its message_start is a placeholder, so the usage stays unknown.
    if metrics is None:
        return model_counts
    where = INVOCATION_METRICS
    input_tokens = _required_int(metrics, "inputTokenCount", where)
    output_tokens = _required_int(metrics, "outputTokenCount", where)
    if input_tokens is None or output_tokens is None:
        return model_counts
    cache_read = as_int(
        metrics.get("cacheReadInputTokenCount"), f"{where}.cacheReadInputTokenCount"
    )
    cache_write = as_int(
        metrics.get("cacheWriteInputTokenCount"), f"{where}.cacheWriteInputTokenCount"
    )
    # Metrics without a valid cache count leave it to the model's own usage,
    # whose input count excludes the cache tokens too.
    if model_counts is not None:
        if cache_read is None:
            cache_read = model_counts.cache_read
        if cache_write is None:
            cache_write = model_counts.cache_write
    return TokenCounts(
        input_tokens, output_tokens, cache_read or 0, cache_write or 0, cache_write_1h
    )


def _other_stream_counts(chunk: Mapping[str, Any]) -> TokenCounts | None:
    metadata = chunk.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("usage"), Mapping):
        return counts_from_token_usage(metadata["usage"])
    if (
        "inputTextTokenCount" in chunk
        and "totalOutputTextTokenCount" in chunk
        and chunk.get("completionReason") is not None
    ):
        return _titan_counts(chunk)
    return None


def usage_from_stream_chunks(
    chunks: Iterable[Mapping[str, Any]], context: CallContext
) -> Usage:
    """Normalize an InvokeModelWithResponseStream response from its chunks."""
    tier = _header_tier(context.headers)
    return to_usage(counts_from_stream_chunks(chunks), context, tier)


def extract_usage(response: Any, context: CallContext) -> Usage:
    """Normalize one Bedrock Runtime response, logging the fields it cannot trust.

    See the plugin's `usage_extract` for what `response` is per operation.
    """
    counts = read_response(response, context) if type(response) is dict else None
    if counts is not None:
        return usage_from_counts(counts)
    with checks.collecting() as problems:
        usage = _extract(response, context)
    if problems:
        checks.report(context, problems)
    return usage


def _extract(response: Any, context: CallContext) -> Usage:
    operation = context.operation
    if operation == "InvokeModel":
        return usage_from_invoke(_invoke_body(response), context)
    if operation == "InvokeModelWithResponseStream" and isinstance(response, list):
        return usage_from_stream_chunks(response, context)
    if isinstance(response, Mapping):
        return usage_from_converse(response, context)
    return to_usage(None, context)


def _invoke_body(response: Any) -> Mapping[str, Any] | None:
    if isinstance(response, (bytes, bytearray, str)):
        return decode_body(response)
    if isinstance(response, Mapping) and "ResponseMetadata" not in response:
        return response
    return None
