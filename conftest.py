"""Fixtures shared by the core's and every plugin's tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

import llmfy_core


@pytest.fixture(autouse=True)
def fresh_plugin_registry() -> Iterator[None]:
    """Give every test a new plugin registry, loaded from the installed entry points."""
    llmfy_core.load_plugins()
    yield
    llmfy_core.load_plugins()


@pytest.fixture(autouse=True)
def quiet_uncounted_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat the warning of an SDK without its plugin as given, in every test.

    A tracker that counts nothing warns once per process when `openai` or
    `botocore` is imported and no loaded plugin counts its calls. Whether one
    is imported depends on which tests ran before, so each test starts as if
    both had warned. The tests of that warning reset it.
    """
    from llmfy_core import recording

    monkeypatch.setattr(recording, "_warned_sdks", {"openai", "bedrock"})


@pytest.fixture(autouse=True)
def quiet_untracked_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat the warning about a request in an untracked thread as given.

    It is given once per process, so each test starts as if it had been, and
    the tests of that warning reset it.
    """
    from llmfy_core.tracker import UNTRACKED

    monkeypatch.setattr(UNTRACKED, "warned", True)
    monkeypatch.setattr(UNTRACKED, "watch", False)


# How long a test waits for a recording done in another thread.
WAIT_TIMEOUT_S = 5.0


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool]], None]:
    """Return a function that waits until a condition is true, at most 5 seconds.

    A stream that garbage collection frees is recorded by llmfy's recording thread.
    """

    def wait(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)

    return wait
