"""Offline usage: Bedrock model invocation logs and saved response bodies.

Bedrock's model invocation logging writes one JSON record per request to S3
(gzip-compressed JSON lines) or CloudWatch Logs, with `schemaType`
`ModelInvocationLog`. Its `input.inputTokenCount` excludes cache reads and
writes, like the runtime responses. Only the logged response body
(`output.outputBodyJson`) splits cache writes by TTL and names the service
tier that served the request.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from llmfy_bedrock import checks
from llmfy_bedrock.extract import (
    PROVIDER,
    TokenCounts,
    anthropic_cache_write_1h,
    as_int,
    converse_tier,
    decode_body,
    one_hour_writes,
    to_usage,
    usage_from_converse,
    usage_from_invoke,
    usage_from_stream_chunks,
)
from llmfy_bedrock.resolve import billing_region
from llmfy_core import CallContext, Usage
from llmfy_core.recording import record_usage
from llmfy_core.tracker import UsageTracker

LOG_SCHEMA = "ModelInvocationLog"


def usage_from_invocation_log(record: Mapping[str, Any]) -> Usage:
    """Normalize one model invocation log record.

    Raises ValueError for a record that is not a `ModelInvocationLog`.
    """
    schema = record.get("schemaType")
    if schema != LOG_SCHEMA:
        raise ValueError(
            f"Invalid Bedrock invocation log record {record.get('requestId')!r}: "
            f"schemaType is {schema!r}, expected {LOG_SCHEMA!r}."
        )
    model = record.get("modelId")
    context = CallContext(
        PROVIDER,
        operation=record.get("operation"),
        model=model if isinstance(model, str) else None,
        region=billing_region(model, record.get("region")),
        headers=_request_id_header(record.get("requestId")),
    )
    body = _output_body(record)
    with checks.collecting() as problems:
        counts = _log_counts(record, body)
        usage = to_usage(counts, context, converse_tier(body))
        if counts is not None:
            output_tokens = _log_output_tokens(record, context.model)
            usage = attrs.evolve(usage, output_tokens=output_tokens)
    if problems:
        checks.report(context, problems, "invocation log record")
    return usage


def _log_counts(
    record: Mapping[str, Any], body: Mapping[str, Any]
) -> TokenCounts | None:
    """Return the input and cache counts of a log record, with an output of 0.

    The caller sets the output count from `_log_output_tokens`, because a
    `TokenCounts` output cannot be unknown.
    """
    request = record.get("input")
    if not isinstance(request, Mapping):
        return None
    input_tokens = as_int(request.get("inputTokenCount"), "input.inputTokenCount")
    if input_tokens is None:
        return None
    cache_read = request.get("cacheReadInputTokenCount")
    cache_write = request.get("cacheWriteInputTokenCount")
    return TokenCounts(
        input_tokens,
        0,
        as_int(cache_read, "input.cacheReadInputTokenCount") or 0,
        as_int(cache_write, "input.cacheWriteInputTokenCount") or 0,
        _body_one_hour_writes(body),
    )


def _log_output_tokens(record: Mapping[str, Any], model: str | None) -> int | None:
    """Return `output.outputTokenCount`, or None when it is missing or invalid.

    Either fault is noted. An unknown output count makes the request's usage
    unknown, as for a live response without one, so that its cost is not
    reported as complete. An embeddings model generates no tokens: without
    the count, its output is 0, as for a live response without the output
    header.
    """
    output = record.get("output")
    count = output.get("outputTokenCount") if isinstance(output, Mapping) else None
    if count is None:
        if model is not None and _EMBEDDINGS_MARK in model.lower():
            return 0
        checks.note("output.outputTokenCount", "is missing")
        return None
    return as_int(count, "output.outputTokenCount")


# Part of the ids of Bedrock embeddings models, as in `amazon.titan-embed-text-v2:0`,
# `cohere.embed-v4:0` and `amazon.nova-2-multimodal-embeddings-v1:0`.
_EMBEDDINGS_MARK = "embed"


def _output_body(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the logged response body, or an empty mapping when it is not logged.

    A logged InvokeModelWithResponseStream body is the list of its chunks.
    For it, return the message of Anthropic's `message_start` chunk, because
    only that message splits the cache writes by TTL.
    """
    output = record.get("output")
    body = output.get("outputBodyJson") if isinstance(output, Mapping) else None
    if isinstance(body, list):
        for chunk in body:
            if isinstance(chunk, Mapping) and chunk.get("type") == "message_start":
                message = chunk.get("message")
                return message if isinstance(message, Mapping) else {}
        return {}
    return body if isinstance(body, Mapping) else {}


def _body_one_hour_writes(body: Mapping[str, Any]) -> int:
    """Return the 1-hour cache writes of a Converse or Anthropic response body."""
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        return 0
    details = usage.get("cacheDetails")
    if details is not None:
        return one_hour_writes(details)
    return anthropic_cache_write_1h(usage)


def _request_id_header(request_id: object) -> dict[str, str]:
    return {"x-amzn-requestid": request_id} if isinstance(request_id, str) else {}


def invocation_log_sent_at(record: Mapping[str, Any]) -> dt.datetime | None:
    """Return the request time of a log record in UTC, or None if it has none."""
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def read_invocation_logs(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Read the log records of one file: a JSON object or array, or JSON lines.

    A `.gz` file (as Bedrock delivers logs to S3) is decompressed first.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as file:
        raw = file.read()
    text = raw.decode("utf-8").strip()
    if not text:
        return
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        yield whole
    elif isinstance(whole, list):
        yield from (item for item in whole if isinstance(item, dict))
    else:
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)


def failed_invocation(record: Mapping[str, Any]) -> str | None:
    """Return the `errorCode` of a log record whose invocation failed unbilled.

    A failed invocation whose record counts no tokens, with its counts
    missing or 0, has no tokens to bill, so it is not a request to count. One
    that counts some, such as a stream that broke after it started, is read
    as any other record.
    """
    # NOTE: written from the log schema's `errorCode` field. No recorded log
    # of a failed invocation was at hand to check its other fields.
    error = record.get("errorCode")
    if not error:
        return None
    request = record.get("input")
    output = record.get("output")
    input_count = (
        request.get("inputTokenCount") if isinstance(request, Mapping) else None
    )
    output_count = (
        output.get("outputTokenCount") if isinstance(output, Mapping) else None
    )
    if _counts_tokens(input_count) or _counts_tokens(output_count):
        return None
    return str(error)


def _counts_tokens(count: object) -> bool:
    """Return whether a logged count is anything but missing or 0.

    An invalid value counts, so that the record is read and the value reported.
    """
    return count is not None and not (type(count) is int and count == 0)


def record_invocation_logs(
    records: Iterable[Mapping[str, Any]], tracker: UsageTracker
) -> int:
    """Record log records into `tracker` at their request times; return the count.

    Records of failed invocations that were not billed are left out.
    """
    count = 0
    for record in records:
        if failed_invocation(record) is not None:
            continue
        usage = usage_from_invocation_log(record)
        record_usage(usage, [tracker], invocation_log_sent_at(record))
        count += 1
    return count


def usage_from_saved_response(
    body: bytes | str | Mapping[str, Any],
    *,
    operation: str,
    model: str,
    region: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Usage:
    """Normalize a saved response body of one Bedrock Runtime operation.

    `body` is the JSON body of Converse or InvokeModel (bytes, text or the
    decoded mapping), or the raw `application/vnd.amazon.eventstream` bytes of
    ConverseStream or InvokeModelWithResponseStream. `headers` are the HTTP
    response headers, if saved; their token counts win for InvokeModel.
    """
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    context = CallContext(
        PROVIDER, operation, model, billing_region(model, region), headers=lowered
    )
    if operation == "Converse":
        return usage_from_converse(decode_body(body), context)
    if operation == "InvokeModel":
        return usage_from_invoke(decode_body(body), context)
    if isinstance(body, Mapping):
        raise ValueError(
            f"Invalid saved {operation} response for model {model!r}: expected the "
            "raw event-stream bytes, got a mapping."
        )
    data = body.encode() if isinstance(body, str) else body
    if operation == "ConverseStream":
        return usage_from_converse(_converse_metadata(data), context)
    if operation == "InvokeModelWithResponseStream":
        return usage_from_stream_chunks(stream_chunks(data), context)
    raise ValueError(
        f"Unknown Bedrock operation {operation!r} for model {model!r}: expected "
        "Converse, ConverseStream, InvokeModel or InvokeModelWithResponseStream."
    )


def _event_messages(data: bytes) -> Iterator[tuple[str | None, bytes]]:
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(data)
    for message in buffer:
        event_type = message.headers.get(":event-type")
        yield (event_type if isinstance(event_type, str) else None), message.payload


def _converse_metadata(data: bytes) -> Mapping[str, Any]:
    for event_type, payload in _event_messages(data):
        if event_type == "metadata":
            return decode_body(payload)
    return {}


def stream_chunks(data: bytes) -> list[Mapping[str, Any]]:
    """Decode the JSON chunks of a saved InvokeModelWithResponseStream body."""
    chunks = []
    for event_type, payload in _event_messages(data):
        if event_type != "chunk":
            continue
        encoded = decode_body(payload).get("bytes")
        if isinstance(encoded, str):
            chunk = decode_body(base64.b64decode(encoded))
            if chunk:
                chunks.append(chunk)
    return chunks
