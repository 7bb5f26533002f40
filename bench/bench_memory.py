"""Section 5: memory retained per recorded request, measured with tracemalloc.

Kept requests: each request gets its own response object, parsed from the JSON
body as the SDK parses it, and its own request id, so that strings a record
keeps are counted as they would be in an application. Totals only
(`keep_requests=False`): one response object is recorded again and again, each
time with a new request id, and the memory still held by the tracker is read
at each checkpoint, after reading its totals. Without that read, up to
`FOLD_SIZE` (256) recent requests wait in the tracker's queue, which is bounded
but makes the figure depend on where a checkpoint falls.

Retained memory is what tracemalloc counts as allocated after a full garbage
collection, minus what it counted before the first request. The caches that
fill on the first requests (price lookups, hook dispatch) are warmed first.
"""

from __future__ import annotations

import json
import sysconfig
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import benchkit
from benchkit import progress

warnings.simplefilter("ignore")


def openai_request(body: bytes) -> Callable[[int], tuple[Any, Any]]:
    """Return a function that builds request number `i`: response and context."""
    from openai.types.chat import ChatCompletion

    from llmfy import CallContext

    def build(number: int) -> tuple[Any, Any]:
        response = ChatCompletion.model_validate(json.loads(body))
        context = CallContext(
            "openai",
            "chat.completions",
            benchkit.OPENAI_MODEL,
            headers={"x-request-id": f"req_{number:032x}"},
        )
        return response, context

    return build


def bedrock_request(body: bytes) -> Callable[[int], tuple[Any, Any]]:
    """Return a function that builds request number `i`: response and context."""
    from llmfy import CallContext

    def build(number: int) -> tuple[Any, Any]:
        response = json.loads(body)
        request_id = f"7c1d2e3f-0000-4000-8000-{number:012x}"
        headers = {"x-amzn-requestid": request_id, "content-type": "application/json"}
        response["ResponseMetadata"] = {
            "RequestId": request_id,
            "HTTPStatusCode": 200,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        }
        context = CallContext(
            "bedrock",
            "Converse",
            benchkit.BEDROCK_MODEL,
            benchkit.BEDROCK_REGION,
            headers=headers,
        )
        return response, context

    return build


def traced_bytes() -> int:
    """Return the bytes tracemalloc counts now, after a full collection."""
    benchkit.full_collect()
    return tracemalloc.get_traced_memory()[0]


def kept_requests(
    case: str, build: Callable[[int], tuple[Any, Any]], count: int
) -> dict[str, Any]:
    """Record `count` distinct requests in a tracker that keeps them all."""
    from llmfy import active_trackers, llmfy_usage_tracker
    from llmfy_core.recording import record_response

    with llmfy_usage_tracker() as warmup:
        for number in range(100):
            record_response(*build(number), active_trackers())
    del warmup

    progress(f"memory: recording {count:,} {case} requests, every one kept")
    tracemalloc.start(1)
    before = traced_bytes()
    first = tracemalloc.take_snapshot()
    started = time.perf_counter()
    with llmfy_usage_tracker() as usage:
        trackers = active_trackers()
        for number in range(count):
            response, context = build(number)
            record_response(response, context, trackers)
        del response, context
    elapsed = time.perf_counter() - started
    retained = traced_bytes() - before
    last = tracemalloc.take_snapshot()
    tracemalloc.stop()

    sites = []
    for stat in last.compare_to(first, "lineno")[:8]:
        frame = stat.traceback[0]
        sites.append(
            {
                "site": f"{short_path(frame.filename)}:{frame.lineno}",
                "bytes_per_request": stat.size_diff / count,
                "blocks_per_request": stat.count_diff / count,
            }
        )
    if usage.request_count != count:
        raise RuntimeError(f"only {usage.request_count} of {count} requests recorded")
    return {
        "requests": count,
        "retained_bytes": retained,
        "bytes_per_request": retained / count,
        "seconds_with_tracemalloc": elapsed,
        "top_sites": sites,
    }


def totals_only(checkpoints: list[int]) -> dict[str, Any]:
    """Record up to the last checkpoint in totals-only mode, reading memory at each."""
    from openai.types.chat import ChatCompletion

    from llmfy import CallContext, active_trackers, llmfy_usage_tracker
    from llmfy_core.recording import record_response

    response = ChatCompletion.model_validate(benchkit.openai_chat_body())
    with llmfy_usage_tracker(keep_requests=False):
        context = CallContext("openai", "chat.completions", benchkit.OPENAI_MODEL)
        for _ in range(100):
            record_response(response, context, active_trackers())

    progress(f"memory: {checkpoints[-1]:,} requests with keep_requests=False")
    tracemalloc.start(1)
    before = traced_bytes()
    points = []
    started = time.perf_counter()
    with llmfy_usage_tracker(keep_requests=False) as usage:
        trackers = active_trackers()
        done = 0
        for checkpoint in checkpoints:
            for number in range(done, checkpoint):
                context = CallContext(
                    "openai",
                    "chat.completions",
                    benchkit.OPENAI_MODEL,
                    headers={"x-request-id": f"req_{number:032x}"},
                )
                record_response(response, context, trackers)
            done = checkpoint
            del context
            # Reading the totals adds the requests still queued (at most
            # FOLD_SIZE of them) to the sums, as any report does.
            if usage.request_count != checkpoint:
                raise RuntimeError(
                    f"{usage.request_count} requests recorded, expected {checkpoint}"
                )
            points.append(
                {"requests": checkpoint, "retained_bytes": traced_bytes() - before}
            )
            progress(f"memory: {checkpoint:,} requests recorded")
    elapsed = time.perf_counter() - started
    tracemalloc.stop()
    if usage.request_count != checkpoints[-1]:
        raise RuntimeError(
            f"{usage.request_count} requests recorded, expected {checkpoints[-1]}"
        )
    return {"points": points, "seconds_with_tracemalloc": elapsed}


def short_path(filename: str) -> str:
    """Shorten a source path: relative to the checkout, site-packages or stdlib."""
    for prefix in (str(benchkit.REPO_DIR) + "/", "/site-packages/"):
        if prefix in filename:
            return filename.split(prefix, 1)[1]
    stdlib = sysconfig.get_paths()["stdlib"] + "/"
    if filename.startswith(stdlib):
        return filename.removeprefix(stdlib)
    return filename


def main() -> None:
    quick = benchkit.quick_mode()
    kept = 10_000 if quick else 100_000
    checkpoints = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    openai_body = json.dumps(benchkit.openai_chat_body()).encode()
    bedrock_body = json.dumps(benchkit.bedrock_converse_body()).encode()
    benchkit.emit(
        {
            "kept": {
                "openai": kept_requests("openai", openai_request(openai_body), kept),
                "bedrock": kept_requests(
                    "bedrock", bedrock_request(bedrock_body), kept
                ),
            },
            "totals_only": totals_only(checkpoints),
        }
    )


if __name__ == "__main__":
    main()
