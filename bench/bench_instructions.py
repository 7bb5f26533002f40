"""Section 7: the close comparisons again, in instructions counted by valgrind.

Timed figures on a shared 2-core machine move by tens of percent between
runs, and that decides two comparisons. One is recording a Bedrock response
next to langchain-community's handler. The other is llmfy's work per stream
event, a fraction of a microsecond beside the SDK's own work per event. The
CPU instructions that a process executes do not move with machine load.

A child process runs under `valgrind --tool=callgrind` with
`PYTHONHASHSEED=0`. Before each measured loop it calls `os.getppid()`, where
callgrind's `--zero-before` option zeroes the counts, and after it
`os.getpgrp()`, where `--dump-before` writes them out. Imports and warm-up are thus
left out, and each loop's count is read from its own file.

- Recording: each candidate of section 1 that timing cannot separate from
  llmfy is called 2,000 times to warm up, then N times.
- Streams: the child reads streams from the local server of sections 2 and 3
  (run in this process, which valgrind does not count), after warm-up
  streams with and without a tracker. 600-event minus 50-event streams
  leaves the cost of the added events, and streams with a tracker active
  minus streams without it what llmfy adds.
- First event: the child then counts, stream by stream, the instructions
  from the SDK call to the first event of short streams, without and with
  a tracker in turn. The median of the pairs' differences is what llmfy
  adds before the first event.

Instructions convert to time at a measured rate: for recording, that of
llmfy's recording loop timed outside valgrind; for streams, the SDK's
instructions per event over its CPU time per event, timed outside valgrind.
Code runs at different rates, so these are estimates.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
from benchkit import progress

WARMUP_CALLS = 2_000
# The candidates of section 1 whose times are within noise of llmfy's, by
# library and call (None: the library's only candidate). The other
# alternatives take 20 to 100 times longer, which timing settles.
RECORDING_CANDIDATES = (
    ("llmfy", "record_response (keeps every request)"),
    ("llmfy", "record_response, keep_requests=False"),
    ("langchain-core", None),
    ("langchain-community", None),
)
# The streams of each measured loop, in order: tracker mode and stream kind.
STREAM_LOOPS = (
    ("idle", "burst"),
    ("idle", "short"),
    ("tracked", "burst"),
    ("tracked", "short"),
)
SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)


def find_candidate(case: str, library: str, call: str | None) -> Any:
    """Return the section 1 candidate of `library` (and `call`, when given)."""
    import bench_recording

    if library == "llmfy":
        candidates = bench_recording.llmfy_candidates(case)
    else:
        candidates = bench_recording.alternative_candidates(case)
    for candidate in candidates:
        if candidate.library == library and call in (None, candidate.call):
            return candidate
    raise LookupError(f"no candidate {library} {call} for {case}")


def freeze_objects() -> None:
    """Take the objects made so far out of the collector's generations.

    Sections 1 to 3 do the same, so that a collection in a measured loop
    scans only the objects made since. With the alternatives imported, the
    collector tracks about half a million objects.
    """
    benchkit.full_collect()
    gc.freeze()


def measured(loop: Any) -> None:
    """Run `loop` between the points where callgrind zeroes and writes its counts."""
    gc.collect()
    os.getppid()
    loop()
    os.getpgrp()


def run_recording_child(case: str, calls: int) -> None:
    """Warm up and call each recording candidate `calls` times."""
    candidates = [
        find_candidate(case, library, call) for library, call in RECORDING_CANDIDATES
    ]
    for candidate in candidates:
        with candidate.start_round() as record:
            for _ in range(WARMUP_CALLS):
                record()
    freeze_objects()
    for candidate in candidates:
        with candidate.start_round() as record:
            for _ in range(WARMUP_CALLS):
                record()

            def loop() -> None:
                for _ in range(calls):
                    record()

            measured(loop)


def run_stream_child(
    sdk: str, port: int, streams: int, pairs: int, timed: bool
) -> None:
    """Read `streams` streams per loop of `STREAM_LOOPS`, after warming up.

    Then count `pairs` first events, one stream without a tracker and one
    with it in turn. When `timed`, read streams without a tracker only,
    outside valgrind, and print the CPU µs per stream of each kind.
    """
    import bench_sdk

    tracker = bench_sdk.prepare_llmfy()
    client = bench_sdk.Client(sdk, port)

    def read(kind: str) -> None:
        for _ in range(streams):
            for _ in client.stream(kind):
                pass

    for kind in ("burst", "short"):
        read(kind)
        with tracker:
            read(kind)
    freeze_objects()
    if timed:
        for kind in ("burst", "short"):
            started = time.thread_time_ns()
            read(kind)
            print(kind, (time.thread_time_ns() - started) / streams / 1000)
        return
    for mode, kind in STREAM_LOOPS:
        if mode == "tracked":
            with tracker:
                measured(lambda kind=kind: read(kind))
        else:
            measured(lambda kind=kind: read(kind))

    def first_event() -> None:
        # A tracked stream is read to its end inside the tracker, which records it.
        events = iter(client.stream("short"))
        measured(lambda: next(events))
        for _ in events:
            pass

    for _ in range(pairs):
        first_event()
        with tracker:
            first_event()


def count_loops(arguments: list[str], loops: int) -> list[int]:
    """Run this script's child under callgrind; return the instructions of each loop."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={output}",
            "--zero-before=os_getppid",
            "--dump-before=os_getpgrp",
            sys.executable,
            __file__,
            "--child",
            *arguments,
        ]
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        completed = subprocess.run(
            command, capture_output=True, text=True, env=environment, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"callgrind run {arguments} failed: {completed.stderr[-2000:]}"
            )
        counts = []
        for number in range(1, loops + 1):
            found = SUMMARY.search(Path(f"{output}.{number}").read_text())
            if found is None:
                raise RuntimeError(f"no summary in callgrind dump {number}")
            counts.append(int(found.group(1)))
        return counts


def recording_counts(calls: int) -> list[dict[str, Any]]:
    """Return the instructions per recorded request of each candidate and case."""
    rows = []
    for case in ("openai", "bedrock"):
        progress(f"callgrind: recording {case} responses")
        counts = count_loops(["recording", case, str(calls)], len(RECORDING_CANDIDATES))
        for (library, call), count in zip(RECORDING_CANDIDATES, counts, strict=True):
            rows.append(
                {
                    "case": case,
                    "library": library,
                    "call": call or find_candidate(case, library, call).call,
                    "instructions": count / calls,
                }
            )
    return rows


def stream_counts(streams: int, pairs: int) -> dict[str, Any]:
    """Return the instructions per stream, per added event and to the first event."""
    from local_server import BURST_STREAM_EVENTS, SHORT_STREAM_EVENTS, BenchServer

    added_events = BURST_STREAM_EVENTS - SHORT_STREAM_EVENTS
    result: dict[str, Any] = {
        "streams": streams,
        "added_events": added_events,
        "first_event_pairs": pairs,
    }
    with BenchServer(max_lifetime=1800) as server:
        for sdk in ("openai", "bedrock"):
            progress(f"callgrind: {sdk} streams")
            arguments = ["stream", sdk, str(server.port), str(streams), str(pairs)]
            counts = count_loops(arguments, len(STREAM_LOOPS) + 2 * pairs)
            loops = dict(zip(STREAM_LOOPS, counts[: len(STREAM_LOOPS)], strict=True))
            firsts = counts[len(STREAM_LOOPS) :]
            idle_firsts, tracked_firsts = firsts[0::2], firsts[1::2]
            per_event = {
                mode: (loops[mode, "burst"] - loops[mode, "short"])
                / streams
                / added_events
                for mode in ("idle", "tracked")
            }
            added_per_event = per_event["tracked"] - per_event["idle"]
            # A tracked short stream costs its events plus what llmfy does
            # once per stream: setting up the watch and recording the usage.
            per_stream = (loops["tracked", "short"] - loops["idle", "short"]) / streams
            result[sdk] = {
                "sdk_per_event": per_event["idle"],
                "sdk_event_us": timed_event_us(sdk, server.port, added_events),
                "added_per_event": added_per_event,
                "added_per_stream": per_stream - SHORT_STREAM_EVENTS * added_per_event,
                "sdk_first_event": statistics.median(idle_firsts),
                "added_first_event": statistics.median(
                    tracked - idle
                    for idle, tracked in zip(idle_firsts, tracked_firsts, strict=True)
                ),
            }
    return result


def timed_event_us(sdk: str, port: int, added_events: int) -> float:
    """Return the SDK's median CPU µs per added event, timed outside valgrind."""
    command = [sys.executable, __file__, "--child", "stream", sdk, str(port), "10", "0"]
    samples = []
    for _ in range(5):
        completed = subprocess.run(
            [*command, "--timed"],
            capture_output=True,
            text=True,
            check=True,
        )
        per_stream = dict(line.split() for line in completed.stdout.splitlines())
        burst, short = float(per_stream["burst"]), float(per_stream["short"])
        samples.append((burst - short) / added_events)
    return statistics.median(samples)


def instructions_per_us(rows: list[dict[str, Any]]) -> float:
    """Return the instructions per µs of llmfy's OpenAI recording loop here."""
    library, call = RECORDING_CANDIDATES[0]
    candidate = find_candidate("openai", library, call)
    with candidate.start_round() as record:
        count = benchkit.calibrate(record, 0.1)
        samples = [benchkit.time_round_us(record, count) for _ in range(15)]
    instructions = next(
        row["instructions"]
        for row in rows
        if row["case"] == "openai" and row["call"] == call
    )
    return instructions / statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--timed", action="store_true")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "recording":
            run_recording_child(rest[0], int(rest[1]))
        else:
            sdk, port, streams, pairs = rest
            run_stream_child(sdk, int(port), int(streams), int(pairs), args.timed)
        return
    if shutil.which("valgrind") is None:
        progress("skipped: valgrind is not installed")
        benchkit.emit({"skipped": "valgrind is not installed"})
        return
    calls = 2_000 if args.quick else 20_000
    recording = recording_counts(calls)
    benchkit.emit(
        {
            "recording_calls": calls,
            "recording": recording,
            "streams": stream_counts(*((1, 2) if args.quick else (6, 8))),
            "instructions_per_us": instructions_per_us(recording),
        }
    )


if __name__ == "__main__":
    main()
