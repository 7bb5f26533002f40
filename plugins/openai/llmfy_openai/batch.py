"""Batch API output files: one usage per successful request, at the batch rate.

Each line of an output file is a JSON object
`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`
whose `body` is a Chat Completions, Responses, Embeddings or GPT Image body.
Lines with an error or a status other than 200 are not billed and yield
nothing, and so do moderations, which are free. `record_batch_usages` and
`record_batch_file` record each request at its send day's rate, read from
the body, since a file can hold requests sent before a price change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from llmfy_core import CallContext, Usage
from llmfy_core.recording import body_sent_at
from llmfy_openai.extract import PROVIDER, usage_from_body

if TYPE_CHECKING:
    from llmfy_core import UsageTracker


class BatchFileError(ValueError):
    """A line of a Batch API output file is not valid JSON or has the wrong shape."""


def iter_batch_usages(
    lines: str | bytes | Iterable[str | bytes | Mapping[str, Any]],
    *,
    model: str | None = None,
) -> Iterator[Usage]:
    """Yield the usage of each successful request in a Batch API output file.

    `lines` is the whole file as text or bytes, such as the `text` or
    `content` of `client.files.content(file_id)`, or the file's lines (text
    or bytes) or already parsed objects; blank lines are skipped. Each
    `Usage` has `batch=True`, so that it is priced at the Batch API rate.
    `model` is the model id that the batch's requests name, as the input
    file does: it becomes each usage's `model`, as a requested model does,
    and the body's model id its `served_model`. Without it, the `model` is
    the model id the body names. A GPT Image body names none, so its usage
    has the model "unknown" unless `model` is given. Raises
    `BatchFileError` naming the line number for invalid JSON or a line that
    is not an object.
    """
    for usage, _ in _iter_batch_requests(lines, model):
        yield usage


def record_batch_usages(
    lines: str | bytes | Iterable[str | bytes | Mapping[str, Any]],
    tracker: UsageTracker,
    *,
    model: str | None = None,
) -> int:
    """Record each successful request of a Batch API output file into `tracker`.

    `lines` and `model` are what `iter_batch_usages` takes. Each request is
    priced at the rate of the UTC day it was sent, as OpenAI billed it. That
    day comes from the body's `created` (Chat Completions) or `created_at`
    (Responses). A body without either, such as an Embeddings body, is
    priced at today's rate. Returns the number of requests recorded. Raises
    `BatchFileError` as `iter_batch_usages` does, after recording the lines
    before the bad one.
    """
    count = 0
    for usage, sent_at in _iter_batch_requests(lines, model):
        tracker.add_usage(usage, sent_at)
        count += 1
    return count


def record_batch_file(
    path: str | os.PathLike[str], tracker: UsageTracker, *, model: str | None = None
) -> int:
    """Record the requests of a Batch API output file on disk into `tracker`.

    See `record_batch_usages` for the send days, the result and the errors.
    """
    with open(path, "rb") as file:
        return record_batch_usages(file, tracker, model=model)


def _iter_batch_requests(
    lines: str | bytes | Iterable[str | bytes | Mapping[str, Any]],
    model: str | None,
) -> Iterator[tuple[Usage, dt.datetime | None]]:
    """Yield the usage and the send time (None if unknown) of each request."""
    if isinstance(lines, str):
        # Split on "\n" only, because splitlines() also splits on characters
        # such as U+2028, which JSON allows unescaped inside a string.
        lines = lines.split("\n")
    elif isinstance(lines, (bytes, bytearray)):
        lines = bytes(lines).split(b"\n")
    for number, line in enumerate(lines, start=1):
        record = _parse_line(line, number)
        if record is None:
            continue
        usage = _usage_of_record(record, model)
        if usage is not None:
            yield usage, body_sent_at(record["response"]["body"])


def read_batch_file(
    path: str | os.PathLike[str], *, model: str | None = None
) -> list[Usage]:
    """Return the usages of a Batch API output file on disk.

    See `iter_batch_usages` for `model`, what each usage contains and what is
    raised.
    """
    with open(path, "rb") as file:
        return list(iter_batch_usages(file, model=model))


def _parse_line(
    line: str | bytes | Mapping[str, Any], number: int
) -> Mapping[str, Any] | None:
    if isinstance(line, Mapping):
        return line
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError as error:
        raise BatchFileError(
            f"Invalid JSON on line {number} of the OpenAI Batch API output file: "
            f"{error}. Each line must be one JSON object."
        ) from None
    if not isinstance(record, Mapping):
        raise BatchFileError(
            f"Invalid line {number} of the OpenAI Batch API output file: expected a "
            f"JSON object, got {type(record).__name__}."
        )
    return record


def _usage_of_record(record: Mapping[str, Any], model: str | None) -> Usage | None:
    response = record.get("response")
    if record.get("error") or not isinstance(response, Mapping):
        return None
    if response.get("status_code") != 200:
        return None
    body = response.get("body")
    if not isinstance(body, Mapping):
        return None
    request_id = response.get("request_id")
    headers = {"x-request-id": request_id} if isinstance(request_id, str) else {}
    context = CallContext(provider=PROVIDER, model=model, headers=headers, batch=True)
    return usage_from_body(body, context)
