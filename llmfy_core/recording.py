"""The recording path that provider plugins call from their instrumentation.

Nothing here raises into the application: a fault in a plugin or in llmfy is
logged on the `llmfy.tracker` logger with provider and model, counted on the
record, and the request is still recorded with what could be read.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from llmfy_core.errors import PluginWarning, emit_warning
from llmfy_core.ledger import (
    FOLD_LENGTH,
    MAX_COUNT,
    MIN_INT_SENT,
    build_record,
    counts_fit,
    moment_of,
    nanos_of,
    sent_fits,
)
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger, raised_at
from llmfy_core.model import (
    INPUT_TOKENS_INDEX,
    SUBSET_PARENTS,
    USAGE_KEY_FIELDS,
    CallContext,
    RequestRecord,
    Usage,
    UsageCounts,
    subset_totals,
    usage_from_counts,
)
from llmfy_core.plugins import CHANGES, PROVIDER_INSTALL_HINT, get_registry
from llmfy_core.resolver import PLUGIN_PRICES, Resolution
from llmfy_core.tracker import UsageTracker, active_trackers, as_utc

logger = get_logger("llmfy.tracker")

_UTC = dt.UTC
_EXTRACT_ARGUMENTS = ("response", "context")
_time_ns = time.time_ns
# The slice of `UsageCounts` that keys a tracker's slots, made once, because
# `counts[:USAGE_KEY_FIELDS]` makes a slice object per request.
_KEY_FIELDS = slice(USAGE_KEY_FIELDS)

# A send time: a `datetime`, naive ones taken as UTC, or nanoseconds since
# 1970-01-01 UTC as `time.time_ns()` returns, which costs less to read.
SentAt = dt.datetime | int

# A plugin's function that reads a well-formed response of one type as
# `UsageCounts`, or returns None to leave it to `usage_extract`.
UsageReader = Callable[[Any, CallContext], UsageCounts | None]

__all__ = [
    "SentAt",
    "active_trackers",
    "body_sent_at",
    "ensure_instrumented",
    "extract_usage",
    "notify_recorded",
    "record_response",
    "record_usage",
    "unknown_usage",
    "usage_reader",
    "watch_pending",
    "watch_stream",
]

# Reentrant: a provider_instrument hook may start a process-wide tracker,
# which ensures instrumentation again.
_state_lock = new_lock()
_instrumented: dict[int, str | None] = {}
_instrumented_stamp: tuple[int, int] | None = None
# The providers whose calls the loaded plugins count, as of `_instrumented_stamp`.
_counted_providers: frozenset[str] = frozenset()
_warned_no_provider = False

# A plugin's usage reader: the provider it reads, the reader that the
# recording path calls, and the plugin's reader. The first reader is the
# plugin's, or checks its counts when the plugin does not promise to.
KnownReader = tuple[str, UsageReader, UsageReader]

# The `usage_extract` implementations that may read each provider, the
# readers by (provider, response type), and the first reader of each response
# type. The last saves the fast path a key tuple per request. All are valid
# while `CHANGES.count` equals `_extract_stamp`.
_implementations: dict[str, list[Any]] = {}
_readers: dict[tuple[str, type], KnownReader | None] = {}
_readers_by_type: dict[type, KnownReader] = {}
_extract_stamp = -1
_recorded_stamp = -1
_recorded_impls: list[Any] = []
# Whether the fast path reads through `_read_after_checks`, which it does when
# a plugin implements `request_recorded` or versions its prices. It is set
# with `_extract_stamp`.
_checked_reads = False


def ensure_instrumented() -> None:
    """Let every provider plugin install its instrumentation, once per plugin."""
    global _counted_providers, _instrumented_stamp, _warned_no_provider
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
        _counted_providers = frozenset(filter(None, providers))
        _instrumented_stamp = stamp
        if any(providers) or _warned_no_provider:
            return
        _warned_no_provider = True
    message = (
        "No llmfy provider plugin is loaded, so no LLM call will be counted. "
        f"Install one {PROVIDER_INSTALL_HINT}, and check LLMFY_PLUGINS, "
        "LLMFY_DISABLED_PLUGINS and LLMFY_DISABLE_PLUGIN_AUTOLOAD."
    )
    logger.warning("%s", message)
    emit_warning(PluginWarning(message), stacklevel=3)


def instrumented_providers() -> set[str]:
    """Return the providers whose loaded plugins installed their instrumentation."""
    hook = get_registry().manager.hook.provider_instrument
    with _state_lock:
        found = (_instrumented.get(id(impl.plugin)) for impl in hook.get_hookimpls())
        return {provider for provider in found if provider}


# The SDK module whose calls each provider's plugin counts, and its install name.
_PROVIDER_SDKS = {
    "openai": ("openai", "llmfy-openai"),
    "bedrock": ("botocore", "llmfy-bedrock"),
}
_warned_sdks: set[str] = set()


def warn_uninstrumented_sdks(tracker: UsageTracker) -> None:
    """Warn once per SDK that is imported while no loaded plugin counts its calls.

    A tracker calls this as it exits. The warning comes only when the
    tracker recorded no request, which is what a user sees when the
    provider's plugin is not installed.
    """
    uncounted = [
        provider
        for provider, (module, _) in _PROVIDER_SDKS.items()
        if provider not in _counted_providers
        and provider not in _warned_sdks
        and module in sys.modules
    ]
    if not uncounted or tracker.request_count:
        return
    for provider in uncounted:
        module, distribution = _PROVIDER_SDKS[provider]
        _warned_sdks.add(provider)
        message = (
            f"The tracker counted no request. The {module} package is imported, "
            f"but no loaded llmfy plugin counts {provider} calls, so they go "
            f"uncounted. Install the {distribution} distribution from a checkout "
            f"of the llmfy repository with `pip install ./plugins/{provider}`, and "
            "check LLMFY_PLUGINS, LLMFY_DISABLED_PLUGINS and "
            "LLMFY_DISABLE_PLUGIN_AUTOLOAD."
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

    The implementation that returned a usage for a provider and response type
    is asked first next time, so a request normally costs one function call
    instead of a dispatch through every plugin. Raises the first plugin's
    error when a plugin failed and none returned a usage.
    """
    usage, _, error = _extract(response, context)
    if usage is None and error is not None:
        raise error
    return usage


def _extract(
    response: Any, context: CallContext
) -> tuple[Usage | None, str | None, Exception | None]:
    """Return the usage, a description of the first plugin fault, and its error.

    The implementations are asked in hook order, skipping plugins whose
    `llmfy_providers` leave out the response's provider. A plugin that
    raises or returns the wrong type is skipped, and the next one is asked,
    so one broken plugin does not blank every provider's counts. When the
    first plugin asked returns the usage, its reader for the type of
    response, if it offers one, records the later ones.
    """
    global _checked_reads, _extract_stamp, _implementations, _readers, _readers_by_type
    get_registry()  # loads the plugins on first use, which changes the stamp
    stamp = CHANGES.count
    if stamp != _extract_stamp:
        _implementations = {}
        _readers = {}
        _readers_by_type = {}
        # Every change of plugins bumps the stamp, so `_checked_reads` stays
        # right until the stamp changes. Reloading the plugins' prices sets
        # `versioned`, and a reload that raises leaves every read checked.
        try:
            PLUGIN_PRICES.current_generation()
            versioned = PLUGIN_PRICES.versioned
        except Exception:
            versioned = True
        _checked_reads = bool(_recorded_hooks()) or versioned
        _extract_stamp = stamp
    # Kept in locals: a change of plugins meanwhile replaces the globals, and
    # what this call learns then goes to the discarded dicts.
    by_provider = _implementations
    readers = _readers
    readers_by_type = _readers_by_type
    provider = context.provider
    implementations = by_provider.get(provider)
    if implementations is None:
        implementations = by_provider[provider] = _extract_implementations(provider)
    fault: str | None = None
    first_error: Exception | None = None
    for position, impl in enumerate(implementations):
        try:
            usage = _call_extract(impl, response, context)
        except Exception as error:
            if first_error is None:
                first_error = error
                fault = f"plugin {impl.plugin_name} failed in usage_extract: {error!r}"
            continue
        if usage is not None:
            key = (provider, type(response))
            if position == 0 and key not in readers:
                known = readers[key] = _reader_of(impl, key)
                if known is not None:
                    readers_by_type.setdefault(key[1], known)
            return usage, fault, first_error
    return None, fault, first_error


def _extract_implementations(provider: str) -> list[Any]:
    """Return the `usage_extract` implementations that may read `provider`, in order.

    A plugin may declare `llmfy_providers`, the providers whose responses it
    reads; one that does not declare it is asked for every provider.
    """
    hook = get_registry().manager.hook.usage_extract
    implementations = []
    for impl in reversed(hook.get_hookimpls()):
        declared = getattr(impl.plugin, "llmfy_providers", None)
        try:
            skip = declared is not None and provider not in declared
        except Exception:
            skip = False
        if not skip:
            implementations.append(impl)
    return implementations


def usage_reader(provider: str, response_type: type) -> UsageReader | None:
    """Return the plugin reader that records responses of this type, if known.

    It is known once `usage_extract` has read a response of the type, until
    plugins or prices change.
    """
    if _extract_stamp != CHANGES.count:
        return None
    known = _readers.get((provider, response_type))
    return None if known is None else known[2]


def _reader_of(impl: Any, key: tuple[str, type]) -> KnownReader | None:
    """Return the reader that the plugin of `impl` offers for `key`, if any.

    A plugin whose `llmfy_readers_check_counts` is true promises that its
    readers return only counts that `counts_fit` accepts, apart from the
    64-bit limit. The readers of other plugins are wrapped in that check.
    """
    plugin = impl.plugin
    factory = getattr(plugin, "llmfy_usage_reader", None)
    if not callable(factory):
        return None
    provider, response_type = key
    try:
        reader = factory(provider, response_type)
    except Exception as error:
        logger.warning(
            "plugin %s failed in llmfy_usage_reader for %s %s: %r",
            impl.plugin_name,
            provider,
            response_type.__name__,
            error,
        )
        return None
    if not callable(reader):
        return None
    if getattr(plugin, "llmfy_readers_check_counts", False) is True:
        return provider, reader, reader
    return provider, _checking(reader), reader


def _checking(reader: UsageReader) -> UsageReader:
    """Return `reader` with its counts checked by `counts_fit`."""

    def read_checked(response: Any, context: CallContext) -> UsageCounts | None:
        counts = reader(response, context)
        if counts is None or counts_fit(counts):
            return counts
        # Counts the full path must check and report.
        return None

    return read_checked


def _call_extract(impl: Any, response: Any, context: CallContext) -> Usage | None:
    if impl.argnames == _EXTRACT_ARGUMENTS:
        result = impl.function(response, context)
    else:
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
    sent_at: SentAt | None = None,
) -> None:
    """Extract the usage of `response` and record it into `trackers`.

    `sent_at` is when the request was sent, None for now. Never raises. A
    response that no plugin reads, or whose reading fails, is recorded with
    unknown usage and the fault named.
    """
    if not trackers:
        return
    if _extract_stamp == CHANGES.count:
        # The fast path, inlined because it runs for every request: a
        # plugin's reader for this type of response, and the slot that each
        # tracker keeps for a kind of request it has priced before.
        known = _readers_by_type.get(type(response))
        if known is not None and known[0] != context.provider:
            # Another provider's reader came first for this type.
            known = _readers.get((context.provider, type(response)))
        if known is not None:
            try:
                if _checked_reads:
                    counts = _read_after_checks(known[1], response, context)
                else:
                    counts = known[1](response, context)
                if type(sent_at) is int:
                    # The instrumentation passes `time.time_ns()`. No slot
                    # takes a time before 1973 or beyond 64 bits, so a wrong
                    # value misses every slot and is checked below, off the
                    # fast path. Checking it here cost about 340 instructions
                    # per request (callgrind, Python 3.11).
                    sent = sent_at
                elif sent_at is None:
                    sent = _time_ns()
                else:
                    sent = _nanos(sent_at)
            except Exception:
                counts = None
            if counts is not None:
                stamp = CHANGES.count
                for tracker in trackers:
                    try:
                        # `Ledger.add_counts`, inlined because it runs per
                        # request. Slots of dated prices take this path too:
                        # the send-time check adds about 0.07 us, where a
                        # call of `Ledger.add_counts` added 0.4 us (`bench/run
                        # --only recording`, 2-core AMD EPYC VM, Python 3.11).
                        ledger = tracker.ledger
                        table_stamp, slots = ledger.slot_table
                        # mypy takes a slice variable for an index here.
                        slot = slots.get(counts[_KEY_FIELDS])  # type: ignore[call-overload]
                        if (
                            slot is not None
                            and table_stamp == stamp
                            and counts[INPUT_TOKENS_INDEX] <= slot.input_limit
                            and slot.sent_from <= sent
                            and sent < slot.sent_until
                        ):
                            queue = ledger.queue
                            queue.extend((slot, counts, sent))
                            if len(queue) >= FOLD_LENGTH:
                                ledger.fold_if_free()
                            continue
                        if ledger.add_counts(counts, sent, stamp):
                            continue
                    except Exception as error:
                        logger.warning(
                            "recording failed for %s model %s: %r",
                            context.provider,
                            context.model,
                            error,
                        )
                    if (
                        type(sent_at) is int
                        and not MIN_INT_SENT <= sent_at <= MAX_COUNT
                    ):
                        # An int send time that is not nanoseconds since 1973
                        # misses every slot, so no tracker has recorded the
                        # request yet. The full path records it for all of them
                        # at once, with one warning and one send time.
                        _record_fully(response, context, trackers, sent_at)
                        return
                    # A kind the tracker has not priced yet, or changed prices.
                    _add_read_counts(tracker, counts, response, context, sent)
                return
    _record_fully(response, context, trackers, sent_at)


def watch_stream(stream: Any, trackers: Sequence[UsageTracker]) -> None:
    """Show `stream` as open in the reports of `trackers` until it is recorded.

    `stream` is the plugin's object that records one streamed request, with a
    `done` attribute that is true once the request is recorded. It must accept
    weak references. Never raises, and runs before a stream's first chunk.
    """
    try:
        reference = weakref.ref(stream)
        for tracker in trackers:
            # No tracker method call here: this runs before every stream's first chunk.
            streams = tracker.open_stream_references
            streams.append(reference)
            if len(streams) >= tracker.prune_streams_at:
                tracker.prune_streams()
    except Exception as error:
        logger.warning("failed to watch a stream in a tracker: %r", error)


def watch_pending(request: Any, trackers: Sequence[UsageTracker]) -> None:
    """Show `request` as pending in the reports of `trackers` until it is recorded.

    `request` is the plugin's object for one request that the provider runs
    in the background. It must accept weak references and have a `done`
    attribute, true once it is recorded, and a `settle()` method. A tracker
    calls `settle()` when it ends its last active block, and this function
    calls it at once when none of `trackers` is active any more. `settle()`
    records the request with unknown usage unless one of its trackers is
    active. Never raises.
    """
    try:
        reference = weakref.ref(request)
        for tracker in trackers:
            requests = tracker.pending_request_references
            requests.append(reference)
            if len(requests) >= tracker.prune_pending_at:
                tracker.prune_pending_requests()
        # After the appends: a tracker that ends its block meanwhile either
        # finds the request in its list or is seen inactive here.
        if not any(tracker.active for tracker in trackers):
            request.settle()
    except Exception as error:
        logger.warning("failed to watch a pending request in a tracker: %r", error)


def _add_read_counts(
    tracker: UsageTracker,
    counts: UsageCounts,
    response: Any,
    context: CallContext,
    sent: int,
) -> None:
    """Add a reader's counts to a tracker that has no slot for their kind.

    `record_usage` checks the counts even when the plugin promised to, so
    that invalid ones are repaired and reported. A reader result that is not
    a `UsageCounts` at all is read again through `usage_extract`.
    """
    sent_at = moment_of(sent)
    try:
        usage = usage_from_counts(counts)
    except (TypeError, ValueError):
        logger.warning(
            "the %s usage reader returned %r, not a UsageCounts",
            context.provider,
            counts,
        )
        _record_fully(response, context, (tracker,), sent_at)
        return
    record_usage(usage, (tracker,), sent_at)


def _record_fully(
    response: Any,
    context: CallContext,
    trackers: Sequence[UsageTracker],
    sent_at: SentAt | None,
) -> None:
    """Record `response` through `usage_extract` and the price lookup."""
    first_error: Exception | None = None
    try:
        found, fault, first_error = _extract(response, context)
    except Exception as error:
        found, fault = None, f"usage extraction failed: {error!r}"
    if found is None:
        fault = fault or f"no plugin read the {context.provider} response"
        usage = unknown_usage(context)
    else:
        usage = found
    if fault is not None:
        # A later plugin may have read the usage after an earlier one failed.
        outcome = (
            "with unknown usage" if found is None else "with the next plugin's usage"
        )
        logger.warning(
            "%s%s; %s model %s counted %s",
            fault,
            "" if first_error is None else raised_at(first_error),
            context.provider,
            context.model,
            outcome,
        )
    record_usage(usage, trackers, sent_at, fault)


def _read_after_checks(
    reader: UsageReader, response: Any, context: CallContext
) -> UsageCounts | None:
    """Read `response` through a reader unless it needs the full path.

    It does when a `request_recorded` implementation wants a record of it.
    Plugins' price versions are checked first, so that a changed price
    invalidates the trackers' slots before the request is added.
    """
    if _recorded_impls and _recorded_hooks_wanted():
        return None
    if PLUGIN_PRICES.versioned:
        PLUGIN_PRICES.check_versions()
    return reader(response, context)


def _nanos(sent_at: SentAt) -> int:
    """Return a send time in nanoseconds, or raise ValueError outside 1677-2262.

    The full path records the other times, keeping their `datetime`.
    """
    if isinstance(sent_at, dt.datetime):
        sent = nanos_of(as_utc(sent_at))
    else:
        sent = _int_nanos(sent_at)
    if not sent_fits(sent):
        raise ValueError(f"send time {sent_at} outside the years 1677 to 2262")
    return sent


def _moment(sent_at: SentAt) -> dt.datetime:
    """Return a send time as a UTC `datetime`."""
    if isinstance(sent_at, dt.datetime):
        return as_utc(sent_at)
    try:
        return moment_of(_int_nanos(sent_at))
    except OverflowError:
        raise ValueError(
            f"invalid send time {sent_at}: as nanoseconds it falls after the year 9999"
        ) from None


def _int_nanos(sent_at: object) -> int:
    """Return a send time given in nanoseconds, or raise for another value.

    An int before 1973 is taken for seconds or milliseconds passed by mistake.
    """
    if not isinstance(sent_at, int) or isinstance(sent_at, bool):
        raise TypeError(
            f"invalid send time {sent_at!r}: expected a datetime, or nanoseconds "
            "since 1970 UTC as an int, as time.time_ns() returns"
        )
    if sent_at < MIN_INT_SENT:
        raise ValueError(
            f"invalid send time {sent_at}: as nanoseconds it falls before 1973. "
            "Pass nanoseconds, as time.time_ns() returns, or a datetime"
        )
    return sent_at


def body_sent_at(body: Mapping[str, Any]) -> dt.datetime | None:
    """Return the send time that a saved response body gives, in UTC, or None.

    OpenAI bodies give it in seconds since 1970 UTC, in `created` (Chat
    Completions, Completions, GPT Image) or `created_at` (Responses).
    """
    for field in ("created", "created_at"):
        value = body.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return dt.datetime.fromtimestamp(value, dt.UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def record_usage(
    usage: Usage,
    trackers: Sequence[UsageTracker],
    sent_at: SentAt | None = None,
    fault: str | None = None,
) -> None:
    """Record one request's usage into every tracker in `trackers`. Never raises.

    `sent_at` is when the request was sent, None for now.
    """
    try:
        sent = dt.datetime.now(_UTC) if sent_at is None else _moment(sent_at)
    except Exception as error:
        # The usage is still counted, as sent now.
        sent = dt.datetime.now(_UTC)
        logger.warning(
            "%s for %s model %s; the request is counted as sent now",
            error,
            getattr(usage, "provider", "unknown"),
            getattr(usage, "model", "unknown"),
        )
        fault = fault or f"{error}; counted as sent now"
    try:
        usage, problem = checked_usage(usage)
    except Exception as error:
        # Usage that cannot even be checked: count the request with unknown
        # usage rather than lose it.
        context = CallContext(str(getattr(usage, "provider", "unknown")))
        usage, problem = unknown_usage(context), f"unreadable usage: {error!r}"
    if problem is not None:
        logger.warning(
            "invalid usage for %s model %s: %s; the invalid counts are dropped",
            usage.provider,
            usage.model,
            problem,
        )
        fault = fault or f"invalid usage: {problem}"
    resolution = None
    recorded_by = None
    for tracker in trackers:
        added = _add_to(tracker, usage, sent, fault)
        if added is not None:
            resolution = added
            recorded_by = tracker
    if recorded_by is None or resolution is None or not _recorded_hooks_wanted():
        return
    fault = fault or resolution.fault
    try:
        tags = merged_tags(trackers) if len(trackers) > 1 else recorded_by.tags
        record = build_record((usage, resolution, sent, fault), tags)
    except Exception as error:
        logger.warning(
            "building the record of %s model %s failed: %r",
            usage.provider,
            usage.model,
            error,
        )
        return
    notify_recorded(record)


def _add_to(
    tracker: UsageTracker, usage: Usage, sent: dt.datetime, fault: str | None
) -> Resolution | None:
    """Add one request to `tracker`; on failure, add it with unknown usage.

    Returns the price resolution, or None when the request could only be
    counted as a fault.
    """
    try:
        return tracker.add_fast(usage, sent, fault)
    except Exception as error:
        logger.warning(
            "recording failed for %s model %s: %r",
            usage.provider,
            usage.model,
            error,
        )
        problem = f"recording failed: {error!r}"
    try:
        failed = unknown_usage(CallContext(usage.provider, model=usage.model))
        tracker.add_fast(failed, sent, problem)
    except Exception:
        logger.exception("recording the fault failed too")
    return None


def checked_usage(usage: Usage) -> tuple[Usage, str | None]:
    """Return `usage` with invalid counts removed, and what was wrong, if anything.

    A count must be a non-negative int. An invalid input or output count
    becomes unknown (None), and an invalid part count (cached, cache write,
    reasoning, a subset or a tool count) becomes 0. Parts larger than the
    total they belong to are cut down to it.
    """
    input_tokens = usage.input_tokens
    output_tokens = usage.output_tokens
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    reasoning = usage.reasoning_tokens
    if (
        (input_tokens is None or (type(input_tokens) is int and input_tokens >= 0))
        and (
            output_tokens is None or (type(output_tokens) is int and output_tokens >= 0)
        )
        and type(cache_read) is int
        and type(cache_write) is int
        and type(reasoning) is int
        and cache_read >= 0
        and cache_write >= 0
        and reasoning >= 0
        and (input_tokens is None or cache_read + cache_write <= input_tokens)
        and (output_tokens is None or reasoning <= output_tokens)
        and not usage.other_tokens
        and not usage.tool_calls
    ):
        return usage, None
    return _repaired_usage(usage)


def _repaired_usage(usage: Usage) -> tuple[Usage, str | None]:
    problems: list[str] = []

    def count(field: str, value: object, unknown: int | None) -> int | None:
        if value is None and unknown is None:
            return None
        if type(value) is int and value >= 0:
            return value
        problems.append(f"{field}={value!r}")
        return unknown

    input_tokens = count("input_tokens", usage.input_tokens, None)
    output_tokens = count("output_tokens", usage.output_tokens, None)
    cache_read = count("cache_read_tokens", usage.cache_read_tokens, 0) or 0
    cache_write = count("cache_write_tokens", usage.cache_write_tokens, 0) or 0
    reasoning = count("reasoning_tokens", usage.reasoning_tokens, 0) or 0
    if input_tokens is not None and cache_read + cache_write > input_tokens:
        problems.append(
            f"cache_read_tokens={cache_read} plus cache_write_tokens={cache_write} "
            f"exceed input_tokens={input_tokens}"
        )
        cache_read = min(cache_read, input_tokens)
        cache_write = min(cache_write, input_tokens - cache_read)
    if output_tokens is not None and reasoning > output_tokens:
        problems.append(
            f"reasoning_tokens={reasoning} exceed output_tokens={output_tokens}"
        )
        reasoning = output_tokens
    other = {
        kind: tokens
        for kind, tokens in usage.other_tokens.items()
        if count(f"other_tokens[{kind!r}]", tokens, 0)
    }
    totals = subset_totals(input_tokens, output_tokens, cache_write)
    other = _cut_subsets(other, totals, problems)
    tools = {
        tool: calls
        for tool, calls in usage.tool_calls.items()
        if count(f"tool_calls[{tool!r}]", calls, 0)
    }
    repaired = attrs.evolve(
        usage,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        other_tokens=other,
        tool_calls=tools,
    )
    return repaired, "; ".join(problems) or None


def _cut_subsets(
    other: dict[str, int],
    totals: Mapping[str, tuple[str, int | None]],
    problems: list[str],
) -> dict[str, int]:
    """Cut the subsets of each count to what is left of it, noting each cut.

    Each subset is charged at its own rate and taken out of its count, so
    subsets that add up to more than the count would charge tokens the
    request did not have.
    """
    left = {parent: total for parent, (_, total) in totals.items()}
    cut: dict[str, int] = {}
    for kind, tokens in other.items():
        parent = SUBSET_PARENTS.get(kind)
        remaining = left.get(parent) if parent is not None else None
        if parent is None or remaining is None:
            cut[kind] = tokens
            continue
        if tokens > remaining:
            name, total = totals[parent]
            problems.append(
                f"other_tokens[{kind!r}]={tokens} exceed the {remaining} of "
                f"{name}={total} not in other subsets"
            )
            tokens = remaining
        left[parent] = remaining - tokens
        if tokens:
            cut[kind] = tokens
    return cut


def merged_tags(trackers: Sequence[UsageTracker]) -> Mapping[str, str]:
    """Merge the tags of nested trackers; an inner tracker's tag wins."""
    tags: dict[str, str] = {}
    for tracker in trackers:
        tags.update(tracker.tags)
    return tags


def _recorded_hooks() -> list[Any]:
    """Return the `request_recorded` implementations, refreshed when plugins change."""
    global _recorded_stamp, _recorded_impls
    stamp = CHANGES.count
    if stamp != _recorded_stamp:
        registry = get_registry()
        _recorded_impls = list(
            reversed(registry.manager.hook.request_recorded.get_hookimpls())
        )
        # The stamp read before the list: a plugin registered meanwhile bumps
        # CHANGES past it, so the next call lists the implementations again.
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
