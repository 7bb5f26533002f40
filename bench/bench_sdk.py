"""Sections 2 and 3: what the instrumentation adds to real SDK calls and streams.

The section process runs a local server (`local_server.py`) and starts client
subprocesses, one per SDK and variant, in rounds whose order alternates:

- `bare`: llmfy is never imported in the process;
- `idle`: llmfy is imported, its plugins discovered and the SDK patched (a
  tracker was entered and left once), but no tracker is active;
- `tracked`: the same, with a tracker active around every request;
- `paired`: the same again, alternating request by request between no tracker
  (`paired_idle`) and an active tracker (`paired_tracked`).

`idle` and `tracked` against `bare` compare separate processes, so they carry
the noise between processes. `paired_tracked` against `paired_idle` measures
the cost of an active tracker within one process, pair by pair.

Each client times single non-streaming calls, streams paced by the server
(time to the first event, and how long each event took from the server's
write to the application), and streams sent in one burst (time to the first
event again, from many more streams, and time per event while the client is
busy parsing). The figures are medians over every sample
of all rounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import benchkit
from benchkit import progress

VARIANTS = ("bare", "idle", "tracked", "paired")
MODES = ("bare", "idle", "tracked", "paired_idle", "paired_tracked")
# (mode, tracker active) measured by each variant's process.
VARIANT_MODES = {
    "bare": [("bare", False)],
    "idle": [("idle", False)],
    "tracked": [("tracked", True)],
    "paired": [("paired_idle", False), ("paired_tracked", True)],
}
# Samples taken once per request or stream, paired between idle and tracked.
PAIRED_KEYS = (
    "call_us",
    "first_event_us",
    "burst_first_event_us",
    "stream_delivery_us",
    "event_wall_us",
    "event_cpu_us",
    "added_cpu_us",
)
SAMPLE_KEYS = (*PAIRED_KEYS, "delivery_us")
SDKS = ("openai", "bedrock")
PROMPT = "What is the capital of France?"


# The client subprocess


class Client:
    """One SDK's calls, pointed at the local server."""

    def __init__(self, sdk: str, port: int) -> None:
        self.sdk = sdk
        base = f"http://127.0.0.1:{port}"
        if sdk == "openai":
            import openai

            self._clients = {
                mode: openai.OpenAI(
                    base_url=f"{base}/{mode}/v1", api_key="bench-key", max_retries=0
                )
                for mode in ("fixed", "paced", "burst", "short")
            }
        else:
            import boto3
            from botocore.config import Config

            config = Config(retries={"total_max_attempts": 1})
            self._clients = {
                mode: boto3.client(
                    "bedrock-runtime",
                    region_name=benchkit.BEDROCK_REGION,
                    endpoint_url=f"{base}/{mode}",
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench",
                    config=config,
                )
                for mode in ("fixed", "paced", "burst", "short")
            }

    def call(self) -> Any:
        """Send one non-streaming request and return the response."""
        client = self._clients["fixed"]
        if self.sdk == "openai":
            return client.chat.completions.create(
                model=benchkit.OPENAI_MODEL,
                messages=[{"role": "user", "content": PROMPT}],
            )
        return client.converse(
            modelId=benchkit.BEDROCK_MODEL,
            messages=[{"role": "user", "content": [{"text": PROMPT}]}],
        )

    def stream(self, mode: str) -> Iterable[str | None]:
        """Send one streaming request; yield each event's text, or None."""
        client = self._clients[mode]
        if self.sdk == "openai":
            chunks = client.chat.completions.create(
                model=benchkit.OPENAI_MODEL,
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in chunks:
                choices = chunk.choices
                yield choices[0].delta.content if choices else None
            return
        response = client.converse_stream(
            modelId=benchkit.BEDROCK_MODEL,
            messages=[{"role": "user", "content": [{"text": PROMPT}]}],
        )
        for event in response["stream"]:
            delta = event.get("contentBlockDelta")
            yield delta["delta"]["text"] if delta else None


class Sampler:
    """Runs each measurement with no tracker, or with one entered around it."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.tracked_requests = 0

    def run(self, tracked: bool, measure: Callable[[], Any]) -> Any:
        """Return `measure()`, run inside the tracker when `tracked`."""
        if not tracked:
            return measure()
        self.tracked_requests += 1
        with self.tracker:
            return measure()


def time_call(client: Client) -> float:
    """Return the duration of one call, in microseconds."""
    started = time.perf_counter_ns()
    client.call()
    return (time.perf_counter_ns() - started) / 1000


def time_paced_stream(client: Client) -> tuple[float, list[float], int]:
    """Return the time to the first event, each event's delivery time, the count.

    The delivery time is from the server's write to the application, both
    read on the machine's monotonic clock.
    """
    started = time.perf_counter_ns()
    first = 0.0
    latencies = []
    count = 0
    for text in client.stream("paced"):
        received = time.monotonic_ns()
        if not count:
            first = (time.perf_counter_ns() - started) / 1000
        count += 1
        if text and text.isdigit():
            latencies.append((received - int(text)) / 1000)
    return first, latencies, count


def time_burst_stream(
    client: Client, mode: str = "burst"
) -> tuple[float, float, float, int]:
    """Return the time to the first event, then the wall and CPU time per later event.

    All three are in µs. The count of events comes last.
    """
    started = time.perf_counter_ns()
    count = 0
    first_wall = first_cpu = 0
    for _ in client.stream(mode):
        if not count:
            first_wall = time.perf_counter_ns()
            first_cpu = time.thread_time_ns()
        count += 1
    first = (first_wall - started) / 1000
    wall = (time.perf_counter_ns() - first_wall) / 1000 / max(count - 1, 1)
    cpu = (time.thread_time_ns() - first_cpu) / 1000 / max(count - 1, 1)
    return first, wall, cpu, count


def empty_samples() -> dict[str, list[float]]:
    return {key: [] for key in (*PAIRED_KEYS, "delivery_us")}


def measure(
    client: Client, sampler: Sampler, modes: list[tuple[str, bool]], counts: Any
) -> tuple[dict[str, dict[str, list[float]]], int, int, int]:
    """Take every sample once per mode, alternating the modes' order.

    Returns the samples and the events of a paced, a burst and a short stream.

    Sample `i` of every mode comes from the same pair of back-to-back requests,
    so that differences can be taken pair by pair.
    """
    samples = {mode: empty_samples() for mode, _ in modes}
    paced_events = events = short_events = 0

    def each_mode(count: int) -> Iterable[tuple[int, str, bool]]:
        for number in range(count):
            order = modes if number % 2 == 0 else modes[::-1]
            for mode, tracked in order:
                yield number, mode, tracked

    for _, mode, tracked in each_mode(counts.calls):
        samples[mode]["call_us"].append(sampler.run(tracked, lambda: time_call(client)))
    for _, mode, tracked in each_mode(counts.paced):
        first, latencies, paced_events = sampler.run(
            tracked, lambda: time_paced_stream(client)
        )
        samples[mode]["first_event_us"].append(first)
        samples[mode]["delivery_us"].extend(latencies)
        samples[mode]["stream_delivery_us"].append(statistics.median(latencies))
    for _, mode, tracked in each_mode(counts.burst):
        first, wall, cpu, events = sampler.run(
            tracked, lambda: time_burst_stream(client)
        )
        samples[mode]["burst_first_event_us"].append(first)
        samples[mode]["event_wall_us"].append(wall)
        samples[mode]["event_cpu_us"].append(cpu)
        # A short stream right after: the difference of the two CPU totals is
        # the cost of the added events alone, without the per-stream costs.
        _, _, short_cpu, short_events = sampler.run(
            tracked, lambda: time_burst_stream(client, "short")
        )
        samples[mode]["added_cpu_us"].append(
            cpu * (events - 1) - short_cpu * (short_events - 1)
        )
    return samples, paced_events, events, short_events


def prepare_llmfy() -> Any:
    """Import llmfy, discover plugins, patch the SDK; return an unentered tracker."""
    import llmfy

    llmfy.list_plugins()
    with llmfy.llmfy_usage_tracker():
        pass
    return llmfy.llmfy_usage_tracker()


def instrumentation_state(sdk: str) -> dict[str, Any]:
    """Return what llmfy modules are loaded and whether the SDK is patched."""
    state: dict[str, Any] = {"llmfy_imported": "llmfy_core" in sys.modules}
    if state["llmfy_imported"]:
        if sdk == "openai":
            from llmfy_openai import instrument
        else:
            from llmfy_bedrock import instrument
        state["sdk_patched"] = instrument.is_installed()
    return state


def run_client(args: argparse.Namespace) -> None:
    """Measure one SDK in one variant, then print the samples as JSON."""
    tracker = None if args.variant == "bare" else prepare_llmfy()
    client = Client(args.sdk, args.port)
    sampler = Sampler(tracker)
    modes = VARIANT_MODES[args.variant]

    for _, tracked in modes:
        for _ in range(args.warmup):
            sampler.run(tracked, client.call)
        for stream_mode in ("paced", "burst", "short"):
            sampler.run(tracked, lambda mode=stream_mode: list(client.stream(mode)))

    # As in section 1: the objects made so far leave the collector's
    # generations, so that a collection during a stream scans only the new
    # ones. Every variant, bare included, does the same.
    gc.collect()
    gc.freeze()
    samples, paced_events, events, short_events = measure(client, sampler, modes, args)
    result: dict[str, Any] = {
        "modes": samples,
        "paced_events_per_stream": paced_events,
        "events_per_stream": events,
        "short_events_per_stream": short_events,
    }
    if tracker is not None:
        result["recorded"] = tracker.request_count
        result["expected_records"] = sampler.tracked_requests
        result["cost_complete"] = tracker.cost_complete
    result.update(instrumentation_state(args.sdk))
    benchkit.emit(result)


# The section process


def client_environment() -> dict[str, str]:
    """Return the environment for client subprocesses: no AWS lookups."""
    environment = dict(os.environ)
    environment.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "OPENAI_API_KEY": "bench-key",
        }
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "OPENAI_BASE_URL"):
        environment.pop(name, None)
    return environment


def run_section(quick: bool) -> dict[str, Any]:
    """Run every SDK and variant in alternating rounds; return the summaries."""
    from local_server import BenchServer

    rounds = 1 if quick else 3
    counts = (
        {"warmup": 20, "calls": 100, "paced": 4, "burst": 20}
        if quick
        else {"warmup": 50, "calls": 300, "paced": 12, "burst": 200}
    )
    results: dict[str, list[dict[str, Any]]] = {sdk: [] for sdk in SDKS}
    environment = client_environment()
    with BenchServer() as server:
        for number in range(rounds):
            for sdk in SDKS:
                order = VARIANTS if number % 2 == 0 else VARIANTS[::-1]
                for variant in order:
                    progress(f"SDK calls: round {number + 1}/{rounds}, {sdk} {variant}")
                    results[sdk].append(
                        run_client_process(
                            sdk, variant, server.port, counts, environment
                        )
                    )
    first = results["openai"][0]
    return {
        "rounds": rounds,
        "counts": counts,
        "paced_events_per_stream": first["paced_events_per_stream"],
        "events_per_stream": first["events_per_stream"],
        "short_events_per_stream": first["short_events_per_stream"],
        "pace_ms": 1.0,
        **{sdk: summarize_sdk(results[sdk]) for sdk in SDKS},
    }


def run_client_process(
    sdk: str,
    variant: str,
    port: int,
    counts: dict[str, int],
    environment: dict[str, str],
) -> dict[str, Any]:
    """Run one client subprocess and return its samples."""
    command = [
        sys.executable,
        __file__,
        "--client",
        f"--sdk={sdk}",
        f"--variant={variant}",
        f"--port={port}",
        *(f"--{name}={value}" for name, value in counts.items()),
    ]
    completed = subprocess.run(
        command,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"the {sdk} {variant} client failed with exit code "
            f"{completed.returncode}:\n{completed.stderr}"
        )
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    result["variant"] = variant
    return result


def summarize_sdk(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool each mode's samples over the rounds: medians and 95% intervals.

    `compared` contains each comparison's median difference and its noise.
    Between processes (idle and tracked against bare) the noise is the largest
    of the two medians' intervals combined and the spread of either variant's
    process medians between rounds. Within the paired process it is the interval of
    the median of the pair-by-pair differences.
    """
    summary: dict[str, Any] = {}
    for mode in MODES:
        runs = [each["modes"][mode] for each in results if mode in each["modes"]]
        summary[mode] = {
            key: {
                **benchkit.median_with_ci([v for run in runs for v in run[key]]),
                "rounds": [statistics.median(run[key]) for run in runs if run[key]],
            }
            for key in SAMPLE_KEYS
        }

    compared: dict[str, dict[str, Any]] = {"idle": {}, "tracked": {}, "paired": {}}
    paired_runs = [each["modes"] for each in results if each["variant"] == "paired"]
    for key in SAMPLE_KEYS:
        bare = summary["bare"][key]
        for mode in ("idle", "tracked"):
            this = summary[mode][key]
            noise = (this["ci"] ** 2 + bare["ci"] ** 2) ** 0.5
            for rounds in (bare["rounds"], this["rounds"]):
                if len(rounds) > 1:
                    noise = max(noise, max(rounds) - min(rounds))
            compared[mode][key] = {
                "median": this["median"] - bare["median"],
                "ci": noise,
            }
        if key in PAIRED_KEYS:
            differences = [
                tracked - idle
                for run in paired_runs
                for tracked, idle in zip(
                    run["paired_tracked"][key], run["paired_idle"][key], strict=True
                )
            ]
            compared["paired"][key] = benchkit.median_with_ci(differences)
    # CPU per added event: the paired difference of the CPU that a burst
    # stream takes beyond the short one after it, divided by the events
    # between their lengths.
    added = results[0]["events_per_stream"] - results[0]["short_events_per_stream"]
    added_cpu = compared["paired"]["added_cpu_us"]
    compared["paired"]["event_cpu_slope_us"] = {
        "median": added_cpu["median"] / added,
        "ci": added_cpu["ci"] / added,
    }
    summary["compared"] = compared

    llmfy_runs = [each for each in results if each["variant"] != "bare"]
    bare_runs = [each for each in results if each["variant"] == "bare"]
    summary["recorded"] = sum(each["recorded"] for each in llmfy_runs)
    summary["expected_records"] = sum(each["expected_records"] for each in llmfy_runs)
    summary["cost_complete"] = all(each["cost_complete"] for each in llmfy_runs)
    summary["bare_imported_llmfy"] = any(each["llmfy_imported"] for each in bare_runs)
    summary["sdk_patched"] = all(each.get("sdk_patched") for each in llmfy_runs)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--client", action="store_true")
    parser.add_argument("--sdk", choices=SDKS)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--paced", type=int, default=3)
    parser.add_argument("--burst", type=int, default=5)
    args = parser.parse_args()
    if args.client:
        run_client(args)
    else:
        benchkit.emit(run_section(args.quick))


if __name__ == "__main__":
    main()
