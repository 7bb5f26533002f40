"""Two worker processes, scraped through the Prometheus exporter, add up exactly.

Each worker (`prometheus_worker.py`) makes real openai and boto3 calls to the
loopback server, exports through OpenTelemetry's Prometheus reader on
127.0.0.1 and prints its process-wide tracker's report. The values scraped
from both workers and summed must equal the sum of the two reports.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import LoopbackLLM

WORKER = Path(__file__).with_name("prometheus_worker.py")
WORKER_TIMEOUT_SECONDS = 60


class Worker:
    """A running worker process and what it printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], WORKER_TIMEOUT_SECONDS)
        if not ready:
            raise AssertionError(
                f"worker printed no report within {WORKER_TIMEOUT_SECONDS} s"
            )
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=WORKER_TIMEOUT_SECONDS)
            raise AssertionError(f"worker exited with {process.returncode}")
        printed = json.loads(line)
        self.port: int = printed["port"]
        self.report: dict[str, Any] = printed["report"]

    def scrape(self) -> str:
        """Return the worker's Prometheus metrics page."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def stop(self) -> int:
        """Close the worker's stdin, which ends it, and return its exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=WORKER_TIMEOUT_SECONDS)


@pytest.fixture
def workers(
    loopback_llm: LoopbackLLM, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Worker]]:
    """Start two workers: 2 chats and 1 Converse call, and 1 chat and 3 calls."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), loopback_llm.url, chats, converses],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for chats, converses in (("2", "1"), ("1", "3"))
    ]
    try:
        yield [Worker(process) for process in processes]
    finally:
        for process in processes:
            end_process(process)


def end_process(process: subprocess.Popen[str]) -> None:
    """Kill the worker if it still runs, and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=WORKER_TIMEOUT_SECONDS)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def scraped_sum(page: str, sample_name: str, **labels: str) -> float:
    """Sum the samples named `sample_name` whose labels include `labels`."""
    result = 0.0
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name != sample_name:
                continue
            if all(sample.labels.get(key) == value for key, value in labels.items()):
                result += sample.value
    return result


def test_scraped_sums_equal_reports(workers: list[Worker]) -> None:
    pages = [worker.scrape() for worker in workers]
    exit_codes = [worker.stop() for worker in workers]
    reports = [worker.report["totals"] for worker in workers]

    def scraped(sample_name: str, **labels: str) -> float:
        return sum(scraped_sum(page, sample_name, **labels) for page in pages)

    def reported(field: str) -> int:
        return sum(int(report[field]) for report in reports)

    report_cost = sum(Decimal(report["cost_usd"]) for report in reports)

    assert exit_codes == [0, 0]
    # 3 chats and 4 Converse calls in all.
    assert reported("requests") == 7
    # 3 x 1,200 + 4 x 2,030 input and 3 x 80 + 4 x 12 output tokens.
    assert reported("input_tokens") == 11720
    assert reported("output_tokens") == 288
    # 3 x 0.0001512 + 4 x 0.00002023 (see test_real_clients for each call).
    assert report_cost == Decimal("0.00053452")
    assert scraped("llmfy_client_requests_total") == reported("requests")
    assert scraped(
        "gen_ai_client_token_usage_sum", gen_ai_token_type="input"
    ) == reported("input_tokens")
    assert scraped(
        "gen_ai_client_token_usage_sum", gen_ai_token_type="output"
    ) == reported("output_tokens")
    assert scraped(
        "gen_ai_client_token_usage_count", gen_ai_token_type="input"
    ) == reported("requests")
    assert scraped("llmfy_client_token_cache_read_total") == reported(
        "cache_read_tokens"
    )
    assert scraped("llmfy_client_cost_USD_total", llmfy_priced="true") == (
        pytest.approx(float(report_cost), rel=1e-12)
    )


def test_worker_exits_by_itself(loopback_llm: LoopbackLLM) -> None:
    """A worker whose parent never closes its stdin still ends in bounded time."""
    stdin_read, stdin_write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, str(WORKER), loopback_llm.url, "1", "0", "0.5"],
        stdin=stdin_read,
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(stdin_read)
    try:
        output, _ = process.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    finally:
        end_process(process)
        os.close(stdin_write)

    assert process.returncode == 0
    assert json.loads(output)["report"]["totals"]["requests"] == 1
