"""Price resolution: tracker overrides first, then plugins by declared rank.

What the plugins return is cached once per process (`PLUGIN_PRICES`), so a
new tracker does not ask them again; each tracker's `PriceResolver` caches its
final answers, overrides included. Both caches are keyed by provider, model
ids, region, tier and batch flag (and the UTC day, when a plugin has dated
prices). The plugins' cache is also keyed by the model ids looked up, which a
tracker's deployment mapping changes. Both are dropped
whenever plugins change, a plugin calls `invalidate_price_cache`, or a
plugin's `llmfy_price_version()` changes. A request therefore normally costs
one dictionary lookup.
"""

from __future__ import annotations

import datetime as dt
import reprlib
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from llmfy_core.errors import PricingWarning, emit_warning
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger, raised_at
from llmfy_core.model import MILLION, Price, Unpriced, Usage
from llmfy_core.plugins import (
    CHANGES,
    get_registry,
    plugin_attribute,
    price_rank_of,
)
from llmfy_core.pricing import (
    INVALID_PRICE_FIX,
    PriceTable,
    describe_rate,
    format_decimal,
    format_ratio,
    price_problem,
)
from llmfy_core.ranks import PriceRank

logger = get_logger("llmfy.tracker")

# An override this many times above or below the plugins' price is most likely
# given in the wrong unit (per 1,000 tokens where per million is expected).
_UNIT_MISTAKE_RATIO = Decimal(100)

# The largest number of cached lookups kept before a cache starts over.
_CACHE_SIZE = 65_536


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


class PluginPrices:
    """The plugins' price lookups in rank order, with the process-wide cache."""

    def __init__(self) -> None:
        # Reentrant: garbage collection can run a stream's finalizer, which
        # records a request, while this thread reloads or invalidates prices.
        self._lock = new_lock()
        self._registry_stamp: tuple[int, int] | None = None
        self._epoch = 0
        self.generation = 0
        self.dated = False
        self.versioned = False
        self._lookups: list[tuple[str, Any]] = []
        self._versions: list[Callable[[], object]] = []
        self._seen_versions: list[object] = []
        self._mappings: list[Callable[[str, str], object]] = []
        self._cache: dict[tuple[Any, ...], Resolution] = {}

    def current_generation(self) -> int:
        """Return a number that changes whenever cached prices may be stale."""
        registry = get_registry()
        stamp = (id(registry), registry.generation)
        if stamp != self._registry_stamp:
            self._reload(registry, stamp)
        elif self._versions and self._versions_changed():
            self._drop_cache()
        return self.generation

    def check_versions(self) -> None:
        """Drop every cached price when a plugin's `llmfy_price_version()` changed."""
        if self._versions_changed():
            self._drop_cache()

    def invalidate(self) -> None:
        """Drop every cached price."""
        with self._lock:
            self._epoch += 1
            self._drop_cache()

    def lookup(
        self,
        key: tuple[Any, ...],
        usage: Usage,
        models: list[str],
        sent_at: dt.datetime | None,
    ) -> Resolution:
        """Return the first plugin price for `models`, cached under `key` and `models`.

        A tracker's own deployment mapping changes the models to look up for
        a request, so trackers with different mappings share no entry.
        """
        # Kept in a local: when prices change during the lookup, its result
        # goes to the replaced cache, not to the new one.
        cache = self._cache
        cache_key = (key, tuple(models))
        found = cache.get(cache_key)
        if found is None:
            found = self._ask_plugins(usage, models, sent_at)
            if found.fault is None:
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[cache_key] = found
        return found

    def mapped_model(self, provider: str, model: str) -> str | None:
        """Return the model that a plugin's `llmfy_mapped_model` maps `model` to.

        Such a mapping is the user's, as for an Azure deployment's name.
        """
        for mapped_model in self._mappings:
            try:
                mapped = mapped_model(provider, model)
            except Exception as error:
                logger.warning(
                    "a plugin's llmfy_mapped_model failed for %s model %s: %r",
                    provider,
                    model,
                    error,
                )
                continue
            if isinstance(mapped, str) and mapped:
                return mapped
        return None

    def _reload(self, registry: Any, stamp: tuple[int, int]) -> None:
        with self._lock:
            self._lookups = registry.ranked_price_lookups()
            dated = [
                plugin_attribute(impl.plugin, "llmfy_price_dated", name)
                for name, impl in self._lookups
            ]
            self.dated = any(dated)
            self._versions = _plugin_callables(self._lookups, "llmfy_price_version")
            self._seen_versions = [None] * len(self._versions)
            self.versioned = bool(self._versions)
            self._mappings = _plugin_callables(self._lookups, "llmfy_mapped_model")
            # The change of plugins that calls for this reload bumped CHANGES
            # already, so the recording path's caches need no second bump.
            self._drop_cache(bump=False)
            # Set last: a thread that reads the new stamp skips the reload, and
            # must find the cache already dropped.
            self._registry_stamp = stamp
        self._versions_changed()

    def _drop_cache(self, bump: bool = True) -> None:
        self._cache = {}
        self.generation += 1
        if bump:
            CHANGES.bump()

    def _versions_changed(self) -> bool:
        """Ask the plugins that define `llmfy_price_version` whether prices changed."""
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

    def _ask_plugins(
        self, usage: Usage, models: list[str], sent_at: dt.datetime | None
    ) -> Resolution:
        reason: str | None = None
        fault: str | None = None
        arguments = {
            "provider": usage.provider,
            "region": usage.region,
            "service_tier": usage.service_tier,
            "batch": usage.batch,
            "requested_at": sent_at,
        }
        lookups = self._lookups
        for position, (name, impl) in enumerate(lookups):
            for model in models:
                arguments["model"] = model
                try:
                    found = impl.function(*[arguments[arg] for arg in impl.argnames])
                except Exception as error:
                    fault = f"plugin {name} failed in price_lookup: {error!r}"
                    logger.warning(
                        "Plugin %r raised %r in price_lookup for %s model %r%s. "
                        "llmfy asked the next price source. Fix the plugin, or "
                        "report it to the plugin's author.",
                        name,
                        error,
                        usage.provider,
                        model,
                        raised_at(error),
                    )
                    break
                if isinstance(found, Price):
                    if _invalid_plugin_price(name, usage, model, found):
                        continue
                    if price_rank_of(impl.plugin, name) > PriceRank.PROVIDER:
                        published = _first_price(lookups[position + 1 :], arguments)
                        if published is not None:
                            fix = (
                                f"Check the unit of plugin {name}'s price"
                                + (f" in {found.source}" if found.source else "")
                                + ". Prices per 1,000 tokens read as per million, "
                                "or the reverse, are off by this much. A price "
                                "file sets its unit with `unit`, and a plugin "
                                "with Price(..., price_per_tokens=1000) for "
                                "prices per 1,000 tokens."
                            )
                            _check_unit(usage, model, found, published, fix)
                    return Resolution(found, name, None, fault)
                if isinstance(found, Unpriced):
                    if found.final:
                        return Resolution(None, name, found.reason, fault)
                    reason = reason or found.reason
                elif found is not None:
                    _warn_wrong_type(name, usage, model, found)
        return Resolution(None, None, reason, fault)


def _plugin_callables(lookups: list[tuple[str, Any]], attribute: str) -> list[Any]:
    """Return the price plugins' callable `attribute`s, in price-lookup order."""
    found = (plugin_attribute(impl.plugin, attribute, name) for name, impl in lookups)
    return [each for each in found if callable(each)]


PLUGIN_PRICES = PluginPrices()


def invalidate_price_cache() -> None:
    """Make every tracker look its prices up again (after a price file changed)."""
    PLUGIN_PRICES.invalidate()


class PriceResolver:
    """Look up prices for one tracker: its overrides first, then the plugins."""

    def __init__(self, overrides: Mapping[str, PriceTable]) -> None:
        self._overrides = dict(overrides)
        # The plugin price generation that the cached resolutions are valid for,
        # and those resolutions, replaced together so that readers get a
        # matching pair.
        self._table: tuple[int, dict[tuple[Any, ...], Resolution]] = (-1, {})

    def resolve(self, usage: Usage, sent_at: dt.datetime | None) -> Resolution:
        """Return the price for `usage`, served model id first, then requested.

        `sent_at` must be in UTC; dated prices are looked up by its UTC day.
        """
        generation = PLUGIN_PRICES.current_generation()
        table_generation, cache = self._table
        if generation != table_generation:
            cache = {}
            self._table = (generation, cache)
        key: tuple[Any, ...] = (
            usage.provider,
            usage.served_model,
            usage.model,
            usage.region,
            usage.service_tier,
            usage.batch,
        )
        if PLUGIN_PRICES.dated and sent_at is not None:
            key = (*key, sent_at.date())
        found = cache.get(key)
        if found is None:
            found = self._lookup(key, usage, sent_at)
            if found.fault is None:
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[key] = found
        return found

    def _lookup(
        self, key: tuple[Any, ...], usage: Usage, sent_at: dt.datetime | None
    ) -> Resolution:
        table = self._overrides.get(usage.provider)
        models = _models_to_price(usage, table)
        reason: str | None = None

        if table is not None:
            for model in models:
                try:
                    found = table.lookup(
                        model, usage.region, usage.service_tier, usage.batch
                    )
                except Exception as error:
                    logger.warning(
                        "the %s override table failed to look up model %s: %r",
                        usage.provider,
                        model,
                        error,
                    )
                    return Resolution(
                        None, "override", None, f"override lookup failed: {error!r}"
                    )
                if isinstance(found, Price):
                    if _invalid_override_price(usage, model, found):
                        break
                    published = PLUGIN_PRICES.lookup(key, usage, models, sent_at)
                    if published.price is not None:
                        _check_override_unit(usage, model, found, published.price)
                    return Resolution(found, "override", None)
                if isinstance(found, Unpriced):
                    if found.final:
                        return Resolution(None, "override", found.reason)
                    reason = reason or found.reason

        resolution = PLUGIN_PRICES.lookup(key, usage, models, sent_at)
        if resolution.price is None and resolution.reason is None and reason:
            return attrs.evolve(resolution, reason=reason)
        return resolution


def _models_to_price(usage: Usage, overrides: PriceTable | None) -> list[str]:
    """Return the model ids to look prices up for, the most precise first.

    The model that the response names comes first, then the requested one.
    A requested name that the user mapped to a model, such as an Azure
    deployment's, adds that model id, which every price source can look up.
    When it extends the served name, as `gpt-4-turbo` extends `gpt-4`, it
    names the model more precisely and replaces the served name. A mapping
    in the tracker's override table (its `mapped_model`) comes before the
    plugins' mappings.
    """
    requested = usage.model
    served = usage.served_model
    if not served or served == requested:
        served = None
    mapped = None
    mapped_in_table = getattr(overrides, "mapped_model", None)
    if callable(mapped_in_table):
        try:
            mapped = mapped_in_table(requested)
        except Exception as error:
            logger.warning(
                "the %s override table failed to map model %s: %r",
                usage.provider,
                requested,
                error,
            )
    if not isinstance(mapped, str) or not mapped:
        mapped = PLUGIN_PRICES.mapped_model(usage.provider, requested)
    if mapped is None:
        return [requested] if served is None else [served, requested]
    if served is None or mapped.startswith(served):
        return [mapped, requested]
    return [served, mapped, requested]


def _first_price(
    lookups: list[tuple[str, Any]], arguments: dict[str, Any]
) -> Price | None:
    """Return the first `Price` that `lookups` give for `arguments`, quietly.

    It serves a plausibility check only, so a plugin that raises is skipped.
    """
    for _, impl in lookups:
        try:
            found = impl.function(*[arguments[arg] for arg in impl.argnames])
        except Exception:
            continue
        if isinstance(found, Price) and price_problem(found) is None:
            return found
    return None


def _short_repr(value: object) -> str:
    """Return `value`'s repr cut short by `reprlib`, up to 80 characters an object."""
    shortener = reprlib.Repr()
    shortener.maxother = 80
    return shortener.repr(value)


def _warn_wrong_type(name: str, usage: Usage, model: str, found: object) -> None:
    """Log and warn that plugin `name` returned `found`, a value of the wrong type.

    The value is skipped like an invalid price. The resolution is cached, so
    this runs once per cached lookup, not once per request.
    """
    type_name = type(found).__name__
    article = "an" if type_name[:1].lower() in "aeiou" else "a"
    message = (
        f"Plugin {name!r} returned {article} {type_name} from price_lookup for "
        f"{usage.provider} model {model!r}: {_short_repr(found)}. llmfy "
        "skipped it and asked the next price source. Return a Price, an "
        "Unpriced or None, such as Price(Decimal('0.15'), Decimal('0.60'), "
        "source='...'), or report it to the plugin's author."
    )
    logger.warning("%s", message)
    emit_warning(PricingWarning(message), stacklevel=3)


def _invalid_plugin_price(name: str, usage: Usage, model: str, price: Price) -> bool:
    """Log, warn and return True when plugin `name` returned an unusable `price`.

    Such a price is skipped like a result of the wrong type, so that a NaN or
    negative rate never reaches the cost arithmetic. The warning is for the
    plugin's author, who would otherwise see only the other source's cost.
    """
    return _invalid_price(
        f"Plugin {name!r} returned an invalid price from price_lookup",
        "the next price source",
        usage,
        model,
        price,
    )


def _invalid_override_price(usage: Usage, model: str, price: Price) -> bool:
    """Log, warn and return True when an override table returned an unusable `price`.

    Tables that llmfy's own plugins parse are validated as they are read, but
    a third-party plugin's `pricing_table_parse` may return a table whose
    prices break the cost arithmetic.
    """
    return _invalid_price(
        f"The {usage.provider}_pricing table returned an invalid price",
        "the price plugins",
        usage,
        model,
        price,
    )


def _invalid_price(
    returned_by: str, asked_next: str, usage: Usage, model: str, price: Price
) -> bool:
    problem = price_problem(price)
    if problem is None:
        return False
    message = (
        f"{returned_by} for {usage.provider} model {model!r}: {problem}. llmfy "
        f"skipped it and asked {asked_next}. {INVALID_PRICE_FIX}"
    )
    logger.warning("%s", message)
    emit_warning(PricingWarning(message), stacklevel=3)
    return True


def _check_override_unit(
    usage: Usage, model: str, override: Price, published: Price
) -> None:
    """Warn when an override price is off from the published one by a unit factor."""
    _check_unit(
        usage,
        model,
        override,
        published,
        f"Check the unit of {usage.provider}_pricing=: give `price_per_tokens` "
        "when the prices are for another number of tokens.",
        kind="override",
    )


def _check_unit(
    usage: Usage,
    model: str,
    price: Price,
    published: Price,
    fix: str,
    kind: str = "organization",
) -> None:
    """Warn when a price is off from the published one by a unit factor.

    `fix` ends the message, and `kind` names the price.
    """
    per_million = price.input * MILLION / price.price_per_tokens
    known = published.input * MILLION / published.price_per_tokens
    if not per_million or not known:
        return
    ratio = per_million / known
    if 1 / _UNIT_MISTAKE_RATIO < ratio < _UNIT_MISTAKE_RATIO:
        return
    message = (
        f"The {kind} input price for {usage.provider} model {model!r} is "
        f"{describe_rate(price.input, price.price_per_tokens)} and "
        f"{format_ratio(ratio)} times the published price of "
        f"{format_decimal(known)} USD per million, from "
        f"{published.source or 'a bundled table'}. {fix}"
    )
    logger.warning("%s", message)
    emit_warning(PricingWarning(message), stacklevel=2)
