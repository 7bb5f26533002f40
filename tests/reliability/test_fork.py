"""A process forked while another thread holds a tracker's lock."""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal

import pytest

from llmfy import llmfy_usage_tracker

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


def test_fork_while_ledger_locked_child_reads() -> None:
    usage = llmfy_usage_tracker()
    usage.record("openai", "gpt-4o-mini", 60, 3)
    locked = threading.Event()
    release = threading.Event()

    def hold_ledger_lock() -> None:
        # Simulates a thread folding the queue at the moment of the fork.
        with usage.ledger.lock:
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_ledger_lock)
    holder.start()
    assert locked.wait(10)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                usage.record("openai", "gpt-4o-mini", 60, 3)
                # 2 requests of 60 input and 3 output tokens at 0.15 and
                # 0.60 USD per million: 2 * (60 * 0.15 + 3 * 0.60) / 1e6.
                if usage.request_count == 2 and usage.total_cost == Decimal(
                    "0.0000216"
                ):
                    code = 0
            finally:
                os._exit(code)
        exit_code = _wait_for_child(pid, 15)
    finally:
        release.set()
        holder.join(10)

    assert exit_code is not None, "the forked child hung reading the tracker"
    assert exit_code == 0
    assert usage.request_count == 1
