"""Shared pieces of the benchmark suite: response bodies, timing loops, output.

Every section script prints its progress on stderr and one JSON object as the
last line of stdout, which `run.py` collects. The bodies below are written for
these benchmarks with the shape and token counts of real responses. One is an
OpenAI Chat Completion of gpt-4o-mini with 1,280 of 1,370 input tokens cached.
The other is a Bedrock Converse response of Claude Sonnet 4 that reads 1,712
tokens from the prompt cache and writes 236.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent

# Without this variable, litellm fetches its price map from the network at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

OPENAI_MODEL = "gpt-4o-mini"
OPENAI_SERVED_MODEL = "gpt-4o-mini-2024-07-18"
# The `x-request-id` header that the benchmark's Chat Completion comes with.
OPENAI_REQUEST_ID = "req_0123456789abcdef0123456789abcdef"
OPENAI_INPUT_TOKENS = 1370
OPENAI_CACHED_TOKENS = 1280
OPENAI_OUTPUT_TOKENS = 155

BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BEDROCK_REGION = "us-east-1"
# Bedrock's `inputTokens` excludes the tokens read from and written to the cache.
BEDROCK_INPUT_TOKENS = 3
BEDROCK_CACHE_READ_TOKENS = 1712
BEDROCK_CACHE_WRITE_TOKENS = 236
BEDROCK_OUTPUT_TOKENS = 121
BEDROCK_ALL_INPUT_TOKENS = (
    BEDROCK_INPUT_TOKENS + BEDROCK_CACHE_READ_TOKENS + BEDROCK_CACHE_WRITE_TOKENS
)


def openai_chat_body(request_number: int = 0) -> dict[str, Any]:
    """Return a Chat Completions body with cached input tokens."""
    return {
        "id": f"chatcmpl-Bench{request_number:020d}",
        "object": "chat.completion",
        "created": 1767225600,
        "model": OPENAI_SERVED_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The capital of France is Paris.",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": OPENAI_INPUT_TOKENS,
            "completion_tokens": OPENAI_OUTPUT_TOKENS,
            "total_tokens": OPENAI_INPUT_TOKENS + OPENAI_OUTPUT_TOKENS,
            "prompt_tokens_details": {
                "cached_tokens": OPENAI_CACHED_TOKENS,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_560af6e559",
    }


def bedrock_converse_body() -> dict[str, Any]:
    """Return a Converse response body (as JSON on the wire) with cache tokens."""
    return {
        "metrics": {"latencyMs": 1211},
        "output": {
            "message": {
                "content": [{"text": "Paris is the capital of France."}],
                "role": "assistant",
            }
        },
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": BEDROCK_INPUT_TOKENS,
            "outputTokens": BEDROCK_OUTPUT_TOKENS,
            "totalTokens": BEDROCK_ALL_INPUT_TOKENS + BEDROCK_OUTPUT_TOKENS,
            "cacheReadInputTokens": BEDROCK_CACHE_READ_TOKENS,
            "cacheReadInputTokenCount": BEDROCK_CACHE_READ_TOKENS,
            "cacheWriteInputTokens": BEDROCK_CACHE_WRITE_TOKENS,
            "cacheWriteInputTokenCount": BEDROCK_CACHE_WRITE_TOKENS,
            # The recorded response lists its cache write by TTL, as here.
            "cacheDetails": [{"ttl": "5m", "inputTokens": BEDROCK_CACHE_WRITE_TOKENS}],
        },
    }


def bedrock_converse_response() -> dict[str, Any]:
    """Return the dict boto3's `converse()` returns for `bedrock_converse_body`."""
    response = bedrock_converse_body()
    response["ResponseMetadata"] = {
        "RequestId": "7c1d2e3f-0000-4000-8000-00000000bench",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {
            "date": "Fri, 04 Dec 2026 12:00:00 GMT",
            "content-type": "application/json",
            "content-length": "412",
            "connection": "keep-alive",
            "x-amzn-requestid": "7c1d2e3f-0000-4000-8000-00000000bench",
        },
        "RetryAttempts": 0,
    }
    return response


# Timing


def calibrate(call: Callable[[], Any], round_seconds: float) -> int:
    """Return how many calls of `call` take about `round_seconds`."""
    count = 1
    while True:
        started = time.perf_counter_ns()
        for _ in range(count):
            call()
        elapsed = time.perf_counter_ns() - started
        if elapsed >= 20_000_000 or count >= 1 << 22:
            break
        count *= 2
    per_call = elapsed / count
    return max(1, int(round_seconds * 1e9 / per_call))


def time_round_us(call: Callable[[], Any], count: int) -> float:
    """Return the mean time of one call, in microseconds, over `count` calls."""
    started = time.perf_counter_ns()
    for _ in range(count):
        call()
    return (time.perf_counter_ns() - started) / count / 1000


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Return the median, minimum, maximum and every sample of one measurement."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": list(samples),
    }


def median_with_ci(samples: Sequence[float]) -> dict[str, Any]:
    """Return the median and the half-width of its approximate 95% interval.

    The half-width is 1.57 * IQR / sqrt(n) (McGill, Tukey and Larsen's notch
    rule): two medians whose intervals do not overlap differ at about the 95%
    level.
    """
    if not samples:
        return {"median": float("nan"), "ci": float("nan"), "n": 0}
    if len(samples) < 4:
        return {
            "median": statistics.median(samples),
            "ci": float("nan"),
            "n": len(samples),
        }
    quartiles = statistics.quantiles(samples, n=4)
    half_width = 1.57 * (quartiles[2] - quartiles[0]) / len(samples) ** 0.5
    return {"median": statistics.median(samples), "ci": half_width, "n": len(samples)}


def full_collect() -> None:
    """Run every garbage-collector generation so that timing starts clean."""
    gc.collect()
    gc.collect()


def library_versions() -> dict[str, str]:
    """Return the installed versions of the measured libraries."""
    names = [
        "llmfy",
        "llmfy-openai",
        "llmfy-bedrock",
        "pluggy",
        "attrs",
        "openai",
        "boto3",
        "genai-prices",
        "litellm",
        "tokencost",
        "langchain-core",
        "langchain-community",
    ]
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# Output


def progress(message: str) -> None:
    """Print a progress line on stderr, where `run.py` shows it as it comes."""
    print(f"  {message}", file=sys.stderr, flush=True)


def emit(result: Mapping[str, Any]) -> None:
    """Print the section's result as the last line of stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def quick_mode() -> bool:
    """Return whether the section was started with `--quick`."""
    return "--quick" in sys.argv[1:]
