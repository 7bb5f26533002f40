"""Conformance of the bundled price tables with the genai-prices database.

Set LLMFY_PRICE_DATA to a folder that contains the provider files of the
pydantic/genai-prices database: `genai-prices-openai.yml` and
`genai-prices-aws.yml`. Without it these tests are skipped.

Each bundled model id and alias, in every Region and the global profile on
Bedrock, is looked up in the database by the database's own match rules.
Every rate the database lists for it must be the rate the bundled table bills,
on each side of every day that either side changes a price, and today. A token
kind that the bundled price has no rate for is billed at the rate it falls
back to, such as cached input at the input rate. So a rate that the database
lists and the bundled table lacks is compared with that rate. Rates that only
the bundled table lists, such as Batch, Flex and Priority rates, 1-hour cache
writes on Bedrock and long-context tiers the database lacks, are not compared.
`KNOWN_DIFFERENCES` lists where the two disagree on purpose.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from llmfy_bedrock import bundled_table
from llmfy_openai import lookup_price
from llmfy_openai.prices import PRICE_FILE

from llmfy_core import Price, Unpriced

from .price_data import (
    billed_rate,
    change_days,
    database_rates,
    find_model,
    provider_file,
    read_provider,
    sample_days,
)

PRICE_DATA = os.environ.get("LLMFY_PRICE_DATA")
SKIP_REASON = (
    "LLMFY_PRICE_DATA is not set: point it at a folder with the genai-prices "
    "provider files (genai-prices-openai.yml and genai-prices-aws.yml) to compare "
    "the bundled prices with them"
)

# A Region for lookups of the global profile, which has one rate everywhere.
GLOBAL_LOOKUP_REGION = "us-east-1"

# Fine-tuned model ids to look up for the bundled fine-tuned prices: the
# database only matches ids that name the base model's snapshot.
FINE_TUNED_REFS = {
    "ft:gpt-4o-mini": "ft:gpt-4o-mini-2024-07-18:example-org::ftjob1",
    "ft:gpt-4o": "ft:gpt-4o-2024-08-06:example-org::ftjob1",
}


class Difference(NamedTuple):
    """A rate that the bundled table and the database give differently."""

    provider: str
    model: str
    rate: str
    day: dt.date
    bundled: Decimal | None
    database: Decimal
    region: str | None = None

    def __str__(self) -> str:
        where = f" in {self.region}" if self.region else ""
        bundled = "unpriced" if self.bundled is None else f"{self.bundled}"
        return (
            f"{self.provider} {self.model}{where} on {self.day}: {self.rate} is "
            f"{bundled} bundled, {self.database} in genai-prices"
        )


class KnownDifference(NamedTuple):
    """A difference kept on purpose: on the days before `before`, or on every day."""

    provider: str
    model: str
    rate: str
    bundled: Decimal
    database: Decimal
    reason: str
    before: dt.date | None = None

    def covers(self, difference: Difference) -> bool:
        """Return whether this entry explains `difference`."""
        return (
            (self.provider, self.model, self.rate)
            == (difference.provider, difference.model, difference.rate)
            and self.bundled == difference.bundled
            and self.database == difference.database
            and (self.before is None or difference.day < self.before)
        )


_GPT_4O_MAY = (
    "genai-prices groups this snapshot with gpt-4o, but OpenAI still prices "
    "gpt-4o-2024-05-13 at its launch rates of 5.00 and 15.00, without a cached rate"
)
_SOL_PROMOTION = (
    "the database's copy dates from 2026-08-21 and lacks the promotional price "
    "that OpenAI's gpt-5.6-sol model page gives from that day"
)
# Sol's rates from 2026-08-21: bundled, then the database's launch rates.
_SOL_RATES = {
    "input": ("4.00", "5"),
    "input above 272000": ("8.00", "10"),
    "cache_read": ("0.40", "0.5"),
    "cache_read above 272000": ("0.80", "1"),
    "cache_write": ("5.00", "6.25"),
    "cache_write above 272000": ("10.00", "12.5"),
    "output": ("20.00", "30"),
    "output above 272000": ("30.00", "45"),
}
_TITAN_V2 = (
    "genai-prices has no Titan Text Embeddings V2 entry, and its V1 entry's rule "
    "`contains: amazon.titan-embed-text` matches V2 ids too"
)

KNOWN_DIFFERENCES = (
    KnownDifference(
        "openai", "gpt-4o-2024-05-13", "input", Decimal(5), Decimal("2.5"), _GPT_4O_MAY
    ),
    KnownDifference(
        "openai", "gpt-4o-2024-05-13", "output", Decimal(15), Decimal(10), _GPT_4O_MAY
    ),
    KnownDifference(
        "openai",
        "gpt-4o-2024-05-13",
        "cache_read",
        Decimal(5),
        Decimal("1.25"),
        _GPT_4O_MAY,
    ),
    KnownDifference(
        "openai",
        "o3",
        "cache_read",
        Decimal("2.5"),
        Decimal("0.5"),
        "genai-prices repeats the cached rate from after the 2025-06-10 cut in "
        "o3's launch period, when cached input cost 2.50, a quarter of the input rate",
        before=dt.date(2025, 6, 10),
    ),
    *(
        KnownDifference(
            "openai", model, rate, Decimal(bundled), Decimal(database), _SOL_PROMOTION
        )
        for model in ("gpt-5.6-sol", "gpt-5.6")
        for rate, (bundled, database) in _SOL_RATES.items()
    ),
    KnownDifference(
        "bedrock",
        "amazon.titan-embed-text-v2:0",
        "input",
        Decimal("0.02"),
        Decimal("0.1"),
        _TITAN_V2,
    ),
)

_NO_COHERE = "genai-prices lists no Cohere model on Bedrock"

# Bundled models that the database does not list at all.
NOT_IN_DATABASE = {
    "cohere.command-r-v1:0": _NO_COHERE,
    "cohere.command-r-plus-v1:0": _NO_COHERE,
    "cohere.embed-english-v3": _NO_COHERE,
    "cohere.embed-multilingual-v3": _NO_COHERE,
    "cohere.embed-v4:0": _NO_COHERE,
}


class Case(NamedTuple):
    """One bundled price to compare: a model id, and how to look up its price."""

    provider: str
    model: str
    region: str | None
    changes: tuple[dt.date, ...]
    lookup: Callable[[dt.datetime], Price | Unpriced | None]


def _openai_entries() -> dict[str, Any]:
    text = resources.files("llmfy_openai").joinpath(PRICE_FILE).read_text("utf-8")
    models: dict[str, Any] = tomllib.loads(text)["models"]
    return models


def openai_cases(model: str) -> Iterator[Case]:
    """Yield a case for the bundled OpenAI model `model` and each of its aliases."""
    entry = _openai_entries()[model]
    changes = tuple(past["effective_until"] for past in entry.get("earlier", ()))
    for model_id in (model, *entry.get("aliases", ())):
        ref = FINE_TUNED_REFS.get(model_id, model_id)

        def lookup(at: dt.datetime, ref: str = ref) -> Price | Unpriced | None:
            return lookup_price(ref, None, False, at)

        yield Case("openai", ref, None, changes, lookup)


def bedrock_cases(model: str) -> Iterator[Case]:
    """Yield a case for each Region and the global profile of a Bedrock model."""
    table = bundled_table()
    history = table.history()
    refs = [(model, region) for region in table.regions_of(model)]
    global_ref = f"global.{model}"
    if (global_ref, None, False) in table.entries():
        refs.append((global_ref, None))
    for ref, region in refs:
        changes = tuple(ended for ended, _ in history.get((ref, region, False), ()))

        def lookup(
            at: dt.datetime, ref: str = ref, region: str | None = region
        ) -> Price | Unpriced | None:
            return table.lookup(ref, region or GLOBAL_LOOKUP_REGION, None, False, at)

        yield Case("bedrock", ref, region, changes, lookup)


def differences(case: Case, database: Mapping[str, Any]) -> list[Difference]:
    """Return every rate of `case` that the database gives differently."""
    model = find_model(database, case.model)
    if model is None:
        return []
    today = dt.datetime.now(dt.UTC).date()
    found = []
    for day in sample_days([*case.changes, *change_days(model)], today):
        price = case.lookup(dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC))
        for rate, listed in database_rates(model, day).items():
            bundled = billed_rate(price, rate) if isinstance(price, Price) else None
            if bundled != listed:
                found.append(
                    Difference(
                        case.provider,
                        case.model,
                        rate,
                        day,
                        bundled,
                        listed,
                        case.region,
                    )
                )
    return found


CASES = {"openai": openai_cases, "bedrock": bedrock_cases}


def model_differences(
    provider: str, model: str, database: Mapping[str, Any]
) -> list[Difference]:
    """Return every difference of a bundled model, known ones included."""
    return [
        difference
        for case in CASES[provider](model)
        for difference in differences(case, database)
    ]


def unexplained(found: list[Difference]) -> list[Difference]:
    return [
        difference
        for difference in found
        if not any(known.covers(difference) for known in KNOWN_DIFFERENCES)
    ]


OPENAI_MODELS = sorted(_openai_entries())
BEDROCK_MODELS = sorted(
    {
        model
        for model, _, _ in bundled_table().entries()
        if not model.startswith("global.")
    }
)


@pytest.fixture(scope="module")
def price_data() -> Path:
    if not PRICE_DATA:
        pytest.skip(SKIP_REASON)
    folder = Path(PRICE_DATA)
    if not folder.is_dir():
        pytest.skip(f"LLMFY_PRICE_DATA={PRICE_DATA} is not a folder")
    return folder


def _database(folder: Path, provider: str) -> dict[str, Any]:
    path = provider_file(folder, provider)
    if not path.is_file():
        pytest.skip(f"LLMFY_PRICE_DATA={PRICE_DATA} has no {path.name}")
    return read_provider(path)


@pytest.fixture(scope="module")
def openai_database(price_data: Path) -> dict[str, Any]:
    return _database(price_data, "openai")


@pytest.fixture(scope="module")
def aws_database(price_data: Path) -> dict[str, Any]:
    return _database(price_data, "aws")


@pytest.fixture(scope="module")
def all_differences(
    openai_database: dict[str, Any], aws_database: dict[str, Any]
) -> list[Difference]:
    """Every difference of every bundled model, known ones included."""
    found: list[Difference] = []
    for model in OPENAI_MODELS:
        found += model_differences("openai", model, openai_database)
    for model in BEDROCK_MODELS:
        found += model_differences("bedrock", model, aws_database)
    return found


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_rates_match_database(
    openai_database: dict[str, Any], model: str
) -> None:
    unexpected = unexplained(model_differences("openai", model, openai_database))

    assert not unexpected, "\n".join(map(str, unexpected))


@pytest.mark.parametrize("model", BEDROCK_MODELS)
def test_bedrock_rates_match_database(aws_database: dict[str, Any], model: str) -> None:
    unexpected = unexplained(model_differences("bedrock", model, aws_database))

    assert not unexpected, "\n".join(map(str, unexpected))


@pytest.mark.parametrize(
    "known", KNOWN_DIFFERENCES, ids=lambda known: f"{known.model}-{known.rate}"
)
def test_known_difference_still_present(
    all_differences: list[Difference], known: KnownDifference
) -> None:
    assert any(known.covers(difference) for difference in all_differences), (
        f"{known.provider} {known.model} {known.rate} is no longer "
        f"{known.bundled} bundled and {known.database} in genai-prices: update or "
        "remove its KNOWN_DIFFERENCES entry"
    )


def test_bundled_models_in_database(
    openai_database: dict[str, Any], aws_database: dict[str, Any]
) -> None:
    missing = [
        case.model
        for model in OPENAI_MODELS
        for case in openai_cases(model)
        if find_model(openai_database, case.model) is None
    ]
    missing += [
        model
        for model in BEDROCK_MODELS
        if find_model(aws_database, model) is None and model not in NOT_IN_DATABASE
    ]
    now_listed = [model for model in NOT_IN_DATABASE if find_model(aws_database, model)]

    assert missing == []
    assert now_listed == [], "remove these models from NOT_IN_DATABASE"


def test_skip_reason_names_the_setting() -> None:
    assert "LLMFY_PRICE_DATA" in SKIP_REASON
