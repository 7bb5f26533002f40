"""Read prices from the provider files of the pydantic/genai-prices database.

The files are YAML, one per provider (`genai-prices-openai.yml`,
`genai-prices-aws.yml`), with prices in USD per million tokens. A model's
`prices` is either one price or a list of prices, each with an optional
`start_date` constraint. The last one whose constraint holds on a day applies,
as in genai-prices itself. A rate may be tiered: `base` until the request's
input tokens exceed a tier's `start`, then the tier's price for the whole
request.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from llmfy_core import Price
from llmfy_core.model import MILLION

# The database's price fields that the bundled tables also have, by the name of
# the bundled rate. Other fields, such as cached audio input or web searches,
# have no bundled counterpart and are not read.
RATE_FIELDS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "input_audio_mtok": "input_audio",
    "output_audio_mtok": "output_audio",
    "input_image_mtok": "input_image",
    "output_image_mtok": "output_image",
}

# The rate a bundled price charges a token kind at when it has no rate of its
# own for it (see `Price` and `llmfy_core.model.SUBSET_PARENTS`).
_FALLBACK_RATES = {
    "cache_read": "input",
    "cache_write": "input",
    "cache_write_1h": "cache_write",
    "input_audio": "input",
    "input_image": "input",
    "output_audio": "output",
    "output_image": "output",
}


def provider_file(folder: Path, provider: str) -> Path:
    """Return the path of the database file of `provider` (a genai-prices id)."""
    return folder / f"genai-prices-{provider}.yml"


def read_provider(path: Path) -> dict[str, Any]:
    """Return the parsed provider file at `path`."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def find_model(
    provider_data: Mapping[str, Any], model_ref: str
) -> dict[str, Any] | None:
    """Return the first model whose `match` rule accepts `model_ref`.

    genai-prices picks a model the same way, so a rule that is broader than its
    model, such as a `contains` on a model family, matches other models too.
    """
    for model in provider_data["models"]:
        if _matches(model["match"], model_ref):
            return dict(model)
    return None


def _matches(clause: Any, model_ref: str) -> bool:
    """Return whether a genai-prices match clause accepts `model_ref`.

    Every clause but `regex` ignores case, as in genai-prices.
    """
    text = model_ref.lower()
    if "or" in clause:
        return any(_matches(item, model_ref) for item in clause["or"])
    if "and" in clause:
        return all(_matches(item, model_ref) for item in clause["and"])
    if "equals" in clause:
        return text == clause["equals"].lower()
    if "starts_with" in clause:
        return text.startswith(clause["starts_with"].lower())
    if "ends_with" in clause:
        return text.endswith(clause["ends_with"].lower())
    if "contains" in clause:
        return clause["contains"].lower() in text
    if "regex" in clause:
        return re.search(clause["regex"], model_ref) is not None
    raise ValueError(
        f"Unknown genai-prices match clause {clause!r}: teach _matches in "
        "tests/price_data.py to read it."
    )


def change_days(model: Mapping[str, Any]) -> list[dt.date]:
    """Return the days on which the model's database price changed, sorted."""
    prices = model.get("prices")
    if not isinstance(prices, list):
        return []
    return sorted(_start_date(entry) for entry in prices if entry.get("constraint"))


def database_rates(model: Mapping[str, Any], day: dt.date) -> dict[str, Decimal]:
    """Return the rates the database lists for `model` on `day`, per million tokens.

    A tier's rate is named `<rate> above <start>`, such as `input above 272000`.
    """
    rates: dict[str, Decimal] = {}
    for field, value in _prices_on(model, day).items():
        name = RATE_FIELDS.get(field)
        if name is None or value is None:
            continue
        if isinstance(value, Mapping):
            rates[name] = Decimal(str(value["base"]))
            for tier in value["tiers"]:
                rates[tier_rate(name, tier["start"])] = Decimal(str(tier["price"]))
        else:
            rates[name] = Decimal(str(value))
    return rates


def tier_rate(name: str, above_input_tokens: int) -> str:
    """Return the name of rate `name` above `above_input_tokens` input tokens."""
    return f"{name} above {above_input_tokens}"


def billed_rate(price: Price, rate: str) -> Decimal:
    """Return the rate `price` charges in USD per million tokens for `rate`.

    `rate` is a name that `database_rates` returns. A token kind without a
    rate of its own is charged at the rate it falls back to, and a request
    above a tier's start at the bundled long-context price, if any.
    """
    name, _, above = rate.partition(" above ")
    if above:
        price = price.for_input_tokens(int(above) + 1)
    value = _own_rate(price, name)
    while value is None:
        name = _FALLBACK_RATES[name]
        value = _own_rate(price, name)
    return value * MILLION / price.price_per_tokens


def _own_rate(price: Price, name: str) -> Decimal | None:
    if name in ("input", "output", "cache_read", "cache_write"):
        value: Decimal | None = getattr(price, name)
        return value
    return price.other.get(name)


def _prices_on(model: Mapping[str, Any], day: dt.date) -> Mapping[str, Any]:
    """Return the price fields of `model` in force on `day`.

    Before the first start date, the first price of the list applies.
    """
    prices = model.get("prices") or {}
    if isinstance(prices, Mapping):
        return prices
    for entry in reversed(prices):
        constraint = entry.get("constraint")
        if constraint is None or _start_date(entry) <= day:
            found: Mapping[str, Any] = entry["prices"]
            return found
    first: Mapping[str, Any] = prices[0]["prices"]
    return first


def _start_date(entry: Mapping[str, Any]) -> dt.date:
    constraint = entry["constraint"]
    if set(constraint) != {"start_date"}:
        raise ValueError(
            f"Unsupported genai-prices price constraint {constraint!r}: "
            "tests/price_data.py reads only `start_date`; teach _start_date the new "
            "kind."
        )
    start = constraint["start_date"]
    return start if isinstance(start, dt.date) else dt.date.fromisoformat(start)


def sample_days(changes: Iterable[dt.date], today: dt.date) -> list[dt.date]:
    """Return a day in every price period that `changes` bound, and `today`."""
    days = {today}
    for change in changes:
        days.update({change - dt.timedelta(days=1), change})
    return sorted(days)
