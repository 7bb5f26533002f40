"""Record each Acme request into the trackers that were active when it was sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from llmfy_core import CallContext
from llmfy_core.recording import active_trackers, record_response

Send = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def complete(send: Send, request: Mapping[str, Any]) -> Mapping[str, Any]:
    """Send `request` with `send` and return its response, recording its usage.

    With no tracker active this only calls `send`. Recording never raises.
    """
    trackers = active_trackers()
    if not trackers:
        return send(request)
    sent_at = dt.datetime.now(dt.UTC)
    response = send(request)
    context = CallContext("acme", operation="complete", model=request.get("model"))
    record_response(response, context, trackers, sent_at)
    return response
