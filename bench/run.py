"""Run llmfy's benchmark suite and print the results side by side.

Usage: `bash bench/run [--quick] [--only SECTIONS] [--markdown FILE]`.

On first use, and whenever `requirements.txt` or a measured package's
`pyproject.toml` changes, this creates the virtualenv `bench/.venv`. It
installs the alternatives and the SDKs at the versions pinned in
`requirements.txt`, and this checkout's llmfy core, OpenAI plugin and Bedrock
plugin (editable), then runs itself again inside the virtualenv. Each section
runs in its own process. The results are printed as tables and saved as JSON in
`bench/results/`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venv"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
EDITABLE = [REPO_DIR, REPO_DIR / "plugins" / "openai", REPO_DIR / "plugins" / "bedrock"]
RESULTS_DIR = BENCH_DIR / "results"
# The code whose uncommitted changes the results mention.
MEASURED_PATHS = ["llmfy_core", "llmfy", "plugins/openai", "plugins/bedrock"]

SECTIONS = {
    "recording": "bench_recording.py",
    "sdk": "bench_sdk.py",
    "imports": "bench_imports.py",
    "memory": "bench_memory.py",
    "scaling": "bench_scaling.py",
    "instructions": "bench_instructions.py",
}
# Upper bounds per section in seconds. The SDK section of a full run took 575
# to over 600 seconds on 2 cores, the others about 50 seconds each.
SECTION_TIMEOUT = {
    "recording": 300,
    "sdk": 1200,
    "imports": 600,
    "memory": 600,
    "instructions": 1800,
}
DEFAULT_TIMEOUT = 600


# The virtualenv


def venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def install_stamp() -> str:
    """Return a digest of everything the virtualenv's contents depend on."""
    digest = hashlib.sha256(sys.version.encode())
    digest.update(REQUIREMENTS.read_bytes())
    for path in EDITABLE:
        digest.update((path / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create or update `bench/.venv`, then run this script again inside it."""
    # bench/run may start this script with an older python3 than the project's.
    if sys.version_info < (3, 11):  # noqa: UP036
        raise SystemExit(
            f"The benchmarks need Python 3.11 or newer; {sys.executable} is "
            f"{platform.python_version()}. Run them with `PYTHON=python3.11 bash "
            "bench/run`."
        )
    stamp_file = VENV_DIR / "llmfy-bench-stamp"
    stamp = install_stamp()
    if not venv_python().exists():
        print(f"Creating {VENV_DIR} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        print(
            "Installing the alternatives, the SDKs and llmfy into bench/.venv "
            "(a few minutes the first time) ...",
            file=sys.stderr,
            flush=True,
        )
        command = [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ]
        for path in EDITABLE:
            command += ["-e", str(path)]
        subprocess.run(command, check=True)
        stamp_file.write_text(stamp)
    os.execv(str(venv_python()), [str(venv_python()), __file__, *sys.argv[1:]])


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV_DIR.resolve()


# Running the sections


def run_section(name: str, quick: bool, extra: list[str]) -> dict[str, Any]:
    """Run one section in its own process and return its JSON result."""
    command = [sys.executable, str(BENCH_DIR / SECTIONS[name])]
    if quick:
        command.append("--quick")
    command += extra
    print(f"\n[{name}] {shlex.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=BENCH_DIR,
        stdout=subprocess.PIPE,
        text=True,
        timeout=SECTION_TIMEOUT.get(name, DEFAULT_TIMEOUT),
        check=False,
    )
    seconds = time.perf_counter() - started
    print(f"[{name}] done in {seconds:.0f} s", file=sys.stderr, flush=True)
    if completed.returncode != 0:
        raise RuntimeError(
            f"section {name} failed with exit code {completed.returncode}"
        )
    lines = completed.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    result["seconds"] = seconds
    return result


def machine_info() -> dict[str, Any]:
    """Describe the machine: cores, CPU model, memory, Python, load."""
    cpu_model = "unknown"
    memory_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": memory_kib / 1024 / 1024,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_before": list(os.getloadavg()),
    }


def commit_description() -> str:
    """Return the checkout's commit, marked when the measured code has changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "-C",
                str(REPO_DIR),
                "status",
                "--porcelain",
                *MEASURED_PATHS,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (
        " with uncommitted changes to the measured code" if changed else ""
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run llmfy's benchmarks next to the alternatives."
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and requests (~1 minute)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--markdown", type=Path, help="also write the tables as Markdown to FILE"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of llmfy's recording path (recording section)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="run nothing: print the tables of results saved in FILE",
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(
            f"unknown section(s) {', '.join(unknown)}; "
            f"choose from {', '.join(SECTIONS)}"
        )

    if not in_venv():
        ensure_venv()

    # Installed applications load compiled bytecode. This environment may set
    # PYTHONDONTWRITEBYTECODE, which would recompile llmfy's editable sources in
    # every process; the sections write bytecode under bench/.venv instead.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(VENV_DIR / "pycache")

    sys.path.insert(0, str(BENCH_DIR))
    import benchkit

    if args.from_json is not None:
        saved: dict[str, Any] = json.loads(args.from_json.read_text())
        print_results(saved, args.markdown)
        return 1 if saved["failed"] else 0

    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "bash bench/run" + (" --quick" if args.quick else ""),
        "started_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": commit_description(),
        "machine": machine_info(),
        "versions": benchkit.library_versions(),
        "sections": {},
        "failed": {},
    }
    for name in chosen:
        extra = ["--profile"] if args.profile and name == "recording" else []
        try:
            results["sections"][name] = run_section(name, args.quick, extra)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
            print(f"[{name}] FAILED: {error}", file=sys.stderr, flush=True)
            results["failed"][name] = str(error)
    results["seconds"] = time.perf_counter() - started
    results["machine"]["load_after"] = list(os.getloadavg())

    RESULTS_DIR.mkdir(exist_ok=True)
    name = "quick" if args.quick else "full"
    if set(chosen) != set(SECTIONS):
        # A run of some sections does not replace the last run of all of them.
        name += "-some"
    (RESULTS_DIR / f"last-{name}.json").write_text(json.dumps(results, indent=1))
    print_results(results, args.markdown)
    return 1 if results["failed"] else 0


def print_results(results: dict[str, Any], markdown: Path | None) -> None:
    """Print the tables of `results`, and write them as Markdown to `markdown`."""
    import report

    tables = report.build_tables(results)
    print()
    print("\n".join(report.machine_lines(results)))
    for table in tables:
        print()
        print(report.as_text(table))
    for section, error in results["failed"].items():
        print(f"\nSection {section} FAILED: {error}")
    if markdown is not None:
        body = "\n".join(f"- {line}" for line in report.machine_lines(results))
        body += "\n\n" + "\n\n".join(report.as_markdown(table) for table in tables)
        markdown.write_text(body + "\n")
        print(f"\nMarkdown written to {markdown}")


if __name__ == "__main__":
    sys.exit(main())
