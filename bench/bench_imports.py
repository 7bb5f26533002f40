"""Section 4: import time in a fresh interpreter, minus a bare interpreter.

Each command runs in its own `python -c` process. The commands run in
interleaved rounds after one unmeasured run each, which writes the bytecode
and warms the file cache. The figure is the median wall time minus the median
of `python -c pass`. A separate run
checks that importing llmfy and discovering its plugins leaves the provider
SDKs unimported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import benchkit
from benchkit import progress

# (label, code, slow): slow imports get fewer rounds to keep the run bounded.
COMMANDS = [
    ("python -c pass", "pass", False),
    ("import llmfy", "import llmfy", False),
    ("import llmfy + list_plugins()", "import llmfy; llmfy.list_plugins()", False),
    (
        "import llmfy + list_plugins() + first recorded request",
        "import first_record",
        False,
    ),
    ("import genai_prices", "import genai_prices", False),
    (
        "import langchain_core UsageMetadataCallbackHandler",
        "from langchain_core.callbacks import UsageMetadataCallbackHandler",
        False,
    ),
    (
        "import langchain_community OpenAICallbackHandler",
        "from langchain_community.callbacks.openai_info import OpenAICallbackHandler",
        True,
    ),
    ("import tokencost", "import tokencost", True),
    ("import litellm (local cost map)", "import litellm", True),
    ("import openai (for reference)", "import openai", False),
    ("import boto3 (for reference)", "import boto3", False),
]

CHECK_CODE = """
import sys, json
import llmfy
plugins = llmfy.list_plugins()
print(json.dumps({
    "plugins": [[p.name, p.distribution, p.version, p.error] for p in plugins],
    "sdk_modules": sorted(
        name for name in ("openai", "boto3", "botocore", "httpx2", "httpx")
        if name in sys.modules
    ),
    "modules_loaded": len(sys.modules),
}))
"""


def environment() -> dict[str, str]:
    """Return the environment for the measured interpreters."""
    variables = dict(os.environ)
    variables["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    variables["PYTHONPATH"] = str(benchkit.BENCH_DIR)
    variables["PYTHONWARNINGS"] = "ignore"
    return variables


def time_once(code: str, variables: dict[str, str]) -> float:
    """Return the wall time of one `python -c code` run, in milliseconds."""
    started = time.perf_counter_ns()
    subprocess.run(
        [sys.executable, "-c", code],
        env=variables,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    return (time.perf_counter_ns() - started) / 1e6


def check_discovery(variables: dict[str, str]) -> dict[str, Any]:
    """Return the discovered plugins and which SDK modules got imported."""
    completed = subprocess.run(
        [sys.executable, "-c", CHECK_CODE],
        env=variables,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def main() -> None:
    quick = benchkit.quick_mode()
    rounds = 4 if quick else 11
    slow_rounds = 1 if quick else 4
    variables = environment()
    samples: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    progress("imports: one unmeasured run of each command")
    for _, code, _ in COMMANDS:
        time_once(code, variables)
    for number in range(rounds):
        for label, code, slow in COMMANDS:
            if slow and number >= slow_rounds:
                continue
            samples[label].append(time_once(code, variables))
        progress(f"imports: round {number + 1}/{rounds} done")

    bare = statistics.median(samples["python -c pass"])
    rows = []
    for label, code, _ in COMMANDS:
        median = statistics.median(samples[label])
        rows.append(
            {
                "label": label,
                "code": code,
                "median_ms": median,
                "above_bare_ms": median - bare,
                "samples_ms": samples[label],
            }
        )
    benchkit.emit({"rows": rows, "discovery": check_discovery(variables)})


if __name__ == "__main__":
    main()
