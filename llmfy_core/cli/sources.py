"""Where the command's prices come from: plugins, and a price file given with --prices.

A price file given on the command line is read by the `llmfy-pricing-file`
plugin's reader and registered as a plugin ranked above every installed one,
so that it wins the way a tracker's own overrides win, and so that its dated
entries price each request by the day it was sent.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from llmfy_core.errors import PricingTableError, PricingWarning, emit_warning
from llmfy_core.hookspecs import hookimpl
from llmfy_core.model import Price, Usage
from llmfy_core.plugins import get_registry
from llmfy_core.pricing import (
    INVALID_PRICE_FIX,
    CatalogEntry,
    PriceKey,
    describe_entry,
    price_problem,
)
from llmfy_core.ranks import PriceRank
from llmfy_core.resolver import PriceResolver, Resolution

from .output import CliError

logger = logging.getLogger("llmfy.cli")

PRICE_FILE_PLUGIN = "--prices"
"""The plugin name under which a price file given with --prices is registered."""

PRICE_FILE_RANK = PriceRank.ORGANIZATION + 100


class PriceFilePlugin:
    """Prices from a price file named on the command line, above every plugin."""

    llmfy_price_rank = PRICE_FILE_RANK
    llmfy_price_dated = True

    def __init__(self, prices: Any) -> None:
        self.prices = prices

    @hookimpl
    def price_lookup(
        self,
        provider: str,
        model: str,
        region: str | None,
        service_tier: str | None,
        batch: bool,
        requested_at: dt.datetime | None,
    ) -> Price | None:
        found = self.prices.lookup(
            provider, model, region, service_tier, batch, requested_at
        )
        return found if isinstance(found, Price) else None

    @hookimpl
    def price_catalog(self, provider: str | None) -> Iterator[CatalogEntry]:
        today = dt.datetime.now(dt.UTC).date()
        for entry in self.prices.in_force(today, provider):
            yield CatalogEntry(
                provider=entry.provider, key=entry.key, price=entry.price
            )


def use_price_file(path: str) -> None:
    """Read `path` with the `llmfy-pricing-file` reader and rank it above all plugins.

    Raises `CliError` when the file is missing or invalid, or when the reader is
    not installed.
    """
    try:
        reader = importlib.import_module("llmfy_pricing_file.reader")
    except ImportError:
        raise CliError(
            f"--prices {path}: reading a price file needs the llmfy-pricing-file "
            "plugin. Install it from a checkout of llmfy with "
            "`pip install ./plugins/pricing-file`."
        ) from None
    if not Path(path).is_file():
        raise CliError(f"--prices {path}: file not found. Check the path.")
    try:
        prices = reader.load_price_file(path)
    except (PricingTableError, OSError) as error:
        raise CliError(f"--prices {path}: {error}") from None
    plugin = importlib.import_module("llmfy_pricing_file.plugin")
    plugin.warn_misspelt_providers(Path(path), prices)
    registry = get_registry()
    if registry.manager.get_plugin(PRICE_FILE_PLUGIN) is not None:
        registry.unregister(PRICE_FILE_PLUGIN)
    registry.register(PriceFilePlugin(prices), PRICE_FILE_PLUGIN)


@attrs.frozen(slots=True)
class ListedPrice:
    """A price that a plugin lists, with the plugin that lists it."""

    plugin: str
    entry: CatalogEntry


def catalog(provider: str | None, *, usable_only: bool = True) -> list[ListedPrice]:
    """Collect every plugin's `price_catalog` listing, highest price rank first.

    A plugin that raises is skipped; its error is re-raised as `CliError` only
    when no plugin lists anything. With `usable_only`, an entry whose price
    is invalid is skipped with a warning. Without it, such an entry is kept,
    for the model ids, providers and regions that the plugins list.
    """
    registry = get_registry()
    impls = list(reversed(registry.manager.hook.price_catalog.get_hookimpls()))
    listed: list[ListedPrice] = []
    failures: list[str] = []
    for impl in impls:
        name = registry.manager.get_name(impl.plugin) or impl.plugin_name
        arguments: dict[str, Any] = {"provider": provider}
        try:
            entries: Any = impl.function(*[arguments[arg] for arg in impl.argnames])
            for entry in entries or ():
                if not isinstance(entry, CatalogEntry):
                    continue
                if not usable_only or _is_usable_entry(impl.plugin, name, entry):
                    listed.append(ListedPrice(name, entry))
        except Exception as error:
            failure = f"plugin {name} failed in price_catalog: {error!r}"
            logger.warning("%s; its prices are not listed", failure)
            failures.append(failure)
    if failures and not listed:
        raise CliError("; ".join(failures), exit_code=1)
    listed.sort(key=lambda item: -origin_rank(item.plugin))
    return listed


# The invalid entries already reported, per plugin object, so that a command
# that reads the catalog twice warns once.
_REPORTED_ENTRIES: weakref.WeakKeyDictionary[Any, set[tuple[str, PriceKey]]] = (
    weakref.WeakKeyDictionary()
)


def _is_usable_entry(plugin: Any, name: str, entry: CatalogEntry) -> bool:
    """Return whether `entry` has a usable price, and warn about one that has not.

    A listed `Price` gets the check that `price_lookup` results get, so that
    `llmfy prices` never shows a NaN or negative rate. `Unpriced` is valid.
    """
    price = entry.price
    problem = price_problem(price) if isinstance(price, Price) else None
    if problem is None:
        return True
    try:
        reported = _REPORTED_ENTRIES.setdefault(plugin, set())
    except TypeError:
        # A plugin object without weak references is reported on every read.
        reported = set()
    if (entry.provider, entry.key) in reported:
        return False
    reported.add((entry.provider, entry.key))
    key = entry.key
    where = describe_entry(entry.provider, key.model, key.region, None)
    if key.service_tier is not None:
        where += f", service tier {key.service_tier!r}"
    if key.batch:
        where += ", batch"
    message = (
        f"Plugin {name!r} listed an invalid price in price_catalog for {where}: "
        f"{problem}. llmfy skipped the entry. {INVALID_PRICE_FIX}"
    )
    logger.warning("%s", message)
    emit_warning(PricingWarning(message), stacklevel=3)
    return False


def origin_rank(origin: str | None) -> int:
    """Return the price rank of the plugin named `origin`; overrides rank highest."""
    info = get_registry().infos.get(origin or "")
    if info is None or info.price_rank is None:
        return int(PRICE_FILE_RANK)
    return info.price_rank


def resolve(
    resolver: PriceResolver,
    provider: str,
    model: str,
    *,
    region: str | None = None,
    service_tier: str | None = None,
    batch: bool = False,
) -> Resolution:
    """Resolve a price the way a tracker would for a request to `model` sent now."""
    usage = Usage(
        provider=provider,
        model=model,
        input_tokens=None,
        output_tokens=None,
        region=region,
        service_tier=service_tier,
        batch=batch,
    )
    return resolver.resolve(usage, dt.datetime.now(dt.UTC))


def describe_unpriced(reason: str | None) -> str:
    """Return the plugin's reason for a missing price, or one stating that none has it.

    The reason ends with a full stop, so that a hint can follow it. The
    callers print it after the provider and the model, so it does not repeat
    them.
    """
    if not reason:
        return "no installed plugin has a price for it."
    reason = reason.rstrip()
    return reason if reason.endswith((".", "?", "!")) else reason + "."
