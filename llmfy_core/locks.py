"""Locks that a forked child process finds unlocked.

Only the forking thread runs in a child process. A lock that another thread
of the parent held at the fork stays locked in the child, so the child's
first price lookup, plugin load or stream finish that needs it would block
forever. llmfy's process-wide locks come from `new_lock`, and the child
resets each one that another thread held at the fork.

What the other thread was changing under a lock may be half changed in the
child, a smaller fault than a child that blocks forever. A tracker's own
locks are replaced in `llmfy_core.tracker`, which also waits for running
folds before the fork, so that the child copies whole totals.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["new_lock"]

# Every lock made here that is still referenced. Locks accept weak references.
_LOCKS: weakref.WeakSet[Any] = weakref.WeakSet()


def new_lock() -> threading.RLock:
    """Return a new reentrant lock that a forked child finds unlocked.

    It is reentrant because a reentrant lock records its owner: a lock that the
    forking thread itself holds stays held in the child, which releases it
    as the parent would.
    """
    lock = threading.RLock()
    _LOCKS.add(lock)
    return lock


def _reset_in_child() -> None:
    # `_is_owned` and `_at_fork_reinit` are the methods that CPython's own
    # threading module calls on its locks (CPython 3.9 and later).
    for lock in list(_LOCKS):
        if not lock._is_owned():
            lock._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
