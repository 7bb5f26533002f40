"""The process-wide mode: count every request without a `with` block, and export it.

`enable` starts llmfy's process-wide tracker, which keeps totals per model only
so that memory stays flat, and points the exporter at a meter provider. The
exporter itself always runs: requests counted by `with` blocks are exported
whether or not this mode is on, and each request is exported once however many
trackers counted it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics

import llmfy_core
from llmfy_core import UsageTracker
from llmfy_core.locks import new_lock
from llmfy_otel.exporter import EXPORTER

logger = logging.getLogger("llmfy.otel")

ENABLE_VARIABLE = "LLMFY_OTEL_ENABLE"
_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})

_lock = new_lock()
_tracker: UsageTracker | None = None
_environment_checked = False


def enable(
    meter_provider: metrics.MeterProvider | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    **provider_pricing: Mapping[str, Any] | None,
) -> UsageTracker:
    """Start the process-wide tracker and export every request it counts.

    A `meter_provider` given here is used from now on, as with
    `use_meter_provider`. Without one, metrics keep going to the meter provider
    in use, which is the global one unless `use_meter_provider` set another.
    `tags` and the `<provider>_pricing=` tables are those of
    `llmfy_usage_tracker` and are validated the same way. Return the
    process-wide tracker, whose report (`str(tracker)`, `tracker.to_dict()`)
    contains the exact totals.

    Calling it again while enabled returns the same tracker and switches to
    `meter_provider` if one is given. Passing tags or prices then raises
    RuntimeError, because the running tracker cannot change them: call
    `disable()` first.
    """
    global _tracker
    with _lock:
        if _tracker is not None:
            if tags is not None or any(provider_pricing.values()):
                raise RuntimeError(
                    "llmfy_otel is already enabled, so its tags and prices are "
                    "fixed. Call llmfy_otel.disable() first to start over with "
                    "new ones."
                )
            if meter_provider is not None:
                EXPORTER.use_meter_provider(meter_provider)
            return _tracker
        tracker = llmfy_core.start_process_tracker(tags=tags, **provider_pricing)
        if meter_provider is not None:
            EXPORTER.use_meter_provider(meter_provider)
        _tracker = tracker
        destination = EXPORTER.meter_provider
    logger.info(
        "llmfy process-wide tracking started, exporting to %s",
        "the global meter provider" if destination is None else destination,
    )
    return tracker


def disable() -> UsageTracker | None:
    """Stop the process-wide tracker that `enable` started.

    Requests counted by `with` blocks are still exported, to the same meter
    provider. Return the stopped tracker, whose report stays readable,
    or None when the mode was off.
    """
    global _tracker
    with _lock:
        tracker = _tracker
        _tracker = None
        if tracker is None:
            return None
        llmfy_core.stop_process_tracker(tracker)
    logger.info("llmfy process-wide tracking stopped")
    return tracker


def process_tracker() -> UsageTracker | None:
    """Return the tracker that `enable` started, or None when the mode is off."""
    return _tracker


def enable_from_environment() -> UsageTracker | None:
    """Enable the process-wide mode when `LLMFY_OTEL_ENABLE` is set to an on value.

    The variable is read once per process, the first time this runs. Values 1,
    true, yes and on enable the mode; 0, false, no, off and unset leave it
    off. Return the tracker if this call enabled the mode.
    """
    global _environment_checked
    if _environment_checked:
        return None
    _environment_checked = True
    value = os.environ.get(ENABLE_VARIABLE, "").strip().lower()
    if value in _OFF:
        return None
    if value not in _ON:
        logger.warning(
            "Invalid %s=%r, so llmfy's process-wide tracking stays off. Set it to "
            "1, true, yes or on to enable it, or to 0, false, no or off.",
            ENABLE_VARIABLE,
            os.environ[ENABLE_VARIABLE],
        )
        return None
    if _tracker is not None:
        return None
    return enable()


def reset_environment_check() -> None:
    """Make the next `enable_from_environment` read the variable again (for tests)."""
    global _environment_checked
    _environment_checked = False
    from llmfy_otel import plugin

    plugin._environment_set = None
