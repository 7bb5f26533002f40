"""Reports read while another request is recorded.

A web service may serve `usage.to_dict()` or `str(usage)` while its handlers
keep sending requests. Each report must describe one set of requests: its
totals, its totals by model and its request list agree. The tests record a
request at a fixed point inside the report, the first `format_decimal` call,
which the report makes for the total cost before it lists the requests.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from llmfy_core import UsageTracker, llmfy_usage_tracker

from .servers import ONE_REPLY_COST, LoopbackLLM


def ask(openai_client: Any) -> None:
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )


@contextmanager
def request_during_report(send: Callable[[], None]) -> Iterator[list[int]]:
    """Call `send` once, at the first `format_decimal` call of this thread.

    Yields a list that gets one item when `send` has run. The profile
    function is not called for the calls that `send` makes.
    """
    sent: list[int] = []

    def profile(frame: FrameType, event: str, argument: object) -> None:
        if event == "call" and frame.f_code.co_name == "format_decimal" and not sent:
            sent.append(1)
            send()

    sys.setprofile(profile)
    try:
        yield sent
    finally:
        sys.setprofile(None)


def test_to_dict_during_request_agrees(
    loopback: LoopbackLLM, openai_client: Any
) -> None:
    with llmfy_usage_tracker() as usage:
        ask(openai_client)
        with request_during_report(lambda: ask(openai_client)) as sent:
            data = usage.to_dict()

    assert sent == [1]
    totals = data["totals"]
    assert totals["requests"] == 1
    assert len(data["requests"]) == 1
    assert [group["requests"] for group in data["by_model"]] == [1]
    assert totals["cost_usd"] == str(ONE_REPLY_COST)
    assert usage.request_count == 2
    assert usage.total_cost == 2 * ONE_REPLY_COST


def report_numbers(report: str) -> tuple[int, int]:
    """Return the total requests and the number of requests listed in `report`."""
    total = re.search(r"^Total Requests: (\d+)$", report, re.MULTILINE)
    assert total is not None
    listed = re.findall(r"^\d+\. gpt-4o-mini", report, re.MULTILINE)
    return int(total.group(1)), len(listed)


def test_str_during_request_agrees(loopback: LoopbackLLM, openai_client: Any) -> None:
    usage: UsageTracker
    with llmfy_usage_tracker() as usage:
        ask(openai_client)
        with request_during_report(lambda: ask(openai_client)) as sent:
            report = str(usage)

    assert sent == [1]
    assert report_numbers(report) == (1, 1)
    assert report_numbers(str(usage)) == (2, 2)


def test_totals_only_str_during_request_agrees(
    loopback: LoopbackLLM, openai_client: Any
) -> None:
    with llmfy_usage_tracker(keep_requests=False) as usage:
        ask(openai_client)
        with request_during_report(lambda: ask(openai_client)) as sent:
            report = str(usage)

    assert sent == [1]
    total = re.search(r"^Total Requests: (\d+)$", report, re.MULTILINE)
    assert total is not None
    assert total.group(1) == "1"
    assert "\trequests: 1 " in report
