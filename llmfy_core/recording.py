"""The recording path that provider plugins call from their instrumentation.

Nothing here raises into the application: a fault in a plugin or in llmfy is
logged on the `llmfy.tracker` logger with provider and model, counted on the
record, and the request is still recorded with what could be read.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from llmfy_core.errors import PluginWarning, emit_warning
from llmfy_core.ledger import build_record
from llmfy_core.logs import get_logger
from llmfy_core.model import CallContext, RequestRecord, Usage
from llmfy_core.plugins import get_registry
from llmfy_core.tracker import UsageTracker, active_trackers, as_utc

logger = get_logger("llmfy.tracker")

_UTC = dt.UTC

__all__ = [
    "active_trackers",
    "ensure_instrumented",
    "extract_usage",
    "notify_recorded",
    "record_response",
    "record_usage",
    "unknown_usage",
]

# Reentrant: a provider_instrument hook may start a process-wide tracker,
# which ensures instrumentation again.
_state_lock = threading.RLock()
_instrumented: dict[int, str | None] = {}
_instrumented_stamp: tuple[int, int] | None = None
_warned_no_provider = False

# (registry id, generation) -> {(provider, response type): implementation}
_extract_cache: dict[tuple[Any, type], Any] = {}
_extract_stamp: tuple[int, int] | None = None
_recorded_stamp: tuple[int, int] | None = None
_recorded_impls: list[Any] = []


def ensure_instrumented() -> None:
    """Let every provider plugin install its instrumentation, once per plugin."""
    global _instrumented_stamp, _warned_no_provider
    registry = get_registry()
    stamp = (id(registry), registry.generation)
    if stamp == _instrumented_stamp:
        return
    with _state_lock:
        providers = []
        for impl in reversed(registry.manager.hook.provider_instrument.get_hookimpls()):
            key = id(impl.plugin)
            if key not in _instrumented:
                # Marked first, so that a hook which starts a tracker does not
                # call itself again.
                _instrumented[key] = None
                try:
                    provider = impl.function()
                    _instrumented[key] = provider if isinstance(provider, str) else None
                except Exception as error:
                    name = registry.manager.get_name(impl.plugin)
                    logger.warning("plugin %s failed to instrument: %r", name, error)
            providers.append(_instrumented[key])
        _instrumented_stamp = stamp
        if any(providers) or _warned_no_provider:
            return
        _warned_no_provider = True
    message = (
        "No llmfy provider plugin is loaded, so no LLM call will be counted. "
        "Install one, such as `pip install llmfy-openai llmfy-bedrock`, and check "
        "LLMFY_PLUGINS, LLMFY_DISABLED_PLUGINS and LLMFY_DISABLE_PLUGIN_AUTOLOAD."
    )
    logger.warning("%s", message)
    emit_warning(PluginWarning(message), stacklevel=3)


def unknown_usage(context: CallContext, **fields: Any) -> Usage:
    """Return a `Usage` for a request whose token counts are unknown."""
    return Usage(
        provider=context.provider,
        model=context.model or "unknown",
        input_tokens=None,
        output_tokens=None,
        region=context.region,
        service_tier=context.service_tier,
        operation=context.operation,
        batch=context.batch,
        **fields,
    )


def extract_usage(response: Any, context: CallContext) -> Usage | None:
    """Run `usage_extract` for one response, remembering which plugin returned it.

    The implementation that returned a usage for a provider and response type is asked
    first next time, so a request normally costs one function call instead of a
    dispatch through every plugin.
    """
    global _extract_stamp
    registry = get_registry()
    stamp = (id(registry), registry.generation)
    if stamp != _extract_stamp:
        _extract_cache.clear()
        _extract_stamp = stamp
    key = (context.provider, type(response))
    cached = _extract_cache.get(key)
    if cached is not None:
        usage = _call_extract(cached, response, context)
        if usage is not None:
            return usage
    for impl in reversed(registry.manager.hook.usage_extract.get_hookimpls()):
        usage = _call_extract(impl, response, context)
        if usage is not None:
            _extract_cache[key] = impl
            return usage
    return None


def _call_extract(impl: Any, response: Any, context: CallContext) -> Usage | None:
    arguments = {"response": response, "context": context}
    result = impl.function(*[arguments[name] for name in impl.argnames])
    if result is None or isinstance(result, Usage):
        return result
    raise TypeError(
        f"plugin {impl.plugin_name} returned {type(result).__name__} from "
        "usage_extract; expected a Usage or None"
    )


def record_response(
    response: Any,
    context: CallContext,
    trackers: Sequence[UsageTracker],
    sent_at: dt.datetime | None = None,
) -> None:
    """Extract the usage of `response` and record it into `trackers`.

    Never raises. A response that no plugin reads, or whose reading fails, is
    recorded with unknown usage and the fault named.
    """
    if not trackers:
        return
    fault = None
    try:
        usage = extract_usage(response, context)
        if usage is None:
            fault = f"no plugin read the {context.provider} response"
            usage = unknown_usage(context)
    except Exception as error:
        fault = f"usage extraction failed: {error!r}"
        usage = unknown_usage(context)
    if fault is not None:
        logger.warning(
            "%s; %s model %s counted with unknown usage",
            fault,
            context.provider,
            context.model,
        )
    record_usage(usage, trackers, sent_at, fault)


def record_usage(
    usage: Usage,
    trackers: Sequence[UsageTracker],
    sent_at: dt.datetime | None = None,
    fault: str | None = None,
) -> None:
    """Record one request's usage into every tracker in `trackers`. Never raises."""
    sent = dt.datetime.now(_UTC) if sent_at is None else as_utc(sent_at)
    resolution = None
    recorded_by = None
    for tracker in trackers:
        try:
            resolution = tracker.add_fast(usage, sent, fault)
            recorded_by = tracker
        except Exception as error:
            logger.warning(
                "recording failed for %s model %s: %r",
                usage.provider,
                usage.model,
                error,
            )
            try:
                failed = unknown_usage(CallContext(usage.provider, model=usage.model))
                tracker.add_fast(failed, sent, f"recording failed: {error!r}")
            except Exception:
                logger.exception("recording the fault failed too")
    if recorded_by is None or resolution is None or not _recorded_hooks_wanted():
        return
    fault = fault or resolution.fault
    tags = merged_tags(trackers) if len(trackers) > 1 else recorded_by.tags
    notify_recorded(build_record((usage, resolution, sent, fault), tags))


def merged_tags(trackers: Sequence[UsageTracker]) -> Mapping[str, str]:
    """Merge the tags of nested trackers; an inner tracker's tag wins."""
    tags: dict[str, str] = {}
    for tracker in trackers:
        tags.update(tracker.tags)
    return tags


def _recorded_hooks() -> list[Any]:
    """Return the `request_recorded` implementations, refreshed when plugins change."""
    global _recorded_stamp, _recorded_impls
    registry = get_registry()
    stamp = (id(registry), registry.generation)
    if stamp != _recorded_stamp:
        _recorded_impls = list(
            reversed(registry.manager.hook.request_recorded.get_hookimpls())
        )
        _recorded_stamp = stamp
    return _recorded_impls


def _recorded_hooks_wanted() -> bool:
    """Return whether any `request_recorded` implementation wants records now.

    A plugin may define `llmfy_wants_records()`, a cheap call returning False
    while it has nothing to do (an exporter with nowhere to export), so that
    no record is built for it.
    """
    for impl in _recorded_hooks():
        wants = getattr(impl.plugin, "llmfy_wants_records", None)
        if wants is None:
            return True
        try:
            if wants():
                return True
        except Exception:
            return True
    return False


def notify_recorded(record: RequestRecord) -> None:
    """Call every `request_recorded` implementation once for `record`. Never raises."""
    for impl in _recorded_hooks():
        try:
            impl.function(*[record for _ in impl.argnames])
        except Exception as error:
            logger.warning(
                "plugin %s raised in request_recorded for %s model %s: %r",
                impl.plugin_name,
                record.usage.provider,
                record.usage.model,
                error,
            )
