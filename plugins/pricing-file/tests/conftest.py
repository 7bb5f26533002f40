"""Fixtures for the llmfy-pricing-file tests: no price file unless a test sets one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llmfy_pricing_file import ENV_VAR
from llmfy_pricing_file.plugin import STATE

WriteFile = Callable[..., Path]


@pytest.fixture(autouse=True)
def no_price_file(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start and end each test with no price file in use."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    STATE.forget()
    yield
    STATE.forget()


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """Return a function that writes a file under tmp_path and returns its path.

    Each write moves the file's modification time forward by one second, so
    that a rewrite is seen as a change even on file systems with coarse times.
    """
    counter = iter(range(1, 1_000_000))

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        stamp = 1_700_000_000 + next(counter)
        os.utime(path, (stamp, stamp))
        return path

    return write
