"""The recording thread for requests that the garbage collector frees."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading

from llmfy_core.deferred import run_later, start_worker

WAIT_S = 5.0

REQUEST = contextvars.ContextVar("request", default="none")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_later_uses_worker_thread() -> None:
    start_worker()
    threads: list[str] = []
    done = threading.Event()

    def record() -> None:
        threads.append(threading.current_thread().name)
        done.set()

    run_later(record, "unused-name")

    assert done.wait(WAIT_S)
    assert threads == ["llmfy-recorder"]


def test_run_later_in_empty_context() -> None:
    start_worker()
    seen: list[str] = []
    done = threading.Event()

    def record() -> None:
        seen.append(REQUEST.get())
        done.set()

    def change_context() -> None:
        REQUEST.set("request of earlier work")

    token = REQUEST.set("request of the collecting code")
    try:
        run_later(change_context, "unused-name")
        run_later(record, "unused-name")
    finally:
        REQUEST.reset(token)

    assert done.wait(WAIT_S)
    assert seen == ["none"]


def test_failing_work_keeps_worker() -> None:
    start_worker()
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("recording broke")

    run_later(broken, "unused-name")
    run_later(done.set, "unused-name")

    assert done.wait(WAIT_S)


def test_queued_work_runs_before_exit() -> None:
    code = (
        "import time\n"
        "from llmfy_core.deferred import run_later, start_worker\n"
        "start_worker()\n"
        "def record():\n"
        "    time.sleep(0.3)\n"
        "    print('recorded', flush=True)\n"
        "run_later(record, 'unused-name')\n"
        "run_later(record, 'unused-name')\n"
    )

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == ["recorded", "recorded", ""]


def test_forked_child_starts_own_worker() -> None:
    # The parent's worker thread does not exist in the child, so the child's
    # work would wait in a queue that no thread reads.
    code = (
        "import os, threading\n"
        "from llmfy_core.deferred import run_later, start_worker\n"
        "start_worker()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    done = threading.Event()\n"
        "    start_worker()\n"
        "    run_later(done.set, 'unused-name')\n"
        "    os._exit(0 if done.wait(5) else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_run_later_after_exit_starts_thread() -> None:
    # An `atexit` function runs after the worker stopped; work queued then,
    # such as a stream it drops, gets a thread of its own.
    code = (
        "import atexit, threading\n"
        "from llmfy_core.deferred import run_later, start_worker\n"
        "def late():\n"
        "    done = threading.Event()\n"
        "    run_later(done.set, 'late-work')\n"
        "    print(done.wait(5))\n"
        "atexit.register(late)\n"
        "start_worker()\n"
    )

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_worker_started_after_shutdown_waited_for() -> None:
    # A thread that outlives the main thread starts watching streams after
    # `threading` ran its exit functions. Its work is still recorded before
    # the interpreter exits, with no warning for each stream.
    code = (
        "import logging, threading, time\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from llmfy_core.deferred import run_later, start_worker\n"
        "def record():\n"
        "    time.sleep(0.3)\n"
        "    print('recorded', flush=True)\n"
        "def late():\n"
        "    threading.main_thread().join()\n"
        "    for _ in range(3):\n"
        "        start_worker()\n"
        "    run_later(record, 'late-work')\n"
        "threading.Thread(target=late).start()\n"
    )

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "recorded\n"
    assert result.stderr == ""
