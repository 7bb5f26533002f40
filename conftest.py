"""Fixtures shared by the core's and every plugin's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import llmfy_core


@pytest.fixture(autouse=True)
def fresh_plugin_registry() -> Iterator[None]:
    """Give every test a new plugin registry, loaded from the installed entry points."""
    llmfy_core.load_plugins()
    yield
    llmfy_core.load_plugins()
