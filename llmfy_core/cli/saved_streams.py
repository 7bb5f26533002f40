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

So a chunk with usage and a final event are counted as the stream's request,
and the other records of the stream are not requests. A stream whose file has
no such record is counted once, with unknown usage, when the file ends.
Streams are distinguished by the chunk's `id` or the response's `id`, within
one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        self._counted: set[StreamKey] = set()
        # The first record of each stream not counted yet.
        self._unfinished: dict[StreamKey, Record] = {}

    def hold(self, record: Record) -> bool:
        """Return whether `record` is part of a stream and not a request by itself.

        A chunk with usage or a final event is not held: the caller counts it,
        and the other records of its stream are then held without a trace. A
        second one of a stream with an id, such as a line written twice, is
        held too, so that the stream is one request.
        """
        part = _stream_part(record.data)
        if part is None:
            return False
        key, counted = part
        if key is None:
            return True
        if counted:
            if key[1] is not None and key in self._counted:
                return True
            self._counted.add(key)
            self._unfinished.pop(key, None)
            return False
        if key not in self._counted:
            self._unfinished.setdefault(key, record)
        return True

    def end_file(self) -> list[Record]:
        """Return the first record of each stream that had no usage, then forget all."""
        unfinished = list(self._unfinished.values())
        self._unfinished.clear()
        self._counted.clear()
        return unfinished


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
