"""OpenAI streams saved one chunk or event per record, counted once per stream.

A Chat Completions stream sends chunks that share the stream's `id`, and
only its usage chunk carries usage (when the request set
`stream_options.include_usage`). A legacy Completions stream does the same,
with chunks whose `object` is `text_completion`, as in a body that was not
streamed. Azure OpenAI adds chunks of content filter results, which name
no stream. A Responses stream sends events:
`response.created` and `response.in_progress` carry the response without
usage, the final `response.completed`, `response.incomplete` or
`response.failed` carries it with usage, and the others (text deltas, output
items, the `error` event of a stream that failed) carry no response at all.

So a chunk with usage or a final event is counted as the stream's request,
and the other records of the stream are not requests. A final event counts
at once. The last chunk with usage of a stream counts when the file ends,
because some OpenAI-compatible servers (vLLM with `continuous_usage_stats`)
put the usage so far in every chunk. A stream whose file has no such record
is counted once, with unknown usage. Streams are distinguished by the chunk's
`id` or the response's `id`, within one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .readers import Record

FINAL_RESPONSE_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)

# The API of a stream and its id. The id is None when the records have none,
# so that such records of one file make one stream.
StreamKey = tuple[str, str | None]


class SavedStreams:
    """The streams of one file whose records were read, by `StreamKey`."""

    def __init__(self) -> None:
        # The streams whose request is counted or held in `_requests`.
        self._with_usage: set[StreamKey] = set()
        # The record that will count each stream when the file ends: its last
        # chunk with usage, or its first record while it has none. In the
        # order the streams began.
        self._requests: dict[StreamKey, Record] = {}

    def hold(self, record: Record) -> bool:
        """Return whether `record` is part of a stream and not a request by itself.

        A final event, or a chunk with usage of a stream without an id, is
        not held: the caller counts it at once. A second final event of a
        response, such as a line written twice, is held, so that the stream
        is one request. A chunk with usage of a stream with an id is held,
        and `end_file` returns the last one.
        """
        part = _stream_part(record.data)
        if part is None:
            return False
        key, counted = part
        if key is None:
            return True
        if counted and (key[1] is None or key[0] == "responses"):
            if key[1] is not None and key in self._with_usage:
                return True
            self._with_usage.add(key)
            self._requests.pop(key, None)
            return False
        if counted:
            self._with_usage.add(key)
            self._requests[key] = _without_choices(record)
        elif key not in self._with_usage:
            self._requests.setdefault(key, record)
        return True

    def end_file(self) -> list[Record]:
        """Return the record that counts each held stream, then forget all.

        It is the stream's last chunk with usage, or else its first record,
        which gives the stream unknown usage.
        """
        requests = list(self._requests.values())
        self._requests.clear()
        self._with_usage.clear()
        return requests


def _without_choices(record: Record) -> Record:
    """Return `record` without the `choices` of its chunk.

    Reading the chunk's usage does not need them, and a file may hold many
    streams, so the usage chunks held until its end keep no generated text.
    """
    data = {name: value for name, value in record.data.items() if name != "choices"}
    return attrs.evolve(record, data=data)


def _stream_part(body: Any) -> tuple[StreamKey | None, bool] | None:
    """Return the stream of a chunk or stream event, and whether it is counted.

    Returns None for a body that is not part of a stream. A Responses event
    without a response, such as a text delta, names no stream: its key is None.
    """
    if not isinstance(body, Mapping):
        return None
    kind = body.get("object")
    if kind == "" and _is_content_filter_chunk(body):
        return None, False
    if kind == "chat.completion.chunk":
        return ("chat", _text(body.get("id"))), body.get("usage") is not None
    if kind == "text_completion":
        # A legacy Completions chunk has the `object` of a whole Completions
        # body. A body with usage is counted, as a usage chunk is, and one
        # without usage is a chunk of a stream.
        return ("completions", _text(body.get("id"))), body.get("usage") is not None
    event = body.get("type")
    if event == "error" and "sequence_number" in body:
        # A Responses stream's error event, which ends a failed stream.
        return None, False
    if not isinstance(event, str) or not event.startswith("response."):
        return None
    response = body.get("response")
    if not isinstance(response, Mapping):
        return None, False
    return ("responses", _text(response.get("id"))), event in FINAL_RESPONSE_EVENTS


def _is_content_filter_chunk(body: Mapping[str, Any]) -> bool:
    """Return whether a chunk carries only Azure OpenAI's content filter results.

    Azure sends them in chunks with an empty `id`, `model` and `object`: the
    prompt's results before the first token, and with asynchronous
    filtering the results of each stretch of output, also after the usage
    chunk. Such a chunk names no stream and is no request.
    """
    if "prompt_filter_results" in body:
        return True
    choices = body.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(
            isinstance(choice, Mapping) and "content_filter_results" in choice
            for choice in choices
        )
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
