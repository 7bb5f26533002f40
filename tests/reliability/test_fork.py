"""A process forked while another thread holds a tracker's lock."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmfy import UsageWarning, llmfy_usage_tracker
from llmfy_core import locks
from llmfy_core.resolver import PLUGIN_PRICES
from llmfy_core.tracker import UNTRACKED

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait_for_child(pid: int, seconds: float) -> int | None:
    """Return the child's exit code, or None after killing it when it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def _fork_while_held(lock: Any, child: Callable[[], bool]) -> int | None:
    """Fork while another thread holds `lock`; return the child's exit code.

    The child exits 0 when `child()` returns true, and None is returned
    when it hangs.
    """
    locked = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if child() else 1
            finally:
                os._exit(code)
        return _wait_for_child(pid, 15)
    finally:
        release.set()
        holder.join(10)


def test_fork_while_ledger_locked_child_reads() -> None:
    usage = llmfy_usage_tracker()
    usage.record("openai", "gpt-4o-mini", 60, 3)

    def child() -> bool:
        usage.record("openai", "gpt-4o-mini", 60, 3)
        # 2 requests of 60 input and 3 output tokens at 0.15 and 0.60 USD
        # per million: 2 * (60 * 0.15 + 3 * 0.60) / 1e6.
        return usage.request_count == 2 and usage.total_cost == Decimal("0.0000216")

    # The other thread holds the ledger's lock, as while it folds the queue.
    exit_code = _fork_while_held(usage.ledger.lock, child)

    assert exit_code is not None, "the forked child hung reading the tracker"
    assert exit_code == 0
    assert usage.request_count == 1


def _prices_new_model() -> bool:
    """Record a request of a model not priced before, and check its cost."""
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o", 60, 3)
    # 60 input and 3 output tokens at 2.50 and 10.00 USD per million.
    return usage.total_cost == Decimal("0.00018")


def test_fork_while_price_lock_held_child_prices() -> None:
    # The other thread holds the price resolver's lock, as while it reloads
    # prices. The child resolves the price of a model not priced before.
    exit_code = _fork_while_held(PLUGIN_PRICES._lock, _prices_new_model)

    assert exit_code is not None, "the forked child hung resolving a price"
    assert exit_code == 0


def test_fork_child_finds_every_llmfy_lock_free() -> None:
    # Recording a Bedrock request imports the plugin modules that make
    # process-wide locks.
    with llmfy_usage_tracker() as usage:
        usage.record("bedrock", "amazon.nova-lite-v1:0", 60, 3, region="us-east-1")
    llmfy_locks = list(locks._LOCKS)
    assert len(llmfy_locks) >= 10

    @contextlib.contextmanager
    def every_lock() -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for lock in llmfy_locks:
                stack.enter_context(lock)
            yield

    def child() -> bool:
        return all(lock.acquire(timeout=5) for lock in llmfy_locks)

    exit_code = _fork_while_held(every_lock(), child)

    assert exit_code is not None, "the forked child hung on a lock"
    assert exit_code == 0


def test_fork_child_untracked_request_no_warning(
    openai_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A block open in another thread of the parent is not open in the child,
    # where that thread does not run, so the child's untracked request is not
    # one sent beside it.
    monkeypatch.setattr(UNTRACKED, "warned", False)
    monkeypatch.setattr(UNTRACKED, "blocks", {})

    def child() -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
        return not [w for w in caught if issubclass(w.category, UsageWarning)]

    # The other thread holds a tracker block open instead of a lock.
    exit_code = _fork_while_held(llmfy_usage_tracker(), child)

    assert exit_code is not None, "the forked child hung sending a request"
    assert exit_code == 0, "the child warned about a thread that it does not run"
    assert not UNTRACKED.warned


def test_fork_in_thread_holding_lock_child_releases() -> None:
    # The forking thread itself holds the price resolver's lock, as a
    # price_lookup hook that forks would. The child leaves the lock's block
    # as the parent does, then resolves a price.
    lock = PLUGIN_PRICES._lock
    with lock:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                lock.release()
                code = 0 if _prices_new_model() else 1
            finally:
                os._exit(code)
    exit_code = _wait_for_child(pid, 15)

    assert exit_code is not None, "the forked child hung resolving a price"
    assert exit_code == 0
