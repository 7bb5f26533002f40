"""The background Responses that llmfy saw created and has not counted yet.

`client.responses.create(..., background=True)` returns a `Response` that is
still `queued` or `in_progress`, with no usage. Its request waits here, by
response id, and is recorded once, with the trackers and send time of the
create call, when one of these comes first:

- the SDK returns the response in a final status, from `responses.retrieve`
  (streamed or not) or `responses.cancel`, in any thread or tracker context,
  also while the background stream that created it is still open (`STREAMING`);
- none of its trackers is active any more, which records it with unknown
  usage (a tracker calls `settle()` on its pending requests when it ends its
  last active block);
- `MAX_PENDING` newer ones are pending, which records it with unknown usage.

Every path removes the request from `PENDING` or `STREAMING` under `_lock`
before recording it, so only one of them records it, also when several
threads race.

NOTE: a tracker that decorates a generator function is active only while a
step runs. A background response created in one step and polled in a later
one is therefore counted with unknown usage when the first step yields,
unless another of its trackers is still active.
"""

from __future__ import annotations

import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.recording import watch_pending

if TYPE_CHECKING:
    from llmfy_openai.instrument import _Call

logger = get_logger("llmfy.openai")

# The statuses of a background response that is still running, and those of
# a response that ended (openai 3.63, `Response.status`).
RUNNING_STATUSES = frozenset({"queued", "in_progress"})
FINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})

# How many background responses may wait for their final status at once. A
# pending call takes about 0.5 KB with its ids and references (an estimate
# from tracemalloc over 5,000 of them, Python 3.11), so a process that never
# polls keeps about 5 MB for them.
MAX_PENDING = 10_000

# The pending calls by response id, oldest first. Changed only under `_lock`.
# Checks of whether it is empty or contains an id read it without the lock,
# and the code that removes a call checks again under the lock.
PENDING: OrderedDict[str, _Call] = OrderedDict()
# Reentrant because a background stream that garbage collection finalizes
# adds its request here, and a collection can start inside `add`.
_lock = new_lock()
# The calls of background streams still being read, by response id, so that
# a poll that returns the response in a final status first records the
# request, as for PENDING. A stream leaves it when it finishes.
STREAMING: dict[str, _Call] = {}
# How many pending requests were recorded with unknown usage, for logging the
# 1st, 2nd, 4th, 8th, ... only.
_unfetched = 0

_RETRIEVE_PREFIX = "/responses/"
_CANCEL_SUFFIX = "/cancel"
_BETA_QUERY = "?beta=true"


def running_id(response: Any) -> str | None:
    """Return the id of a response (SDK object or JSON dict) that is still running."""
    if _status(response) not in RUNNING_STATUSES:
        return None
    response_id = _field(response, "id")
    return response_id if isinstance(response_id, str) and response_id else None


def add(pending: _Call, stream_call: _Call | None = None) -> bool:
    """Keep `pending` until its response ends, and show it pending in its trackers.

    `stream_call` is the background stream that `pending` continues after the
    stream ended before its final event. `pending` replaces it in `STREAMING`
    under one hold of the lock, so that a poll finds the request in one of
    them. Returns False and adds nothing when a poll removed `stream_call`
    first, because that poll records the request.

    A call already pending under the same id, and the oldest one when more
    than `MAX_PENDING` are pending, are recorded with unknown usage.
    """
    response_id = pending.pending_id
    assert response_id is not None
    with _lock:
        if stream_call is not None and not _remove_stream(stream_call):
            return False
        replaced = PENDING.pop(response_id, None)
        PENDING[response_id] = pending
        evicted = PENDING.popitem(last=False)[1] if len(PENDING) > MAX_PENDING else None
    if replaced is not None:
        _record_unfetched(
            replaced,
            f"another background response with the id {response_id} was created "
            "before this one was fetched in a final status",
        )
    if evicted is not None:
        _record_unfetched(
            evicted,
            f"more than {MAX_PENDING} background responses were pending at once, "
            f"so the oldest, {evicted.pending_id}, was counted before it ended",
        )
    watch_pending(pending, pending.trackers)
    return True


def polled_id(method: str, url: str) -> str | None:
    """Return the pending response id that a retrieve or cancel request names.

    `method` is lowercase and `url` is the SDK's request path, such as
    `/responses/resp_123` or `/responses/resp_123/cancel?beta=true`. Returns
    None for other requests and for ids that llmfy did not see created.
    """
    if not PENDING and not STREAMING:
        return None
    path = url.removesuffix(_BETA_QUERY)
    if not path.startswith(_RETRIEVE_PREFIX):
        return None
    response_id = path[len(_RETRIEVE_PREFIX) :]
    if method == "post":
        if not response_id.endswith(_CANCEL_SUFFIX):
            return None
        response_id = response_id.removesuffix(_CANCEL_SUFFIX)
    elif method != "get":
        return None
    if "/" in response_id:
        return None
    # The SDK percent-encodes the id in the path, and PENDING keys it as the
    # create call's response returned it.
    response_id = urllib.parse.unquote(response_id)
    return response_id if response_id in PENDING or response_id in STREAMING else None


def resolve(response_id: str, response: Any) -> None:
    """Record the pending request `response_id` if `response` is in a final status."""
    if _status(response) not in FINAL_STATUSES:
        return
    with _lock:
        pending = PENDING.pop(response_id, None)
        if pending is None:
            pending = STREAMING.pop(response_id, None)
    if pending is not None:
        pending.record(response)


def stream_started(stream_call: _Call, response: Any) -> None:
    """Let polls find a background stream's request by the id of `response`."""
    response_id = _field(response, "id")
    if not isinstance(response_id, str) or not response_id:
        return
    stream_call.stream_id = response_id
    with _lock:
        STREAMING.setdefault(response_id, stream_call)


def stream_ended(stream_call: _Call) -> bool:
    """Remove a background stream that finished from `STREAMING`.

    Returns False when a poll removed it first, because that poll records
    the request. The caller records it otherwise.
    """
    with _lock:
        return _remove_stream(stream_call)


def _remove_stream(stream_call: _Call) -> bool:
    response_id = stream_call.stream_id
    if response_id is None or STREAMING.get(response_id) is not stream_call:
        return False
    del STREAMING[response_id]
    return True


def settle(pending: _Call) -> None:
    """Record `pending` with unknown usage unless one of its trackers is active."""
    if any(tracker.active for tracker in pending.trackers):
        return
    response_id = pending.pending_id
    with _lock:
        if response_id is None or PENDING.get(response_id) is not pending:
            return
        del PENDING[response_id]
    _record_unfetched(
        pending,
        f"the background response {response_id} was not fetched in a final status "
        "before its trackers ended",
    )


def _record_unfetched(pending: _Call, reason: str) -> None:
    """Record a pending request that left `PENDING` unfetched, with unknown usage."""
    global _unfetched
    if not pending.record_unknown(reason):
        return
    with _lock:
        _unfetched += 1
        count = _unfetched
    if count & (count - 1) == 0:
        logger.warning(
            "The openai responses request for model %s is counted with unknown "
            "usage: %s. %d background requests were counted with unknown usage "
            "so far.",
            pending.model,
            reason,
            count,
        )


def _status(response: Any) -> str | None:
    """Return the `status` of a response, or None when it is not a string.

    The SDK passes a malformed status through unchanged, and looking up a list
    or an object in a set of statuses raises TypeError.
    """
    status = _field(response, "status")
    return status if isinstance(status, str) else None


def _field(response: Any, name: str) -> Any:
    if isinstance(response, Mapping):
        return response.get(name)
    return getattr(response, name, None)
