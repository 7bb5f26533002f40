"""Instrumentation of the official `openai` SDK (3.x, on httpx2).

The SDK's classes are patched once per process, so every client counts,
whenever it was created: `OpenAI`, `AsyncOpenAI` and their Azure subclasses.

- `SyncAPIClient.request` / `AsyncAPIClient.request` capture the active
  trackers and the send time. With no active tracker and no background
  response pending they call the SDK and do nothing else.
- A parsed response is recorded at once. A stream's chunk iterator is wrapped
  by a generator that keeps a reference to the usage chunk (or the final
  `Response` event) and records when the stream ends, raises, is closed or is
  garbage collected, exactly once.
- The wrappers of `with_raw_response` and `with_streaming_response` record
  when the body was read: at once for raw responses, on `parse()` or
  `close()` for streamed responses.
- A background response still running waits in `llmfy_openai.background`
  until a retrieve or cancel returns it in a final status. While any is
  pending, those two requests are watched also where no tracker is active.

Nothing here imports `openai` before the application does: `install()` patches
at once when `openai` is already imported, and otherwise when it is.
"""

from __future__ import annotations

import copy
import functools
import importlib.abc
import importlib.machinery
import inspect
import json
import re
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any, TypeGuard

import attrs

from llmfy_core import CallContext, UsageTracker, UsageWarning, active_trackers
from llmfy_core.deferred import run_later, start_worker
from llmfy_core.errors import emit_warning
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.recording import (
    record_response,
    record_usage,
    unknown_usage,
    watch_stream,
)
from llmfy_core.tracker import UNTRACKED, warn_untracked_thread
from llmfy_openai import background
from llmfy_openai.background import PENDING, STREAMING
from llmfy_openai.extract import (
    TOKEN_USAGE_OPERATIONS,
    checked_text,
    extract_usage,
    report_missing_usage,
    reports_token_usage,
)

# A logger whose calls never raise, even when a handler of the application does.
logger = get_logger("llmfy.openai")

PROVIDER = "openai"

# POST paths that bill tokens at the model's token rates, and the operation
# name each one is recorded under. A compaction (`responses.compact()`) runs
# the model over a conversation and reports its usage as a Responses call
# does. `client.beta.responses` sends the same calls with `?beta=true` in the
# path. A Decisions call (`decisions.create()`) is billed by its input tokens
# (see `llmfy_openai.extract`). A transcription or an image generation or
# edit is recorded only when its response reports token usage (see
# `TOKEN_USAGE_OPERATIONS`). Other paths are not recorded: retrieving a stored
# response, counting input tokens and uploading files are not billed per
# token. A retrieve or cancel that returns
# a background response llmfy saw created records that request instead (see
# `llmfy_openai.background`).
# NOTE: `/audio/speech` is billed, per token for gpt-4o-mini-tts, but is not
# recorded: the SDK returns its body as audio bytes and never parses a usage.
TRACKED_OPERATIONS = {
    "/chat/completions": "chat.completions",
    "/responses": "responses",
    "/responses?beta=true": "responses",
    "/responses/compact": "responses.compact",
    "/responses/compact?beta=true": "responses.compact",
    "/embeddings": "embeddings",
    "/completions": "completions",
    "/audio/transcriptions": "audio.transcriptions",
    "/images/generations": "images.generations",
    "/images/edits": "images.edits",
    "/decisions": "decisions",
}

_CALL_ATTRIBUTE = "_llmfy_openai_call"
_PATCHED_MARK = "__llmfy_openai_patch__"

# Responses API stream events that carry the whole `Response`; the last three
# end the stream and carry its usage.
_FINAL_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)
_RESPONSE_EVENTS = _FINAL_EVENTS | {"response.created", "response.in_progress"}

_patch_lock = new_lock()
# Lets `_Call._claim` pick one thread to record a call when several threads
# finish it at once, as when two threads close one stream.
_FINISH_LOCK = new_lock()
_patched = False
# The operations whose streams carry usage only when the request sets
# `stream_options={"include_usage": True}`, with the name of their stream and
# the SDK method that sends them.
_INCLUDE_USAGE_OPERATIONS = {
    "chat.completions": ("chat completion", "chat.completions.create()"),
    "completions": ("completion", "completions.create()"),
}
# The reasons logged for a stream that ran to its end without usage, by
# operation. `_NO_USAGE_EVENT` is the reason for the other operations.
_NO_USAGE_CHUNK = (
    "is missing because the stream ended without the usage chunk that "
    "stream_options include_usage requests"
)
_STREAM_WITHOUT_USAGE = {
    "chat.completions": _NO_USAGE_CHUNK,
    "completions": _NO_USAGE_CHUNK,
    "responses": (
        "is missing because the stream ended without its final event "
        "(response.completed, response.incomplete or response.failed)"
    ),
}
_NO_USAGE_EVENT = "is missing because the stream ended without an event that carries it"
# For each tracker, the operations whose streams without usage it warned about.
_warned_trackers: weakref.WeakKeyDictionary[UsageTracker, set[str]] = (
    weakref.WeakKeyDictionary()
)


def install() -> None:
    """Patch the SDK now if it is imported, else as soon as it is imported."""
    if "openai" in sys.modules:
        _patch_safely()
        return
    with _patch_lock:
        if not any(isinstance(finder, _ImportHook) for finder in sys.meta_path):
            sys.meta_path.insert(0, _ImportHook())
    if "openai" in sys.modules:
        _patch_safely()


def is_installed() -> bool:
    """Return whether the SDK classes are patched in this process."""
    return _patched


# Per-request state


class _Call:
    """The state of one request until it is recorded: trackers, send time, context."""

    __slots__ = (
        "__weakref__",
        "attached",
        "background",
        "done",
        "final",
        "freed",
        "include_usage",
        "latest",
        "model",
        "operation",
        "pending_id",
        "polled_id",
        "provider",
        "region",
        "request_id",
        "response_headers",
        "sent_at",
        "stream_id",
        "trackers",
    )

    def __init__(
        self,
        trackers: Sequence[UsageTracker],
        operation: str,
        model: str | None,
        include_usage: bool,
    ) -> None:
        self.trackers = trackers
        # In nanoseconds: right after an SDK call, `time.time_ns()` took about
        # 0.6 us on the benchmark machine and `datetime.now(UTC)` about 5 us.
        self.sent_at = time.time_ns()
        self.operation = operation
        self.model = model
        self.include_usage = include_usage
        # The provider that serves and bills the request: "openai", or another
        # one whose endpoint the client sends OpenAI requests to, such as
        # "bedrock" (see `_endpoint`).
        self.provider = PROVIDER
        # The regional processing endpoint the request was sent to, such as
        # `eu` for eu.api.openai.com, the AWS Region of a Bedrock endpoint,
        # or None.
        self.region: str | None = None
        self.request_id: str | None = None
        # A stream's HTTP headers, read for the request id only when it is
        # recorded, so that the first chunk reaches the caller sooner.
        self.response_headers: Any = None
        self.latest: Any = None
        self.final: Any = None
        self.done = False
        self.attached = False
        # True once the garbage collector freed the stream, whose recording
        # then waits for llmfy's recording thread.
        self.freed = False
        # True for a Responses create with `background=True`, and for a
        # retrieve or cancel of a pending one, whose `polled_id` is set.
        self.background = False
        self.polled_id: str | None = None
        # The response id of a background request waiting for its final status.
        self.pending_id: str | None = None
        # The response id of a background stream, once its first event names it.
        self.stream_id: str | None = None

    def context(self, service_tier: str | None = None) -> CallContext:
        self._read_request_id()
        headers = {"x-request-id": self.request_id} if self.request_id else {}
        return CallContext(
            provider=self.provider,
            operation=self.operation,
            model=self.model,
            region=self.region,
            service_tier=service_tier,
            headers=headers,
        )

    def record(self, response: Any) -> None:
        """Record a complete response (an SDK object or a JSON dict)."""
        if self.done:
            return
        if self.background:
            self._record_background(response)
            return
        if not self._claim():
            return
        try:
            if self.operation in TOKEN_USAGE_OPERATIONS and not reports_token_usage(
                response
            ):
                return
            self._record_response(response)
        except Exception as error:  # never reach the caller
            self._log_fault(error)

    def _record_response(self, response: Any) -> None:
        """Record a complete response that this call has claimed.

        A response from another provider's endpoint has OpenAI's shape, so
        this plugin reads it, and the tracker prices it as that provider's.
        """
        context = self.context()
        if self.provider == PROVIDER:
            record_response(response, context, self.trackers, self.sent_at)
            return
        usage = extract_usage(response, attrs.evolve(context, provider=PROVIDER))
        fault = None
        if usage is None:
            usage = unknown_usage(context, request_id=self.request_id)
            fault = f"no usage in the {type(response).__name__} response"
        else:
            usage = attrs.evolve(usage, provider=self.provider, region=self.region)
        record_usage(usage, self.trackers, self.sent_at, fault)

    def _record_background(self, response: Any) -> None:
        """Keep a background response pending, or record the one a poll returned."""
        try:
            if self.polled_id is not None:
                # The poll itself is not billed: it records the pending request.
                if self._claim():
                    background.resolve(self.polled_id, response)
                return
            response_id = background.running_id(response)
            if not self._claim():
                return
            if response_id is not None:
                background.add(self.pending_copy(response_id))
                return
            self._record_response(response)
        except Exception as error:  # never reach the caller
            self._log_fault(error)

    def pending_copy(self, response_id: str) -> _Call:
        """Return a new call for this request, to wait for response `response_id`.

        This call is marked recorded, so that a report no longer lists its
        stream as open, and the new one waits in `llmfy_openai.background`.
        """
        self._read_request_id()
        pending = _Call(self.trackers, self.operation, self.model, self.include_usage)
        pending.sent_at = self.sent_at
        pending.provider = self.provider
        pending.region = self.region
        pending.request_id = self.request_id
        pending.pending_id = response_id
        return pending

    def settle(self) -> None:
        """Record a pending request with unknown usage if its trackers all ended."""
        background.settle(self)

    def record_unknown(self, fault: str) -> bool:
        """Record the call with unknown usage and `fault` as the reason.

        Returns False if it was already recorded.
        """
        try:
            return self._record_unknown(None, None, fault)
        except Exception as error:  # never reach the caller
            self._log_fault(error)
            return False

    def record_body(self, http_response: Any) -> None:
        """Record from the HTTP body if it was read, else with unknown usage."""
        if self.done:
            return
        try:
            self.request_id = http_response.headers.get("x-request-id")
            content = getattr(http_response, "_content", None)
            if self.operation in TOKEN_USAGE_OPERATIONS and not _starts_object(content):
                # An unread body, or a transcription as text, srt or vtt, shows
                # no usage, so whether it was billed per token is unknown.
                self._claim()
                return
            try:
                body = json.loads(content) if content else None
            except ValueError as error:
                self._record_undecoded(http_response, error)
                return
            if isinstance(body, Mapping):
                self.record(body)
            else:
                self._record_unknown(None, None)
        except Exception as error:  # never reach the caller
            self.done = True
            self._log_fault(error)

    def _record_undecoded(self, http_response: Any, error: ValueError) -> None:
        """Record with unknown usage a read body that is not valid JSON."""
        content_type = http_response.headers.get("content-type") or ""
        if content_type.startswith("text/event-stream"):
            # llmfy does not parse a stream's events read whole with read() or
            # text(), as it does not parse the lines of iter_lines().
            self._record_unknown(None, None)
            return
        # The error's message names a position or a digit count, never the body.
        self.record_unreadable(f"could not be parsed: {type(error).__name__}: {error}")

    def finish_stream(self, ended: bool = False) -> None:
        """Record a stream once, from its usage chunk or with unknown usage.

        `ended` is True when the stream's events ran out, rather than the
        stream being closed early or cut by an error. A missing usage is then
        logged.
        """
        if self.done:
            return
        if self.stream_id is not None:
            self._finish_background_stream()
            return
        final = self.final
        if final is not None:
            if not (hasattr(final, "usage") or isinstance(final, Mapping)):
                # The `response` of a final Responses event, which the SDK
                # passes through unchanged when it is a string, a number or a list.
                kind = type(final).__name__
                self.record_unreadable(
                    f"has a final stream event with a response of type {kind}, "
                    "not an object"
                )
                return
            self.record(final)
            return
        if ended and self.operation in TOKEN_USAGE_OPERATIONS:
            # Not counted, as a whole response without token usage is not,
            # because it may be billed by duration or per image. OpenAI
            # ignores `stream` for whisper-1 (openai 3.63, the docstring of
            # `transcriptions.create`) and sends a JSON body, in which the SDK
            # finds no event.
            self._claim()
            return
        try:
            latest = self.latest
            context = self.context()
            served = checked_text(getattr(latest, "model", None), "model", context)
            tier = getattr(latest, "service_tier", None)
            tier = checked_text(tier, "service_tier", context)
            if not self._record_unknown(served, tier):
                return
            if self.operation in _INCLUDE_USAGE_OPERATIONS and not self.include_usage:
                self._warn_no_usage()
            elif ended:
                problem = _STREAM_WITHOUT_USAGE.get(self.operation, _NO_USAGE_EVENT)
                report_missing_usage(self.context(tier), served, problem)
        except Exception as error:  # never reach the caller
            self._log_fault(error)

    def _finish_background_stream(self) -> None:
        """Record a background stream, or leave its request pending if it ended early.

        The one that removes the stream from `STREAMING` records it: this
        call, or a poll that returned the response in a final status.
        """
        try:
            final = self.final
            response_id = (
                None if final is not None else background.running_id(self.latest)
            )
            if response_id is None:
                if background.stream_ended(self):
                    self.record(final if final is not None else self.latest)
                return
            # Its response runs on, so the request waits for a retrieve. The
            # copy is built before the stream leaves `STREAMING`, so that a
            # poll meanwhile still finds the stream there.
            if background.add(self.pending_copy(response_id), self):
                self._claim()
        except Exception as error:  # never reach the caller
            self._log_fault(error)

    def record_unreadable(self, problem: str) -> None:
        """Record a response whose body could not be read, with unknown usage."""
        if self.done:
            return
        if self.operation in TOKEN_USAGE_OPERATIONS:
            # A transcription as text shows no usage, so it is not counted.
            self._claim()
            return
        try:
            recorded = self._record_unknown(None, None)
        except Exception as error:  # never reach the caller
            self._log_fault(error)
            return
        if recorded:
            logger.warning(
                "The %s %s response for model %s %s; the request is counted with "
                "unknown usage.",
                PROVIDER,
                self.operation,
                self.model,
                problem,
            )

    def _read_request_id(self) -> None:
        headers = self.response_headers
        if headers is not None:
            self.response_headers = None
            self.request_id = headers.get("x-request-id")

    def _claim(self) -> bool:
        """Mark the call recorded, or return False when another thread did first.

        Only recording takes the lock, so reading a stream's chunks costs no more.
        """
        with _FINISH_LOCK:
            if self.done:
                return False
            self.done = True
            return True

    def _record_unknown(
        self, served: str | None, tier: str | None, fault: str | None = None
    ) -> bool:
        """Record the call with unknown usage; return False if already recorded.

        A poll of a background response is never recorded: it is not billed.
        """
        if not self._claim() or self.polled_id is not None:
            return False
        usage = unknown_usage(
            self.context(tier), served_model=served, request_id=self.request_id
        )
        record_usage(usage, self.trackers, self.sent_at, fault)
        return True

    def _warn_no_usage(self) -> None:
        """Warn once per tracker and operation that a stream carried no usage."""
        operation = self.operation
        fresh = [
            tracker
            for tracker in self.trackers
            if operation not in _warned_trackers.get(tracker, ())
        ]
        if not fresh:
            return
        for tracker in fresh:
            _warned_trackers.setdefault(tracker, set()).add(operation)
        stream_name, method = _INCLUDE_USAGE_OPERATIONS[operation]
        message = (
            f"An OpenAI {stream_name} stream for model {self.model!r} carried no "
            "usage, so it is counted with unknown tokens and cost. Pass "
            f'stream_options={{"include_usage": True}} to {method} '
            "to have OpenAI send the usage in the last chunks."
        )
        logger.warning("%s", message)
        emit_warning(UsageWarning(message))

    def _log_fault(self, error: BaseException) -> None:
        logger.warning(
            "llmfy failed to record an %s %s request for model %s: %r",
            PROVIDER,
            self.operation,
            self.model,
            error,
        )


def _starts_object(content: bytes | None) -> bool:
    """Return whether an HTTP body starts like a JSON object."""
    return content is not None and content.lstrip()[:1] == b"{"


def _start_call(
    trackers: Sequence[UsageTracker], options: Any, stream: bool, client: Any
) -> _Call | None:
    """Return the state for a request that `client` sends, or None.

    Only a request that bills tokens gets a state. With no `trackers`, only a
    retrieve or cancel of a pending background response gets one.
    """
    try:
        method = options.method.lower()
        operation = TRACKED_OPERATIONS.get(options.url) if method == "post" else None
        if operation is None or not trackers:
            return _start_poll(method, options.url)
        body = _request_body(options)
        model = None
        include_usage = False
        background_request = False
        if body is not None:
            requested = body.get("model")
            model = requested if isinstance(requested, str) else None
            stream_options = body.get("stream_options")
            if _is_mapping(stream_options):
                include_usage = bool(stream_options.get("include_usage"))
            background_request = body.get("background") is True
        call = _Call(trackers, operation, model, include_usage)
        call.background = background_request and operation == "responses"
        call.provider, call.region = _endpoint(client)
        return call
    except Exception as error:  # never reach the caller
        logger.warning("llmfy failed to read an %s request: %r", PROVIDER, error)
        return None


def _endpoint(client: Any) -> tuple[str, str | None]:
    """Return the provider that `client` sends its requests to, and its region.

    The openai SDK also calls Amazon Bedrock's OpenAI-compatible endpoints, as
    `BedrockOpenAI` and as `OpenAI(provider=bedrock(...))` (openai 3.63), whose
    requests Bedrock bills at its own prices per model and AWS Region. Those
    clients keep the provider's name and Region in `_provider_runtime`, and a
    plain client names the endpoint in its base URL. Any other client sends
    to OpenAI: its region is that of a regional processing endpoint, or None.
    """
    runtime = getattr(client, "_provider_runtime", None)
    if runtime is not None:
        name = getattr(runtime, "name", None)
        if isinstance(name, str) and name and name != PROVIDER:
            return name, _provider_region(client, runtime, name)
    return _base_url_endpoint(_client_base_url(client))


def _client_base_url(client: Any) -> Any:
    """Return the base URL that `client` sends its requests to.

    The SDK builds each request's URL from the `base_url` property. Its
    getter in openai 3.63 imports a module on each call, about 1.3 us against
    0.03 us for reading the attribute it returns, `_configured_base_url`
    (timeit, Python 3.11). So that attribute is read when the client's class
    keeps the SDK's getter, and `_base_url` when it is missing, as before
    openai 3.63. A class that overrides `base_url`, such as the module-level
    client, which returns `openai.base_url`, is read through the property.
    """
    kind = type(client)
    stored = _STORES_BASE_URL.get(kind)
    if stored is None:
        stored = _keeps_sdk_base_url(kind)
        _STORES_BASE_URL[kind] = stored
    if not stored:
        return getattr(client, "base_url", None)
    url = client.__dict__.get("_configured_base_url")
    return url if url is not None else getattr(client, "_base_url", None)


def _keeps_sdk_base_url(kind: type) -> bool:
    """Return whether the `base_url` getter of `kind` is one the SDK defines."""
    getter = getattr(inspect.getattr_static(kind, "base_url", None), "fget", None)
    return getattr(getter, "__module__", None) in _SDK_BASE_URL_MODULES


# The modules whose `base_url` getters return the stored `_configured_base_url`.
_SDK_BASE_URL_MODULES = frozenset({"openai._client", "openai._base_client"})
# Client class -> whether `_client_base_url` may read its stored URL.
_STORES_BASE_URL: dict[type, bool] = {}


def _provider_region(client: Any, runtime: Any, name: str) -> str | None:
    """Return the region of a client whose provider runtime is not OpenAI's.

    `BedrockOpenAI.aws_region` comes first, because the SDK refreshes the
    runtime from it only when it prepares the request, after llmfy reads it
    (openai 3.63). A runtime without a region, as `bedrock(api_key=...,
    base_url=...)` makes, falls back to the Region its Bedrock host names.
    """
    for region in (
        getattr(client, "aws_region", None),
        getattr(runtime, "region", None),
    ):
        if isinstance(region, str) and region:
            return region
    if name != BEDROCK:
        return None
    provider, region = _base_url_endpoint(_client_base_url(client))
    return region if provider == BEDROCK else None


def _base_url_endpoint(base_url: Any) -> tuple[str, str | None]:
    """Return the provider and region that a base URL names.

    OpenAI serves the projects and requests that keep their data in a region
    from a host named after it, such as eu.api.openai.com, and charges some
    models more there. A Bedrock host, such as
    bedrock-runtime.us-east-1.amazonaws.com, names its AWS Region. Any other
    host, api.openai.com and Azure's included, gives OpenAI and no region.
    The result is cached per base URL, because reading the host took about
    1.3 us a call (timeit, Python 3.11).
    """
    cached = _endpoints.get(id(base_url))
    if cached is not None and cached[0] is base_url:
        return cached[1]
    host = getattr(base_url, "host", None)
    endpoint: tuple[str, str | None] = (PROVIDER, None)
    if isinstance(host, str):
        host = host.lower()
        bedrock = _BEDROCK_HOST.fullmatch(host)
        if bedrock is not None:
            endpoint = (BEDROCK, bedrock.group(1))
        elif host.endswith(_REGIONAL_HOST_SUFFIX):
            label = host[: -len(_REGIONAL_HOST_SUFFIX)]
            endpoint = (PROVIDER, label if label and "." not in label else None)
    if len(_endpoints) >= _ENDPOINTS_SIZE:
        _endpoints.clear()
    _endpoints[id(base_url)] = (base_url, endpoint)
    return endpoint


# The end of the host name of OpenAI's regional processing endpoints.
_REGIONAL_HOST_SUFFIX = ".api.openai.com"
# Amazon Bedrock's OpenAI-compatible endpoints, with the AWS Region, whose
# first part has two to four letters, as in `eusc-de-east-1`.
BEDROCK = "bedrock"
_BEDROCK_HOST = re.compile(
    r"bedrock-(?:runtime|runtime-fips|mantle)\.([a-z]{2,4}(?:-[a-z]+)+-\d+)\..+"
)
# id(base URL) -> (base URL, (provider, region)); the URL is kept so that its
# id stays valid.
_endpoints: dict[int, tuple[Any, tuple[str, str | None]]] = {}
_ENDPOINTS_SIZE = 1024


def _request_body(options: Any) -> Mapping[str, Any] | None:
    """Return the JSON body the SDK sends, with `extra_body` merged in.

    The SDK merges `extra_body` (`options.extra_json`) over the named
    parameters when it builds the request, so `stream_options` or
    `background` given there take effect as if named.
    """
    body = options.json_data
    extra = getattr(options, "extra_json", None)
    if extra is not None and _is_mapping(extra):
        return {**body, **extra} if _is_mapping(body) else extra
    return body if _is_mapping(body) else None


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """Return whether `value` is a Mapping, testing for a dict first.

    This runs before a stream's first chunk, and `isinstance` against the
    `Mapping` ABC cost about 2,000 instructions a call (callgrind, Python
    3.11), where a request body is a dict.
    """
    return type(value) is dict or isinstance(value, Mapping)


def _warn_if_untracked_thread(options: Any) -> None:
    """Warn once when a request that bills tokens goes uncounted in this thread."""
    try:
        if options.method.lower() != "post":
            return
        operation = TRACKED_OPERATIONS.get(options.url)
    except Exception:
        return
    if operation is not None:
        warn_untracked_thread(PROVIDER, operation)


def _start_poll(method: str, url: Any) -> _Call | None:
    """Return the state of a retrieve or cancel of a pending background response."""
    if not (PENDING or STREAMING) or not isinstance(url, str):
        return None
    response_id = background.polled_id(method, url)
    if response_id is None:
        return None
    call = _Call((), "responses", None, False)
    call.background = True
    call.polled_id = response_id
    return call


# Attaching a call to what the SDK returned


def _attach(call: _Call, result: Any) -> None:
    """Record `result`, or arrange for it to be recorded when it is complete."""
    try:
        kinds = _Kinds.get()
        if isinstance(result, kinds.sync_stream):
            _watch_sync_stream(call, result)
        elif isinstance(result, kinds.async_stream):
            _watch_async_stream(call, result)
        elif isinstance(result, kinds.legacy_response):
            result.__dict__[_CALL_ATTRIBUTE] = call
            if result._stream:
                _finish_unparsed_when_collected(result, call)
            else:
                call.record_body(result.http_response)
        elif isinstance(result, kinds.api_response):
            # `with_streaming_response`: recorded when parsed or closed.
            result.__dict__[_CALL_ATTRIBUTE] = call
            watch_stream(call, call.trackers)
        elif hasattr(result, "usage"):
            call.request_id = getattr(result, "_request_id", None)
            call.record(result)
        elif isinstance(result, Mapping):
            call.record(result)
        else:
            # A body of another JSON type, such as a list: the SDK returns it.
            call.record_unreadable(
                f"has a body of type {type(result).__name__}, not a JSON object"
            )
    except Exception as error:  # never reach the caller
        call._log_fault(error)


def _record_parse_failure(call: _Call | None, error: Exception) -> None:
    """Record the request if `error` is the SDK failing to parse a 2xx response.

    Such a request reached the provider and may be billed, so it is counted
    with unknown usage. Other errors (no response, an error status) are not
    billed requests and are not counted.
    """
    if call is None:
        return
    try:
        if isinstance(
            error, _Kinds.get().unparsed_body_errors
        ) or _raised_decoding_json(error):
            # Their messages name a position, a field or a digit count, never
            # the body.
            call.record_unreadable(
                f"could not be parsed: {type(error).__name__}: {error}"
            )
    except Exception as fault:  # the caller gets its own error, unchanged
        call._log_fault(fault)


def _record_when_post_parser_fails(call: _Call | None, options: Any) -> Any:
    """Return `options` with a post-parser that records the response if it raises.

    `chat.completions.parse()` and `responses.parse()` pass the SDK a
    post-parser that turns the response into the caller's type inside
    `request()`, and `embeddings.create()` one that decodes base64
    embeddings. It raises, as `LengthFinishReasonError`, a pydantic
    `ValidationError` or `binascii.Error`, for a response that OpenAI billed,
    and the request is then recorded from the response it was given. A copy
    of `options` is changed, although the SDK builds them for each request.
    """
    if call is None or call.polled_id is not None:
        return options
    try:
        post_parser = options.post_parser
        if not callable(post_parser):
            return options
        changed = copy.copy(options)
        changed.post_parser = functools.partial(_post_parse, call, post_parser)
        return changed
    except Exception as error:  # never reach the caller
        call._log_fault(error)
        return options


def _post_parse(call: _Call, post_parser: Callable[[Any], Any], parsed: Any) -> Any:
    try:
        return post_parser(parsed)
    except Exception:
        # A raw or streamed response is usually recorded already, before its
        # parse() runs the post-parser.
        call.record(parsed)
        raise


def _raised_decoding_json(error: Exception) -> bool:
    """Return whether `error` was raised inside Python's JSON decoder.

    Besides JSONDecodeError, the decoder raises a plain ValueError for an
    integer of more digits than `sys.get_int_max_str_digits()` allows (4,300
    by default). Inside `request()` such an error comes from a 2xx body,
    because the SDK catches the errors of decoding an error body.
    """
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return bool(traceback.tb_frame.f_globals.get("__name__") == "json.decoder")


def _attach_parsed(call: _Call, parsed: Any, http_response: Any) -> None:
    """Record what `parse()` returned from a raw or streamed response wrapper."""
    kinds = _Kinds.get()
    if isinstance(parsed, (kinds.sync_stream, kinds.async_stream)):
        call.attached = True
        if isinstance(parsed, kinds.sync_stream):
            _watch_sync_stream(call, parsed)
        else:
            _watch_async_stream(call, parsed)
    elif hasattr(parsed, "usage"):
        call.request_id = http_response.headers.get("x-request-id")
        call.record(parsed)
    else:
        call.record_body(http_response)


def _watch_sync_stream(call: _Call, stream: Any) -> None:
    call.response_headers = stream.response.headers
    stream.__dict__[_CALL_ATTRIBUTE] = call
    watch = _watch_response_events if call.operation == "responses" else _watch_chunks
    stream._iterator = watch(stream._iterator, call)
    _finish_when_collected(stream, call)
    watch_stream(call, call.trackers)


def _watch_async_stream(call: _Call, stream: Any) -> None:
    call.response_headers = stream.response.headers
    stream.__dict__[_CALL_ATTRIBUTE] = call
    if call.operation == "responses":
        stream._iterator = _watch_response_events_async(stream._iterator, call)
    else:
        stream._iterator = _watch_chunks_async(stream._iterator, call)
    _finish_when_collected(stream, call)
    watch_stream(call, call.trackers)


def _finish_when_collected(stream: Any, call: _Call) -> None:
    """Record a stream that is dropped unread and unclosed when it is collected.

    A weak reference with a callback costs about a third of `weakref.finalize`,
    and this runs before the caller gets the stream's first chunk. It is
    kept by its id, so that the stream need not be hashable.
    """
    start_worker()
    reference = _StreamReference(stream, _stream_collected)
    reference.call = call
    _unfinished_streams[id(reference)] = reference


def _finish_unparsed_when_collected(response: Any, call: _Call) -> None:
    """Record a raw stream whose parse() is never called, when it is collected.

    `with_raw_response` and stream=True return a `LegacyAPIResponse`, which has
    no close() to hook. Its body read by hand is not seen, so the request is
    counted with unknown usage.
    """
    start_worker()
    reference = _StreamReference(response, _unparsed_stream_collected)
    reference.call = call
    _unfinished_streams[id(reference)] = reference
    watch_stream(call, call.trackers)


def _unparsed_stream_collected(reference: _StreamReference) -> None:
    _unfinished_streams.pop(id(reference), None)
    call = reference.call
    # A parsed stream is recorded by its own watch, also after this response
    # object is gone.
    if not call.attached and not sys.is_finalizing():
        _finish_collected(call)


class _StreamReference(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a stream, with the call to finish when it is collected."""

    __slots__ = ("call",)
    call: _Call


def _stream_collected(reference: _StreamReference) -> None:
    _unfinished_streams.pop(id(reference), None)
    reference.call.freed = True
    # Streams still alive when the interpreter exits are left unrecorded, as
    # `weakref.finalize(..., atexit=False)` left them: modules are torn down.
    if not sys.is_finalizing():
        _finish_collected(reference.call)


def _finish_collected(call: _Call) -> None:
    """Record a garbage-collected stream from llmfy's recording thread.

    An SDK stream refers to itself through its iterator (openai 3.63), so only
    the cyclic collector frees it, not the caller dropping it. The collector
    runs this inside whatever code allocated; see `llmfy_core.deferred`.
    """
    try:
        run_later(call.finish_stream, "llmfy-openai-stream")
    except RuntimeError:  # the interpreter is shutting down
        logger.debug("stream of model %s dropped at shutdown", call.model)


# The weak references of the streams not yet collected, by their ids.
_unfinished_streams: dict[int, _StreamReference] = {}


# Stream watchers: each chunk passes through at once; only a reference to the
# chunk that carries the usage is kept.


def _watch_chunks(chunks: Iterator[Any], call: _Call) -> Iterator[Any]:
    try:
        for chunk in chunks:
            call.latest = chunk
            if getattr(chunk, "usage", None) is not None:
                call.final = chunk
            yield chunk
        call.finish_stream(ended=True)
    finally:
        _close_quietly(chunks)
        _finish_unless_freed(call)


def _watch_response_events(events: Iterator[Any], call: _Call) -> Iterator[Any]:
    try:
        for event in events:
            kind = getattr(event, "type", None)
            try:
                carries_response = kind in _RESPONSE_EVENTS
            except TypeError:
                # The SDK yields an event whose `type` is a list or an object
                # unchanged, and such a value cannot be looked up in a set.
                # The `try` adds about 5 ns per event and a `type(kind) is str`
                # test about 12 ns (timeit, Python 3.11).
                carries_response = False
            if carries_response:
                call.latest = event.response
                if call.background and call.stream_id is None and not call.polled_id:
                    background.stream_started(call, event.response)
                if kind in _FINAL_EVENTS:
                    call.final = event.response
                    if call.polled_id is not None:
                        # Recorded before the caller sees the event, in case
                        # it stops reading there.
                        call.finish_stream()
            yield event
        call.finish_stream(ended=True)
    finally:
        _close_quietly(events)
        _finish_unless_freed(call)


async def _watch_chunks_async(
    chunks: AsyncIterator[Any], call: _Call
) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            call.latest = chunk
            if getattr(chunk, "usage", None) is not None:
                call.final = chunk
            yield chunk
        call.finish_stream(ended=True)
    finally:
        # The SDK's generator is left to asyncio, which closes it when it is
        # collected, as it does without llmfy. Closing it here as well raced
        # with that close when a stream was dropped, and asyncio logged the
        # "already running" error of the losing task.
        _finish_unless_freed(call)


async def _watch_response_events_async(
    events: AsyncIterator[Any], call: _Call
) -> AsyncIterator[Any]:
    try:
        async for event in events:
            kind = getattr(event, "type", None)
            try:
                carries_response = kind in _RESPONSE_EVENTS
            except TypeError:  # a `type` that is not hashable, as in the sync watcher
                carries_response = False
            if carries_response:
                call.latest = event.response
                if call.background and call.stream_id is None and not call.polled_id:
                    background.stream_started(call, event.response)
                if kind in _FINAL_EVENTS:
                    call.final = event.response
                    if call.polled_id is not None:
                        call.finish_stream()
            yield event
        call.finish_stream(ended=True)
    finally:
        # The SDK's generator is left to asyncio, as in `_watch_chunks_async`.
        _finish_unless_freed(call)


def _finish_unless_freed(call: _Call) -> None:
    """Record a stream whose watcher ends, unless the stream was freed.

    The SDK never closes its stream's iterator, so a sync watcher ends early
    only when the stream is freed, and `_stream_collected`, which the
    collector runs first, has queued its recording then. asyncio closes the
    watcher of a freed async stream in a task that runs in the context of the
    code that collected it. It also closes the watchers of streams still
    referenced when `asyncio.run()` closes its loop, which is ordinary code,
    so those are recorded at once, before `asyncio.run()` returns.
    """
    if not call.freed:
        call.finish_stream()


def _close_quietly(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _finish_call_of(owner: Any) -> None:
    call = owner.__dict__.get(_CALL_ATTRIBUTE) if owner is not None else None
    if call is not None:
        call.finish_stream()


# Patched SDK methods


def _patched_request(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def request(
        self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any
    ) -> Any:
        trackers = active_trackers()
        if not trackers:
            if UNTRACKED.watch:
                _warn_if_untracked_thread(options)
            if not PENDING and not STREAMING:
                return original(self, cast_to, options, *args, **kwargs)
        call = _start_call(trackers, options, bool(kwargs.get("stream")), self)
        options = _record_when_post_parser_fails(call, options)
        try:
            result = original(self, cast_to, options, *args, **kwargs)
        except Exception as error:
            _record_parse_failure(call, error)
            raise
        if call is not None:
            _attach(call, result)
        return result

    return request


def _patched_async_request(original: Callable[..., Any]) -> Callable[..., Any]:
    # A plain function that returns the SDK's coroutine when nothing is
    # tracked, so that the untracked path adds no coroutine frame.
    @functools.wraps(original)
    def request(
        self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any
    ) -> Any:
        trackers = active_trackers()
        if not trackers:
            if UNTRACKED.watch:
                _warn_if_untracked_thread(options)
            if not PENDING and not STREAMING:
                return original(self, cast_to, options, *args, **kwargs)
        call = _start_call(trackers, options, bool(kwargs.get("stream")), self)
        options = _record_when_post_parser_fails(call, options)
        return _tracked_async_request(
            original, call, self, cast_to, options, args, kwargs
        )

    return request


async def _tracked_async_request(
    original: Callable[..., Any],
    call: _Call | None,
    client: Any,
    cast_to: Any,
    options: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    try:
        result = await original(client, cast_to, options, *args, **kwargs)
    except Exception as error:
        _record_parse_failure(call, error)
        raise
    if call is not None:
        _attach(call, result)
    return result


def _patched_parse(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _parse(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        call = self.__dict__.get(_CALL_ATTRIBUTE)
        if call is not None and not call.done and not call.attached:
            try:
                _attach_parsed(call, result, self.http_response)
            except Exception as error:  # never reach the caller
                call._log_fault(error)
        return result

    return _parse


def _patched_response_close(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def close(self: Any) -> Any:
        try:
            return original(self)
        finally:
            _finish_response_wrapper(self)

    return close


def _patched_async_response_close(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def close(self: Any) -> Any:
        try:
            return await original(self)
        finally:
            _finish_response_wrapper(self)

    return close


def _finish_response_wrapper(wrapper: Any) -> None:
    call = wrapper.__dict__.get(_CALL_ATTRIBUTE)
    if call is None or call.done:
        return
    if call.attached:
        call.finish_stream()
    else:
        call.record_body(wrapper.http_response)


def _patched_stream_close(
    original: Callable[..., Any], attribute: str | None
) -> Callable[..., Any]:
    """Patch a sync `close()` to finish the call of the stream (or of `attribute`)."""

    @functools.wraps(original)
    def close(self: Any) -> Any:
        try:
            return original(self)
        finally:
            _finish_call_of(self if attribute is None else self.__dict__.get(attribute))

    return close


def _patched_async_stream_close(
    original: Callable[..., Any], attribute: str | None
) -> Callable[..., Any]:
    @functools.wraps(original)
    async def close(self: Any) -> Any:
        try:
            return await original(self)
        finally:
            _finish_call_of(self if attribute is None else self.__dict__.get(attribute))

    return close


# Patching


class _Kinds:
    """The SDK classes that `_attach` distinguishes, looked up once after patching."""

    _instance: _Kinds | None = None

    def __init__(self) -> None:
        import openai
        from openai import _legacy_response, _response, _streaming

        self.sync_stream: type[Any] = _streaming.Stream
        self.async_stream: type[Any] = _streaming.AsyncStream
        self.legacy_response: type[Any] = _legacy_response.LegacyAPIResponse
        self.api_response: tuple[type[Any], ...] = (
            _response.APIResponse,
            _response.AsyncAPIResponse,
        )
        # What the SDK raises for a 2xx response whose body it cannot parse:
        # a JSONDecodeError inside `request()` comes from a 2xx body, because
        # the SDK reads error bodies without raising it.
        self.unparsed_body_errors: tuple[type[Exception], ...] = (
            json.JSONDecodeError,
            openai.APIResponseValidationError,
        )

    @classmethod
    def get(cls) -> _Kinds:
        if cls._instance is None:
            cls._instance = _Kinds()
        return cls._instance


def _patch_safely() -> None:
    try:
        _patch()
    except Exception as error:  # a failed patch must not break imports
        logger.warning("llmfy could not instrument the openai SDK: %r", error)


def _patch() -> None:
    global _patched
    with _patch_lock:
        if _patched:
            return
        from openai import _base_client, _legacy_response, _response, _streaming

        _replace(_base_client.SyncAPIClient, "request", _patched_request)
        _replace(_base_client.AsyncAPIClient, "request", _patched_async_request)
        _replace(_response.BaseAPIResponse, "_parse", _patched_parse)
        _replace(_legacy_response.LegacyAPIResponse, "_parse", _patched_parse)
        _replace(_response.APIResponse, "close", _patched_response_close)
        _replace(_response.AsyncAPIResponse, "close", _patched_async_response_close)
        _replace(_streaming.Stream, "close", lambda f: _patched_stream_close(f, None))
        _replace(
            _streaming.AsyncStream,
            "close",
            lambda f: _patched_async_stream_close(f, None),
        )
        _patch_stream_helpers()
        _Kinds.get()
        _patched = True
    logger.debug("instrumented the openai SDK")


def _patch_stream_helpers() -> None:
    """Patch the `.stream()` helpers, whose `close()` bypasses `Stream.close`."""
    helpers = (
        ("openai.lib.streaming.chat._completions", "ChatCompletionStream", False),
        ("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream", True),
        ("openai.lib.streaming.responses._responses", "ResponseStream", False),
        ("openai.lib.streaming.responses._responses", "AsyncResponseStream", True),
    )
    for module_name, class_name, is_async in helpers:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            logger.debug(
                "openai has no %s; its stream helper is not patched", module_name
            )
            continue
        helper = getattr(module, class_name, None)
        if helper is None:
            continue
        if is_async:
            _replace(
                helper, "close", lambda f: _patched_async_stream_close(f, "_raw_stream")
            )
        else:
            _replace(helper, "close", lambda f: _patched_stream_close(f, "_raw_stream"))


def _replace(
    owner: type, name: str, patch: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    original = owner.__dict__.get(name)
    if original is None or getattr(original, _PATCHED_MARK, False):
        return
    patched = patch(original)
    setattr(patched, _PATCHED_MARK, True)
    setattr(owner, name, patched)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patch `openai` right after its package module has executed."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "openai" or _patched:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _ImportHook):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(
                fullname, path, target
            )
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    """Run the real loader, put it back on the module, then patch the SDK."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        _patch_safely()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
