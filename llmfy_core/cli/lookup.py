"""Find the price of one model for `llmfy cost` and `llmfy prices --model`.

When the arguments do not pick one price, the error says which argument is
missing: a provider that cannot be guessed, a region for a model priced by
region, or a service tier that no price source lists. Both commands use the
same checks, so the same cause ends both with the same exit code.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping

import attrs

from llmfy_core.plugins import PROVIDER_INSTALL_HINT
from llmfy_core.pricing import (
    BATCH_TIER,
    SERVICE_TIERS,
    STANDARD_TIERS,
    likely_typo,
    same_id_spelled_otherwise,
    suggested_name,
)
from llmfy_core.ranks import PriceRank
from llmfy_core.resolver import PriceResolver, Resolution

from .output import EXIT_USAGE, CliError
from .sources import ListedPrice, catalog, describe_unpriced, origin_rank, resolve

logger = logging.getLogger("llmfy.cli")

PROVIDER_NAMES = {"openai": "OpenAI", "bedrock": "Bedrock"}

MAX_SUGGESTIONS = 3


@attrs.frozen(slots=True)
class PriceQuery:
    """The arguments that select one price: model, provider, region, tier, batch."""

    model: str
    provider: str | None = None
    region: str | None = None
    service_tier: str | None = None
    batch: bool = False


@attrs.frozen(slots=True)
class KnownPrices:
    """What the plugins' price listings name, by provider.

    Used to check arguments and to explain a missing price; a plugin that
    prices models without listing them is still asked for every price.
    """

    models: Mapping[str, frozenset[str]]
    regions: Mapping[str, tuple[str, ...]]
    tiers: Mapping[str, frozenset[str]]

    @classmethod
    def collect(cls) -> KnownPrices:
        """Read every plugin's `price_catalog` listing.

        An entry with an invalid price still counts: its provider and model
        id are spelt right, and the lookup reports the price as invalid.
        """
        models: dict[str, set[str]] = {}
        regions: dict[str, set[str]] = {}
        tiers: dict[str, set[str]] = {}
        for listed in catalog(None, usable_only=False):
            provider = listed.entry.provider
            key = listed.entry.key
            models.setdefault(provider, set()).add(key.model)
            regions.setdefault(provider, set())
            tiers.setdefault(provider, set())
            if key.region:
                regions[provider].add(key.region)
            if key.service_tier:
                tiers[provider].add(key.service_tier)
        return cls(
            models={name: frozenset(ids) for name, ids in models.items()},
            regions={name: tuple(sorted(found)) for name, found in regions.items()},
            tiers={name: frozenset(found) for name, found in tiers.items()},
        )

    @property
    def providers(self) -> list[str]:
        """The providers that some plugin lists prices for, sorted."""
        return sorted(self.models)

    def tiers_of(self, provider: str | None) -> list[str]:
        """Return the service tiers accepted for `provider`, or for any provider.

        These are the tiers that `openai_pricing` takes (`SERVICE_TIERS`), with
        two additions. The names of the standard tier are accepted, although
        `openai_pricing` needs none because an entry's own prices are the
        standard ones. A tier that a price source lists for the provider, such
        as one in a price file, is accepted because that source prices it.
        """
        names = [provider] if provider else self.providers
        listed = {tier for name in names for tier in self.tiers.get(name, ())}
        return sorted(listed | STANDARD_TIERS | SERVICE_TIERS)

    def close_models(self, model: str, provider: str | None = None) -> list[str]:
        """Return up to three listed model ids close to `model`, with their provider."""
        names = [provider] if provider else self.providers
        owners: dict[str, str] = {}
        for name in names:
            for known in sorted(self.models.get(name, ())):
                owners.setdefault(known, name)
        wanted = model.lower()
        containing = [known for known in owners if wanted in known.lower()]
        similar = difflib.get_close_matches(model, list(owners), n=MAX_SUGGESTIONS)
        found = list(dict.fromkeys([*similar, *sorted(containing, key=len)]))
        return [f"{known} ({owners[known]})" for known in found[:MAX_SUGGESTIONS]]

    def close_models_hint(self, model: str, provider: str) -> str:
        """Return a sentence that names the listed ids closest to `model`.

        Returns "" when `provider` lists `model` or no listed id is close.
        """
        suggestions = self.close_models(model, provider)
        if not suggestions or model in self.models.get(provider, ()):
            return ""
        return f" Listed model ids close to it: {', '.join(suggestions)}."

    def other_providers_hint(self, model: str, provider: str) -> str:
        """Return a sentence naming the other providers that list `model`, or ""."""
        others = [
            name
            for name in self.providers
            if name != provider and model in self.models.get(name, ())
        ]
        if not others:
            return ""
        owners = " and ".join(others)
        return (
            f" Provider {owners} lists {model!r}, so name that provider instead "
            f"of {provider}."
        )


def find_price(
    resolver: PriceResolver, query: PriceQuery, known: KnownPrices
) -> tuple[str, Resolution, str | None]:
    """Resolve the price `query` selects, the way a tracker would.

    Returns the provider, the resolution and, when there is no price, the
    reason to show. Raises `CliError` (exit code 2) when the arguments do not
    select one price: the provider cannot be guessed or is unknown, the model
    is priced by region and no region was given, or the region or service
    tier is unknown.
    """
    provider = query.provider or guess_provider(resolver, query, known)
    check_tier(query.service_tier, provider, known)
    check_region(query.region, provider, known)
    found = _resolve(resolver, query, provider, query.region)
    if found.price is not None:
        _warn_if_region_unused(resolver, query, provider, found, known)
        return provider, found, None
    return provider, found, explain_unpriced(resolver, query, provider, found, known)


def _warn_if_region_unused(
    resolver: PriceResolver,
    query: PriceQuery,
    provider: str,
    found: Resolution,
    known: KnownPrices,
) -> None:
    """Warn when --region was given for a provider whose listed prices have none.

    Such a region is accepted, as for OpenAI, but a misspelt or wrong one
    would otherwise pass unnoticed. The warning is given only when the price
    without a region is the same one.
    """
    if query.region is None or known.regions.get(provider):
        return
    if _resolve(resolver, query, provider, None) != found:
        return
    # The price that applies may come from --prices, which wins over a plugin
    # that has a rate for the region, so the message names where it is from.
    logger.warning(
        "--region %s does not change the price of %s model %r, because the "
        "price from %s has no rate of its own for that region. Check the "
        "region, or leave out --region.",
        query.region,
        provider,
        query.model,
        found.origin,
    )


def guess_provider(
    resolver: PriceResolver, query: PriceQuery, known: KnownPrices
) -> str:
    """Return the one provider whose prices know the model, or raise `CliError`.

    The guess ignores the service tier and batch flag, which `check_tier` and
    the lookup itself judge. When several providers price the model, those
    priced by a provider table or a higher source are preferred over fallback
    databases.
    """
    query = attrs.evolve(query, service_tier=None, batch=False)
    priced: dict[str, Resolution] = {}
    for provider in known.providers:
        found = _resolve(resolver, query, provider, query.region)
        if found.price is not None:
            priced[provider] = found
    if len(priced) > 1:
        strong = {
            provider: found
            for provider, found in priced.items()
            if origin_rank(found.origin) >= PriceRank.PROVIDER
        }
        priced = strong or priced
    if len(priced) == 1:
        return next(iter(priced))
    if priced:
        raise CliError(
            f"Model {query.model!r} is priced by several providers: "
            f"{', '.join(sorted(priced))}. Pass one with --provider."
        )

    by_region = {
        provider: regions
        for provider in known.providers
        if (regions := regions_with_price(resolver, query, provider, known))
    }
    if len(by_region) == 1:
        provider, regions = next(iter(by_region.items()))
        if query.region is None:
            raise region_needed(query.model, provider, regions)
        # Priced in other regions: the caller explains that with exit code 3.
        return provider
    if by_region:
        raise CliError(
            f"Model {query.model!r} is priced by several providers: "
            f"{', '.join(sorted(by_region))}. Pass one with --provider."
        )
    raise _unknown_model(query.model, known)


def check_tier(tier: str | None, provider: str | None, known: KnownPrices) -> None:
    """Raise `CliError` for a service tier that `KnownPrices.tiers_of` does not accept.

    Without this check a misspelt tier such as `flx` would be priced at the
    standard rate, as tables fall back to it for tiers they do not list.
    `batch`, which `openai_pricing` takes beside the tiers, is rejected with a
    pointer to --batch.
    """
    if tier is None:
        return
    if tier == BATCH_TIER:
        raise CliError(
            f"--tier {BATCH_TIER}: the Batch API is not a service tier. Pass --batch "
            "for Batch API prices."
        )
    accepted = known.tiers_of(provider)
    if tier in accepted:
        return
    whose = f"provider {provider}" if provider else "any provider"
    raise CliError(
        f"Unknown service tier {tier!r} for {whose}. Valid tiers: "
        f"{', '.join(accepted)}.{did_you_mean(tier, accepted)} Check the "
        "spelling, or give the tier's prices with --prices FILE."
    )


def is_standard_tier(tier: str | None) -> bool:
    """Return whether `tier` is None or a name of the standard service tier."""
    return tier is None or tier in STANDARD_TIERS


def check_region(region: str | None, provider: str | None, known: KnownPrices) -> None:
    """Raise `CliError` for a region that misspells one with listed prices.

    Without this check a misspelt region such as `us-eats-1` would be priced
    by a source whose price applies to every region, or listed with it. Any
    other region is accepted: the bundled tables list a few AWS Regions only,
    and a lookup in another one reports that it has no price there.
    """
    if region is None:
        return
    names = [provider] if provider else known.providers
    regional = [name for name in names if known.regions.get(name)]
    listed = sorted(set().union(*(known.regions[name] for name in regional)))
    if region in listed:
        return
    # Only regions of the same area (`us`, `ap`...) are compared: `af-south-1`
    # and `ap-south-1` are both real AWS Regions, one letter apart.
    area = region.partition("-")[0] + "-"
    meant = likely_typo(
        region, [each for each in listed if each.startswith(area)]
    ) or same_id_spelled_otherwise(region, listed)
    if meant is None:
        return
    provider_names = " or ".join(regional)
    raise CliError(
        f"No installed plugin lists {provider_names} prices in region {region!r}. "
        f"Did you mean {meant}? Regions with listed prices: {', '.join(listed)}. "
        "Check the spelling, or give the prices of that region with --prices FILE."
    )


def check_provider(
    provider: str | None, known: KnownPrices, listing: Iterable[ListedPrice]
) -> None:
    """Raise `CliError` for a provider that no plugin lists prices for.

    `listing` is `catalog(provider)`: a plugin may list a provider only when
    asked for it by name, as genai-prices does for the providers besides
    OpenAI and Bedrock. Only the listing of `llmfy prices` checks this before
    it starts. A price lookup calls every plugin, because a plugin may price a
    provider that it does not list, and `explain_unpriced` rejects the
    provider afterwards.
    """
    if provider is None or provider in known.models:
        return
    if any(listed.entry.provider == provider for listed in listing):
        return
    listed = ", ".join(known.providers) or "none"
    raise CliError(
        f"No installed plugin lists prices for provider {provider!r}. Providers "
        f"with listed prices: {listed}.{did_you_mean(provider, known.providers)} "
        "Check the spelling and `llmfy plugins`, or resolve one model of the "
        "provider with --model ID."
    )


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return " Did you mean X?" for the choice `name` most likely means, else ""."""
    close = suggested_name(name, choices)
    return f" Did you mean {close}?" if close else ""


def explain_unpriced(
    resolver: PriceResolver,
    query: PriceQuery,
    provider: str,
    found: Resolution,
    known: KnownPrices,
) -> str:
    """Return why `query` has no price, or raise `CliError` for a missing argument.

    A model priced only in other regions needs --region (exit code 2). A
    provider that no plugin lists prices for is most likely misspelt (exit
    code 2). Anything else is a model without a price (exit code 3).
    """
    regions = regions_with_price(resolver, query, provider, known)
    if regions and query.region is None:
        raise region_needed(query.model, provider, regions)
    if regions:
        return (
            f"{_display(provider)} lists prices for it in {', '.join(regions)}, but "
            f"not in {query.region}. Pass one of those regions with --region, or "
            "give the price with --prices FILE."
        )
    if provider not in known.models and found.origin is None:
        listed = ", ".join(known.providers) or "none"
        raise CliError(
            f"No installed plugin lists prices for provider {provider!r}, and none "
            f"has a price for its model {query.model!r}. Providers with listed "
            f"prices: {listed}.{did_you_mean(provider, known.providers)} Check the "
            "provider's spelling, or give the model's price with --prices FILE."
        )
    meant = None if found.origin else misspelt_model(resolver, query.model, known)
    if meant is not None:
        raise CliError(
            f"No installed price source lists or prices model {query.model!r} "
            f"under any provider. Did you mean {meant}? Check the model id, or "
            "give the price of a model of your own with --prices FILE."
        )
    reason = describe_unpriced(found.reason)
    reason += known.other_providers_hint(query.model, provider)
    reason += known.close_models_hint(query.model, provider)
    return reason + " With the llmfy command, give the price with --prices FILE."


def misspelt_model(
    resolver: PriceResolver, model: str, known: KnownPrices
) -> str | None:
    """Return the listed id that `model` misspells, with its provider, or None.

    A misspelling is what `likely_typo` finds. None also when any price
    source lists `model` or prices it under some provider, in some listed
    region, so that a model priced by a plugin without a listing is never
    taken for a misspelling. An id that nothing lists or prices and that is
    not close to a listed one is a model of the user's own, with no price.
    """
    owners: dict[str, str] = {}
    for provider in known.providers:
        for listed in sorted(known.models[provider]):
            owners.setdefault(listed, provider)
    if model in owners:
        return None
    meant = likely_typo(model, owners)
    if meant is None:
        return None
    query = PriceQuery(model)
    for provider in known.providers:
        found = _resolve(resolver, query, provider, None)
        if found.price is not None or found.origin is not None:
            return None
        if regions_with_price(resolver, query, provider, known):
            return None
    return f"{meant} ({owners[meant]})"


def regions_with_price(
    resolver: PriceResolver, query: PriceQuery, provider: str, known: KnownPrices
) -> list[str]:
    """Return the listed regions of `provider` in which the model has a price."""
    return [
        region
        for region in known.regions.get(provider, ())
        if _resolve(resolver, query, provider, region).price is not None
    ]


def region_needed(model: str, provider: str, regions: list[str]) -> CliError:
    """Build the error for a model whose price depends on a region not given."""
    return CliError(
        f"{model!r} is a {_display(provider)} model whose price depends on the "
        f"region. {region_advice(regions)}",
        exit_code=EXIT_USAGE,
    )


def region_advice(regions: list[str]) -> str:
    """Tell the user to pass --region, with the regions that have a price."""
    example = "us-east-1" if "us-east-1" in regions else regions[0]
    return (
        f"Pass the region the requests went to, such as --region {example}. "
        f"Regions with a price: {', '.join(regions)}."
    )


def _unknown_model(model: str, known: KnownPrices) -> CliError:
    if not known.providers:
        return CliError(
            f"No installed plugin has a price for model {model!r}, because no "
            "plugin that lists prices is installed. Install the provider plugins "
            f"{PROVIDER_INSTALL_HINT}. For a model of your own, pass its provider "
            "with --provider and its price with --prices FILE."
        )
    suggestions = known.close_models(model)
    advice = "Check the spelling of the model id."
    if suggestions:
        advice = f"Listed model ids close to it: {', '.join(suggestions)}."
    providers = ", ".join(known.providers) or "none"
    return CliError(
        f"No installed plugin has a price for model {model!r} under any of the "
        f"providers with prices: {providers}. {advice} For a model of your own, "
        "pass its provider with --provider and its price with --prices FILE."
    )


def _resolve(
    resolver: PriceResolver, query: PriceQuery, provider: str, region: str | None
) -> Resolution:
    return resolve(
        resolver,
        provider,
        query.model,
        region=region,
        service_tier=query.service_tier,
        batch=query.batch,
    )


def _display(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)
