"""Price resolution: tracker overrides first, then plugins by declared rank.

Each tracker owns one `PriceResolver`. Lookup results are cached per model, region,
tier and batch flag, and the cache is dropped whenever plugins change or a
plugin calls `invalidate_price_cache`, so that a request normally costs one
dictionary lookup instead of a hook call per plugin.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from llmfy_core.errors import PricingWarning, emit_warning
from llmfy_core.logs import get_logger
from llmfy_core.model import MILLION, Price, Unpriced, Usage
from llmfy_core.plugins import PluginRegistry, get_registry
from llmfy_core.pricing import PriceTable, format_decimal

logger = get_logger("llmfy.tracker")

# An override this many times above or below the plugins' price is most likely
# given in the wrong unit (per 1,000 tokens where per million is expected).
_UNIT_MISTAKE_RATIO = Decimal(100)

_price_epoch = 0
_epoch_lock = threading.Lock()


def invalidate_price_cache() -> None:
    """Make every tracker look its prices up again (after a price file changed)."""
    global _price_epoch
    with _epoch_lock:
        _price_epoch += 1


@attrs.frozen(slots=True)
class Resolution:
    """The outcome of a price lookup for one request.

    `origin` names where the price came from (`override` or a plugin name);
    `reason` explains why there is no price when `price` is None.
    """

    price: Price | None
    origin: str | None
    reason: str | None
    fault: str | None = None


class PriceResolver:
    """Look up prices for one tracker, overrides first, with a cache."""

    def __init__(self, overrides: Mapping[str, PriceTable]) -> None:
        self._overrides = dict(overrides)
        self._cache: dict[tuple[Any, ...], Resolution] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._dated = False
        self._lookups: list[tuple[str, Any]] = []
        self._versions: list[Callable[[], object]] = []
        self._seen_versions: list[object] = []

    def resolve(self, usage: Usage, sent_at: dt.datetime | None) -> Resolution:
        """Return the price for `usage`, served model id first, then requested.

        `sent_at` must be in UTC; dated prices are looked up by its UTC day.
        """
        registry = get_registry()
        stamp = (id(registry), registry.generation, _price_epoch)
        if stamp != self._stamp:
            self._refresh(registry, stamp)
        elif self._versions and self._versions_changed():
            self._cache = {}
        key: tuple[Any, ...] = (
            usage.provider,
            usage.served_model,
            usage.model,
            usage.region,
            usage.service_tier,
            usage.batch,
        )
        if self._dated and sent_at is not None:
            key = (*key, sent_at.date())
        found = self._cache.get(key)
        if found is None:
            found = self._lookup(usage, sent_at)
            if found.fault is None:
                self._cache[key] = found
        return found

    def _refresh(self, registry: PluginRegistry, stamp: tuple[int, int, int]) -> None:
        self._cache = {}
        self._lookups = registry.ranked_price_lookups()
        plugins = [impl.plugin for _, impl in self._lookups]
        self._dated = any(
            getattr(plugin, "llmfy_price_dated", False) for plugin in plugins
        )
        self._versions = [
            plugin.llmfy_price_version
            for plugin in plugins
            if callable(getattr(plugin, "llmfy_price_version", None))
        ]
        self._seen_versions = [None] * len(self._versions)
        self._versions_changed()
        self._stamp = stamp

    def _versions_changed(self) -> bool:
        """Ask the plugins that declare `llmfy_price_version` whether prices changed.

        A pricing plugin whose prices can change at run time (a price file
        that is edited) defines `llmfy_price_version()`, a cheap call that
        returns a new value whenever its prices changed.
        """
        changed = False
        for index, version_of in enumerate(self._versions):
            try:
                version = version_of()
            except Exception as error:
                logger.warning("llmfy_price_version of a plugin raised: %r", error)
                continue
            if version != self._seen_versions[index]:
                self._seen_versions[index] = version
                changed = True
        return changed

    def _lookup(self, usage: Usage, sent_at: dt.datetime | None) -> Resolution:
        models = [usage.model]
        if usage.served_model and usage.served_model != usage.model:
            models.insert(0, usage.served_model)
        reason: str | None = None

        table = self._overrides.get(usage.provider)
        if table is not None:
            for model in models:
                found = table.lookup(
                    model, usage.region, usage.service_tier, usage.batch
                )
                if isinstance(found, Price):
                    published = self._lookup_plugins(usage, models, sent_at).price
                    if published is not None:
                        _check_override_unit(usage, model, found, published)
                    return Resolution(found, "override", None)
                if isinstance(found, Unpriced):
                    if found.final:
                        return Resolution(None, "override", found.reason)
                    reason = reason or found.reason

        resolution = self._lookup_plugins(usage, models, sent_at)
        if resolution.price is None and resolution.reason is None and reason:
            return attrs.evolve(resolution, reason=reason)
        return resolution

    def _lookup_plugins(
        self, usage: Usage, models: list[str], sent_at: dt.datetime | None
    ) -> Resolution:
        reason: str | None = None
        arguments = {
            "provider": usage.provider,
            "region": usage.region,
            "service_tier": usage.service_tier,
            "batch": usage.batch,
            "requested_at": sent_at,
        }
        fault: str | None = None
        for name, impl in self._lookups:
            for model in models:
                arguments["model"] = model
                try:
                    found = impl.function(*[arguments[arg] for arg in impl.argnames])
                except Exception as error:
                    fault = f"plugin {name} failed in price_lookup: {error!r}"
                    logger.warning(
                        "plugin %s raised in price_lookup for %s model %s: %r",
                        name,
                        usage.provider,
                        model,
                        error,
                    )
                    break
                if isinstance(found, Price):
                    return Resolution(found, name, None, fault)
                if isinstance(found, Unpriced):
                    if found.final:
                        return Resolution(None, name, found.reason, fault)
                    reason = reason or found.reason
                elif found is not None:
                    logger.warning(
                        "plugin %s returned %s from price_lookup for %s model %s; "
                        "expected a Price, Unpriced or None",
                        name,
                        type(found).__name__,
                        usage.provider,
                        model,
                    )
        return Resolution(None, None, reason, fault)


def _check_override_unit(
    usage: Usage, model: str, override: Price, published: Price
) -> None:
    """Warn when an override price is off from the published one by a unit factor."""
    given = override.input * MILLION / override.price_per_tokens
    known = published.input * MILLION / published.price_per_tokens
    if not given or not known:
        return
    ratio = given / known
    if 1 / _UNIT_MISTAKE_RATIO < ratio < _UNIT_MISTAKE_RATIO:
        return
    message = (
        f"The override input price for {usage.provider} model {model!r} is "
        f"{format_decimal(override.input)} USD per {override.price_per_tokens:,} "
        f"tokens, which is {format_decimal(given)} USD per million tokens and "
        f"{format_decimal(ratio.normalize())} times the published price of "
        f"{format_decimal(known)} USD per million ({published.source or 'bundled'}). "
        f"Check the unit of {usage.provider}_pricing=: give `price_per_tokens` "
        "when the prices are for another number of tokens."
    )
    logger.warning("%s", message)
    emit_warning(PricingWarning(message), stacklevel=2)
