"""The prices of a price file, and how a request finds its price among them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import attrs

from llmfy_core import Price, PriceKey

# Prefixes of Bedrock cross-region inference profile ids. They are the ones
# that llmfy-bedrock resolves (`llmfy_bedrock.resolve.PROFILE_PREFIXES`), so
# that a price file entry prices every profile that the bundled table prices.
BEDROCK_PROFILE_PREFIXES = (
    "us.",
    "us-gov.",
    "eu.",
    "apac.",
    "jp.",
    "au.",
    "ca.",
    "global.",
)
_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@attrs.frozen(slots=True)
class PriceEntry:
    """One price of a price file, with the days it is in force.

    `effective_from` is the first UTC day the price applies to and
    `effective_until` the first day it no longer does; None is unbounded.
    `price` already has the provider's discount or multiplier applied.
    """

    provider: str
    key: PriceKey
    price: Price
    effective_from: dt.date | None = None
    effective_until: dt.date | None = None

    def applies_on(self, day: dt.date) -> bool:
        """Return whether the price is in force on `day`."""
        if self.effective_from is not None and day < self.effective_from:
            return False
        return self.effective_until is None or day < self.effective_until


@attrs.frozen(slots=True)
class ProviderAdjustment:
    """The factor a provider's prices in the file were multiplied by.

    `discount_percent` is set when the file gave a discount, None when it gave
    a `multiplier` or nothing.
    """

    factor: Decimal
    discount_percent: Decimal | None = None


class PriceList:
    """The validated prices of one price file, ready for lookups."""

    def __init__(
        self,
        path: Path,
        entries: Sequence[PriceEntry],
        adjustments: Mapping[str, ProviderAdjustment],
    ) -> None:
        self.path = path
        self.entries: tuple[PriceEntry, ...] = tuple(entries)
        self.adjustments: Mapping[str, ProviderAdjustment] = dict(adjustments)
        self._by_key: dict[tuple[str, PriceKey], list[PriceEntry]] = {}
        for entry in self.entries:
            self._by_key.setdefault((entry.provider, entry.key), []).append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers that have at least one price, sorted."""
        return tuple(sorted({entry.provider for entry in self.entries}))

    def lookup(
        self,
        provider: str,
        model: str,
        region: str | None = None,
        service_tier: str | None = None,
        batch: bool = False,
        requested_at: dt.datetime | dt.date | None = None,
    ) -> Price | None:
        """Return the price in force for one request, or None.

        `requested_at` is when the request was sent, and a naive datetime is
        taken as UTC. Its UTC day selects among dated entries; None means
        today. Model ids are tried in the order `model_candidates` yields
        them. For each id, the entry for the request's region and tier comes
        first, then the entry without tier, without region, and without
        either, as in llmfy's own tables.
        """
        day = utc_day(requested_at)
        for candidate in model_candidates(provider, model):
            for key in _specificity_order(candidate, region, service_tier, batch):
                for entry in self._by_key.get((provider, key), ()):
                    if entry.applies_on(day):
                        return entry.price
        return None

    def in_force(
        self, day: dt.date, provider: str | None = None
    ) -> Iterator[PriceEntry]:
        """Yield the entries in force on `day`, of one provider or of all."""
        for entry in self.entries:
            if provider is not None and entry.provider != provider:
                continue
            if entry.applies_on(day):
                yield entry


def utc_day(moment: dt.datetime | dt.date | None) -> dt.date:
    """Return the UTC day of `moment`; naive datetimes are UTC, None is today."""
    if moment is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
        return moment.date()
    return moment


def model_candidates(provider: str, model: str) -> Iterator[str]:
    """Yield the ids to look `model` up by, most specific first, without repeats.

    The first is the id itself. A dated snapshot such as
    `gpt-4o-mini-2024-07-18` is followed by the id without its trailing
    `-YYYY-MM-DD`. For Bedrock, the model id inside an ARN follows, and then
    the id without a cross-region profile prefix (`us.`, `eu.`, ...).
    """
    seen: set[str] = set()
    for candidate in _raw_candidates(provider, model):
        if candidate and candidate not in seen:
            seen.add(candidate)
            yield candidate


def _raw_candidates(provider: str, model: str) -> Iterator[str]:
    yield model
    yield _DATE_SUFFIX.sub("", model)
    if provider != "bedrock":
        return
    model_id = model.rsplit("/", 1)[-1] if model.startswith("arn:") else model
    yield model_id
    for prefix in BEDROCK_PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            yield model_id.removeprefix(prefix)
            break


def _specificity_order(
    model: str, region: str | None, service_tier: str | None, batch: bool
) -> Iterator[PriceKey]:
    regions = (region, None) if region is not None else (None,)
    tiers = (service_tier, None) if service_tier is not None else (None,)
    for each_region in regions:
        for tier in tiers:
            yield PriceKey(model, each_region, tier, batch)
