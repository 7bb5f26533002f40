"""`llmfy report`: usage and cost totals of recorded requests, read from files."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import attrs

from llmfy_core.model import RequestRecord
from llmfy_core.pricing import suggested_name
from llmfy_core.report import totals_dict
from llmfy_core.resolver import PriceResolver
from llmfy_core.totals import ModelTotals
from llmfy_core.tracker import UsageTracker, llmfy_usage_tracker

from .lookup import (
    KnownPrices,
    PriceQuery,
    check_region,
    misspelt_model,
    region_advice,
    regions_with_price,
)
from .output import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_UNPRICED,
    RECORD_PLACE,
    CliError,
    count_of,
    money,
    print_json,
    render_table,
)
from .prices_command import add_prices_option, non_empty_text
from .progress import Progress
from .readers import STDIN_PATH, InputFile, ReadFailure, Record, stat_input
from .sources import describe_unpriced, use_price_file
from .usage_reader import (
    Reading,
    RecordError,
    Skipped,
    StreamChunk,
    UsageReader,
    readable_providers,
)

SCHEMA = "llmfy.report/1"
MAX_FAILURES_SHOWN = 20
UNKNOWN_MODEL = "unknown"
"""The model id that the provider plugins give a request whose model is not known."""


def add_parser(commands: Any) -> None:
    """Add the `report` command to the argparse subcommands."""
    parser = commands.add_parser(
        "report",
        help="total the usage and cost of requests saved in files",
        description=(
            "Read OpenAI Batch output files, saved OpenAI or Bedrock response "
            "bodies (JSON or JSON lines), saved OpenAI streams (one chunk or event "
            "per line) and Bedrock model invocation logs, and "
            "print the totals per provider and model and in all. Files may be "
            "gzip-compressed. Exits 1 when a line or file could not be read (the "
            "rest is still counted), 2 when an argument or the --prices file is "
            "invalid, and 3 when a request has no price."
        ),
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="files to read, or - for standard input",
    )
    add_prices_option(parser)
    parser.add_argument(
        "--provider",
        type=non_empty_text,
        metavar="P",
        help=(
            "the provider of saved bodies whose shape is neither OpenAI's nor "
            "Bedrock's; the bodies of those two keep their own provider"
        ),
    )
    parser.add_argument(
        "--model",
        type=non_empty_text,
        metavar="M",
        help=(
            "the model id of saved bodies and invocation logs that do not name "
            "one, such as Bedrock bodies; a record with a model keeps its own"
        ),
    )
    parser.add_argument(
        "--region",
        type=non_empty_text,
        metavar="R",
        help=(
            "the region of saved Bedrock bodies, such as us-east-1, because "
            "Bedrock prices by region; invocation logs keep their own unless "
            "they name none"
        ),
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: for large input on a terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


@attrs.define
class FileSummary:
    """The counts of one input file: records, counted requests, skips and failures.

    `stream_chunks` counts the chunks and events of saved streams that are
    not requests by themselves.
    """

    path: str
    records: int = 0
    counted: int = 0
    skipped: int = 0
    stream_chunks: int = 0
    failures: list[ReadFailure] = attrs.Factory(list)


@attrs.define
class ReportRun:
    """The state of one `llmfy report` run."""

    tracker: UsageTracker
    files: list[FileSummary] = attrs.Factory(list)
    unpriced: dict[tuple[str, str, str | None], str] = attrs.Factory(dict)
    unpriced_tools: dict[tuple[str, str, str | None], set[str]] = attrs.Factory(dict)
    resolver: PriceResolver = attrs.Factory(lambda: PriceResolver({}))
    known: KnownPrices | None = None

    @property
    def failures(self) -> list[ReadFailure]:
        """Every unreadable line or file, in reading order."""
        return [failure for each in self.files for failure in each.failures]


def run(args: argparse.Namespace) -> int:
    """Run `llmfy report`."""
    if args.prices:
        use_price_file(args.prices)
    report = ReportRun(llmfy_usage_tracker(keep_requests=False))
    if args.region:
        # Checked as `llmfy cost` checks it, so that a misspelt region exits 2.
        check_region(args.region, None, _known_prices(report))
    if args.provider:
        _check_provider(args.provider)
    stdin_count = args.files.count(STDIN_PATH)
    if stdin_count > 1:
        raise CliError(
            f"Standard input is given {stdin_count} times as a file, but it can "
            "be read once. Give - once."
        )
    _reject_repeated_files(args.files)
    known_providers = _known_prices(report).providers if args.provider else []
    reader = UsageReader(args.provider, args.model, args.region, known_providers)
    inputs = [InputFile(path) for path in args.files]
    progress = Progress.for_input(
        sys.stderr, sum(each.size for each in inputs), args.progress
    )
    tracker_logger = logging.getLogger("llmfy.tracker")
    price_warnings = _DropPriceWarnings()
    tracker_logger.addFilter(price_warnings)
    try:
        _read_all(inputs, reader, report, progress)
    finally:
        tracker_logger.removeFilter(price_warnings)
        progress.done()
    if args.model and not reader.model_named_by_record:
        _check_model(args.model, report)
    if args.json:
        print_json(_report_dict(report))
    else:
        _print_failures(report.failures)
        print(_report_text(report))
    return _exit_code(report)


def _reject_repeated_files(paths: list[str]) -> None:
    """Raise `CliError` (exit code 2) when two arguments name one file.

    A file read twice would count each of its requests twice. Paths are
    compared by the file they open, so a symlink, another spelling of a path
    or `-` with standard input redirected from the file matches too. A path
    that cannot be opened is left to the reader, which reports it as
    unreadable.
    """
    seen: dict[tuple[int, int], str] = {}
    for path in paths:
        name = "standard input (-)" if path == STDIN_PATH else path
        try:
            # Standard input redirected from a file (`< out.jsonl`) is that file.
            info = stat_input(path)
        except OSError:
            # Also io.UnsupportedOperation, from a replaced `sys.stdin` that
            # has no descriptor.
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            raise CliError(
                f"{name} and {seen[key]} name the same file, so its requests "
                "would be counted twice. Give each file once."
            )
        seen[key] = name


def _check_provider(provider: str) -> None:
    """Raise `CliError` (exit code 2) for a --provider whose bodies no plugin reads."""
    readable = readable_providers()
    if readable is None or provider in readable:
        return
    close = suggested_name(provider, readable)
    hint = f" (did you mean {close}?)" if close else ""
    raise CliError(
        f"No installed plugin reads response bodies of provider {provider!r}. "
        f"Installed plugins read those of: {', '.join(readable)}. Check "
        f"--provider{hint}, or install the provider's plugin."
    )


def _check_model(model: str, report: ReportRun) -> None:
    """Raise `CliError` (exit code 2) for a --model that misspells a listed id.

    It is checked after reading, because an id that a record names itself is
    in the data, so it is not a misspelling. A model of the user's own, close
    to no listed id, is reported with no price instead.
    """
    meant = misspelt_model(report.resolver, model, _known_prices(report))
    if meant is None:
        return
    raise CliError(
        f"No installed price source lists or prices model {model!r} under any "
        f"provider, and no record names it. Did you mean {meant}? Check --model, "
        "or give the price of a model of your own with --prices FILE."
    )


class _DropPriceWarnings(logging.Filter):
    """Drop the tracker's missing-price warnings, which name tracker arguments.

    The report's summary explains each missing price in terms of the
    command's own options instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # NOTE: matched by the start of the tracker's message; if that text
        # changes, the warning shows again, next to the summary.
        return not record.getMessage().startswith("No price for")


def _read_all(
    inputs: list[InputFile],
    reader: UsageReader,
    report: ReportRun,
    progress: Progress,
) -> None:
    done_before = 0
    counted = 0
    for each in inputs:
        summary = FileSummary(each.path)
        report.files.append(summary)
        for item in each.records():
            if isinstance(item, ReadFailure):
                summary.failures.append(item)
                continue
            summary.records += 1
            if _count_record(reader.read, item, report, summary):
                counted += 1
                progress.update(done_before + each.position(), counted)
        for item in reader.end_file():
            if _count_record(reader.read_stream, item, report, summary):
                # The record, counted as a chunk when read, is the stream's
                # request.
                summary.stream_chunks -= 1
                counted += 1
        done_before += each.size


def _count_record(
    read: Callable[[Record], Reading | Skipped | StreamChunk],
    item: Record,
    report: ReportRun,
    summary: FileSummary,
) -> bool:
    """Read `item` with `read`, count its request and return whether it had one.

    The warnings logged meanwhile name the record's place.
    """
    RECORD_PLACE.where = item.where
    try:
        return _count_read_record(read, item, report, summary)
    finally:
        RECORD_PLACE.where = None


def _count_read_record(
    read: Callable[[Record], Reading | Skipped | StreamChunk],
    item: Record,
    report: ReportRun,
    summary: FileSummary,
) -> bool:
    try:
        outcome = read(item)
    except RecordError as error:
        failure = ReadFailure(item.path, item.line, str(error), item.item)
        summary.failures.append(failure)
        return False
    if isinstance(outcome, StreamChunk):
        summary.stream_chunks += 1
        return False
    if not isinstance(outcome, Reading):
        summary.skipped += 1
        return False
    record = report.tracker.add_usage(outcome.usage, outcome.sent_at)
    usage = record.usage
    key = (usage.provider, usage.model, usage.region)
    if record.price is None and usage.known and key not in report.unpriced:
        report.unpriced[key] = _unpriced_reason(report, record)
    if record.cost is not None and record.cost.unpriced_tools:
        report.unpriced_tools.setdefault(key, set()).update(record.cost.unpriced_tools)
    summary.counted += 1
    return True


def _unpriced_reason(report: ReportRun, record: RequestRecord) -> str:
    """Explain why a record has no price.

    A record without a model gets advice to pass --model. A record in a region
    without a price gets the regions where its model has one. A model id that
    no plugin lists gets the listed ids closest to it.
    """
    usage = record.usage
    if usage.model == UNKNOWN_MODEL and usage.served_model is None:
        return "the records do not name their model. Pass the model id with --model."
    known = _known_prices(report)
    model = usage.served_model or usage.model
    query = PriceQuery(
        model, usage.provider, service_tier=usage.service_tier, batch=usage.batch
    )
    regions = regions_with_price(report.resolver, query, usage.provider, known)
    if regions and usage.region is None:
        return (
            "the price depends on the region, and these records name none. "
            + region_advice(regions)
        )
    if regions:
        # The plugin's own reason names tracker arguments, which do not apply here.
        return (
            f"prices are listed for it in {', '.join(regions)}, but not in "
            f"{usage.region}. Give the price in {usage.region} with --prices FILE."
        )
    reason = describe_unpriced(record.unpriced_reason)
    return reason + known.close_models_hint(model, usage.provider)


def _known_prices(report: ReportRun) -> KnownPrices:
    """Return the plugins' price listings, collected on first use."""
    if report.known is None:
        report.known = KnownPrices.collect()
    return report.known


def _exit_code(report: ReportRun) -> int:
    if report.failures:
        return EXIT_PARTIAL
    if not report.tracker.cost_complete:
        return EXIT_UNPRICED
    return EXIT_OK


def _print_failures(failures: list[ReadFailure]) -> None:
    for failure in failures[:MAX_FAILURES_SHOWN]:
        print(f"llmfy: {failure.where}: {failure.message}", file=sys.stderr)
    hidden = len(failures) - MAX_FAILURES_SHOWN
    if hidden > 0:
        print(
            f"llmfy: ... and {hidden} more unreadable lines; --json lists them all",
            file=sys.stderr,
        )


def _report_text(report: ReportRun) -> str:
    groups = _sorted_groups(report.tracker)
    rows = [
        [provider, model, region or "-", *_total_cells(group)]
        for (provider, model, region), group in groups
    ]
    rows.append(["total", "", "", *_total_cells(report.tracker.totals)])
    headers = [
        "PROVIDER",
        "MODEL",
        "REGION",
        "REQUESTS",
        "INPUT",
        "CACHED INPUT",
        "CACHE WRITE",
        "OUTPUT",
        "REASONING",
        "COST (USD)",
    ]
    lines = [render_table(headers, rows, align="lllrrrrrrr"), ""]
    lines += _summary_lines(report)
    return "\n".join(lines)


def _total_cells(group: ModelTotals) -> list[str]:
    return [
        f"{group.requests:,}",
        f"{group.input_tokens:,}",
        f"{group.cache_read_tokens:,}",
        f"{group.cache_write_tokens:,}",
        f"{group.output_tokens:,}",
        f"{group.reasoning_tokens:,}",
        _cost_cell(group),
    ]


def _cost_cell(group: ModelTotals) -> str:
    cost = group.known_cost
    if cost is None:
        return "unknown"
    if group.cost_complete:
        return money(cost)
    return f"{money(cost)} (incomplete)"


def _summary_lines(report: ReportRun) -> list[str]:
    records = sum(each.records for each in report.files)
    counted = sum(each.counted for each in report.files)
    skipped = sum(each.skipped for each in report.files)
    stream_chunks = sum(each.stream_chunks for each in report.files)
    in_streams = ""
    if stream_chunks:
        in_streams = (
            f"{count_of(stream_chunks, 'stream chunk')} (one request per stream), "
        )
    lines = [
        f"Read {count_of(len(report.files), 'file')}: "
        f"{count_of(records, 'record')}, "
        f"{count_of(counted, 'request')} counted, {in_streams}"
        f"{skipped:,} skipped (not billed), {len(report.failures):,} unreadable."
    ]
    totals = report.tracker.totals
    for (provider, model, region), group in _sorted_groups(report.tracker):
        if group.unknown_usage:
            where = f" in {region}" if region else ""
            if group.unknown_usage == 1:
                record_words, pronoun = "its record", "it"
            else:
                record_words, pronoun = "their records", "them"
            lines.append(
                f"{count_of(group.unknown_usage, 'request')} of {provider} "
                f"{model}{where} had no complete usage in {record_words}, so the total "
                f"cost leaves {pronoun} out."
            )
    for (provider, model, region), reason in sorted(
        report.unpriced.items(), key=lambda item: (item[0][0], item[0][1])
    ):
        where = f" in {region}" if region else ""
        lines.append(f"No price for {provider} {model}{where}: {reason}")
    for (provider, model, region), tools in sorted(
        report.unpriced_tools.items(), key=lambda item: (item[0][0], item[0][1])
    ):
        where = f" in {region}" if region else ""
        lines.append(
            f"No price for {', '.join(sorted(tools))} calls of {provider} "
            f"{model}{where}: no installed price source prices them, so the "
            "total cost leaves them out. Add their cost from the provider's bill."
        )
    if totals.unpriced:
        lines.append(
            "The total cost covers the priced requests only. Add prices with "
            "--prices FILE."
        )
    return lines


def _sorted_groups(
    tracker: UsageTracker,
) -> list[tuple[tuple[str, str, str | None], ModelTotals]]:
    """Return the totals per provider, model and region, in the table's order."""
    return sorted(
        tracker.totals_by_model().items(),
        key=lambda item: (item[0][0], item[0][1], item[0][2] or ""),
    )


def _report_dict(report: ReportRun) -> dict[str, Any]:
    tracker = report.tracker
    groups = _sorted_groups(tracker)
    return {
        "schema": SCHEMA,
        "totals": totals_dict(tracker.totals),
        "by_model": [
            {
                "provider": provider,
                "model": model,
                "region": region,
                **totals_dict(group),
                "unpriced_reason": report.unpriced.get((provider, model, region)),
            }
            for (provider, model, region), group in groups
        ],
        "files": [
            {
                "path": each.path,
                "records": each.records,
                "counted": each.counted,
                "stream_chunks": each.stream_chunks,
                "skipped": each.skipped,
                "unreadable": len(each.failures),
            }
            for each in report.files
        ],
        "errors": [
            {
                "path": failure.path,
                "line": failure.line,
                "item": failure.item,
                "message": failure.message,
            }
            for failure in report.failures
        ],
    }
