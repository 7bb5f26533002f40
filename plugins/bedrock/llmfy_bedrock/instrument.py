"""Instrumentation of boto3's `bedrock-runtime` clients.

The patch point is `botocore.client.BaseClient._make_api_call`, which every
client method of every botocore client calls. Patching the class covers every
client: created before or after the patch, from the default boto3 session or
any other. Handlers on a session's event emitter would miss clients that the
session created earlier, and an `after-call` handler does not see the request's
`modelId`.

botocore is never imported here: when the application has not imported
`botocore.client` yet, an import hook patches it right after its import.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import io
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, ModuleType
from typing import Any

from llmfy_bedrock.extract import PROVIDER, counts_from_headers, is_image_response
from llmfy_bedrock.resolve import billing_region
from llmfy_bedrock.streams import StreamWatch
from llmfy_core import CallContext
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.recording import (
    record_response,
    record_usage,
    unknown_usage,
    watch_stream,
)
from llmfy_core.tracker import (
    UNTRACKED,
    UsageTracker,
    active_trackers,
    warn_untracked_thread,
)

# A logger whose calls never raise, even when a handler of the application does.
logger = get_logger("llmfy.bedrock")

SERVICE = "bedrock-runtime"
OPERATIONS = frozenset(
    {"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"}
)
_CLIENT_MODULE = "botocore.client"
_PARSERS_MODULE = "botocore.parsers"
_MARK = "__llmfy_bedrock_original__"

_lock = new_lock()
_hook: ClientImportHook | None = None

ApiCall = Callable[[Any, str, Mapping[str, Any]], Any]


def install() -> None:
    """Patch botocore now if the application imported it, else right after it does."""
    global _hook
    with _lock:
        module = sys.modules.get(_CLIENT_MODULE)
        if module is not None:
            patch_client_module(module)
        elif _hook is None:
            _hook = ClientImportHook()
            sys.meta_path.insert(0, _hook)


def uninstall() -> None:
    """Undo `install`: restore botocore's method and drop the import hook."""
    global _hook
    with _lock:
        if _hook is not None and _hook in sys.meta_path:
            sys.meta_path.remove(_hook)
        _hook = None
        module = sys.modules.get(_CLIENT_MODULE)
        if module is None:
            return
        base = module.BaseClient
        original = getattr(base.__dict__.get("_make_api_call"), _MARK, None)
        if original is not None:
            base._make_api_call = original


def is_installed() -> bool:
    """Return whether botocore's client class is patched now."""
    module = sys.modules.get(_CLIENT_MODULE)
    if module is None:
        return False
    return hasattr(module.BaseClient.__dict__.get("_make_api_call"), _MARK)


def patch_client_module(module: ModuleType) -> None:
    """Wrap `BaseClient._make_api_call` of an imported `botocore.client`, once."""
    base = module.BaseClient
    current = base.__dict__["_make_api_call"]
    if hasattr(current, _MARK):
        return
    base._make_api_call = _wrap(current)
    logger.debug("instrumented botocore %s", getattr(module, "__name__", "client"))


def _wrap(original: ApiCall) -> ApiCall:
    @functools.wraps(original)
    def _make_api_call(
        self: Any, operation_name: str, api_params: Mapping[str, Any]
    ) -> Any:
        if operation_name in OPERATIONS:
            trackers = active_trackers()
            if trackers and self.meta.service_model.service_name == SERVICE:
                return _tracked_call(
                    original, self, operation_name, api_params, trackers
                )
            if UNTRACKED.watch and not trackers:
                _warn_if_untracked_thread(self, operation_name)
        return original(self, operation_name, api_params)

    setattr(_make_api_call, _MARK, original)
    return _make_api_call


def _warn_if_untracked_thread(client: Any, operation_name: str) -> None:
    """Warn once when a Bedrock Runtime request goes uncounted in this thread."""
    try:
        if client.meta.service_model.service_name != SERVICE:
            return
    except Exception:
        return
    warn_untracked_thread(PROVIDER, operation_name)


def _tracked_call(
    original: ApiCall,
    client: Any,
    operation: str,
    api_params: Mapping[str, Any],
    trackers: Sequence[UsageTracker],
) -> Any:
    # In nanoseconds: right after an SDK call, `time.time_ns()` took about
    # 0.6 us on the benchmark machine and `datetime.now(UTC)` about 5 us.
    sent_at = time.time_ns()
    try:
        response = original(client, operation, api_params)
    except Exception as error:
        if _raised_while_parsing(error):
            _record_unparsed(error, client, operation, api_params, trackers, sent_at)
        raise
    context = None
    watch = None
    try:
        model = api_params.get("modelId")
        client_region = client.meta.region_name
        metadata = response.get("ResponseMetadata") or {}
        headers = metadata.get("HTTPHeaders") or {}
        if operation in _STREAM_KEYS:
            # The watch finds the billing Region and builds the stream's
            # `CallContext` when it records.
            watch = StreamWatch(
                operation, model, client_region, headers, trackers, sent_at
            )
            if watch.attach(response.get(_STREAM_KEYS[operation])):
                watch_stream(watch, trackers)
            else:
                watch.record_unwatched()
        else:
            region = billing_region(model, client_region)
            # A read-only view: CallContext keeps it as is instead of copying it.
            view = MappingProxyType(headers)
            context = CallContext(PROVIDER, operation, model, region, headers=view)
            _observe(response, context, trackers, sent_at)
    except Exception as error:  # llmfy never breaks the caller's request
        if context is None and watch is not None:
            # Counted below, in the stream's billing region, not the client's.
            # The watch, which may be half attached, must not count it again.
            context = watch.context_without_headers()
            watch.mark_recorded()
        _report_fault(error, context, client, operation, api_params, trackers, sent_at)
    return response


def _observe(
    response: dict[str, Any],
    context: CallContext,
    trackers: Sequence[UsageTracker],
    sent_at: int,
) -> None:
    if context.operation == "Converse":
        record_response(response, context, trackers, sent_at)
    else:
        _observe_invoke(response, context, trackers, sent_at)


# The key of each streaming operation's EventStream in its response.
_STREAM_KEYS = {"ConverseStream": "stream", "InvokeModelWithResponseStream": "body"}


def _observe_invoke(
    response: dict[str, Any],
    context: CallContext,
    trackers: Sequence[UsageTracker],
    sent_at: int,
) -> None:
    # The headers are what Bedrock bills. The body is read only when they are
    # missing or invalid, or to split cache writes by time-to-live.
    headers = context.headers or {}
    counts = counts_from_headers(headers)
    if counts is not None and not counts.cache_write:
        record_response(response, context, trackers, sent_at)
        return
    body = read_and_restore_body(response)
    if counts is None and body is not None and is_image_response(body, headers):
        # AWS bills image generation per image, which llmfy does not price, and
        # the response has no token counts. Like a DALL-E request on OpenAI, it
        # is not counted.
        logger.debug("image response of bedrock model %s not counted", context.model)
        return
    record_response(response if body is None else body, context, trackers, sent_at)


# The size in bytes of each read of an InvokeModel body.
_READ_SIZE = 64 * 1024


def read_and_restore_body(response: dict[str, Any]) -> bytes | None:
    """Read an InvokeModel body and put an equivalent unread body in its place.

    Returns the bytes, or None when there is no readable body. A read that
    fails is replayed to the caller: the new body returns the bytes read
    before the failure, then raises the same error.
    """
    from llmfy_bedrock.bodies import ReadBody

    body = response.get("body")
    if body is None or not hasattr(body, "read"):
        return None
    pieces: list[bytes] = []
    try:
        # Reading in pieces keeps the bytes received before a cut, and gets the
        # error that a caller reading in pieces gets.
        while piece := body.read(_READ_SIZE):
            pieces.append(piece)
    except Exception as error:  # the caller sees this error on read
        response["body"] = ReadBody(FailedRead(b"".join(pieces), error), None)
        return None
    data = b"".join(pieces)
    response["body"] = ReadBody(io.BytesIO(data), len(data))
    return data


class FailedRead(io.RawIOBase):
    """A raw stream of the bytes read before the real body failed, then its error.

    NOTE: a caller that reads the whole body at once gets the error of a read
    in pieces: for a connection closed early, botocore's IncompleteReadError
    where it raises ResponseStreamingError without llmfy.
    """

    def __init__(self, data: bytes, error: Exception) -> None:
        super().__init__()
        self._data = data
        self._position = 0
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # botocore's StreamingBody.read() passes None, which RawIOBase rejects.
        if size is None or size < 0:
            return self.readall()
        return super().read(size) or b""

    def readinto(self, buffer: Any) -> int:
        remaining = len(self._data) - self._position
        if remaining <= 0:
            raise self._error
        count = min(len(buffer), remaining)
        buffer[:count] = self._data[self._position : self._position + count]
        self._position += count
        return count


def _report_fault(
    error: Exception,
    context: CallContext | None,
    client: Any,
    operation: str,
    api_params: Mapping[str, Any],
    trackers: Sequence[UsageTracker],
    sent_at: int,
) -> None:
    try:
        if context is None:
            model = api_params.get("modelId")
            region = getattr(client.meta, "region_name", None)
            context = CallContext(PROVIDER, operation, model, region)
        logger.warning(
            "llmfy failed to read the %s response of provider bedrock, model %s, "
            "region %s: %r; counted with unknown usage",
            operation,
            context.model,
            context.region,
            error,
        )
        record_usage(unknown_usage(context), trackers, sent_at, f"bedrock: {error!r}")
    except Exception:
        logger.exception("recording the fault of a bedrock %s call failed", operation)


def _raised_while_parsing(error: Exception) -> bool:
    """Return whether botocore raised `error` while parsing a response.

    Such a response arrived with a success status (botocore raises
    `ClientError` for the others), so the request reached Bedrock.
    """
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__") == _PARSERS_MODULE:
            return True
        traceback = traceback.tb_next
    return False


def _record_unparsed(
    error: Exception,
    client: Any,
    operation: str,
    api_params: Mapping[str, Any],
    trackers: Sequence[UsageTracker],
    sent_at: int,
) -> None:
    """Count a request whose response botocore failed to parse. Never raises."""
    try:
        model = api_params.get("modelId")
        region = billing_region(model, client.meta.region_name)
        context = CallContext(PROVIDER, operation, model, region)
        # Only the error's type is shown: its message can quote the response.
        problem = f"botocore could not parse the response ({type(error).__name__})"
        logger.warning(
            "The bedrock %s response for model %s in region %s: %s; the request "
            "is counted with unknown usage.",
            operation,
            model,
            region,
            problem,
        )
        record_usage(unknown_usage(context), trackers, sent_at, problem)
    except Exception:
        logger.exception("recording an unparsed bedrock %s response failed", operation)


class ClientImportHook(importlib.abc.MetaPathFinder):
    """Patches `botocore.client` right after the application imports it."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _CLIENT_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = PatchingLoader(spec.loader)
        return spec


class PatchingLoader(importlib.abc.Loader):
    """Runs the real loader of `botocore.client`, then patches the module."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        global _hook
        self._loader.exec_module(module)
        with _lock:
            if _hook is not None and _hook in sys.meta_path:
                sys.meta_path.remove(_hook)
            _hook = None
            patch_client_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
