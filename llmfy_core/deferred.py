"""Record requests from one worker thread when the garbage collector frees them.

The garbage collector runs weak-reference callbacks and `__del__` methods
inside whatever code allocated, in any thread. That code may hold a lock that
is not reentrant: one of a `request_recorded` plugin, of the OpenTelemetry
SDK, or one of `threading`'s own, which a new non-daemon thread takes before
`Thread.start()` returns. So a plugin neither records nor starts a thread
there. `run_later` only puts the work on a
`queue.SimpleQueue`, whose `put()` the Python documentation allows in such
callbacks, and one worker thread runs it in an empty context, so that no
span or tracker of the collecting code receives it.

A plugin calls `start_worker()` from ordinary code when it begins to watch an
object that the collector may free. At interpreter exit, `threading`'s
shutdown waits for the queued work, so that nothing queued is lost, or
`atexit` does for a worker started after that shutdown began. A forked
child starts its own worker when it needs one.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import queue
import sys
import threading
from collections.abc import Callable

from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger

__all__ = ["run_later", "start_worker"]

logger = get_logger("llmfy")

# How long interpreter exit waits for the queued work, in seconds. Recording
# takes milliseconds; a `request_recorded` plugin that blocks must not hold
# the process open.
EXIT_TIMEOUT_S = 10.0

_lock = new_lock()
_work: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_exit_registered = False
_stopped = False


def start_worker() -> None:
    """Start the worker thread unless it runs.

    Call it from ordinary code, never from a garbage collector's callback.
    """
    if _worker is not None or _stopped:
        return
    try:
        with _lock:
            if _worker is None and not _stopped:
                _start()
    except Exception as error:
        # `run_later` starts a thread per call instead.
        logger.warning("failed to start llmfy's recording thread: %r", error)


def run_later(function: Callable[[], object], name: str) -> None:
    """Run `function` in the worker thread, or in a new thread named `name`.

    Safe in a weak-reference callback or `__del__` once `start_worker()` ran.
    Without a worker, as after interpreter shutdown began, it starts a thread
    of its own. Raises RuntimeError when the interpreter no longer starts
    threads, also once it is finalizing, as it is when it closes the objects
    still referenced at exit.
    """
    if _worker is not None:
        _work.put(function)
        return
    if sys.is_finalizing():
        # On CPython 3.11.7, a thread started during module teardown never
        # ran, so that `start()` waited for it forever and the process hung.
        raise RuntimeError("the interpreter is finalizing and starts no threads")
    thread = threading.Thread(
        target=contextvars.Context().run, args=(function,), name=name, daemon=True
    )
    thread.start()


def _start() -> None:
    global _worker, _exit_registered
    if not _exit_registered:
        _register_exit(_stop)
        _exit_registered = True
    worker = threading.Thread(
        target=_run_queued, args=(_work,), name="llmfy-recorder", daemon=True
    )
    # Started in an empty context, so that `carry_into_threads` binds no
    # tracker of the code that happened to start it.
    contextvars.Context().run(worker.start)
    _worker = worker


def _run_queued(work: queue.SimpleQueue[Callable[[], object] | None]) -> None:
    while (function := work.get()) is not None:
        _run(function)
    # Work that a collector queued while `_stop` stopped the worker.
    while True:
        try:
            function = work.get_nowait()
        except queue.Empty:
            return
        if function is not None:
            _run(function)


def _run(function: Callable[[], object]) -> None:
    try:
        contextvars.Context().run(function)
    except Exception:
        logger.exception("llmfy failed to record a collected request")


def _register_exit(callback: Callable[[], None]) -> None:
    # `threading._register_atexit` (CPython 3.9 and later, also used by
    # `concurrent.futures`) runs before `threading` joins its threads, while
    # the interpreter still starts threads. `atexit` runs later.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(callback)
            return
        except RuntimeError:
            # `threading` ran its exit functions already, as when a thread
            # that outlives the main thread watches a stream. `atexit` still
            # runs once that thread ends.
            pass
    atexit.register(callback)


def _stop() -> None:
    """Run the queued work and stop the worker; later work gets its own thread."""
    global _worker, _stopped
    with _lock:
        worker = _worker
        _stopped = True
        _worker = None
    if worker is not None:
        _work.put(None)
        worker.join(EXIT_TIMEOUT_S)
        if worker.is_alive():
            logger.warning(
                "llmfy's recording thread did not finish within %s s at exit; "
                "requests it had queued may be missing from trackers",
                EXIT_TIMEOUT_S,
            )


def _forget_worker() -> None:
    # Only the forking thread runs in the child: the parent's worker and
    # the work it had queued stay in the parent.
    global _work, _worker
    _work = queue.SimpleQueue()
    _worker = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker)
