"""Hook implementations of llmfy-pricing-file, and the price file in use.

The file is named by `use_price_file(path)` or, failing that, by the
environment variable `LLMFY_PRICE_FILE`. It is read on first use and read
again whenever its size, modification time or inode changes. A file that
fails to read or validate is rejected with a `PricingWarning`, and the last
valid prices stay in force.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

from llmfy_core import (
    CatalogEntry,
    Price,
    PriceRank,
    PricingWarning,
    hookimpl,
    invalidate_price_cache,
)
from llmfy_core.errors import emit_warning
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.plugins import get_registry
from llmfy_core.pricing import likely_typo

from .prices import PriceList, utc_day
from .reader import MAX_FILE_BYTES, PriceFileError, parse_price_bytes

ENV_VAR = "LLMFY_PRICE_FILE"

logger = get_logger("llmfy.plugins.pricing_file")

# Above the provider plugins' bundled tables, below a tracker's own overrides.
llmfy_price_rank = PriceRank.ORGANIZATION
# Prices depend on the day a request was sent, so llmfy caches them per day.
llmfy_price_dated = True

# How often a price lookup checks the file for changes, in seconds.
RECHECK_SECONDS = 1.0

# One version of a file: its device, inode, modification time in ns and size.
FileStamp = tuple[int, int, int, int]


class PriceFileState:
    """The price file in use, its last valid prices, and the version read last."""

    def __init__(self) -> None:
        # Reentrant: garbage collection can run a stream's finalizer, which
        # looks a price up, while this thread reads the file.
        self._lock = new_lock()
        self.explicit_path: Path | None = None
        self.prices: PriceList | None = None
        self.path: Path | None = None
        self.stamp: FileStamp | None = None
        # Raised whenever the prices in force change; `llmfy_price_version`.
        self.version = 0
        self.checked_at = float("-inf")

    def configured_path(self) -> Path | None:
        """Return the file named by `use_price_file`, else by `LLMFY_PRICE_FILE`."""
        if self.explicit_path is not None:
            return self.explicit_path
        value = os.environ.get(ENV_VAR, "").strip()
        return Path(value) if value else None

    def current(self) -> PriceList | None:
        """Return the prices in force, reading the file again if it changed.

        Costs one `os.stat` when a file is configured and unchanged.
        """
        path = self.configured_path()
        if path is None:
            if self.path is not None:
                self.forget()
            return None
        stamp = _stat(path)
        if path == self.path and stamp == self.stamp:
            return self.prices
        with self._lock:
            if path != self.path or stamp != self.stamp:
                self._refresh(path, stamp)
            return self.prices

    def use(self, path: Path) -> PriceList:
        """Read `path` now and price from it; raise if it is invalid.

        On `PriceFileError` or `OSError` nothing changes.
        """
        with self._lock:
            prices, stamp = _read(path)
            self.explicit_path = path
            self._install(path, stamp, prices)
        return prices

    def forget(self) -> None:
        """Drop the file and its prices; the next lookup reads the configuration."""
        with self._lock:
            self.explicit_path = None
            self.prices = None
            self.path = None
            self.stamp = None
            self.version += 1
        invalidate_price_cache()

    def _refresh(self, path: Path, stamp: FileStamp | None) -> None:
        if stamp is None:
            self.path, self.stamp = path, None
            _warn(
                f"The price file {path} ({self._named_by()}) cannot be read: "
                f"{_stat_failure(path)}. Check the path, or name another file. "
                f"{self._what_stays()}"
            )
            return
        try:
            prices, read_stamp = _read(path)
        except (PriceFileError, OSError, Warning) as error:
            # A Warning is raised here when the application turns warnings into
            # errors, such as llmfy's warning for an implausibly high price.
            # Remember this version, so that it is reported once, not per lookup.
            self.path, self.stamp = path, stamp
            # Messages from tomllib and the OS end without a full stop.
            reason = str(error).rstrip()
            if not reason.endswith("."):
                reason += "."
            _warn(f"{reason} The file was rejected. {self._what_stays()}")
            return
        self._install(path, read_stamp, prices)

    def _install(self, path: Path, stamp: FileStamp, prices: PriceList) -> None:
        replaced = self.prices is not None
        self.prices, self.path, self.stamp = prices, path, stamp
        self.version += 1
        invalidate_price_cache()
        logger.info(
            "%s %d prices from the price file %s",
            "reloaded" if replaced else "loaded",
            len(prices),
            path,
        )
        warn_misspelt_providers(path, prices)

    def _named_by(self) -> str:
        if self.explicit_path is not None:
            return "named by use_price_file()"
        return f"named by {ENV_VAR}"

    def _what_stays(self) -> str:
        if self.prices is None:
            return "No price from a price file applies until the file is fixed."
        return (
            f"The prices read before from {self.prices.path} stay in force until "
            "the file is fixed."
        )


def _stat(path: Path) -> FileStamp | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)


def _stat_failure(path: Path) -> str:
    """Return why the operating system cannot stat `path`, such as a missing file."""
    try:
        os.stat(path)
    except OSError as error:
        return error.strerror or type(error).__name__
    return "the file was unavailable when it was last checked"


def _read(path: Path) -> tuple[PriceList, FileStamp]:
    with path.open("rb") as stream:
        status = os.fstat(stream.fileno())
        data = stream.read(MAX_FILE_BYTES + 1)
    stamp = (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
    return parse_price_bytes(data, path), stamp


def warn_misspelt_providers(path: Path, prices: PriceList) -> None:
    """Warn of each provider in the file that misspells one a plugin counts.

    The prices of `[providers.opnai]` apply to requests of provider `opnai`
    only, which no plugin records, so they would never price a request.
    """
    counted = _counted_providers()
    for provider in prices.providers:
        meant = None if provider in counted else likely_typo(provider, counted)
        if meant is not None:
            _warn(
                f"The price file {path} has prices for provider {provider!r}, "
                f"which no installed plugin counts requests of. Did you mean "
                f"{meant!r}? Rename providers.{provider} to providers.{meant}, "
                f"or its prices apply to no request."
            )


def _counted_providers() -> list[str]:
    """Return the providers that loaded plugins declare in `llmfy_providers`."""
    counted: set[str] = set()
    for plugin in get_registry().manager.get_plugins():
        declared = getattr(plugin, "llmfy_providers", None)
        if isinstance(declared, (tuple, list, set, frozenset)):
            counted.update(name for name in declared if isinstance(name, str))
    return sorted(counted)


def _warn(message: str) -> None:
    logger.warning("%s", message)
    emit_warning(PricingWarning(message), stacklevel=4)


STATE = PriceFileState()


# Public functions, re-exported by the package.


def use_price_file(path: str | os.PathLike[str] | None) -> PriceList | None:
    """Price requests from the price file at `path`, read and validated now.

    Takes precedence over `LLMFY_PRICE_FILE`. Raises `PriceFileError` (a
    ValueError) or `OSError` when the file is invalid or unreadable, and then
    keeps the prices in force before the call. `None` drops the file, so that
    `LLMFY_PRICE_FILE` applies again; it returns the prices that then apply.
    """
    if path is None:
        STATE.forget()
        return STATE.current()
    return STATE.use(Path(path))


def check_price_file() -> PriceList | None:
    """Read the price file again if it changed, and return the prices in force.

    Without this call, a change is noticed at the first price lookup after
    `RECHECK_SECONDS` have passed since the last check.
    """
    return STATE.current()


# Hooks


@hookimpl
def price_lookup(
    provider: str,
    model: str,
    region: str | None,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | None:
    """Return the price file's price in force on the day the request was sent."""
    prices = STATE.current()
    if prices is None:
        return None
    return prices.lookup(provider, model, region, service_tier, batch, requested_at)


def llmfy_price_version() -> object:
    """Return the version of the prices in force, for llmfy's price cache.

    The core calls this before each price lookup. The file is checked for
    changes at most once per `RECHECK_SECONDS`, so a request costs one clock
    read; an edited file applies to requests recorded after the check.
    """
    now = time.monotonic()
    if now - STATE.checked_at >= RECHECK_SECONDS:
        STATE.checked_at = now
        STATE.current()
    return STATE.version


@hookimpl
def price_catalog(provider: str | None) -> Iterator[CatalogEntry]:
    """List the prices of the price file in force today (UTC)."""
    prices = STATE.current()
    if prices is None:
        return
    for entry in prices.in_force(utc_day(None), provider):
        yield CatalogEntry(provider=entry.provider, key=entry.key, price=entry.price)
