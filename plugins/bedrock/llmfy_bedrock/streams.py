"""Recording of ConverseStream and InvokeModelWithResponseStream responses.

The caller keeps botocore's own `EventStream` object. Three of its instance
attributes are replaced, each by the stream's `StreamWatch`: the iterator of
raw messages, to learn when the stream ends or raises, the event parser, to
see each parsed event as it passes, and `close`. Nothing is held back: each
event reaches the caller as soon as botocore parses it. The request is
recorded once, at the first of: the usage event (the `metadata` event, or the
chunk with `amazon-bedrock-invocationMetrics`), the end of the stream, an
error, `close()`, or the stream being garbage-collected. Once it is recorded,
the stream gets its own attributes back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from llmfy_bedrock.extract import INVOCATION_METRICS, PROVIDER
from llmfy_bedrock.resolve import billing_region
from llmfy_core import CallContext
from llmfy_core.deferred import run_later, start_worker
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.recording import record_response, record_usage, unknown_usage
from llmfy_core.tracker import UsageTracker

# A logger whose calls never raise, even when a handler of the application does.
logger = get_logger("llmfy.bedrock")

_METRICS_MARK = INVOCATION_METRICS.encode()
# CPython's message when a running generator is called again, as from another thread.
_ALREADY_EXECUTING = "generator already executing"
# Makes `StreamWatch.finish` record once when several threads finish a stream.
_FINISH_LOCK = new_lock()
# botocore's event-stream decoder, whose errors mean a malformed frame.
_EVENT_STREAM_MODULE = "botocore.eventstream"


class StreamWatch:
    """Follows one event stream and records its request exactly once."""

    __slots__ = (
        "__weakref__",
        "_client_region",
        "_close",
        "_done",
        "_events",
        "_first",
        "_headers",
        "_last",
        "_metadata",
        "_model",
        "_operation",
        "_parse",
        "_previous",
        "_sent_at",
        "_stream",
        "_trackers",
    )

    def __init__(
        self,
        operation: str,
        model: str | None,
        client_region: str | None,
        headers: dict[str, str],
        trackers: Sequence[UsageTracker],
        sent_at: int,
    ) -> None:
        # The fields of the request's `CallContext`, which is built, with the
        # billing Region, only when the request is recorded, so that the
        # first event reaches the caller sooner.
        self._operation = operation
        self._model = model
        self._client_region = client_region
        self._headers = headers
        self._trackers = trackers
        self._sent_at = sent_at
        self._done = False
        self._metadata: Mapping[str, Any] | None = None
        self._first: bytes | None = None
        self._previous: bytes | None = None
        self._last: bytes | None = None
        # The watched stream until `detach`, which gives it its attributes back.
        self._stream: Any = None
        # `_events`, `_parse` and `_close` are set by `attach`.

    def attach(self, stream: Any) -> bool:
        """Hook into a botocore `EventStream`; return False if it has another shape."""
        try:
            parse = stream._parse_event
            events = stream._event_generator
            close = stream.close
        except AttributeError:
            return False
        start_worker()
        self._parse = parse
        self._close = close
        self._events = events
        self._stream = stream
        if self._operation == "ConverseStream":
            stream._parse_event = self._parse_converse_event
        else:
            stream._parse_event = self._parse_invoke_event
        stream._event_generator = self
        stream.close = self.close
        return True

    @property
    def done(self) -> bool:
        """Whether the request is recorded (or counted by the caller)."""
        return self._done

    def __iter__(self) -> StreamWatch:
        return self

    def __next__(self) -> Any:
        """Return the stream's next raw message, finishing the watch at its end."""
        try:
            return next(self._events)
        except StopIteration:
            self.finish()
            self.detach()
            raise
        except ValueError as error:
            # "Generator already executing" means that another thread is
            # reading the stream, which goes on and may still give the usage.
            if str(error) != _ALREADY_EXECUTING:
                self.fail(error)
            raise
        except BaseException as error:
            self.fail(error)
            raise

    def __del__(self) -> None:
        # The stream was dropped before its end, or never read.
        self.finish_later()

    def _parse_converse_event(self, event: Any) -> Any:
        try:
            parsed = self._parse(event)
        except BaseException:
            self.finish()
            self.detach()
            raise
        if "metadata" in parsed:
            self._metadata = parsed["metadata"]
            self.finish()
            self.detach()
        return parsed

    def _parse_invoke_event(self, event: Any) -> Any:
        try:
            parsed = self._parse(event)
        except BaseException:
            self.finish()
            self.detach()
            raise
        chunk = parsed.get("chunk")
        if chunk is None:
            return parsed
        data = chunk.get("bytes")
        if not data:
            return parsed
        # Keep the first chunk and the last two, unread: they hold the model's
        # own usage (Anthropic's message_start, message_delta) and the
        # invocation metrics. Decoding waits until the request is recorded.
        if self._first is None:
            self._first = data
        else:
            self._previous = self._last
            self._last = data
        if _METRICS_MARK in data and _has_metrics(data):
            self.finish()
            self.detach()
        return parsed

    def close(self) -> None:
        """Close the stream, as `EventStream.close()` does, and record it."""
        try:
            self._close()
        finally:
            self.finish()
            self.detach()

    def detach(self) -> None:
        """Give the stream back its own attributes once the request is recorded.

        Otherwise the stream and the watch refer to each other, and a stream
        read to its end stays in memory with its HTTP response until the
        garbage collector runs. A loop already over the stream goes on through
        the watch, which reads the same events. An attribute that another
        library replaced after `attach` keeps that library's value, which
        still calls the watch.
        """
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        if self._operation == "ConverseStream":
            parse = self._parse_converse_event
        else:
            parse = self._parse_invoke_event
        try:
            _restore(stream, "_event_generator", self, self._events)
            _restore(stream, "_parse_event", parse, self._parse)
            _restore(stream, "close", self.close, self._close)
        except Exception:  # the stream still works through the watch
            logger.debug("failed to restore the attributes of a bedrock stream")

    def finish(self) -> None:
        """Record the request unless it is already recorded. Never raises."""
        if self._done or not self._claim():
            return
        try:
            record_response(
                self._response(), self.context(), self._trackers, self._sent_at
            )
        except Exception as error:  # recording never breaks the caller's stream
            logger.warning(
                "recording failed for provider bedrock, model %s, region %s",
                self._model,
                self._billing_region(),
                exc_info=True,
            )
            self._record_fault(error)

    def mark_recorded(self) -> None:
        """Record nothing from now on: the caller counted the request itself."""
        self._done = True

    def _claim(self) -> bool:
        """Mark the request recorded; return False if another thread did first."""
        # One lock for every stream: it is held for a test and a store only.
        with _FINISH_LOCK:
            if self._done:
                return False
            self._done = True
            return True

    def _record_fault(self, error: Exception) -> None:
        """Count the request with unknown usage when its context or usage failed."""
        try:
            context = self.context_without_headers()
            fault = f"bedrock: {error!r}"
            record_usage(unknown_usage(context), self._trackers, self._sent_at, fault)
        except Exception:
            logger.exception("recording the fault of a bedrock stream failed")

    def record_unwatched(self) -> None:
        """Count a response whose stream is not a botocore EventStream."""
        self._done = True
        logger.warning(
            "%s response of provider bedrock, model %s, region %s is not a "
            "botocore EventStream; counted with unknown usage",
            self._operation,
            self._model,
            self._billing_region(),
        )
        record_response({}, self.context(), self._trackers, self._sent_at)

    def fail(self, error: BaseException) -> None:
        """Record the request after its stream raised, naming a broken frame."""
        if not self._done and type(error).__module__ == _EVENT_STREAM_MODULE:
            logger.warning(
                "The bedrock %s response for model %s in region %s has a broken "
                "event-stream frame (%s); the request is counted with the usage "
                "read before it.",
                self._operation,
                self._model,
                self._billing_region(),
                type(error).__name__,
            )
        self.finish()
        self.detach()

    def finish_later(self) -> None:
        """Record from llmfy's recording thread: used when the stream is freed.

        The garbage collector can run while this thread holds a tracker's lock,
        so recording right there could deadlock; see `llmfy_core.deferred`.
        """
        if self._done:
            return
        # At interpreter exit on Python 3.11.7, the thread was created but never
        # ran, so that `start()` waited forever.
        if sys.is_finalizing():
            logger.debug("stream of model %s dropped at shutdown", self._model)
            return
        try:
            run_later(self.finish, "llmfy-bedrock-stream")
        except RuntimeError:  # the interpreter is shutting down
            logger.debug("stream of model %s dropped at shutdown", self._model)

    def context(self) -> CallContext:
        """Return the `CallContext` of the request."""
        return CallContext(
            PROVIDER,
            self._operation,
            self._model,
            self._billing_region(),
            # A read-only view: CallContext keeps it as is instead of copying it.
            headers=MappingProxyType(
                self._headers if isinstance(self._headers, Mapping) else {}
            ),
        )

    def context_without_headers(self) -> CallContext:
        """Return the request's `CallContext` for a fault, with only valid fields."""
        model = self._model if isinstance(self._model, str) else None
        return CallContext(PROVIDER, self._operation, model, self._billing_region())

    def _billing_region(self) -> str | None:
        """Return the Region the request is billed in: an ARN's, else the client's."""
        model = self._model if isinstance(self._model, str) else None
        region = self._client_region
        region = region if isinstance(region, str) else None
        try:
            return billing_region(model, region)
        except Exception:
            logger.debug("unreadable model id %r; the client's Region is used", model)
            return region

    def _response(self) -> Any:
        if self._operation == "ConverseStream":
            return self._metadata if self._metadata is not None else {}
        decoded = []
        for data in (self._first, self._previous, self._last):
            if data is None:
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            if isinstance(chunk, Mapping):
                decoded.append(chunk)
        return decoded


def _restore(stream: Any, name: str, replacement: Any, original: Any) -> None:
    """Set an attribute of `stream` from `replacement` back to `original`.

    An attribute that is no longer `replacement` is left alone. When
    `original` is the stream's class method bound to the stream, the
    attribute is deleted instead, which uncovers the method: assigning it
    would make a cycle of the stream and its bound method.
    """
    # Bound methods are equal when they bind one function to one object.
    if getattr(stream, name, None) != replacement:
        return
    method = getattr(type(stream), name, None)
    if getattr(original, "__self__", None) is stream and (
        getattr(original, "__func__", None) is method
    ):
        delattr(stream, name)
    else:
        setattr(stream, name, original)


def _has_metrics(data: bytes) -> bool:
    """Return whether a chunk has the invocation metrics, an object, at its top level.

    The model's text may quote the key, and a chunk may give it a null value.
    Neither chunk ends the usage.
    """
    try:
        # json raises RecursionError, not ValueError, for a chunk nested too deep.
        chunk = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(chunk, Mapping) and isinstance(
        chunk.get(INVOCATION_METRICS), Mapping
    )
