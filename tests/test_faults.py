"""Faults around the tracker never reach the application's call."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import llmfy_core
from llmfy_core import (
    CallContext,
    Usage,
    active_trackers,
    hookimpl,
    llmfy_usage_tracker,
)
from llmfy_core.recording import record_response, record_usage

from .conftest import ProviderPlugin


class RaisingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log shipper is down")

    def handleError(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log shipper is down")


@pytest.fixture
def raising_logs() -> Iterator[None]:
    logger = logging.getLogger("llmfy")
    handler = RaisingHandler()
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)


class FailingExtractor:
    @hookimpl(tryfirst=True)
    def usage_extract(self, response: Any) -> Usage:
        raise KeyError("usage")


def test_warnings_as_errors_do_not_break_recording(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage, warnings.catch_warnings():
        warnings.simplefilter("error")
        usage.record("openai", "unknown-model", 10, 1)

    assert usage.request_count == 1
    assert usage.totals.unpriced == 1


def test_raising_log_handler_does_not_break_recording(
    provider: ProviderPlugin, raising_logs: None
) -> None:
    llmfy_core.register_plugin(FailingExtractor(), "failing")

    with llmfy_usage_tracker() as usage:
        record_response(
            {"model": "m"},
            CallContext("openai", model="gpt-4o-mini"),
            active_trackers(),
        )

    assert usage.request_count == 1
    assert usage.totals.faults == 1


def test_secrets_never_in_report_or_logs(
    provider: ProviderPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-live-0123456789abcdef"
    llmfy_core.register_plugin(FailingExtractor(), "failing")
    caplog.set_level(logging.DEBUG, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        record_response(
            {"model": "gpt-4o-mini", "prompt": secret, "api_key": secret},
            CallContext(
                "openai", model="gpt-4o-mini", headers={"authorization": secret}
            ),
            active_trackers(),
        )

    assert secret not in str(usage)
    assert secret not in repr(usage.to_dict())
    assert secret not in caplog.text


def test_warning_points_at_application_line(provider: ProviderPlugin) -> None:
    with pytest.warns(llmfy_core.PricingWarning) as warned:
        with llmfy_usage_tracker() as usage:
            usage.record("openai", "unpriced-model", 1, 1)

    assert warned[0].filename == __file__


def test_unreadable_send_time_still_counted(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        record_usage(
            Usage("openai", "gpt-4o-mini", 60, 3),
            active_trackers(),
            "yesterday",  # type: ignore[arg-type]
        )

    # The usage is kept: only the send time is replaced, by the time of recording.
    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 0
    assert usage.totals.input_tokens == 60
    assert "invalid send time 'yesterday'" in (usage.records[0].fault or "")
