"""Section 6: how the cost per recorded request grows.

- With the number of requests in one tracker, 10^3 to 10^6, in both modes:
  each block of 1,000 requests is timed as the tracker fills.
- With extra plugins registered through `llmfy.register_plugin` (0, 5, 20),
  each implementing `usage_extract` and `price_lookup` and returning None.
- With nested trackers (1, 2, 4, 8 levels), each of which counts every request.

The last two are medians over interleaved rounds, as in section 1.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import benchkit
from benchkit import progress

from llmfy import hookimpl

warnings.simplefilter("ignore")


def openai_inputs() -> tuple[Any, Any]:
    """Return the OpenAI response object and its context."""
    from openai.types.chat import ChatCompletion

    from llmfy import CallContext

    response = ChatCompletion.model_validate(benchkit.openai_chat_body())
    return response, CallContext("openai", "chat.completions", benchkit.OPENAI_MODEL)


BLOCK = 1_000
# Requests recorded into a new tracker after each block, for the growth ratio.
REFERENCE_BLOCK = 250


def growth(total: int) -> list[dict[str, Any]]:
    """Record `total` requests into one tracker per mode, timing each block of 1,000.

    The cost per request while the tracker contains N requests is read from the
    blocks of each decade: 1 to 10^3, 10^3 to 10^4, and so on. The median block
    shows the steady cost, and the mean also counts the garbage collections. After
    each block, 250 requests go into a new tracker of the same mode. The ratio
    of the two per-request times is the growth, free of the machine's changing
    load.
    """
    from llmfy import llmfy_usage_tracker
    from llmfy_core.recording import record_response

    response, context = openai_inputs()

    def time_block(trackers: tuple[Any, ...], size: int) -> float:
        # Reading the request count adds the requests still queued to the
        # totals, so that both trackers' blocks include that work.
        started = time.perf_counter_ns()
        for _ in range(size):
            record_response(response, context, trackers)
        if trackers[0].request_count < size:
            raise RuntimeError("a block's requests were not all recorded")
        return (time.perf_counter_ns() - started) / size / 1000

    rows = []
    for keep_requests in (True, False):
        benchkit.full_collect()
        blocks = []
        ratios = []
        with llmfy_usage_tracker(keep_requests=keep_requests) as usage:
            for _ in range(total // BLOCK):
                blocks.append(time_block((usage,), BLOCK))
                fresh = llmfy_usage_tracker(keep_requests=keep_requests)
                ratios.append(blocks[-1] / time_block((fresh,), REFERENCE_BLOCK))
                del fresh
        if usage.request_count != total:
            raise RuntimeError(
                f"only {usage.request_count} of {total} requests recorded"
            )
        del usage
        start, end = 0, 1
        while end <= len(blocks):
            rows.append(
                {
                    "keep_requests": keep_requests,
                    "from_requests": start * BLOCK,
                    "to_requests": end * BLOCK,
                    "median_us": statistics.median(blocks[start:end]),
                    "mean_us": statistics.fmean(blocks[start:end]),
                    "median_ratio": statistics.median(ratios[start:end]),
                }
            )
            start, end = end, end * 10
        progress(
            f"scaling: {total:,} requests, keep_requests={keep_requests}: "
            f"{statistics.fmean(blocks):.2f} µs each on average"
        )
    return rows


class DummyPlugin:
    """A plugin that implements the per-request hooks and always returns None.

    It declares the provider it reads, as a provider plugin does, so that it
    is not asked to read OpenAI responses.
    """

    llmfy_providers = ("dummy",)

    @hookimpl
    def usage_extract(self, response: Any, context: Any) -> None:
        return None

    @hookimpl
    def price_lookup(
        self,
        provider: str,
        model: str,
        region: str | None,
        service_tier: str | None,
        batch: bool,
        requested_at: Any,
    ) -> None:
        return None


def timed_rounds(
    configurations: list[tuple[str, Callable[[], Any]]],
    rounds: int,
    round_seconds: float,
) -> dict[str, dict[str, Any]]:
    """Time each configuration's request in interleaved rounds and return medians.

    A configuration is a label and a factory of context managers that set the
    configuration up and yield the call to time.
    """
    counts = {}
    for label, start in configurations:
        with start() as call:
            counts[label] = benchkit.calibrate(call, round_seconds)
    samples: dict[str, list[float]] = {label: [] for label, _ in configurations}
    for _ in range(rounds):
        gc.collect()
        for label, start in configurations:
            with start() as call:
                samples[label].append(benchkit.time_round_us(call, counts[label]))
    return {label: benchkit.summarize(values) for label, values in samples.items()}


def plugin_counts(rounds: int, round_seconds: float) -> dict[str, Any]:
    """Time one request with 0, 5 and 20 extra plugins registered."""
    import llmfy
    from llmfy_core.recording import record_response

    response, context = openai_inputs()
    registered: list[str] = []

    def with_plugins(total: int) -> Callable[[], Any]:
        @contextlib.contextmanager
        def start() -> Iterator[Callable[[], Any]]:
            while len(registered) < total:
                name = f"bench-dummy-{len(registered):02d}"
                registered.append(llmfy.register_plugin(DummyPlugin(), name))
            while len(registered) > total:
                llmfy.unregister_plugin(registered.pop())
            with llmfy.llmfy_usage_tracker():
                trackers = llmfy.active_trackers()
                record_response(response, context, trackers)
                yield lambda: record_response(response, context, trackers)

        return start

    progress("scaling: extra plugins 0, 5, 20")
    configurations = [(f"{total} extra", with_plugins(total)) for total in (0, 5, 20)]
    result = timed_rounds(configurations, rounds, round_seconds)
    while registered:
        llmfy.unregister_plugin(registered.pop())
    return result


def nesting(rounds: int, round_seconds: float) -> dict[str, Any]:
    """Time one request recorded by 1, 2, 4 and 8 nested trackers."""
    import llmfy
    from llmfy_core.recording import record_response

    response, context = openai_inputs()

    def nested(levels: int) -> Callable[[], Any]:
        @contextlib.contextmanager
        def start() -> Iterator[Callable[[], Any]]:
            with contextlib.ExitStack() as stack:
                for _ in range(levels):
                    stack.enter_context(llmfy.llmfy_usage_tracker())
                trackers = llmfy.active_trackers()
                if len(trackers) != levels:
                    raise RuntimeError(
                        f"{len(trackers)} trackers active, expected {levels}"
                    )
                yield lambda: record_response(response, context, trackers)

        return start

    progress("scaling: nested trackers 1, 2, 4, 8")
    configurations = [(f"{levels} levels", nested(levels)) for levels in (1, 2, 4, 8)]
    return timed_rounds(configurations, rounds, round_seconds)


def main() -> None:
    quick = benchkit.quick_mode()
    total = 100_000 if quick else 1_000_000
    rounds = 5 if quick else 11
    round_seconds = 0.04 if quick else 0.1
    benchkit.emit(
        {
            "growth": growth(total),
            "plugins": plugin_counts(rounds, round_seconds),
            "nesting": nesting(rounds, round_seconds),
        }
    )


if __name__ == "__main__":
    main()
