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

Both bind the tracker's active period, not the tracker: a thread that is
still running when the block ends counts no more requests into it. With no
tracker active, each wrapper adds one context-variable read.
"""

from __future__ import annotations

import functools
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
# Python 3.14 can start every thread with a copy of its starter's context
# (True by default on free-threaded builds). An executor's worker would then
# keep the trackers of the submission that started it.
_THREADS_INHERIT_CONTEXT = bool(getattr(sys.flags, "thread_inherit_context", False))


def carry_into_threads() -> None:
    """Wrap `Thread.start` and `ThreadPoolExecutor.submit`, once per process."""
    global _carried
    with _lock:
        if _carried:
            return
        _wrap_thread_start()
        _wrap_executor_submit()
        _carried = True


def _wrap_thread_start() -> None:
    start = threading.Thread.start
    # The executor's own worker function, whose threads must not inherit. A
    # new object when a later Python renames it, so that no thread matches.
    executor_worker = getattr(futures_thread, "_worker", object())

    @functools.wraps(start)
    def start_with_trackers(self: threading.Thread) -> None:
        periods = _ACTIVE.get()
        if periods and getattr(self, "_target", None) is not executor_worker:
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
        if periods or _THREADS_INHERIT_CONTEXT:
            fn = bind_periods(fn, periods)
        return submit(self, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = submit_with_trackers  # type: ignore[assignment]
