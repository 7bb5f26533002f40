"""Output of the `llmfy` command: exit codes, errors, tables and JSON."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

from llmfy_core.model import MILLION, Price
from llmfy_core.plugins import PluginInfo
from llmfy_core.pricing import DECIMAL_CONTEXT, format_decimal

EXIT_OK = 0
"""The command did everything it was asked."""

EXIT_PARTIAL = 1
"""Some input could not be read, or a plugin failed to load or is not installed."""

EXIT_USAGE = 2
"""Invalid or incomplete arguments or price file: nothing was computed."""

EXIT_UNPRICED = 3
"""The input was read, but a model has no price, so a cost is unknown or incomplete."""

EXIT_INTERRUPTED = 130
"""Interrupted with Ctrl-C."""


class CliError(Exception):
    """An error that ends the command with a message and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RecordPlace(logging.Filter):
    """A logging filter that adds the place of the record being read to warnings.

    A command that reads records sets `where` while it reads one, so that a
    warning about a record names its file and line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.where: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.where is not None:
            record.msg = f"{record.getMessage()} (at {self.where})"
            record.args = None
        return True


RECORD_PLACE = RecordPlace()


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Write `data` as indented JSON followed by a newline."""
    out = stream or sys.stdout
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = ""
) -> str:
    """Render rows as columns separated by two spaces, headers first.

    `align` gives one letter per column, `l` (the default) or `r`.
    """
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = []
        for index, cell in enumerate(row):
            if index < len(align) and align[index] == "r":
                cells.append(cell.rjust(widths[index]))
            else:
                cells.append(cell.ljust(widths[index]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def count_of(count: int, noun: str) -> str:
    """Format `count` with its noun, singular or plural: `1 record`, `2 records`."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def per_million(value: Decimal | None, price_per_tokens: int) -> Decimal | None:
    """Convert a price in USD per `price_per_tokens` tokens to USD per million."""
    if value is None:
        return None
    return DECIMAL_CONTEXT.divide(
        DECIMAL_CONTEXT.multiply(value, MILLION), price_per_tokens
    )


def money(value: Decimal | None) -> str:
    """Format an exact amount of USD, or `-` when there is none."""
    return "-" if value is None else format_decimal(value)


def price_cells(price: Price) -> list[str]:
    """Return input, cached input, cache write and output in USD per million."""
    unit = price.price_per_tokens
    cache_read = price.input if price.cache_read is None else price.cache_read
    cache_write = price.input if price.cache_write is None else price.cache_write
    return [
        money(per_million(price.input, unit)),
        money(per_million(cache_read, unit)),
        money(per_million(cache_write, unit)),
        money(per_million(price.output, unit)),
    ]


def rank_name(rank: int | None) -> str:
    """Name a declared price rank (`ORGANIZATION`, `PROVIDER`, ...) or show it."""
    if rank is None:
        return "-"
    names = {200: "ORGANIZATION", 100: "PROVIDER", 0: "FALLBACK"}
    return names.get(rank, str(rank))


def plugin_dict(info: PluginInfo) -> dict[str, Any]:
    """Convert a `PluginInfo` to JSON-serializable data."""
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "hooks": list(info.hooks),
        "price_rank": info.price_rank,
        "error": info.error,
    }
