"""Read and validate a price file: an organisation's own prices in TOML or JSON.

A price file is data only. TOML is read with `tomllib` and JSON with `json`;
nothing in the file is ever executed. The format (described in full in this
distribution's README):

    format_version = 1                  # optional, 1 is the only version
    unit = "usd_per_million_tokens"     # optional, the default unit

    [providers.openai]
    discount_percent = 12.5             # or multiplier = 1.1, optional

    [[providers.openai.prices]]
    model = "gpt-4o-mini"               # required
    input = 0.15                        # required, as is output
    output = 0.60
    cache_read = 0.075                  # optional, as is cache_write
    region = "us-east-1"                # optional, as are service_tier, batch
    effective_from = 2025-01-01         # optional, inclusive (UTC day)
    effective_until = 2026-01-01        # optional, exclusive (UTC day)
    # Optional: the prices of requests above 128,000 input tokens.
    long_context = [{ above_input_tokens = 128000, input = 0.30, output = 1.20 }]

Entries of one provider that share model, region, service tier and batch flag
must not overlap in time, so that every request matches at most one of them.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from llmfy_core import Price, PriceKey, PricingTableError, PricingWarning
from llmfy_core.errors import warn_in_setup
from llmfy_core.logs import get_logger
from llmfy_core.long_context import LONG_CONTEXT, parse_long_context
from llmfy_core.plugins import ListedRegions, provider_model_ids, provider_regions
from llmfy_core.pricing import (
    BATCH_TIER,
    DECIMAL_CONTEXT,
    MAX_PRICE_EXPONENT,
    SERVICE_TIERS,
    STANDARD_TIERS,
    describe_entry,
    likely_typo,
    parse_price_value,
)

from .prices import PriceEntry, PriceList, ProviderAdjustment, model_candidates

logger = get_logger("llmfy.plugins.pricing_file")

# Larger files are rejected before parsing. A price list of every model that
# OpenAI and Bedrock sell is a few hundred entries, well under 1 MiB.
MAX_FILE_BYTES = 8 * 1024 * 1024

UNITS: Mapping[str, int] = {
    "usd_per_million_tokens": 1_000_000,
    "usd_per_thousand_tokens": 1_000,
    "usd_per_token": 1,
}
DEFAULT_UNIT = "usd_per_million_tokens"

FORMAT_VERSION = 1
PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")

_TOP_LEVEL_KEYS = frozenset({"format_version", "unit", "providers"})
_PROVIDER_KEYS = frozenset({"discount_percent", "multiplier", "unit", "prices"})
_ENTRY_KEYS = frozenset(
    {
        "model",
        "region",
        "service_tier",
        "batch",
        "unit",
        "effective_from",
        "effective_until",
        "note",
        LONG_CONTEXT,
        *PRICE_FIELDS,
    }
)
_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOML_LINE = re.compile(r"at line (\d+)")

LONG_CONTEXT_SHAPE = (
    "long_context = [{ above_input_tokens = 272000, input = 5.00, "
    "output = 22.50 }] in the entry, in the unit of its prices; optional "
    "cache_read, cache_write"
)

EXPECTED_SHAPE = (
    '[[providers.openai.prices]] model = "gpt-4o-mini", input = 0.15, '
    "output = 0.60 (in JSON: "
    '{"providers": {"openai": {"prices": [{"model": "gpt-4o-mini", '
    '"input": 0.15, "output": 0.60}]}}})'
)


class PriceFileError(PricingTableError):
    """A price file is invalid.

    The message names the file and either the line (`line`) or the key path
    (`key_path`, such as `providers.openai.prices[2].input`) and the value.
    """

    def __init__(
        self,
        path: Path,
        message: str,
        *,
        line: int | None = None,
        key_path: str | None = None,
    ) -> None:
        if line is not None:
            where = f"line {line}"
        elif key_path is not None:
            where = f"key {key_path}"
        else:
            where = None
        prefix = f"Invalid price file {path}"
        super().__init__(
            f"{prefix}, {where}: {message}" if where else f"{prefix}: {message}"
        )
        self.path = path
        self.line = line
        self.key_path = key_path


def load_price_file(path: str | Path) -> PriceList:
    """Read, parse and validate the price file at `path`.

    The format follows the suffix: `.toml` or `.json`. Raises `PriceFileError`
    (a `PricingTableError`, so a `ValueError`) naming the file and the line or
    key path at fault, and `OSError` when the file cannot be read.
    """
    file_path = Path(path)
    with file_path.open("rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    return parse_price_bytes(data, file_path)


def parse_price_bytes(data: bytes, path: Path) -> PriceList:
    """Parse and validate the contents of a price file read from `path`."""
    if len(data) > MAX_FILE_BYTES:
        raise PriceFileError(
            path,
            f"the file is larger than {MAX_FILE_BYTES:,} bytes, the maximum for a "
            "price file. List only the models you use.",
        )
    # Editors such as Windows Notepad can start a UTF-8 file with a byte
    # order mark, which tomllib and json reject as a syntax error.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PriceFileError(
            path,
            f"byte {data[error.start : error.start + 1]!r} is not valid UTF-8. "
            "Save the file as UTF-8.",
            line=line,
        ) from None
    document = _parse_text(text, path)
    return parse_price_document(document, path)


def _parse_text(text: str, path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return _parse_toml(text, path)
    if suffix == ".json":
        return _parse_json(text, path)
    raise PriceFileError(
        path,
        f"unknown file type {suffix or '(no suffix)'!r}. Name the file *.toml or "
        "*.json after its format.",
    )


def _parse_toml(text: str, path: Path) -> Any:
    import tomllib

    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        # Python 3.11's TOMLDecodeError carries the position only in its text,
        # as "... (at line 3, column 9)".
        found = _TOML_LINE.search(str(error))
        line = int(found.group(1)) if found else None
        raise PriceFileError(path, f"TOML syntax error: {error}", line=line) from None
    except ValueError as error:
        # An integer of more than 4,300 digits, which int() rejects.
        raise PriceFileError(path, f"TOML value cannot be read: {error}") from None
    except RecursionError:
        raise PriceFileError(path, "TOML nesting is too deep") from None


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=Decimal,
            object_pairs_hook=_JsonObject.from_pairs,
        )
    except json.JSONDecodeError as error:
        raise PriceFileError(
            path,
            f"JSON syntax error: {error.msg} (column {error.colno})",
            line=error.lineno,
        ) from None
    except ValueError as error:
        # An integer of more than 4,300 digits, which int() rejects.
        raise PriceFileError(path, f"JSON value cannot be read: {error}") from None
    except RecursionError:
        raise PriceFileError(path, "JSON nesting is too deep") from None


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers the keys it had more than once."""

    duplicates: list[tuple[str, Any, Any]]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _JsonObject:
        obj = cls()
        obj.duplicates = []
        for key, value in pairs:
            if key in obj:
                obj.duplicates.append((key, obj[key], value))
            obj[key] = value
        return obj


# Validation


def parse_price_document(document: Any, path: Path) -> PriceList:
    """Validate a parsed price file (TOML tables or JSON objects) into prices.

    `path` names the file in errors and in each price's `source`.
    """
    return _DocumentReader(path).read(document)


class _DocumentReader:
    """Walk a parsed price file, raising `PriceFileError` at the first fault."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = f"price file {path}"
        # The model ids and regions that plugins list, by provider, read once.
        self.model_ids: dict[str, frozenset[str]] = {}
        self.regions: dict[str, ListedRegions | None] = {}
        # The warnings of suspect values, issued once the whole file is read:
        # by (what, provider, value), the first entry's key path and message,
        # and how many more entries have the same value.
        self.suspects: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.repeats: Counter[tuple[str, str, str]] = Counter()

    def fail(self, key_path: str, message: str) -> PriceFileError:
        return PriceFileError(self.path, message, key_path=key_path)

    def warn(self, key_path: str, message: str, suspect: tuple[str, str, str]) -> None:
        """Note a suspect value at `key_path` that the file keeps.

        `suspect` is what the value is, the provider and the value. A value
        that many entries repeat, such as a region that AWS opened after the
        installed botocore, gives one warning, not one per entry.
        """
        if suspect in self.suspects:
            self.repeats[suspect] += 1
        else:
            self.suspects[suspect] = (key_path, message)

    def issue_warnings(self) -> None:
        """Log and warn once of each suspect value, with how many entries repeat it."""
        for suspect, (key_path, message) in self.suspects.items():
            full_message = f"The price file {self.path}, key {key_path}: {message}"
            repeats = self.repeats[suspect]
            if repeats:
                entries = "entry" if repeats == 1 else "entries"
                full_message += (
                    f" The same {suspect[0]} is in {repeats} more {entries}, "
                    "which are not warned of separately."
                )
            logger.warning("%s", full_message)
            warn_in_setup(PricingWarning(full_message))

    def read(self, document: Any) -> PriceList:
        self.check_duplicates(document, "")
        if not isinstance(document, Mapping):
            raise PriceFileError(
                self.path,
                f"the top level must be a table (a JSON object), not "
                f"{_type_name(document)}. Expected shape: {EXPECTED_SHAPE}",
            )
        self.check_keys(document, _TOP_LEVEL_KEYS, "")
        version = document.get("format_version", FORMAT_VERSION)
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise self.fail(
                "format_version",
                f"unsupported format version {_show(version)}; this plugin reads "
                f"version {FORMAT_VERSION}. Upgrade llmfy-pricing-file or set "
                f"format_version = {FORMAT_VERSION}.",
            )
        file_unit = self.unit(document, "", DEFAULT_UNIT)
        providers = document.get("providers", {})
        if not isinstance(providers, Mapping):
            raise self.fail(
                "providers",
                f"expected a table of providers, got {_type_name(providers)} "
                f"{_show(providers)}. Expected shape: {EXPECTED_SHAPE}",
            )

        entries: list[tuple[str, PriceEntry]] = []
        adjustments: dict[str, ProviderAdjustment] = {}
        for provider, table in providers.items():
            path = _join("providers", provider)
            if not isinstance(provider, str) or not _PROVIDER_NAME.fullmatch(provider):
                raise self.fail(
                    path,
                    f"invalid provider name {provider!r}. Use llmfy's provider name "
                    "in lower case, such as openai or bedrock.",
                )
            adjustment, provider_entries = self.provider(
                provider, table, path, file_unit
            )
            adjustments[provider] = adjustment
            entries.extend(provider_entries)
        self.check_overlaps(entries)
        self.issue_warnings()
        return PriceList(self.path, [entry for _, entry in entries], adjustments)

    def provider(
        self, provider: str, table: Any, path: str, file_unit: str
    ) -> tuple[ProviderAdjustment, list[tuple[str, PriceEntry]]]:
        if not isinstance(table, Mapping):
            raise self.fail(
                path,
                f"expected a table with a `prices` list, got {_type_name(table)} "
                f"{_show(table)}. Expected shape: {EXPECTED_SHAPE}",
            )
        self.check_keys(table, _PROVIDER_KEYS, path)
        adjustment = self.adjustment(table, path)
        unit = self.unit(table, path, file_unit)
        prices = table.get("prices", [])
        prices_path = _join(path, "prices")
        if not isinstance(prices, list):
            raise self.fail(
                prices_path,
                f"expected a list of price entries (TOML [[{prices_path}]] or a "
                f"JSON array), got {_type_name(prices)} {_show(prices)}. "
                f"Expected shape: {EXPECTED_SHAPE}",
            )
        entries = []
        for index, entry in enumerate(prices):
            entry_path = f"{prices_path}[{index}]"
            parsed = self.entry(provider, entry, entry_path, unit, adjustment)
            entries.append((entry_path, parsed))
        return adjustment, entries

    def adjustment(self, table: Mapping[str, Any], path: str) -> ProviderAdjustment:
        has_discount = "discount_percent" in table
        has_multiplier = "multiplier" in table
        if has_discount and has_multiplier:
            raise self.fail(
                path,
                "both `discount_percent` and `multiplier` are set; give one of them "
                "(a markup of 10% is multiplier = 1.1).",
            )
        if has_discount:
            key_path = _join(path, "discount_percent")
            percent = self.number(
                table["discount_percent"], key_path, "discount_percent"
            )
            if percent > 100:
                raise self.fail(
                    key_path,
                    f"{_show(table['discount_percent'])} is more than 100. A discount "
                    "is a percentage from 0 to 100; for a markup use multiplier, such "
                    "as 1.1 for 10%.",
                )
            factor = DECIMAL_CONTEXT.divide(100 - percent, 100)
            return ProviderAdjustment(factor=factor, discount_percent=percent)
        if has_multiplier:
            key_path = _join(path, "multiplier")
            factor = self.number(table["multiplier"], key_path, "multiplier")
            return ProviderAdjustment(factor=factor)
        return ProviderAdjustment(factor=Decimal(1))

    def number(self, value: Any, key_path: str, name: str) -> Decimal:
        example = "12.5" if name == "discount_percent" else "0.9"
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise self.fail(
                key_path,
                f"{_show(value)} is {_type_name(value)}, not a number. Give "
                f"`{name}` as a number such as {example}.",
            )
        # A document that parse_price_document gets may hold floats, so they are
        # converted through their shortest repr, which keeps 12.5 exact.
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite() or number < 0:
            raise self.fail(
                key_path,
                f"{_show(value)} is not a finite number of at least 0. Give "
                f"`{name}` as a number such as {example}.",
            )
        return number

    def unit(self, table: Mapping[str, Any], path: str, default: str) -> str:
        unit = table.get("unit", default)
        if not isinstance(unit, str) or unit not in UNITS:
            raise self.fail(
                _join(path, "unit"),
                f"unknown unit {unit!r}. Known units: {', '.join(UNITS)} "
                f"(the default is {DEFAULT_UNIT}).",
            )
        return unit

    def entry(
        self,
        provider: str,
        entry: Any,
        path: str,
        provider_unit: str,
        adjustment: ProviderAdjustment,
    ) -> PriceEntry:
        if not isinstance(entry, Mapping):
            raise self.fail(
                path,
                f"expected a price entry (a table), got {_type_name(entry)} "
                f"{_show(entry)}. Expected shape: {EXPECTED_SHAPE}",
            )
        model = entry.get("model")
        if not isinstance(model, str) or not model:
            raise self.fail(
                _join(path, "model"),
                f"every price entry needs a `model` id (a non-empty string), got "
                f"{model!r}. Expected shape: {EXPECTED_SHAPE}",
            )
        region = self.optional_text(entry, path, "region")
        where = describe_entry(provider, model, region, None)
        self.check_keys(entry, _ENTRY_KEYS, path, where)
        self.check_model(provider, model, path)
        if region is not None:
            self.check_region(provider, model, region, path)
        service_tier = self.optional_text(entry, path, "service_tier")
        if service_tier is not None:
            self.check_tier(provider, model, service_tier, path)
        self.optional_text(entry, path, "note")
        batch = entry.get("batch", False)
        if not isinstance(batch, bool):
            raise self.fail(
                _join(path, "batch"),
                f"`batch` for {where} must be true or false, got {_show(batch)}.",
            )

        unit = UNITS[self.unit(entry, path, provider_unit)]
        effective_from, effective_until = self.days(entry, path, where)

        def entry_price(rates: Mapping[str, Any], tier_field: str | None) -> Price:
            price = self.price(
                provider, model, region, rates, path, unit, adjustment, tier_field
            )
            return attrs.evolve(price, checked=effective_from)

        price = entry_price(entry, None)
        tiers = parse_long_context(
            entry.get(LONG_CONTEXT),
            provider=provider,
            model=model,
            region=region,
            field=LONG_CONTEXT,
            optional_rates=("cache_read", "cache_write"),
            expected_shape=LONG_CONTEXT_SHAPE,
            parse_rates=entry_price,
            fail=lambda field, message: self.fail(f"{path}.{field}", message),
        )
        return PriceEntry(
            provider=provider,
            key=PriceKey(model, region, service_tier, batch),
            price=attrs.evolve(price, long_context=tiers),
            effective_from=effective_from,
            effective_until=effective_until,
        )

    def check_model(self, provider: str, model: str, path: str) -> None:
        """Warn when `model` is not a listed model id and misspells one.

        Any other id is accepted as a model of the user's own.
        """
        known = self.model_ids.get(provider)
        if known is None:
            known = self.model_ids[provider] = provider_model_ids(provider)
        candidates = list(model_candidates(provider, model))
        if not known or any(candidate in known for candidate in candidates):
            return
        listed = sorted(known)
        for candidate in candidates:
            meant = likely_typo(candidate, listed)
            if meant is not None:
                break
        else:
            return
        where = describe_entry(provider, model, None, None)
        self.warn(
            _join(path, "model"),
            f"the price of {where} is for a model id that no installed provider "
            f"plugin lists. Did you mean {meant!r}? As written, the entry prices "
            f"only requests for {model!r}, and {meant!r} keeps its price from the "
            "other sources.",
            ("model id", provider, model),
        )

    def check_region(self, provider: str, model: str, region: str, path: str) -> None:
        """Warn when the plugins list the provider's regions and not `region`.

        The entry is kept, so that a region that the provider opened after
        the installed plugins were released still gets its price.
        """
        if provider not in self.regions:
            self.regions[provider] = provider_regions(provider)
        known = self.regions[provider]
        if known is None or region in known:
            return
        meant = likely_typo(region, sorted(known))
        if meant is not None:
            advice = f"Did you mean {meant!r}?"
        else:
            advice = (
                "Check the region code. If the provider opened the region after "
                "the installed plugins were released, upgrade them or ignore "
                "this warning."
            )
        where = describe_entry(provider, model, None, None)
        self.warn(
            _join(path, "region"),
            f"the price of {where} is for region {region!r}, which no installed "
            f"plugin lists as a {provider} region. {advice} As written, the entry "
            f"prices only requests sent to {region!r}.",
            ("region", provider, region),
        )

    def check_tier(self, provider: str, model: str, tier: str, path: str) -> None:
        """Raise for the tier `batch`, and warn when `tier` misspells a known tier.

        Any other tier is accepted, because providers add tiers of their own,
        such as Bedrock's `latency-optimized`.
        """
        key_path = _join(path, "service_tier")
        where = describe_entry(provider, model, None, None)
        if tier == BATCH_TIER:
            raise self.fail(
                key_path,
                f"service_tier {tier!r} for {where} is not a service tier, because "
                "Batch API requests are marked by their own flag. Replace "
                'service_tier = "batch" with batch = true.',
            )
        known = sorted(STANDARD_TIERS | SERVICE_TIERS)
        meant = None if tier in known else likely_typo(tier, known)
        if meant is None:
            return
        self.warn(
            key_path,
            f"the price of {where} is for service tier {tier!r}, which is not a "
            f"tier that llmfy knows. Did you mean {meant!r}? As written, the entry "
            f"prices only requests whose response names the tier {tier!r}.",
            ("service tier", provider, tier),
        )

    def days(
        self, entry: Mapping[str, Any], path: str, where: str
    ) -> tuple[dt.date | None, dt.date | None]:
        effective_from = self.date(entry, path, "effective_from", where)
        effective_until = self.date(entry, path, "effective_until", where)
        if (
            effective_from is not None
            and effective_until is not None
            and effective_until <= effective_from
        ):
            raise self.fail(
                _join(path, "effective_until"),
                f"{effective_until.isoformat()} for {where} is not after "
                f"effective_from {effective_from.isoformat()}. effective_until is "
                "the first day the price no longer applies.",
            )
        return effective_from, effective_until

    def price(
        self,
        provider: str,
        model: str,
        region: str | None,
        entry: Mapping[str, Any],
        path: str,
        unit: int,
        adjustment: ProviderAdjustment,
        tier_field: str | None = None,
    ) -> Price:
        """Build the price of an entry, or of its long-context tier at `tier_field`.

        `path` is the entry's key path, and `tier_field` (`long_context[0]`)
        the path of the tier inside the entry.
        """
        values: dict[str, Decimal | None] = {}
        for field in PRICE_FIELDS:
            value = entry.get(field)
            # The field as errors name it: `input`, or `long_context[0].input`.
            named = field if tier_field is None else f"{tier_field}.{field}"
            key_path = f"{path}.{named}"
            if value is None:
                if field in ("input", "output"):
                    where = describe_entry(provider, model, region, named)
                    raise self.fail(
                        key_path,
                        f"missing price for {where}: every entry needs `input` and "
                        f"`output`. Expected shape: {EXPECTED_SHAPE}",
                    )
                values[field] = None
                continue
            try:
                parsed = parse_price_value(
                    value,
                    provider=provider,
                    model=model,
                    region=region,
                    field=named,
                    price_per_tokens=unit,
                )
            except PricingTableError as error:
                raise self.fail(key_path, str(error)) from None
            except ArithmeticError:
                # decimal.Overflow: an exponent too large for Decimal arithmetic.
                where = describe_entry(provider, model, region, named)
                raise self.fail(
                    key_path,
                    f"invalid price for {where}: {_show(value)} is too large to be "
                    "a price.",
                ) from None
            adjusted = _adjust(parsed, adjustment.factor)
            if adjusted is None or adjusted.adjusted() > MAX_PRICE_EXPONENT:
                where = describe_entry(provider, model, region, named)
                raise self.fail(
                    key_path,
                    f"invalid price for {where}: {_show(value)} times the "
                    f"provider's multiplier {adjustment.factor:g} is far too large "
                    f"for a price in USD per {unit:,} tokens. Check the multiplier.",
                )
            values[field] = adjusted
        input_price, output_price = values["input"], values["output"]
        assert input_price is not None and output_price is not None
        return Price(
            input=input_price,
            output=output_price,
            cache_read=values["cache_read"],
            cache_write=values["cache_write"],
            price_per_tokens=unit,
            source=self.source,
        )

    def optional_text(
        self, entry: Mapping[str, Any], path: str, key: str
    ) -> str | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(
                _join(path, key),
                f"`{key}` must be a non-empty string, got {_type_name(value)} "
                f"{_show(value)}.",
            )
        return value

    def date(
        self, entry: Mapping[str, Any], path: str, key: str, where: str
    ) -> dt.date | None:
        value = entry.get(key)
        if value is None:
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(
            _join(path, key),
            f"`{key}` for {where} must be an ISO date such as 2025-01-31 (a day, "
            f"without a time), got {_type_name(value)} {_show(value)}.",
        )

    def check_keys(
        self,
        table: Mapping[str, Any],
        allowed: frozenset[str],
        path: str,
        where: str | None = None,
    ) -> None:
        unknown = sorted(str(key) for key in table if key not in allowed)
        if not unknown:
            return
        owner = f" for {where}" if where else ""
        raise self.fail(
            _join(path, unknown[0]),
            f"unknown key {unknown[0]!r}{owner}. Allowed keys here: "
            f"{', '.join(sorted(allowed))}.",
        )

    def check_duplicates(self, value: Any, path: str) -> None:
        if isinstance(value, _JsonObject):
            if value.duplicates:
                key, first, second = value.duplicates[0]
                raise self.fail(
                    _join(path, key),
                    f"duplicate key {key!r} (values {_show(first)} and "
                    f"{_show(second)}). Give each key once.",
                )
            for key, item in value.items():
                self.check_duplicates(item, _join(path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.check_duplicates(item, f"{path}[{index}]")

    def check_overlaps(self, entries: Iterable[tuple[str, PriceEntry]]) -> None:
        by_key: dict[tuple[str, PriceKey], list[tuple[str, PriceEntry]]] = {}
        for path, entry in entries:
            group = by_key.setdefault((entry.provider, entry.key), [])
            for other_path, other in group:
                if _overlap(entry, other):
                    raise self.fail(
                        path,
                        f"two prices for {_describe_key(entry.provider, entry.key)} "
                        f"apply on the same days: {other_path} "
                        f"{_describe_days(other)} and this entry "
                        f"{_describe_days(entry)}. Make their effective_from / "
                        "effective_until ranges disjoint.",
                    )
            group.append((path, entry))


def _adjust(price: Decimal, factor: Decimal) -> Decimal | None:
    """Multiply `price` by `factor` exactly, without trailing zeros (0.13125).

    Return None when the product has more digits than DECIMAL_CONTEXT keeps.
    """
    if factor == 1:
        return price
    try:
        product = DECIMAL_CONTEXT.multiply(price, factor).normalize(DECIMAL_CONTEXT)
        if product == product.to_integral_value():
            # normalize() turns 40 into 4E+1; keep whole numbers in plain notation.
            return product.quantize(Decimal(1), context=DECIMAL_CONTEXT)
    except ArithmeticError:
        return None
    return product


def _overlap(first: PriceEntry, second: PriceEntry) -> bool:
    starts_before_second_ends = (
        first.effective_from is None
        or second.effective_until is None
        or first.effective_from < second.effective_until
    )
    second_starts_before_first_ends = (
        second.effective_from is None
        or first.effective_until is None
        or second.effective_from < first.effective_until
    )
    return starts_before_second_ends and second_starts_before_first_ends


def _describe_key(provider: str, key: PriceKey) -> str:
    text = describe_entry(provider, key.model, key.region, None)
    if key.service_tier is not None:
        text += f", service tier {key.service_tier!r}"
    if key.batch:
        text += ", batch"
    return text


def _describe_days(entry: PriceEntry) -> str:
    start = entry.effective_from.isoformat() if entry.effective_from else "always"
    end = entry.effective_until.isoformat() if entry.effective_until else "open-ended"
    return f"[{start}, {end})"


def _join(path: str, key: object) -> str:
    text = str(key)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        text = json.dumps(text)
    return f"{path}.{text}" if path else text


def _type_name(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, Decimal, float)):
        return "a number"
    if isinstance(value, dt.datetime):
        return "a date-time"
    if isinstance(value, dt.date):
        return "a date"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """Format a value from the file for an error message, in the file's terms."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (Mapping, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return text if len(text) <= 120 else text[:117] + "..."
    return repr(value)
