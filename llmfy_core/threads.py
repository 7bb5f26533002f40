"""Carry the active trackers into the threads that a tracked block starts.

A new thread starts with an empty context, unless Python 3.14's
`sys.flags.thread_inherit_context` is set, so the requests of a worker thread
would count in no tracker. When a tracker is first entered,
`carry_into_threads` wraps two standard-library methods, as the
opentelemetry-instrumentation-threading package does for its own context:

- `threading.Thread.start` gives the new thread the trackers active where it
  is started.
- `concurrent.futures.ThreadPoolExecutor.submit` runs each function with the
  trackers active where it is submitted, and `loop.run_in_executor` submits
  through it. An executor's worker threads serve every later submission, so
  each function runs with the trackers of its own submission, none included.
- `multiprocessing.pool.ThreadPool`'s `apply_async`, `imap`, `imap_unordered`
  and `_map_async` (which `map`, `starmap` and their async forms call) do the
  same for its tasks and their `callback` and `error_callback`, once
  `multiprocessing.pool` is imported. Its worker threads serve every later
  task as well.

Both bind the tracker's active period, not the tracker: a thread that is
still running when the block ends counts no more requests into it. With no
tracker active, the `Thread.start` and `submit` wrappers add one
context-variable read (`Thread.start` also looks for `multiprocessing.pool` in
`sys.modules` until it has wrapped `ThreadPool`), and the `ThreadPool` ones
bind each call's function to no tracker.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import thread as futures_thread
from typing import Any

from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.tracker import _ACTIVE, bind_periods

__all__ = ["carry_into_threads"]

logger = get_logger("llmfy.tracker")

_lock = new_lock()
_carried = False
# The function that a `ThreadPoolExecutor`'s worker threads run, which
# `start_with_trackers` leaves unbound.
_EXECUTOR_WORKER = getattr(futures_thread, "_worker", None)
# Whether a worker thread may hold the trackers of the submission that started
# it. That happens when Python 3.14's `sys.flags.thread_inherit_context` (True
# by default on free-threaded builds) copies its starter's context, or when a
# later Python renamed the worker function. Every job is then bound, also to
# no tracker.
_BIND_EVERY_JOB = (
    bool(getattr(sys.flags, "thread_inherit_context", False))
    or _EXECUTOR_WORKER is None
)


_POOL_MODULE = "multiprocessing.pool"
# The `ThreadPool` methods that take the task function as their first argument
# and queue its tasks. `apply` calls `apply_async`, and `map`, `starmap`,
# `map_async` and `starmap_async` call `_map_async`.
_POOL_SUBMITTERS = ("apply_async", "_map_async", "imap", "imap_unordered")
# The parameters of those methods that take functions the pool calls later.
_POOL_FUNCTIONS = ("func", "callback", "error_callback")
_pools_carried = False


def carry_into_threads() -> None:
    """Wrap `Thread.start`, `ThreadPoolExecutor.submit` and `ThreadPool`, once."""
    global _carried
    with _lock:
        if _carried:
            return
        _wrap_thread_start()
        _wrap_executor_submit()
        _carried = True
    if _POOL_MODULE in sys.modules:
        _carry_into_thread_pools()


def _carry_into_thread_pools() -> None:
    """Wrap the task submission of `multiprocessing.pool.ThreadPool`, once.

    Called when a tracker is first entered and `multiprocessing.pool` is
    imported, or else when a thread starts after it is imported. A pool
    starts its worker threads in its constructor, so the wrappers are in place
    before its first task.
    """
    global _pools_carried
    with _lock:
        if _pools_carried:
            return
        _pools_carried = True
        pool_class = getattr(sys.modules[_POOL_MODULE], "ThreadPool", None)
        for name in _POOL_SUBMITTERS:
            method = getattr(pool_class, name, None)
            if method is None:
                logger.warning(
                    "multiprocessing.pool.ThreadPool has no method %s, so the "
                    "tasks it queues count in no tracker",
                    name,
                )
                continue
            setattr(pool_class, name, _bind_pool_tasks(method))


def _bind_pool_tasks(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a `ThreadPool` method so that its tasks run with the trackers now.

    Every task is bound, also to no tracker, because the pool's worker
    threads keep the trackers of the block that created the pool, if any.
    So are the `callback` and `error_callback` of `apply_async` and
    `_map_async`, which the pool's result-handler thread runs.
    """
    # Positions in the arguments after `self`. `map_async` passes the
    # callbacks to `_map_async` by position.
    try:
        parameters = list(inspect.signature(method).parameters)[1:]
    except (TypeError, ValueError):
        logger.warning(
            "the parameters of multiprocessing.pool.ThreadPool.%s cannot be read, "
            "so the callbacks it queues count in no tracker",
            method.__name__,
        )
        parameters = ["func"]
    bound_parameters = [name for name in _POOL_FUNCTIONS if name in parameters]
    positions = [parameters.index(name) for name in bound_parameters]

    @functools.wraps(method)
    def submit_with_trackers(self: Any, *args: Any, **kwargs: Any) -> Any:
        periods = _ACTIVE.get()
        arguments = list(args)
        for position in positions:
            if position < len(arguments) and arguments[position] is not None:
                arguments[position] = bind_periods(arguments[position], periods)
        for name in bound_parameters:
            if kwargs.get(name) is not None:
                kwargs[name] = bind_periods(kwargs[name], periods)
        return method(self, *arguments, **kwargs)

    return submit_with_trackers


def _wrap_thread_start() -> None:
    start = threading.Thread.start

    @functools.wraps(start)
    def start_with_trackers(self: threading.Thread) -> None:
        if not _pools_carried and _POOL_MODULE in sys.modules:
            _carry_into_thread_pools()
        periods = _ACTIVE.get()
        if periods and not _runs_executor_jobs(self):
            try:
                # Set on the instance, so that a subclass's own `run` is
                # bound too. `Thread._bootstrap_inner` calls `self.run()`.
                self.run = bind_periods(self.run, periods)  # type: ignore[method-assign]
            except Exception as error:
                logger.warning(
                    "binding the active trackers to thread %r failed, so its "
                    "requests count in none: %r. Pass it a function wrapped "
                    "with bind_trackers() instead",
                    self.name,
                    error,
                )
        start(self)

    threading.Thread.start = start_with_trackers  # type: ignore[method-assign]


def _runs_executor_jobs(thread: threading.Thread) -> bool:
    """Return whether `thread` is a `ThreadPoolExecutor` worker."""
    target = getattr(thread, "_target", None)
    return target is not None and target is _EXECUTOR_WORKER


def _wrap_executor_submit() -> None:
    submit: Callable[..., Future[Any]] = ThreadPoolExecutor.submit

    @functools.wraps(submit)
    def submit_with_trackers(
        self: ThreadPoolExecutor,
        fn: Callable[..., Any],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> Future[Any]:
        periods = _ACTIVE.get()
        if periods or _BIND_EVERY_JOB:
            fn = bind_periods(fn, periods)
        return submit(self, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = submit_with_trackers  # type: ignore[assignment]
