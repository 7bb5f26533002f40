"""Tables of the benchmark results, as plain text and as Markdown.

Each section's results become `Table`s with a title, rows and notes; the
notes state each target, the figure compared with it, and whether it is met.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

RECORDING_TARGET_US = 2.0
CHUNK_TARGET_US = 1.0
IMPORT_TARGET_MS = 60.0
KEPT_TARGET_BYTES = 256
# Totals-only memory counts as constant when it grows by less than this many
# bytes per request between the first and the last checkpoint.
FLAT_MEMORY_BYTES_PER_REQUEST = 0.01
# The cost per request counts as flat when the largest figure is at most this
# many times the smallest, from 10^3 to 10^6 requests.
FLAT_COST_RATIO = 1.3


@attrs.frozen
class Table:
    """One table of results: title, column names, rows of text, and notes."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: Sequence[str] = ()


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def us(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def ratio(value: float, reference: float) -> str:
    if reference <= 0:
        return "-"
    return f"{value / reference:,.2f}x"


def signed(value: float, digits: int = 1) -> str:
    return f"{value:+,.{digits}f}"


# Section 1


def recording_tables(result: dict[str, Any]) -> list[Table]:
    titles = {
        "openai": "1. Recording one OpenAI Chat Completion (gpt-4o-mini, 1,280 of "
        "1,370 input tokens cached) in an active tracker",
        "bedrock": "1. Recording one Bedrock Converse response (Claude Sonnet 4, "
        "us-east-1, 1,712 cache-read and 236 cache-write tokens) in an "
        "active tracker",
    }
    tables = []
    for case in ("openai", "bedrock"):
        rows = result[case]["rows"]
        llmfy = rows[0]["median"]
        lines = []
        for row in rows:
            lines.append(
                [
                    row["library"],
                    row["call"],
                    us(row["median"]),
                    f"{us(row['min'])}-{us(row['max'])}",
                    ratio(row["median"], llmfy),
                    row["cost_usd"] or "-",
                    row["note"],
                ]
            )
        alternatives = [
            row
            for row in rows
            if row["library"] not in ("llmfy", "llmfy (part)", "(loop)")
        ]
        slower = [row for row in alternatives if row["median"] <= llmfy]
        notes = [
            f"Target: at most {RECORDING_TARGET_US:g} µs median: llmfy "
            f"{us(llmfy)} µs, {verdict(llmfy <= RECORDING_TARGET_US)}.",
            "Target: below every alternative: "
            + (
                verdict(True)
                if not slower
                else verdict(False)
                + " (faster than llmfy: "
                + ", ".join(f"{row['library']} {row['call']}" for row in slower)
                + ")"
            )
            + ".",
            "Each alternative's figure covers less work than llmfy's unless its "
            "note says otherwise: see the notes column.",
        ]
        tables.append(
            Table(
                titles[case],
                [
                    "library",
                    "call",
                    "median µs",
                    "range µs",
                    "vs llmfy",
                    "cost USD",
                    "note",
                ],
                lines,
                notes,
            )
        )
    return tables


# Sections 2 and 3

BASELINE = {"bare": None, "idle": "bare", "tracked": "idle"}
COMPARISON = {"idle": "idle_vs_bare", "tracked": "tracked_vs_idle"}


def difference(summary: dict[str, Any], mode: str, key: str) -> tuple[float, float]:
    """Return a mode's difference from its baseline, and the 95% noise of that."""
    if mode not in COMPARISON:
        return 0.0, 0.0
    compared = summary[COMPARISON[mode]][key]
    return compared["median"], compared["ci"]


def delta_cell(summary: dict[str, Any], mode: str, key: str, digits: int = 1) -> str:
    if mode not in COMPARISON:
        return "-"
    delta, noise = difference(summary, mode, key)
    return f"{signed(delta, digits)} ±{noise:,.{digits}f}"


def bounded(delta: float, noise: float, limit: float) -> str:
    """Judge `delta <= limit` when `delta` is only known to within `noise`."""
    if math.isnan(noise):
        return "NOT RESOLVED (too few samples)"
    if delta + noise <= limit:
        return verdict(True)
    if delta - noise > limit:
        return verdict(False)
    return "NOT RESOLVED (within noise)"


def sdk_tables(result: dict[str, Any]) -> list[Table]:
    call_rows = []
    notes = []
    for sdk in ("openai", "bedrock"):
        summary = result[sdk]
        for mode in ("bare", "idle", "tracked"):
            calls = summary[mode]["call_us"]
            call_rows.append(
                [
                    sdk,
                    mode,
                    us(calls["median"]),
                    BASELINE[mode] or "-",
                    delta_cell(summary, mode, "call_us"),
                    ", ".join(us(each) for each in calls["rounds"]),
                ]
            )
        idle, idle_noise = difference(summary, "idle", "call_us")
        tracked, tracked_noise = difference(summary, "tracked", "call_us")
        priced = "all priced" if summary["cost_complete"] else "NOT all priced"
        notes.append(
            f"{sdk}: with no tracker active, llmfy adds {signed(idle)} µs per call "
            f"(noise ±{idle_noise:,.1f} µs): within noise "
            f"{verdict(idle <= idle_noise)}. An active tracker adds "
            f"{signed(tracked)} µs ±{tracked_noise:,.1f} µs and recorded "
            f"{summary['recorded']:,} of {summary['expected_records']:,} tracked "
            f"requests, {priced}."
        )
        if summary["bare_imported_llmfy"] or not summary["sdk_patched"]:
            notes.append(f"{sdk}: WARNING: the variants were not isolated as intended.")
    counts = result["counts"]
    calls_table = Table(
        "2. One SDK call against a local server (median µs per call)",
        ["sdk", "mode", "median µs", "compared with", "difference µs", "round medians"],
        call_rows,
        [
            "bare: llmfy not imported in the process. idle: llmfy imported, plugins "
            "discovered and the SDK patched, no tracker active. tracked: a tracker "
            "active; idle and tracked alternate request by request in one process.",
            "tracked against idle: median of the differences request by request; "
            "± is its 95% interval (1.57 IQR/sqrt(n)). idle against bare: "
            "difference of the medians of separate processes; ± combines both "
            "intervals, or the spread of bare medians between rounds if larger. "
            f"{counts['calls']} calls per mode and process, {result['rounds']} "
            "round(s).",
            *notes,
        ],
    )

    stream_rows = []
    stream_notes = []
    for sdk in ("openai", "bedrock"):
        summary = result[sdk]
        for mode in ("bare", "idle", "tracked"):
            row = summary[mode]
            stream_rows.append(
                [
                    sdk,
                    mode,
                    us(row["first_event_us"]["median"]),
                    delta_cell(summary, mode, "first_event_us", 0),
                    us(row["delivery_us"]["median"]),
                    delta_cell(summary, mode, "stream_delivery_us"),
                    us(row["event_cpu_us"]["median"]),
                    delta_cell(summary, mode, "event_cpu_us", 2),
                    us(row["event_wall_us"]["median"]),
                ]
            )
        first, first_noise = difference(summary, "tracked", "first_event_us")
        delivery, delivery_noise = difference(summary, "tracked", "stream_delivery_us")
        per_event, event_noise = difference(summary, "tracked", "event_cpu_us")
        stream_notes.append(
            f"{sdk}: an active tracker adds {signed(first, 0)} µs ±{first_noise:,.0f} "
            f"to the first event: no added time "
            f"{verdict(first <= first_noise)}. It adds {signed(delivery)} µs "
            f"±{delivery_noise:,.1f} to each event's delivery and "
            f"{signed(per_event, 2)} ±{event_noise:,.2f} CPU µs per event: at most "
            f"{CHUNK_TARGET_US:g} µs per event "
            f"{bounded(per_event, event_noise, CHUNK_TARGET_US)}."
        )
    streams_table = Table(
        f"3. Streams of {result['events_per_stream']} events (medians)",
        [
            "sdk",
            "mode",
            "first event µs",
            "difference",
            "delivery µs",
            "difference",
            "CPU µs/event",
            "difference",
            "wall µs/event",
        ],
        stream_rows,
        [
            "Differences as in section 2: idle against bare, tracked against idle "
            "(stream by stream; for delivery, of each stream's median).",
            "first event: from the call to the first event in the application; "
            "delivery: from the server's write of an event to the application; "
            f"the server paces events {result['pace_ms']:g} ms apart "
            f"({counts['paced']} streams per mode and process).",
            "CPU µs/event and wall µs/event: every event written at once, time per "
            f"event after the first ({counts['burst']} streams per mode and "
            "process).",
            *stream_notes,
        ],
    )
    return [calls_table, streams_table]


# Section 4


def import_tables(result: dict[str, Any]) -> list[Table]:
    rows = result["rows"]
    llmfy_row = next(
        row for row in rows if row["label"] == "import llmfy + list_plugins()"
    )
    lines = []
    for row in rows:
        lines.append(
            [
                row["label"],
                f"{row['median_ms']:,.1f}",
                f"{row['above_bare_ms']:,.1f}",
                ratio(row["above_bare_ms"], llmfy_row["above_bare_ms"])
                if row["above_bare_ms"] > 0
                else "-",
                str(len(row["samples_ms"])),
            ]
        )
    discovery = result["discovery"]
    plugins = ", ".join(
        f"{name} ({distribution} {version})" + (f" FAILED: {error}" if error else "")
        for name, distribution, version, error in discovery["plugins"]
    )
    sdks = discovery["sdk_modules"]
    above = llmfy_row["above_bare_ms"]
    notes = [
        f"Plugins discovered: {plugins}.",
        "SDK modules imported by `import llmfy; llmfy.list_plugins()`: "
        + (", ".join(sdks) if sdks else "none")
        + f" (openai and boto3 not imported: {verdict(not sdks)}).",
        f"Target: import + discovery at most {IMPORT_TARGET_MS:g} ms above a bare "
        f"interpreter: {above:,.1f} ms, {verdict(above <= IMPORT_TARGET_MS)}.",
    ]
    return [
        Table(
            "4. Import time in a fresh interpreter (median wall ms)",
            ["command", "median ms", "above bare ms", "vs llmfy", "runs"],
            lines,
            notes,
        )
    ]


# Section 5


def memory_tables(result: dict[str, Any]) -> list[Table]:
    kept_rows = []
    notes = []
    for case in ("openai", "bedrock"):
        kept = result["kept"][case]
        kept_rows.append(
            [
                case,
                f"{kept['requests']:,}",
                f"{kept['bytes_per_request']:,.0f}",
                "; ".join(
                    f"{site['site']} {site['bytes_per_request']:,.0f}"
                    for site in kept["top_sites"][:5]
                    if site["bytes_per_request"] >= 1
                ),
            ]
        )
        per_request = kept["bytes_per_request"]
        notes.append(
            f"Target: at most {KEPT_TARGET_BYTES} bytes per kept request ({case}): "
            f"{per_request:,.0f} bytes, {verdict(per_request <= KEPT_TARGET_BYTES)}."
        )
    notes.append(
        "Each request has its own response object and request id, so the "
        "figures include the strings a record keeps (served model id, request "
        "id); allocation sites are file:line with bytes per request."
    )
    points = result["totals_only"]["points"]
    growth = (points[-1]["retained_bytes"] - points[0]["retained_bytes"]) / (
        points[-1]["requests"] - points[0]["requests"]
    )
    totals_rows = [
        [f"{point['requests']:,}", f"{point['retained_bytes']:,}"] for point in points
    ]
    return [
        Table(
            "5. Memory retained per kept request (tracemalloc)",
            ["response", "requests", "bytes/request", "largest allocation sites"],
            kept_rows,
            notes,
        ),
        Table(
            "5. Memory retained with keep_requests=False (tracemalloc)",
            ["requests", "retained bytes"],
            totals_rows,
            [
                f"Growth {growth:,.4f} bytes per request from the first to the last "
                "checkpoint; constant memory (less than "
                f"{FLAT_MEMORY_BYTES_PER_REQUEST} bytes per request): "
                f"{verdict(growth < FLAT_MEMORY_BYTES_PER_REQUEST)}."
            ],
        ),
    ]


# Section 6


def scaling_tables(result: dict[str, Any]) -> list[Table]:
    growth = result["growth"]
    counts = sorted({row["requests"] for row in growth})
    by_key = {(row["keep_requests"], row["requests"]): row for row in growth}
    rows = [
        [
            f"{count:,}",
            us(by_key[(True, count)]["us_per_request"]),
            us(by_key[(False, count)]["us_per_request"]),
        ]
        for count in counts
    ]
    notes = []
    for keep, label in ((True, "keeping every request"), (False, "totals only")):
        values = [by_key[(keep, count)]["us_per_request"] for count in counts]
        spread_ratio = max(values) / min(values)
        notes.append(
            f"Target: flat cost per request, {label}: largest/smallest "
            f"{spread_ratio:.2f} (flat means at most {FLAT_COST_RATIO}): "
            f"{verdict(spread_ratio <= FLAT_COST_RATIO)}."
        )
    growth_table = Table(
        "6. Mean µs per request by the number of requests in one tracker",
        ["requests", "keep every request", "keep_requests=False"],
        rows,
        notes,
    )

    plugin_rows = []
    plugins = result["plugins"]
    zero = plugins["0 extra"]["median"]
    for label, summary in plugins.items():
        plugin_rows.append(
            [label, us(summary["median"]), ratio(summary["median"], zero)]
        )
    nesting_rows = []
    nesting = result["nesting"]
    one = nesting["1 levels"]["median"]
    for label, summary in nesting.items():
        levels = int(label.split()[0])
        nesting_rows.append(
            [
                str(levels),
                us(summary["median"]),
                ratio(summary["median"], one),
                us(summary["median"] / levels),
            ]
        )
    return [
        growth_table,
        Table(
            "6. Median µs per request with extra plugins registered",
            ["extra plugins", "median µs", "vs none"],
            plugin_rows,
            [
                "Each extra plugin implements usage_extract and price_lookup and "
                "answers None."
            ],
        ),
        Table(
            "6. Median µs per request recorded by nested trackers",
            ["levels", "median µs", "vs 1 level", "µs per tracker"],
            nesting_rows,
            ["Every level counts the request, so the work grows with the levels."],
        ),
    ]


RENDERERS = {
    "recording": recording_tables,
    "sdk": sdk_tables,
    "imports": import_tables,
    "memory": memory_tables,
    "scaling": scaling_tables,
}


def build_tables(results: dict[str, Any]) -> list[Table]:
    """Return the tables of every section present in `results`."""
    tables = []
    for section, render in RENDERERS.items():
        if section in results.get("sections", {}):
            tables.extend(render(results["sections"][section]))
    return tables


# Rendering


def as_text(table: Table) -> str:
    """Render a table as aligned plain text with its notes below."""
    widths = [len(column) for column in table.columns]
    for row in table.rows:
        widths = [
            max(width, len(cell)) for width, cell in zip(widths, row, strict=True)
        ]
    lines = [table.title, "=" * min(len(table.title), 100)]
    lines.append(
        "  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True))
    )
    lines.append("  ".join("-" * width for width in widths))
    for row in table.rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    lines.extend(f"  * {note}" for note in table.notes)
    return "\n".join(line.rstrip() for line in lines)


def as_markdown(table: Table) -> str:
    """Render a table as a Markdown table with its notes as a list."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(cell(each) for each in row) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {note}" for note in table.notes)
    return "\n".join(lines)


def machine_lines(results: dict[str, Any]) -> list[str]:
    """Describe the machine, the interpreter and the code the results are for."""
    machine = results["machine"]
    load_before = ", ".join(f"{value:.2f}" for value in machine["load_before"])
    load_after = ", ".join(f"{value:.2f}" for value in machine["load_after"])
    return [
        f"Command: {results['command']}",
        f"Date (UTC): {results['started_utc']}; duration {results['seconds']:.0f} s",
        f"Machine: {machine['nproc']} cores (nproc), {machine['cpu_model']}, "
        f"{machine['memory_gib']:.0f} GiB",
        f"Python: {machine['python']} ({machine['implementation']}), "
        f"{machine['platform']}",
        f"Load average (1, 5, 15 min): {load_before} before, {load_after} after",
        f"llmfy commit: {results['commit']}",
        "Versions: "
        + ", ".join(
            f"{name} {version}" for name, version in results["versions"].items()
        ),
    ]
