"""Bedrock price tables: the bundled one and the shape shared with user overrides.

Prices are keyed by foundation-model id, AWS Region and the batch flag. Where
AWS prices the `global.` profile apart from the Regions, it has an entry of its
own under the key `global.<model id>`. Every other call is priced at the rate
of the Region it was sent to. A Region missing from the table is never priced
at another Region's rate. An entry may keep the prices it had before a price
change, each with the first UTC day it no longer applied, so that a request is
priced at the rate of the day it was sent.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from importlib import resources
from operator import itemgetter
from typing import Any

from llmfy_bedrock.resolve import (
    GLOBAL_SCOPE,
    ModelKind,
    ModelRef,
    candidate_ids,
    model_stem,
    parse_model_id,
    registered_profile_model,
)
from llmfy_core import LongContextTier, Price, PriceKey, Unpriced, pricing
from llmfy_core.model import MILLION
from llmfy_core.pricing import CatalogEntry, request_day

PROVIDER = "bedrock"
DATA_FILE = "prices.json"

# Service tiers billed at the standard rate that the bundled table holds.
STANDARD_TIERS = frozenset({None, *pricing.STANDARD_TIERS})

EntryKey = tuple[str, str | None, bool]
# The earlier prices of one entry, oldest first: the first UTC day each one no
# longer applied, and the price, or None where the table has no price then.
History = tuple[tuple[dt.date, Price | None], ...]


def global_key(model_id: str) -> str:
    """Return the table key of a model's global cross-region profile rate."""
    return f"{GLOBAL_SCOPE}.{model_id}"


class BedrockPriceTable:
    """Prices by model, Region and batch flag, looked up the way AWS bills.

    In the bundled table (`complete=True`), a known model without a price for
    the Region, batch mode or service tier of a request gets a final
    `Unpriced` that says so. No lower-ranked source then prices it at a rate
    that ignores the Region. In a user's override table such a lookup returns
    None, and the next price source is asked.
    """

    def __init__(
        self,
        entries: Mapping[EntryKey, Price],
        *,
        complete: bool,
        history: Mapping[EntryKey, History] | None = None,
    ) -> None:
        self._entries = dict(entries)
        self._complete = complete
        self._history = dict(history or {})
        self._models = _model_index(model for model, _, _ in self._entries)
        self._model_ids = sorted(set(self._models.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> Mapping[EntryKey, Price]:
        """Return every entry, keyed by (model, Region or None, batch)."""
        return dict(self._entries)

    def history(self) -> Mapping[EntryKey, History]:
        """Return the earlier prices of the entries that have them, oldest first."""
        return dict(self._history)

    def lookup(
        self,
        model: str,
        region: str | None,
        service_tier: str | None,
        batch: bool,
        requested_at: dt.datetime | None = None,
    ) -> Price | Unpriced | None:
        """Return the price AWS bills for `model` called in `region`.

        `requested_at` is when the request was sent, None for now. Its UTC day
        chooses among an entry's earlier prices.
        """
        ref = parse_model_id(model)
        if ref.kind is ModelKind.PROVISIONED_MODEL:
            return Unpriced(_provisioned_reason(model), final=True)
        # An application inference profile is billed as what it was copied from.
        copied = ref
        if ref.kind is ModelKind.APPLICATION_INFERENCE_PROFILE:
            registered = registered_profile_model(model)
            if registered is not None:
                copied = parse_model_id(registered)
        region = ref.arn_region or copied.arn_region or region

        found = self._price_on((model, region, batch), requested_at)
        if found is None and not self._complete:
            # A user's entry may key a profile by the bundled spelling of its
            # model id, such as `us.anthropic.claude-opus-4-6-v1:0` for requests
            # to Bedrock's `us.anthropic.claude-opus-4-6-v1`.
            respelt = bundled_spelling(ref) if ref.scope is not None else None
            if respelt is not None:
                found = self._price_on((respelt, region, batch), requested_at)
        if found is not None and (not self._complete or service_tier in STANDARD_TIERS):
            return found

        base = copied.base_model
        if base is None:
            if not self._complete:
                return None
            return Unpriced(_no_model_reason(ref, region), final=True)
        key = self.known_model(base)
        if key is None:
            if copied is ref or not self._complete:
                return None
            return Unpriced(_unknown_copy_reason(model, copied.model_id, region))
        if self._complete and service_tier not in STANDARD_TIERS:
            return Unpriced(_tier_reason(key, region, service_tier), final=True)

        if copied.scope == GLOBAL_SCOPE:
            scoped = global_key(key)
            found = self._price_on((scoped, region, batch), requested_at)
            if found is None:
                found = self._price_on((scoped, None, batch), requested_at)
            if found is not None:
                return found
        found = self._price_on((key, region, batch), requested_at)
        if found is not None:
            return found
        if not self._complete:
            return self._override_missing_region(key, region, batch)
        return Unpriced(self._missing_reason(model, key, region, batch), final=True)

    def _price_on(
        self, key: EntryKey, requested_at: dt.datetime | None
    ) -> Price | Unpriced | None:
        """Return the price of the entry `key` for a request sent at `requested_at`."""
        history = self._history.get(key)
        if history is None:
            return self._entries.get(key)
        day = request_day(requested_at)
        for ended, price in history:
            if day < ended:
                if price is None:
                    return Unpriced(_no_earlier_reason(key, ended), final=True)
                return price
        return self._entries.get(key)

    def model_ids(self) -> list[str]:
        """Return the model ids that have prices in the table, sorted."""
        return self._model_ids

    def known_model(self, base: str) -> str | None:
        """Return the table's key for the base model id `base`, if it is priced."""
        for candidate in candidate_ids(base):
            key = self._models.get(candidate)
            if key is not None:
                return key
        return None

    def regions_of(self, key: str, batch: bool = False) -> list[str]:
        """Return the Regions with a price for the model `key`, sorted."""
        return sorted(
            region
            for model, region, is_batch in self._entries
            if model == key and region is not None and is_batch == batch
        )

    def _override_missing_region(
        self, key: str, region: str | None, batch: bool
    ) -> Unpriced | None:
        """Return why a user's table does not price `key` in `region`, or None.

        The reason is not final, so the other price sources are still asked,
        and it is used only when none of them has a price or a reason.
        """
        regions = self.regions_of(key, batch)
        if region is None or not regions:
            return None
        mode = "batch " if batch else ""
        return Unpriced(
            f"The tracker's bedrock_pricing= table has {mode}prices for model "
            f"{key!r} in {', '.join(regions)} only, not in region {region!r}. "
            "Add that Region to the model's entry.",
            final=False,
        )

    def _missing_reason(
        self, model: str, key: str, region: str | None, batch: bool
    ) -> str:
        mode = "batch " if batch else ""
        regions = ", ".join(self.regions_of(key, batch)) or "none"
        if region is None:
            where = (
                "an unknown region (the client had no region configured, or a "
                "request recorded by hand gave none)"
            )
        else:
            where = f"region {region!r}"
        return (
            f"The bundled Bedrock table has no {mode}price for model {key!r} in "
            f"{where}; it has {mode}prices for: {regions}. llmfy never uses another "
            f"region's rate. Add the price with {_override_example(model, region)}."
        )

    def catalog(self) -> Iterator[CatalogEntry]:
        """List every entry for `llmfy prices`."""
        for (model, region, batch), price in sorted(
            self._entries.items(), key=lambda item: _sort_key(item[0])
        ):
            yield CatalogEntry(PROVIDER, PriceKey(model, region, None, batch), price)


def bundled_spelling(ref: ModelRef) -> str | None:
    """Return `ref`'s id spelt with the bundled table's model id, if it differs.

    A profile prefix is kept: `us.anthropic.claude-opus-4-6-v1` gives
    `us.anthropic.claude-opus-4-6-v1:0`. ARNs and models the bundled table
    does not know give None.
    """
    if ref.base_model is None or ref.model_id.startswith("arn:"):
        return None
    known = bundled_table().known_model(ref.base_model)
    if known is None or known == ref.base_model:
        return None
    return known if ref.scope is None else f"{ref.scope}.{known}"


def _model_index(models: Iterable[str]) -> dict[str, str]:
    """Map each model id, and each shorter form that only one id has, to the id.

    The shorter forms are the id without its `:N` revision and its
    version-less stem. Requests for `anthropic.claude-opus-4-6-v1` (Bedrock's
    id for Claude Opus 4.6) and `us.anthropic.claude-sonnet-5` then find the
    table's `anthropic.claude-opus-4-6-v1:0` and `anthropic.claude-sonnet-5-v1:0`.
    A stem shared by two versions (such as `amazon.titan-embed-text` for v1
    and v2) matches neither.
    """
    index: dict[str, str] = {}
    shorter: dict[str, set[str]] = {}
    for model in models:
        if model.startswith(("arn:", f"{GLOBAL_SCOPE}.")):
            continue
        index[model] = model
        without_revision = model.rpartition(":")[0]
        for form in (without_revision, model_stem(model)):
            if form:
                shorter.setdefault(form, set()).add(model)
    for form, owners in shorter.items():
        if len(owners) == 1 and form not in index:
            index[form] = next(iter(owners))
    return index


def _sort_key(key: EntryKey) -> tuple[str, str, bool]:
    model, region, batch = key
    return (model, region or "", batch)


def _override_example(model: str, region: str | None) -> str:
    return (
        f"llmfy_usage_tracker(bedrock_pricing={{{model!r}: {{{region or 'REGION'!r}: "
        "{'input': ..., 'output': ...}}}) in USD per 1,000 tokens"
    )


def _provisioned_reason(model: str) -> str:
    return (
        f"{model!r} is a provisioned-throughput model: it is billed by the hour for "
        "its model units, not per token, so llmfy counts its tokens without a cost."
    )


def _no_model_reason(ref: ModelRef, region: str | None) -> str:
    if ref.kind is ModelKind.APPLICATION_INFERENCE_PROFILE:
        return (
            f"{ref.model_id!r} is an application inference profile: neither its ARN "
            "nor Bedrock's response names the model behind it. Map the ARN to its "
            f"price with {_override_example(ref.model_id, region)}, or name its "
            "model with llmfy_bedrock.register_profile_model(ARN, MODEL_ID)."
        )
    return (
        f"{ref.model_id!r} names no foundation model that llmfy can price: it is a "
        "custom or imported model, or a prompt router whose response did not name "
        f"the model it invoked. Add its price with "
        f"{_override_example(ref.model_id, region)}."
    )


def _unknown_copy_reason(profile: str, copied: str, region: str | None) -> str:
    return (
        f"Application inference profile {profile!r} is registered as a copy of "
        f"{copied!r}, which the bundled Bedrock table has no price for. Check the "
        "id given to llmfy_bedrock.register_profile_model(), or add the price with "
        f"{_override_example(profile, region)}."
    )


def _no_earlier_reason(key: EntryKey, ended: dt.date) -> str:
    model, region, batch = key
    mode = "batch " if batch else ""
    where = f"region {region!r}"
    if region is None:
        where = "the global cross-region profile"
    return (
        f"The bundled Bedrock table has no {mode}price for model {model!r} in {where} "
        f"for requests sent before {ended.isoformat()}. Its current price starts on "
        "that day and is not used for earlier requests. Add the price with "
        f"{_override_example(model, region)}."
    )


def _tier_reason(key: str, region: str | None, tier: str | None) -> str:
    return (
        f"The bundled Bedrock table holds standard-tier prices only, and the "
        f"response for model {key!r} in region {region!r} reports the {tier!r} "
        f"service tier, which AWS prices differently. Add its price with "
        f"{_override_example(key, region)}."
    )


# Loading the bundled table


@functools.cache
def bundled_table() -> BedrockPriceTable:
    """Return the bundled price table, read from the package data once."""
    text = resources.files("llmfy_bedrock").joinpath(DATA_FILE).read_text("utf-8")
    entries, history = _parse_data(json.loads(text))
    return BedrockPriceTable(entries, complete=True, history=history)


def _parse_data(
    data: Mapping[str, Any],
) -> tuple[dict[EntryKey, Price], dict[EntryKey, History]]:
    """Return the current prices of the data file, and the earlier ones by entry."""
    entries: dict[EntryKey, Price] = {}
    history: dict[EntryKey, History] = {}
    for model, spec in data["models"].items():
        for rate in spec["rates"]:
            current = _rate_prices(rate)
            earlier = sorted(
                (
                    (dt.date.fromisoformat(past["effective_until"]), _rate_prices(past))
                    for past in rate.get("earlier", ())
                ),
                key=itemgetter(0),
            )
            if rate.get("scope") == GLOBAL_SCOPE:
                keys: Iterable[tuple[str, str | None]] = [(global_key(model), None)]
            else:
                keys = [(model, region) for region in rate["regions"]]
            for key_model, region in keys:
                for batch, price in current.items():
                    key = (key_model, region, batch)
                    if price is not None:
                        entries[key] = price
                    past = tuple((ended, prices[batch]) for ended, prices in earlier)
                    if past and (price is not None or any(p for _, p in past)):
                        history[key] = past
    return entries, history


def _rate_prices(rate: Mapping[str, Any]) -> dict[bool, Price | None]:
    """Return a rate's on-demand price (key False) and batch price (key True).

    `rate` is a rate of the data file or one of its earlier prices. The batch
    price is None when it has none.
    """
    batch = rate.get("batch")
    return {
        False: _price_of(rate, rate),
        True: None if batch is None else _price_of(batch, rate),
    }


def _price_of(fields: Mapping[str, Any], rate: Mapping[str, Any]) -> Price:
    long_context = fields.get("long_context")
    tiers: tuple[LongContextTier, ...] = ()
    if long_context is not None:
        tier_price = _price_of({**long_context, "long_context": None}, rate)
        tiers = (LongContextTier(int(long_context["above_input_tokens"]), tier_price),)
    other = {}
    if "cache_write_1h" in fields:
        other["cache_write_1h"] = Decimal(fields["cache_write_1h"])
    return Price(
        input=Decimal(fields["input"]),
        output=Decimal(fields["output"]),
        cache_read=_optional(fields.get("cache_read")),
        cache_write=_optional(fields.get("cache_write")),
        other=other,
        price_per_tokens=MILLION,
        long_context=tiers,
        source=rate["source"],
        checked=dt.date.fromisoformat(rate["checked"]),
    )


def _optional(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
