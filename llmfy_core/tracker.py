"""The usage tracker: `with llmfy_usage_tracker() as usage:`.

A request belongs to the trackers that were active in its context when it was
sent. Instrumentation captures `active_trackers()` at send time and records
into exactly those trackers when the response (or the end of a stream)
arrives, even if a block has ended by then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import os
import threading
import warnings
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from contextvars import ContextVar
from decimal import Decimal
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import attrs

from llmfy_core.errors import (
    PricingTableError,
    PricingWarning,
    UnknownProviderError,
    UsageWarning,
    emit_warning,
)
from llmfy_core.ledger import Ledger, LedgerSnapshot, build_record
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.model import (
    SUBSET_PARENTS,
    Price,
    RequestRecord,
    Usage,
    subset_totals,
)
from llmfy_core.plugins import (
    CHANGES,
    PROVIDER_DISTRIBUTIONS,
    PluginRegistry,
    get_registry,
)
from llmfy_core.pricing import (
    STANDARD_TIERS,
    CatalogEntry,
    PriceTable,
    closest_name,
    likely_typo,
    suggested_name,
    tidy_decimal,
)
from llmfy_core.resolver import PLUGIN_PRICES, PriceResolver, Resolution
from llmfy_core.totals import ModelTotals

logger = get_logger("llmfy.tracker")

P = ParamSpec("P")
R = TypeVar("R")

_ACTIVE: ContextVar[tuple[_Period, ...]] = ContextVar(
    "llmfy_active_trackers", default=()
)
_process_trackers: tuple[UsageTracker, ...] = ()
# Serializes the replacements of `_process_trackers`, so that a tracker that
# one thread starts or stops is not undone by another thread's replacement.
# Readers read the tuple without it.
_process_trackers_lock = new_lock()
# Whether threads started, and work submitted to executors, inherit trackers.
_threads_carried = False
_ZERO = Decimal(0)
_UTC = dt.UTC
_PRICING_SUFFIX = "_pricing"
# Providers whose plugins live in this repository, under plugins/<provider>.
_BUNDLED_PROVIDERS = frozenset({"openai", "bedrock"})


class _Period:
    """One active period of a tracker: a block, or one call of a decorated function.

    The context stores periods, not trackers, so that a task or bound function
    that outlives its period stops counting into the tracker, also while the
    tracker is active in another period, such as a concurrent call.
    """

    __slots__ = ("open", "owner", "tracker", "trackers")

    def __init__(self, tracker: UsageTracker) -> None:
        self.tracker: UsageTracker | None = tracker
        # Returned by `active_trackers` for a stack of this period alone.
        self.trackers: tuple[UsageTracker, ...] = (tracker,)
        # Matches the period to its tracker in `__exit__` without keeping the
        # tracker alive after `close`.
        self.owner = weakref.ref(tracker)
        self.open = True

    def close(self) -> None:
        """End the period, and drop its references to the tracker.

        A thread or bound function that outlives the period keeps the period,
        and would otherwise keep the tracker and its requests in memory.
        """
        self.open = False
        self.tracker = None
        self.trackers = ()


def _call_kind(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return the callable whose kind decides how to wrap `function`.

    That is `function` itself, or what a `functools.partial` wraps, or the
    `__call__` of an object's class, also a staticmethod or classmethod one.
    `inspect` reads an object with an async `__call__` as sync, so its
    tracker would end before the coroutine runs. An object that `inspect`
    already reads as async or as a generator, such as an `AsyncMock`, keeps
    that kind.
    NOTE: a sync function that returns a coroutine, such as `lambda: agent()`,
    reads as sync, so its trackers end before the coroutine runs.
    """
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.isroutine(function) or inspect.isclass(function):
        return function
    if _has_kind(function):
        return function
    call = inspect.getattr_static(type(function), "__call__", None)
    if isinstance(call, staticmethod | classmethod):
        call = call.__func__
    return call if inspect.isfunction(call) else function


def _has_kind(function: Callable[..., Any]) -> bool:
    """Return whether `inspect` reads `function` as async or as a generator."""
    return (
        inspect.iscoroutinefunction(function)
        or inspect.isgeneratorfunction(function)
        or inspect.isasyncgenfunction(function)
    )


def active_trackers() -> tuple[UsageTracker, ...]:
    """Return the trackers that count a request sent now, outermost first."""
    stack = _ACTIVE.get()
    trackers: tuple[UsageTracker, ...] = ()
    if len(stack) == 1:
        period = stack[0]
        if period.open:
            trackers = period.trackers
    elif stack:
        trackers = _open_once(stack)
    processes = _process_trackers
    if not processes:
        return trackers
    if not trackers:
        return processes
    # A process tracker also entered as a block counts a request once.
    return processes + tuple(each for each in trackers if each not in processes)


def _open_once(stack: tuple[_Period, ...]) -> tuple[UsageTracker, ...]:
    """Return the trackers of the open periods, each tracker once."""
    kept: list[UsageTracker] = []
    for period in stack:
        tracker = period.tracker
        if tracker is None or not period.open:
            continue
        if all(tracker is not seen for seen in kept):
            kept.append(tracker)
    return tuple(kept)


class ThreadKey:
    """One thread with a tracker block open, distinct from later threads.

    A thread that ends with a block still open leaves its entry in
    `UntrackedThreads.blocks`, and the system gives its id to later threads.
    The `Thread` object does not distinguish them either: CPython 3.11 keeps
    the `_DummyThread` of a thread not started through `threading` after the
    thread ends, and gives it to a later such thread with the same id. A key
    is kept in a `threading.local`, which every new thread finds empty.
    """

    __slots__ = ("thread",)

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread


class UntrackedThreads:
    """The threads with a tracker block open, for the warning about other threads.

    A thread started before a block, or an executor job submitted outside
    it, does not count into the block's trackers. The instrumentation reads
    `watch` when a request has no tracker, and calls `warn_untracked_thread`
    only when it is true: while a block is open in some thread and the
    warning has not been given.
    """

    __slots__ = ("_local", "blocks", "lock", "warned", "watch")

    def __init__(self) -> None:
        self.watch = False
        self.warned = False
        # Thread to the number of blocks open in it.
        self.blocks: dict[ThreadKey, int] = {}
        self.lock = threading.Lock()
        self._local = threading.local()

    def current(self) -> ThreadKey:
        """Return the key of the calling thread."""
        key: ThreadKey | None = getattr(self._local, "key", None)
        if key is None:
            key = self._local.key = ThreadKey(threading.current_thread())
        return key

    def opened(self) -> ThreadKey:
        """Count a block opened in this thread, and return the thread's key."""
        thread = self.current()
        with self.lock:
            self.blocks[thread] = self.blocks.get(thread, 0) + 1
            self.watch = not self.warned
        return thread

    def closed(self, thread: ThreadKey) -> None:
        """Count a block closed that was opened in `thread`."""
        with self.lock:
            count = self.blocks.get(thread, 1)
            if count > 1:
                self.blocks[thread] = count - 1
            else:
                self.blocks.pop(thread, None)
            self.watch = bool(self.blocks) and not self.warned


UNTRACKED = UntrackedThreads()


def warn_untracked_thread(provider: str, operation: str) -> None:
    """Warn once that a request in this thread goes uncounted while another counts.

    The instrumentation calls this for a request that no tracker counts,
    when `UNTRACKED.watch` is true. Never raises.
    """
    try:
        thread = threading.current_thread()
        with UNTRACKED.lock:
            if UNTRACKED.warned or UNTRACKED.current() in UNTRACKED.blocks:
                # The block's own thread, such as a task started before the block.
                return
            blocked = [each.thread for each in UNTRACKED.blocks]
            # An ended thread's `_DummyThread` may be this thread's as well,
            # so the threads that are not this one are named first.
            others = sorted(each.name for each in blocked if each is not thread)
            others = others or sorted(each.name for each in blocked)
            if not others:
                return
            UNTRACKED.warned = True
            UNTRACKED.watch = False
        message = (
            f"An untracked {provider} {operation} request was sent in thread "
            f"{thread.name!r}, where no llmfy tracker is active, while a tracker "
            f"block is open in thread {others[0]!r}, so no tracker counts it. "
            "A thread counts into the trackers active where it was started, or "
            "where its executor job was submitted: to count the requests of a "
            "thread started before the block, hand it `bind_trackers(function)` "
            "from inside the block, or call `start_process_tracker()` to count "
            "every thread. This warning is given once."
        )
        logger.warning("%s", message)
        emit_warning(UsageWarning(message))
    except Exception as error:
        logger.debug("the untracked-thread warning failed: %r", error)


# Every tracker not yet garbage-collected, so that a forked child can replace
# the locks that another thread of the parent held at the fork.
_LIVE_TRACKERS: weakref.WeakSet[UsageTracker] = weakref.WeakSet()
_LIVE_TRACKERS_LOCK = threading.Lock()
# How long a fork waits for a tracker's ledger to finish folding its queue.
_FORK_FOLD_WAIT_SECONDS = 1.0
_held_at_fork: list[threading.Lock] = []


def _before_fork() -> None:
    """Wait for running folds, so that the child copies whole ledgers.

    A fold deletes requests from the queue before it adds them to the
    buckets, and a child forked between the two steps would lack them.
    """
    _LIVE_TRACKERS_LOCK.acquire()
    for tracker in list(_LIVE_TRACKERS):
        lock = tracker.ledger.lock
        if lock.acquire(timeout=_FORK_FOLD_WAIT_SECONDS):
            _held_at_fork.append(lock)


def _after_fork_in_parent() -> None:
    while _held_at_fork:
        _held_at_fork.pop().release()
    _LIVE_TRACKERS_LOCK.release()


def _after_fork_in_child() -> None:
    """Replace the trackers' locks, since the threads that held them are gone.

    Only the forking thread runs in the child. A lock that another thread
    held at the fork would stay locked, and reading the report or recording
    into the tracker would block forever.
    """
    global _LIVE_TRACKERS_LOCK
    _held_at_fork.clear()
    for tracker in list(_LIVE_TRACKERS):
        tracker._lock = threading.Lock()
        tracker.ledger.lock = threading.Lock()
        tracker.ledger._records_lock = threading.Lock()
    UNTRACKED.lock = threading.Lock()
    # The other threads' blocks stay open in the parent only, so a request in
    # the child is not taken for one sent beside them.
    current = UNTRACKED.current()
    UNTRACKED.blocks = {
        thread: count for thread, count in UNTRACKED.blocks.items() if thread is current
    }
    UNTRACKED.watch = bool(UNTRACKED.blocks) and not UNTRACKED.warned
    _LIVE_TRACKERS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _carry_into_threads() -> None:
    global _threads_carried
    from llmfy_core.threads import carry_into_threads

    carry_into_threads()
    _threads_carried = True


def bind_trackers(function: Callable[P, R]) -> Callable[P, R]:
    """Wrap `function` so that it records into the trackers active now.

    Threads started and functions submitted to a `ThreadPoolExecutor` while a
    tracker is active count into it already. Wrap a function that runs in a
    thread started before the block, such as a long-lived worker that reads
    a queue: `work_queue.put(bind_trackers(call_llm))`.
    """
    return bind_periods(function, _ACTIVE.get())


def bind_periods(
    function: Callable[P, R], periods: tuple[_Period, ...]
) -> Callable[P, R]:
    """Wrap `function` so that it runs with the active `periods` of trackers.

    An async function gets an async wrapper that keeps the periods while the
    coroutine runs, because a coroutine runs in the context of the task that
    awaits it, not where it was created.
    NOTE: a generator or async generator function is bound only while it
    creates its generator, so the requests sent while the generator runs count
    where it is iterated.
    """
    if inspect.iscoroutinefunction(_call_kind(function)):
        run: Callable[..., Any] = function

        @functools.wraps(function)
        async def bound_async(*args: Any, **kwargs: Any) -> Any:
            token = _ACTIVE.set(periods)
            try:
                return await run(*args, **kwargs)
            finally:
                # Garbage collection may close a pending task's coroutine in
                # another context, where the reset raises ValueError. The
                # periods were set only in the task's context, so no reset is
                # needed there.
                with contextlib.suppress(ValueError):
                    _ACTIVE.reset(token)

        return cast(Callable[P, R], bound_async)

    @functools.wraps(function)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _ACTIVE.set(periods)
        try:
            return function(*args, **kwargs)
        finally:
            _ACTIVE.reset(token)

    return bound


class UsageTracker:
    """Counts the requests sent while it is active, and reports their usage and cost.

    Use it as a context manager (`with`, `async with`) or as a decorator on a
    sync or async function; each call of a decorated function is one more
    active period of the same tracker. Totals are exact when many threads and
    asyncio tasks record at once.
    """

    def __init__(
        self,
        overrides: Mapping[str, PriceTable],
        *,
        tags: Mapping[str, str] | None = None,
        keep_requests: bool = True,
    ) -> None:
        self.tags: Mapping[str, str] = MappingProxyType(dict(tags or {}))
        self._resolver = PriceResolver(overrides)
        # The recording fast path adds requests to the ledger's queue itself.
        self.ledger = Ledger(keep_requests)
        # Guards `_depth`, the number of blocks the tracker is active in, and
        # the pruning of `open_stream_references`.
        self._lock = threading.Lock()
        self._warned: dict[tuple[str | None, ...], object] = {}
        self._depth = 0
        # The periods opened by `__enter__` and not yet closed, oldest first.
        self._open_periods: list[_Period] = []
        # The thread of each open block, as `UNTRACKED.opened` returned it.
        self._block_threads: list[ThreadKey] = []
        # Weak references to the streams sent while the tracker was active,
        # which `recording.watch_stream` appends to. They are pruned of
        # recorded and collected streams when the list reaches
        # `prune_streams_at`. A list append costs less than a WeakSet's, and
        # it runs before a stream's first chunk.
        self.open_stream_references: list[weakref.ref[Any]] = []
        self.prune_streams_at = _FIRST_PRUNE
        # Weak references to the requests sent while the tracker was active
        # that the provider still runs in the background. Appended to by
        # `recording.watch_pending`, and pruned as the streams are.
        self.pending_request_references: list[weakref.ref[Any]] = []
        self.prune_pending_at = _FIRST_PRUNE
        with _LIVE_TRACKERS_LOCK:
            _LIVE_TRACKERS.add(self)

    # Activation

    def __enter__(self) -> UsageTracker:
        from llmfy_core.recording import ensure_instrumented

        ensure_instrumented()
        if not _threads_carried:
            _carry_into_threads()
        period = _Period(self)
        with self._lock:
            self._depth += 1
            self._open_periods.append(period)
            self._block_threads.append(UNTRACKED.opened())
        _ACTIVE.set((*_ACTIVE.get(), period))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack = _ACTIVE.get()
        period: _Period | None = None
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].owner() is self:
                period = stack[index]
                _ACTIVE.set(stack[:index] + stack[index + 1 :])
                break
        with self._lock:
            self._depth = max(self._depth - 1, 0)
            ended = not self._depth
            self._close_period(period, ended)
            if self._block_threads:
                thread = UNTRACKED.current()
                if thread in self._block_threads:
                    self._block_threads.remove(thread)
                else:
                    # Closed in another thread than it was opened in.
                    thread = self._block_threads.pop()
                UNTRACKED.closed(thread)
        if ended and self.pending_request_references:
            self.settle_pending_requests()
        if exc_type is None and ended:
            from llmfy_core.recording import warn_uninstrumented_sdks

            warn_uninstrumented_sdks(self)

    def _close_period(self, period: _Period | None, ended: bool) -> None:
        """Close `period`, or the latest open one when it is not open.

        A tracker exited outside the context it was entered in, such as from
        another thread, closes its latest period. The caller must hold `_lock`.
        """
        periods = self._open_periods
        if ended:
            for open_period in periods:
                open_period.close()
            periods.clear()
            return
        if period is None or not period.open:
            if not periods:
                return
            period = periods[-1]
        period.close()
        periods.remove(period)

    async def __aenter__(self) -> UsageTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    @property
    def open_streams(self) -> int:
        """How many streams sent while the tracker was active are not counted yet.

        Each is counted when it ends, is closed or is garbage-collected.
        """
        return len(_live_unrecorded(self.open_stream_references))

    @property
    def pending_requests(self) -> int:
        """How many background requests sent inside the tracker are not counted yet.

        Each is counted when its result is fetched, or with unknown usage once
        none of the trackers active when it was sent is active any more.
        """
        return len(_live_unrecorded(self.pending_request_references))

    def settle_pending_requests(self) -> None:
        """Ask each pending request to record itself if its trackers have all ended.

        The tracker calls this when it ends its last active block. A request
        whose other trackers are still active stays pending.
        """
        with self._lock:
            pending = _live_unrecorded(self.pending_request_references)
        for reference in pending:
            request = reference()
            if request is None:
                continue
            try:
                request.settle()
            except Exception as error:
                logger.warning("settling a pending request failed: %r", error)

    def prune_pending_requests(self) -> None:
        """Drop the references to pending requests that are recorded or collected.

        Does nothing while the tracker's lock is held, so that a request added
        by a finalizer that garbage collection runs inside a locked section
        does not deadlock. A later call prunes the list.
        """
        if not self._lock.acquire(blocking=False):
            return
        try:
            requests = self.pending_request_references
            examined = len(requests)
            requests[:examined] = _live_unrecorded(requests[:examined])
            self.prune_pending_at = max(_FIRST_PRUNE, 2 * len(requests))
        finally:
            self._lock.release()

    def prune_streams(self) -> None:
        """Drop the references to streams that are recorded or collected."""
        with self._lock:
            streams = self.open_stream_references
            examined = len(streams)
            live = _live_unrecorded(streams[:examined])
            # In place, and only the part examined: other threads append to
            # the list meanwhile, without the lock.
            streams[:examined] = live
            self.prune_streams_at = max(_FIRST_PRUNE, 2 * len(streams))

    @property
    def keep_requests(self) -> bool:
        """Whether every request is kept for `records`, not only the totals."""
        return self.ledger.keep_requests

    @property
    def active(self) -> bool:
        """Whether the tracker is inside at least one active block."""
        return self._depth > 0

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function so that each call is tracked.

        Works for sync and async functions, and for generator and async
        generator functions, whose body is tracked while it runs. An object
        whose `__call__` is one of those is tracked as that kind of function.
        """
        kind = _call_kind(function)
        # Typed to return Any: the kind checks test `kind`, not `function`.
        run: Callable[..., Any] = function
        if inspect.isasyncgenfunction(kind):

            @functools.wraps(function)
            def tracked_async_generator(*args: Any, **kwargs: Any) -> Any:
                return self._track_async_steps(run(*args, **kwargs))

            return cast(Callable[P, R], tracked_async_generator)

        if inspect.isgeneratorfunction(kind):

            @functools.wraps(function)
            def tracked_generator(*args: Any, **kwargs: Any) -> Any:
                return self._track_steps(run(*args, **kwargs))

            return cast(Callable[P, R], tracked_generator)

        if inspect.iscoroutinefunction(kind):

            @functools.wraps(function)
            async def tracked_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self:
                    return await run(*args, **kwargs)

            return cast(Callable[P, R], tracked_async)

        @functools.wraps(function)
        def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            with self:
                return function(*args, **kwargs)

        return tracked

    def _track_steps(self, generator: Generator[Any, Any, Any]) -> Any:
        """Run each step of `generator` inside this tracker, and only its steps.

        The caller's code between two items runs outside the tracker, as it
        would around any other generator.
        """
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            with self:
                try:
                    if thrown is None:
                        item = generator.send(sent)
                    else:
                        item = generator.throw(thrown)
                except StopIteration as stop:
                    return stop.value
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                with self:
                    generator.close()
                raise
            except BaseException as error:
                thrown, sent = error, None

    async def _track_async_steps(
        self, generator: AsyncGenerator[Any, Any]
    ) -> AsyncGenerator[Any, Any]:
        """Run each step of an async generator inside this tracker."""
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            with self:
                try:
                    if thrown is None:
                        item = await generator.asend(sent)
                    else:
                        item = await generator.athrow(thrown)
                except StopAsyncIteration:
                    return
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                with self:
                    await generator.aclose()
                raise
            except BaseException as error:
                thrown, sent = error, None

    # Recording

    def add_usage(
        self,
        usage: Usage,
        sent_at: dt.datetime | None = None,
        fault: str | None = None,
    ) -> RequestRecord:
        """Price and record one request's usage; return its record.

        Instrumentation records through `llmfy_core.recording`, which skips
        building the record; applications use `record` instead.
        """
        from llmfy_core.recording import checked_usage

        sent = dt.datetime.now(_UTC) if sent_at is None else as_utc(sent_at)
        usage, problem = checked_usage(usage)
        if problem is not None:
            fault = fault or f"invalid usage: {problem}"
        resolution = self.add_fast(usage, sent, fault)
        return build_record(
            (usage, resolution, sent, fault or resolution.fault), self.tags
        )

    def add_fast(
        self, usage: Usage, sent_at: dt.datetime, fault: str | None = None
    ) -> Resolution:
        """Record one request's usage and return its price resolution.

        `sent_at` must be in UTC. The request is priced when the totals or
        records are read, not here.
        """
        stamp = CHANGES.count
        resolution = self._resolver.resolve(usage, sent_at)
        if resolution.fault is not None:
            fault = fault or resolution.fault
        dated = PLUGIN_PRICES.dated
        self.ledger.add(usage, resolution, sent_at, fault, stamp, dated)
        price = resolution.price
        if price is None:
            if usage.known and self._first_warning(
                (usage.provider, usage.model, usage.region)
            ):
                self._warn_unpriced(usage, resolution.reason)
        elif usage.other_tokens:
            for kind, tokens in usage.other_tokens.items():
                if (
                    tokens
                    and kind in SUBSET_PARENTS
                    and kind not in price.other
                    and self._first_warning((usage.provider, usage.model, kind))
                ):
                    self._warn_missing_rate(usage, resolution, kind)
        return resolution

    def _first_warning(self, key: tuple[str | None, ...]) -> bool:
        """Return True the first time `key` is given, and False after."""
        marker = object()
        # setdefault is atomic, so only one thread gets its own marker back.
        return self._warned.setdefault(key, marker) is marker

    def _warn_unpriced(self, usage: Usage, reason: str | None) -> None:
        region = f" in region {usage.region!r}" if usage.region else ""
        guess, meant_provider = _misspelling_question(usage.provider, usage.model)
        if meant_provider is not None:
            # Price advice for the misspelt name would not help.
            advice = (
                f"Name the provider {meant_provider!r}, as the plugins do, such as "
                f"in usage.record({meant_provider!r}, ...)."
            )
        else:
            advice = reason or _how_to_add_price(
                usage.provider, usage.model, usage.region
            )
        message = (
            f"No price for {usage.provider} model {usage.model!r}{region}; its "
            f"requests are counted with an unknown cost.{guess} {advice}"
        )
        logger.warning("%s", message)
        emit_warning(PricingWarning(message), stacklevel=3)

    def _warn_missing_rate(
        self, usage: Usage, resolution: Resolution, kind: str
    ) -> None:
        price = resolution.price
        overridden = resolution.origin == "override"
        if resolution.origin is not None and not overridden:
            source = f" from plugin {resolution.origin!r}"
        else:
            source = f" from {price.source}" if price and price.source else ""
        message = (
            f"The price of {usage.provider} model {usage.model!r}{source} has no "
            f"{kind!r} rate, so {kind} tokens are charged at the "
            f"{SUBSET_PARENTS[kind]} rate and the cost is an estimate. "
            + _how_to_add_rate(usage, kind, overridden)
        )
        logger.warning("%s", message)
        emit_warning(PricingWarning(message), stacklevel=3)

    def record(
        self,
        provider: str,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        other_tokens: Mapping[str, int] | None = None,
        tool_calls: Mapping[str, int] | None = None,
        region: str | None = None,
        service_tier: str | None = None,
        served_model: str | None = None,
        operation: str | None = None,
        batch: bool = False,
        request_id: str | None = None,
        sent_at: dt.datetime | None = None,
        **unexpected: object,
    ) -> RequestRecord:
        """Record a request by hand, for providers that no plugin instruments.

        When this tracker is active, the trackers active around it count the
        request too, as they would count an instrumented one. Counts follow the
        inclusion rules of `llmfy_core.model`: `input_tokens` includes cached
        and cache write tokens, `output_tokens` includes reasoning tokens.
        `sent_at` without a time zone is taken as UTC. Raises TypeError for a
        provider, model or other argument of the wrong type, and ValueError for
        negative or non-integer counts, for cached or reasoning counts larger
        than the total they are part of, and for `other_tokens` subsets that
        add up to more than that total.
        """
        if unexpected:
            raise TypeError(_record_keyword_message(next(iter(unexpected))))
        _check_record_arguments(
            provider,
            model,
            {
                "region": region,
                "service_tier": service_tier,
                "served_model": served_model,
                "operation": operation,
                "request_id": request_id,
            },
            {"other_tokens": other_tokens, "tool_calls": tool_calls},
            batch,
            sent_at,
        )
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
            **{f"other_tokens[{k!r}]": v for k, v in (other_tokens or {}).items()},
            **{f"tool_calls[{k!r}]": v for k, v in (tool_calls or {}).items()},
        }
        for field, value in counts.items():
            if value is None and field in ("input_tokens", "output_tokens"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"Invalid {field} for {provider} model {model!r}: {value!r}. "
                    "Token counts are whole numbers of at least 0."
                )
        _check_parts(provider, model, input_tokens, output_tokens, counts)
        _check_subsets(
            provider,
            model,
            input_tokens,
            output_tokens,
            cache_write_tokens,
            other_tokens or {},
        )
        usage = Usage(
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            other_tokens=other_tokens or {},
            tool_calls=tool_calls or {},
            region=region,
            service_tier=service_tier,
            served_model=served_model,
            operation=operation,
            batch=batch,
            request_id=request_id,
        )
        from llmfy_core.recording import merged_tags, notify_recorded

        sent = dt.datetime.now(_UTC) if sent_at is None else as_utc(sent_at)
        record = self.add_usage(usage, sent)
        enclosing = self._enclosing_trackers()
        for outer in enclosing:
            outer.add_fast(usage, sent)
        if enclosing:
            # Exporters get the tags of every tracker that counted the
            # request, as for an instrumented request. An inner tag wins.
            notify_recorded(attrs.evolve(record, tags=merged_tags((*enclosing, self))))
        else:
            notify_recorded(record)
        return record

    def _enclosing_trackers(self) -> tuple[UsageTracker, ...]:
        """Return the active trackers that enclose this one, when it is active.

        Inside a block of this tracker, those are the process trackers and the
        blocks around it, without this tracker, also when it is a process
        tracker. Outside its blocks, a process tracker has only the process
        trackers started before it around it.
        """
        blocks = _open_once(_ACTIVE.get())
        processes = _process_trackers
        if self in blocks:
            around = blocks[: blocks.index(self)]
            enclosing = processes + tuple(
                each for each in around if each not in processes
            )
            return tuple(each for each in enclosing if each is not self)
        if self in processes:
            return processes[: processes.index(self)]
        return ()

    # Reading

    @property
    def records(self) -> list[RequestRecord]:
        """Every recorded request in the order recorded (empty in totals-only mode)."""
        return self.ledger.records(self.tags)

    @property
    def totals(self) -> ModelTotals:
        """A snapshot of the totals over every request."""
        totals = ModelTotals()
        ledger = self.ledger
        with ledger.lock:
            ledger.fold()
            for _, bucket in ledger.buckets():
                bucket.add_to(totals)
        totals.cost = tidy_decimal(totals.cost)
        return totals

    def totals_by_model(self) -> dict[tuple[str, str, str | None], ModelTotals]:
        """Return totals per (provider, model, region), as requested."""
        return self.ledger.totals_by_model()

    def snapshot(self) -> LedgerSnapshot:
        """Return the totals, the totals by model and the records of one moment.

        While other threads record, `totals`, `totals_by_model()` and
        `records` read one after another can each include a different number
        of requests. The reports are built from a snapshot.
        """
        return self.ledger.snapshot(self.tags)

    @property
    def input_tokens(self) -> int:
        """Input tokens of all requests with known usage, cached ones included."""
        return self.totals.input_tokens

    @property
    def output_tokens(self) -> int:
        """Output tokens of all requests with known usage, reasoning included."""
        return self.totals.output_tokens

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens of all requests with known usage."""
        return self.totals.total_tokens

    @property
    def cache_read_tokens(self) -> int:
        """Cached input tokens of all requests."""
        return self.totals.cache_read_tokens

    @property
    def cache_write_tokens(self) -> int:
        """Cache write tokens of all requests."""
        return self.totals.cache_write_tokens

    @property
    def reasoning_tokens(self) -> int:
        """Reasoning tokens of all requests."""
        return self.totals.reasoning_tokens

    @property
    def request_count(self) -> int:
        """How many requests were recorded."""
        return self.totals.requests

    @property
    def total_cost(self) -> Decimal:
        """Cost in USD of the priced requests; see `cost_complete`."""
        return self.totals.cost

    @property
    def cost_complete(self) -> bool:
        """Whether every request had known usage and a price, for its tool calls too."""
        return self.totals.cost_complete

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serializable data; money as decimal strings."""
        from llmfy_core.report import report_dict

        return report_dict(self)

    def __str__(self) -> str:
        from llmfy_core.report import format_report

        return format_report(self)

    def __repr__(self) -> str:
        totals = self.totals
        return (
            f"<UsageTracker requests={totals.requests} tokens={totals.total_tokens} "
            f"cost_usd={totals.cost}>"
        )


def start_process_tracker(
    *,
    tags: Mapping[str, str] | None = None,
    **provider_pricing: Mapping[str, Any] | None,
) -> UsageTracker:
    """Start a tracker that counts every request in the process, without a block.

    For long-running services and exporters: it keeps totals per model only, so
    memory stays flat. A request also counted by a `with` block is still
    passed to `request_recorded` once. Stop it with `stop_process_tracker`.
    """
    global _process_trackers
    if "keep_requests" in provider_pricing:
        raise TypeError(
            "start_process_tracker() takes no keep_requests argument: a process "
            "tracker always keeps totals per model only, so that memory stays flat."
        )
    for keyword in provider_pricing:
        if not keyword.endswith(_PRICING_SUFFIX) or keyword == _PRICING_SUFFIX:
            raise TypeError(
                _unexpected_keyword_message(keyword, "start_process_tracker")
            )
    tracker = llmfy_usage_tracker(tags=tags, keep_requests=False, **provider_pricing)
    from llmfy_core.recording import ensure_instrumented

    ensure_instrumented()
    with tracker._lock:
        tracker._depth += 1
    with _process_trackers_lock:
        _process_trackers = (*_process_trackers, tracker)
    return tracker


def stop_process_tracker(tracker: UsageTracker) -> None:
    """Stop a tracker started by `start_process_tracker`; its report stays readable.

    Raises TypeError when `tracker` is not a `UsageTracker`.
    """
    global _process_trackers
    if not isinstance(tracker, UsageTracker):
        raise TypeError(
            "stop_process_tracker() takes the tracker that start_process_tracker() "
            f"returned, got {_short_repr(tracker)} of type {type(tracker).__name__}."
        )
    with _process_trackers_lock:
        _process_trackers = tuple(
            each for each in _process_trackers if each is not tracker
        )
    with tracker._lock:
        tracker._depth = 0
        tracker._close_period(None, True)
    if tracker.pending_request_references:
        tracker.settle_pending_requests()


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Return `moment` in UTC; a time without a time zone is taken as UTC."""
    if moment.tzinfo is _UTC:
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC)


def _check_record_arguments(
    provider: object,
    model: object,
    optional_strings: Mapping[str, object],
    mappings: Mapping[str, object],
    batch: object,
    sent_at: object,
) -> None:
    """Raise TypeError for an argument of `UsageTracker.record` of the wrong type."""
    for name, value, example in (
        ("provider", provider, "'openai'"),
        ("model", model, "'gpt-4o-mini'"),
    ):
        if not isinstance(value, str):
            raise TypeError(
                f"Invalid {name} for usage.record(): {_short_repr(value)} of type "
                f"{type(value).__name__}. Pass a str, such as {example}."
            )
        if not value:
            raise ValueError(
                f"Invalid {name} for usage.record(): it is empty. Pass the {name} "
                f"name, such as {example}."
            )
    where = f"{provider} model {model!r}"
    for name, value in optional_strings.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"Invalid {name} for {where}: {_short_repr(value)} of type "
                f"{type(value).__name__}. Pass a str, or None."
            )
    for name, value in mappings.items():
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(
                f"Invalid {name} for {where}: {_short_repr(value)} of type "
                f"{type(value).__name__}. Pass a mapping of kind to count, or None."
            )
    if not isinstance(batch, bool):
        raise TypeError(
            f"Invalid batch for {where}: {_short_repr(batch)} of type "
            f"{type(batch).__name__}. Pass True for a Batch API request, else False."
        )
    if sent_at is not None and not isinstance(sent_at, dt.datetime):
        raise TypeError(
            f"Invalid sent_at for {where}: {_short_repr(sent_at)} of type "
            f"{type(sent_at).__name__}. Pass a datetime.datetime, such as "
            "datetime.now(UTC), or None for now."
        )


def _check_parts(
    provider: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    counts: Mapping[str, object],
) -> None:
    """Raise ValueError when a part count exceeds the total it belongs to."""
    cached = counts["cache_read_tokens"]
    written = counts["cache_write_tokens"]
    reasoning = counts["reasoning_tokens"]
    assert isinstance(cached, int) and isinstance(written, int)
    assert isinstance(reasoning, int)
    if input_tokens is not None and cached + written > input_tokens:
        raise ValueError(
            f"Invalid counts for {provider} model {model!r}: cache_read_tokens "
            f"({cached}) plus cache_write_tokens ({written}) exceed input_tokens "
            f"({input_tokens}). input_tokens includes the cached and cache write "
            "tokens."
        )
    if output_tokens is not None and reasoning > output_tokens:
        raise ValueError(
            f"Invalid counts for {provider} model {model!r}: reasoning_tokens "
            f"({reasoning}) exceed output_tokens ({output_tokens}). output_tokens "
            "includes the reasoning tokens."
        )


def _check_subsets(
    provider: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_write_tokens: int,
    other_tokens: Mapping[str, int],
) -> None:
    """Raise ValueError when subsets in `other_tokens` add up to more than their count.

    A subset such as `input_audio` is charged at its own rate and taken out of
    its count, and so is each other subset of that count, such as
    `input_image`. Subsets that add up to more than their count would charge
    more tokens than the request had.
    """
    totals = subset_totals(input_tokens, output_tokens, cache_write_tokens)
    kinds_by_parent: dict[str, list[str]] = {}
    for kind in other_tokens:
        parent = SUBSET_PARENTS.get(kind)
        if parent is not None:
            kinds_by_parent.setdefault(parent, []).append(kind)
    for parent, kinds in kinds_by_parent.items():
        name, total = totals[parent]
        if total is None or sum(other_tokens[kind] for kind in kinds) <= total:
            continue
        subsets = " plus ".join(
            f"other_tokens[{kind!r}] ({other_tokens[kind]})" for kind in kinds
        )
        raise ValueError(
            f"Invalid counts for {provider} model {model!r}: {subsets} exceed "
            f"{name} ({total}). {name} includes the {' and '.join(kinds)} tokens."
        )


def _misspelling_question(provider: str, model: str) -> tuple[str, str | None]:
    """Return " Did you mean ...?" naming the model id or provider misspelt, or "".

    The second item is the provider that `provider` misspells, if any. A
    provider that pricing plugins list models for is known, so only its
    model id is compared. Otherwise the provider is compared with the known
    ones: those instrumented and those that pricing plugins list.
    """
    entries = _catalog_entries(provider)
    if entries is None:
        return "", None
    models = {entry.key.model for entry in entries if entry.provider == provider}
    if models:
        # A listed model has only its price for this tier, batch or region missing.
        close = None if model in models else likely_typo(model, sorted(models))
        return (f" Did you mean {close!r}?" if close else ""), None
    known = _known_providers()
    if provider in known:
        return "", None
    close = likely_typo(provider, sorted(known))
    if close is None:
        return "", None
    return f" Did you mean provider {close!r}?", close


def _catalog_entries(provider: str | None) -> list[CatalogEntry] | None:
    """Return the prices that plugins list for `provider` (None: every provider).

    Returns None when a plugin's `price_catalog` fails, which is logged.
    """
    try:
        listings = get_registry().manager.hook.price_catalog(provider=provider)
        return [
            entry for entries in listings if entries is not None for entry in entries
        ]
    except Exception as error:
        listed = provider or "every provider"
        logger.warning("listing the prices of %s failed: %r", listed, error)
        return None


def _known_providers() -> set[str]:
    """Return the providers that plugins instrument or list prices for."""
    from llmfy_core.recording import instrumented_providers

    entries = _catalog_entries(None) or []
    return instrumented_providers() | {entry.provider for entry in entries}


# How many streams or pending requests a tracker lists before it first drops
# the recorded ones.
_FIRST_PRUNE = 64


def _live_unrecorded(requests: list[weakref.ref[Any]]) -> list[weakref.ref[Any]]:
    """Return the references to streams or requests alive and not recorded yet.

    A stream listed twice, as a raw response and then as its parsed stream,
    is returned once.
    """
    live = []
    seen = set()
    for reference in list(requests):
        request = reference()
        if request is not None and not request.done and id(request) not in seen:
            seen.add(id(request))
            live.append(reference)
    return live


def _how_to_add_price(provider: str, model: str, region: str | None) -> str:
    if reads_pricing_tables(provider):
        example = _override_example(provider, model, region)
        if example is None:
            return (
                f"Add an entry for {model!r} to llmfy_usage_tracker({provider}_"
                "pricing=...), or install a pricing plugin."
            )
        argument, unit = example
        return (
            f"Add it with llmfy_usage_tracker({argument}){unit}, or install a "
            "pricing plugin."
        )
    distribution = PROVIDER_DISTRIBUTIONS.get(provider)
    if distribution is not None:
        return (
            f"The {distribution} plugin, which prices {provider} models, is not "
            "loaded. Install it from a checkout of the llmfy repository with "
            f"`pip install ./plugins/{provider}`, and check LLMFY_PLUGINS and "
            "LLMFY_DISABLED_PLUGINS."
        )
    return (
        f"No installed plugin reads {provider}_pricing= tables, so add the price "
        "to an organisation's price file (llmfy-pricing-file) or return it from "
        "a pricing plugin's price_lookup."
    )


# A model id that misspells no known one, so that parsing it warns of nothing.
_PROBE_MODEL = "llmfy-shape-probe"


def _override_example(
    provider: str,
    model: str,
    region: str | None,
    rate: str | None = None,
    tier: str | None = None,
) -> tuple[str, str] | None:
    """Return an example `<provider>_pricing=` argument for `model`, and its unit.

    Tables differ by provider: Bedrock's nest prices under a region and are
    per 1,000 tokens. So the provider's plugin parses a probe entry, flat and
    then under `region`, and the first shape it takes is the example. Returns
    None when it takes neither. `rate` adds a field, such as `input_audio`, to
    the entry, or to its `tiers` entry for `tier` (such as `flex`) when the
    plugin reads tiers, because an entry without tiers prices every tier.
    """
    prices = "{'input': ..., 'output': ...}"
    probe_prices: dict[str, Any] = {"input": 0, "output": 0}
    if rate is not None:
        prices = f"{{'input': ..., 'output': ..., {rate!r}: ...}}"
        probe_prices[rate] = 0
    shapes: list[tuple[str, dict[str, Any]]] = []
    if tier is not None:
        tiered = f"{{'input': ..., 'output': ..., 'tiers': {{{tier!r}: {prices}}}}}"
        probe_tiered = {"input": 0, "output": 0, "tiers": {tier: probe_prices}}
        shapes += _entry_shapes(model, region, tiered, probe_tiered)
    shapes += _entry_shapes(model, region, prices, probe_prices)
    for example, table in shapes:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = _parse_with_plugins(get_registry(), provider, table)
        except (PricingTableError, Warning):
            continue
        if parsed is None:
            return None
        argument = f"{provider}_pricing={example}"
        price = parsed.lookup(_PROBE_MODEL, region, None, False)
        if isinstance(price, Price):
            return argument, f" in USD per {price.price_per_tokens:,} tokens"
        return argument, ""
    return None


def _entry_shapes(
    model: str, region: str | None, prices: str, probe_prices: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Return example tables of `prices` for `model` and their probes."""
    shapes: list[tuple[str, dict[str, Any]]] = [
        (f"{{{model!r}: {prices}}}", {_PROBE_MODEL: probe_prices})
    ]
    if region:
        nested = f"{{{model!r}: {{{region!r}: {prices}}}}}"
        shapes.append((nested, {_PROBE_MODEL: {region: probe_prices}}))
    return shapes


def _how_to_add_rate(usage: Usage, kind: str, overridden: bool) -> str:
    provider = usage.provider
    reads_tables = reads_pricing_tables(provider)
    if reads_tables and not overridden:
        # A plugin's price has no entry to add the rate to, and a new entry
        # replaces the whole price, so the example names input and output too.
        tier = "batch" if usage.batch else usage.service_tier
        if tier in STANDARD_TIERS:
            tier = None
        example = _override_example(provider, usage.model, usage.region, kind, tier)
        if example is not None:
            argument, unit = example
            return (
                f"To rate them, pass llmfy_usage_tracker({argument}){unit}. An "
                "entry replaces the model's whole price, so give its other rates "
                "too."
            )
    if reads_tables:
        return (
            f"Give the rate as {kind!r} in the model's entry of {provider}_pricing=, "
            "in the unit of its 'input' price."
        )
    return (
        f"No installed plugin reads {provider}_pricing= tables, so give the rate "
        f"as {kind!r} in the `other` rates of the Price that a pricing plugin's "
        "price_lookup returns."
    )


def reads_pricing_tables(provider: str) -> bool:
    """Return True when a loaded plugin reads `<provider>_pricing=` tables.

    Hints on adding a price offer that keyword only then.
    """
    try:
        return _parse_with_plugins(get_registry(), provider, {}) is not None
    except (PricingTableError, Warning):
        # The provider's plugin read the empty table, and rejected it.
        return True


def llmfy_usage_tracker(
    openai_pricing: Mapping[str, Any] | None = None,
    bedrock_pricing: Mapping[str, Any] | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    keep_requests: bool = True,
    **other_provider_pricing: Mapping[str, Any] | None,
) -> UsageTracker:
    """Create a usage tracker, with optional price overrides per provider.

    `openai_pricing`, `bedrock_pricing` and any `<provider>_pricing` table
    replace the bundled prices of the models they list; every other model keeps
    its bundled price. Each table is validated here, before any request, and an
    invalid one raises `PricingTableError` (a ValueError). `tags` are kept on
    every record. With `keep_requests=False` the tracker keeps totals per model
    only, so memory stays flat in long-running services. Raises TypeError when
    `tags` is not a mapping of str to str or `keep_requests` is not a bool.
    """
    if callable(openai_pricing):
        raise TypeError(
            "llmfy_usage_tracker is used as a decorator without calling it: write "
            "@llmfy_usage_tracker() (with parentheses) above the function."
        )
    _check_tags(tags)
    if not isinstance(keep_requests, bool):
        raise TypeError(
            f"Invalid keep_requests: {_short_repr(keep_requests)} of type "
            f"{type(keep_requests).__name__}. Pass True to keep every request, or "
            "False to keep totals per model only."
        )
    tables: dict[str, Mapping[str, Any]] = {}
    if openai_pricing is not None:
        tables["openai"] = openai_pricing
    if bedrock_pricing is not None:
        tables["bedrock"] = bedrock_pricing
    for keyword, table in other_provider_pricing.items():
        if not keyword.endswith(_PRICING_SUFFIX) or keyword == _PRICING_SUFFIX:
            raise TypeError(_unexpected_keyword_message(keyword))
        if table is not None:
            tables[keyword.removesuffix(_PRICING_SUFFIX)] = table
    overrides = {
        provider: parse_override_table(provider, table)
        for provider, table in tables.items()
    }
    return UsageTracker(overrides, tags=tags, keep_requests=keep_requests)


def _unexpected_keyword_message(
    keyword: str, function: str = "llmfy_usage_tracker"
) -> str:
    """Return the TypeError message for a keyword that `function` lacks.

    `function` is llmfy_usage_tracker or start_process_tracker, which takes
    the same keywords but keep_requests.
    """
    known = ["openai_pricing", "bedrock_pricing", "tags"]
    takes = "tags="
    if function == "llmfy_usage_tracker":
        known.append("keep_requests")
        takes = "tags= and keep_requests="
    close = closest_name(keyword, known)
    hint = f" Did you mean {close}=?" if close else ""
    return (
        f"{function}() got an unexpected keyword argument {keyword!r}.{hint} It "
        "takes openai_pricing=, bedrock_pricing= and other <provider>_pricing= "
        f"price tables, and {takes}."
    )


# The providers' names of counts that `UsageTracker.record` names otherwise.
_RECORD_KEYWORD_ALIASES = {
    "cached_tokens": "cache_read_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
    "cache_write_input_tokens": "cache_write_tokens",
    "prompt_tokens": "input_tokens",
    "completion_tokens": "output_tokens",
}
_RECORD_KEYWORDS = (
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "other_tokens",
    "tool_calls",
    "region",
    "service_tier",
    "served_model",
    "operation",
    "batch",
    "request_id",
    "sent_at",
)


def _record_keyword_message(keyword: str) -> str:
    """Return the TypeError message for a keyword that `UsageTracker.record` lacks."""
    meant = _RECORD_KEYWORD_ALIASES.get(keyword) or closest_name(
        keyword, _RECORD_KEYWORDS
    )
    hint = f" Did you mean {meant}=?" if meant else ""
    return (
        f"usage.record() got an unexpected keyword argument {keyword!r}.{hint} "
        "It takes provider, model, input_tokens and output_tokens, and the "
        f"keywords {', '.join(_RECORD_KEYWORDS)}."
    )


def _check_tags(tags: object) -> None:
    """Raise TypeError unless `tags` is None or a mapping of str to str."""
    if tags is None:
        return
    example = "such as tags={'team': 'search'}"
    if not isinstance(tags, Mapping):
        raise TypeError(
            f"Invalid tags: {_short_repr(tags)} of type {type(tags).__name__}. "
            f"Pass a mapping of tag name to value, {example}."
        )
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"Invalid tags entry {_short_repr(key)}: {_short_repr(value)}. Tag "
                f"names and values are str, {example}."
            )


def _short_repr(value: object) -> str:
    """Return the repr of `value`, shortened when long."""
    # Imported here, for errors only, to keep `import llmfy` cheap.
    import reprlib

    return reprlib.repr(value)


def parse_override_table(provider: str, table: Mapping[str, Any]) -> PriceTable:
    """Validate a user's `<provider>_pricing` table through the provider's plugin."""
    if not isinstance(table, Mapping):
        raise PricingTableError(
            f"Invalid {provider}_pricing: expected a mapping of model id to prices, "
            f"got {type(table).__name__}."
        )
    registry = get_registry()
    faults: list[str] = []
    parsed = _parse_with_plugins(registry, provider, table, faults)
    if parsed is None:
        known = sorted(
            name
            for name, info in registry.infos.items()
            if "pricing_table_parse" in info.hooks
        )
        if provider in known:
            # Not a misspelt provider: its plugin is loaded but gave no table.
            reason = faults[0] if faults else f"plugin {provider} returned None"
            raise PricingTableError(
                f"{provider}_pricing= could not be read: {reason}. This is a bug "
                "in the plugin, not in the table: report it to the plugin's authors."
            )
        readers = ", ".join(known) or "none"
        close = suggested_name(provider, known)
        if close is not None:
            hint = f"Did you mean {close}_pricing=?"
        elif provider in _BUNDLED_PROVIDERS:
            hint = (
                f"Install llmfy-{provider} (`pip install ./plugins/{provider}` from "
                "a checkout of the llmfy repository), and check that LLMFY_PLUGINS, "
                "LLMFY_DISABLED_PLUGINS and LLMFY_DISABLE_PLUGIN_AUTOLOAD do not "
                "keep it from loading."
            )
        else:
            hint = "Install the plugin of that provider, or check the spelling."
        if faults:
            hint += f" Also, {faults[0]}."
        raise UnknownProviderError(
            f"Unknown provider {provider!r} in {provider}_pricing=: no installed "
            f"llmfy plugin reads its price tables (plugins that do: {readers}). "
            f"{hint}"
        )
    return parsed


def _parse_with_plugins(
    registry: PluginRegistry,
    provider: str,
    table: Mapping[str, Any],
    faults: list[str] | None = None,
) -> PriceTable | None:
    """Ask each `pricing_table_parse` implementation in turn for a price table.

    `PricingTableError` from the provider's plugin is the user's error and is
    raised, and so is a warning that the application turned into an error.
    Any other exception, or a result without a `lookup` method, is a plugin
    fault: it is logged, described in `faults` when given, and the next
    plugin is asked.
    """
    hook = registry.manager.hook.pricing_table_parse
    for impl in reversed(hook.get_hookimpls()):
        arguments = {"provider": provider, "table": table}
        try:
            parsed = impl.function(*[arguments[name] for name in impl.argnames])
        except (PricingTableError, Warning):
            raise
        except Exception as error:
            logger.warning(
                "plugin %s failed in pricing_table_parse for provider %s: %r",
                impl.plugin_name,
                provider,
                error,
            )
            if faults is not None:
                faults.append(f"plugin {impl.plugin_name} failed with {error!r}")
            continue
        if parsed is None:
            continue
        if not callable(getattr(parsed, "lookup", None)):
            logger.warning(
                "plugin %s returned %s from pricing_table_parse for provider %s; "
                "expected a price table with a lookup method",
                impl.plugin_name,
                type(parsed).__name__,
                provider,
            )
            if faults is not None:
                faults.append(
                    f"plugin {impl.plugin_name} returned {type(parsed).__name__}, "
                    "not a price table"
                )
            continue
        return cast(PriceTable, parsed)
    return None
