"""`llmfy prices`: the effective prices, and where each comes from."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

import attrs

from llmfy_core.model import Price, Unpriced
from llmfy_core.pricing import PriceKey
from llmfy_core.report import price_dict
from llmfy_core.resolver import PriceResolver, Resolution

from .lookup import (
    KnownPrices,
    PriceQuery,
    check_provider,
    check_region,
    check_tier,
    find_price,
    is_standard_tier,
)
from .output import (
    EXIT_OK,
    EXIT_UNPRICED,
    CliError,
    money,
    per_million,
    price_cells,
    print_json,
    render_table,
)
from .sources import ListedPrice, catalog, resolve, use_price_file


def add_parser(commands: Any) -> None:
    """Add the `prices` command to the argparse subcommands."""
    parser = commands.add_parser(
        "prices",
        help="show the effective prices and where they come from",
        description=(
            "List the prices a tracker would use, after every pricing plugin and "
            "the price file given with --prices, with the plugin, source and date "
            "of each. Prices are shown in USD per million tokens; --json keeps "
            "each price in its own unit. With --model, resolve one model's price "
            "as a tracker would. Exits 2 when the arguments do not select one "
            "price (the provider is unknown or cannot be guessed, the model is "
            "priced by region and --region is missing, the region is misspelt or "
            "the tier is unknown, or the model id misspells a listed one), and 3 "
            "when the model has no price."
        ),
    )
    parser.add_argument(
        "provider",
        nargs="?",
        type=non_empty_text,
        metavar="PROVIDER",
        help="only this provider",
    )
    parser.add_argument(
        "--provider",
        dest="provider_option",
        type=non_empty_text,
        metavar="PROVIDER",
        help="the same as PROVIDER, as `llmfy cost` spells it",
    )
    parser.add_argument(
        "--model",
        type=non_empty_text,
        metavar="ID",
        help="resolve the price of model ID",
    )
    parser.add_argument(
        "--region",
        type=non_empty_text,
        metavar="REGION",
        help="region, such as us-east-1",
    )
    parser.add_argument(
        "--tier", metavar="TIER", help="service tier, such as flex or priority"
    )
    parser.add_argument("--batch", action="store_true", help="Batch API prices")
    add_prices_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def non_empty_text(text: str) -> str:
    """Return `text`, the value of an option; raise ArgumentTypeError when blank.

    An empty value, as `--model "$MODEL"` passes when the variable is unset,
    would otherwise read as the option left out. No model, region or provider
    name is only white space either.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"must not be empty or only white space, got {text!r}"
        )
    return text


def add_prices_option(parser: argparse.ArgumentParser) -> None:
    """Add --prices FILE, shared by `prices`, `cost` and `report`."""
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help=(
            "a price file (TOML or JSON, in the llmfy-pricing-file format) whose "
            "prices win over every plugin"
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Run `llmfy prices`."""
    if args.provider and args.provider_option not in (None, args.provider):
        raise CliError(
            f"PROVIDER {args.provider} and --provider {args.provider_option} "
            "differ. Give the provider once."
        )
    args.provider = args.provider or args.provider_option
    if args.prices:
        use_price_file(args.prices)
    resolver = PriceResolver({})
    if args.model:
        return _show_one(args, resolver)
    return _show_listing(args, resolver)


def _show_one(args: argparse.Namespace, resolver: PriceResolver) -> int:
    query = PriceQuery(args.model, args.provider, args.region, args.tier, args.batch)
    provider, found, reason = find_price(resolver, query, KnownPrices.collect())
    row = _row_dict(provider, args.model, args.region, args.tier, args.batch, found)
    if reason is not None:
        row["unpriced_reason"] = reason
    if args.json:
        print_json(row)
        return EXIT_OK if found.price else EXIT_UNPRICED
    where = ", ".join(
        part
        for part in (
            f"region {args.region}" if args.region else "",
            f"tier {args.tier}" if args.tier else "",
            "batch" if args.batch else "",
        )
        if part
    )
    print(f"{provider} {args.model}" + (f" ({where})" if where else ""))
    if found.price is None:
        print(f"  no price: {reason}")
        return EXIT_UNPRICED
    for line in _price_lines(found.price, found.origin):
        print(f"  {line}")
    return EXIT_OK


def _price_lines(price: Price, origin: str | None) -> list[str]:
    """Return one `label: value` line per rate and fact, the values aligned.

    Rates are shown in USD per million tokens, whatever unit the price is in,
    as in the listing. A cache rate that the price lacks is shown as the
    input rate, which then applies, marked `(the input rate)`.
    """
    unit = "USD per 1,000,000 tokens"
    fields = [
        (label, f"{money(per_million(rate, price.price_per_tokens))} {unit}{note}")
        for label, rate, note in _rates(price)
    ]
    for tool, rate in sorted(price.per_call.items()):
        fields.append((tool, f"{money(rate)} USD per call"))
    checked = price.checked.isoformat() if price.checked else "-"
    fields += [
        ("from", origin or "-"),
        ("source", price.source or "-"),
        ("checked", checked),
    ]
    width = max(len(label) for label, _ in fields) + 2
    lines = [f"{label + ':':<{width}}{value}" for label, value in fields]
    for tier in price.long_context:
        rates = ", ".join(
            f"{money(per_million(rate, tier.price.price_per_tokens))} {label}{note}"
            for label, rate, note in _rates(tier.price)
        )
        lines.append(
            f"Above {tier.above_input_tokens:,} input tokens the whole request "
            f"costs, in {unit}: {rates}."
        )
    return lines


def _rates(price: Price) -> list[tuple[str, Decimal, str]]:
    """Return the label, rate and note of each per-token rate of `price`.

    The note is empty for a rate the price gives.
    """
    at_input = " (the input rate)"
    cache_read = (
        (price.input, at_input) if price.cache_read is None else (price.cache_read, "")
    )
    cache_write = (
        (price.input, at_input)
        if price.cache_write is None
        else (price.cache_write, "")
    )
    return [
        ("input", price.input, ""),
        ("cached input", *cache_read),
        ("cache write", *cache_write),
        ("output", price.output, ""),
        *((field, rate, "") for field, rate in sorted(price.other.items())),
    ]


def _show_listing(args: argparse.Namespace, resolver: PriceResolver) -> int:
    known = KnownPrices.collect()
    listing = catalog(args.provider)
    check_provider(args.provider, known, listing)
    check_tier(args.tier, args.provider, known)
    check_region(args.region, args.provider, known)
    keys: dict[tuple[str, PriceKey], ListedPrice] = {}
    for listed in listing:
        key = listed.entry.key
        if args.provider and listed.entry.provider != args.provider:
            continue
        if args.region and key.region not in (args.region, None):
            continue
        if args.tier and not _tier_matches(key.service_tier, args.tier):
            continue
        if args.batch and not key.batch:
            continue
        if args.region:
            key = attrs.evolve(key, region=args.region)
        keys.setdefault((listed.entry.provider, key), listed)
    rows: list[tuple[dict[str, Any], Price | None]] = []
    for (provider, key), listed in sorted(keys.items(), key=_sort_key):
        found = resolve(
            resolver,
            provider,
            key.model,
            region=key.region,
            service_tier=key.service_tier,
            batch=key.batch,
        )
        if found.price is None and found.origin not in (None, listed.plugin):
            # A higher-ranked source leaves this key unpriced, such as the
            # bundled Bedrock table for a Region it has no rate for, so a
            # tracker never uses the lower-ranked price listed here.
            continue
        found = _with_listed_price(found, listed)
        row = _row_dict(
            provider, key.model, key.region, key.service_tier, key.batch, found
        )
        rows.append((row, found.price))
    if args.json:
        print_json({"prices": [row for row, _ in rows]})
        return EXIT_OK
    if not rows:
        print(_nothing_listed(args))
        return EXIT_OK
    print(_listing_table(rows))
    return EXIT_OK


def _tier_matches(listed: str | None, requested: str) -> bool:
    """Return whether a listed price's tier is the requested one.

    A price listed without a tier is the standard price, so it matches the
    names of the standard tier.
    """
    if is_standard_tier(requested):
        return is_standard_tier(listed)
    return listed == requested


def _with_listed_price(found: Resolution, listed: ListedPrice) -> Resolution:
    """Fall back on the listed price when no plugin returns one for its exact key.

    This happens for keys that a plugin lists but only prices through another
    id, such as a Bedrock entry that needs a region.
    """
    if found.price is not None:
        return found
    price = listed.entry.price
    if isinstance(price, Unpriced):
        return Resolution(None, listed.plugin, found.reason or price.reason)
    return Resolution(price, listed.plugin, None)


def _sort_key(item: tuple[tuple[str, PriceKey], Any]) -> tuple[Any, ...]:
    (provider, key), _ = item
    return (
        provider,
        key.model,
        key.region or "",
        key.service_tier or "",
        key.batch,
    )


def _listing_table(rows: list[tuple[dict[str, Any], Price | None]]) -> str:
    cells = []
    for row, price in rows:
        base = [
            row["provider"],
            row["model"],
            row["region"] or "any",
            row["service_tier"] or "any",
            "yes" if row["batch"] else "no",
        ]
        origin = row["origin"] or "-"
        if price is None:
            reason = row["unpriced_reason"] or "no price"
            cells.append([*base, "-", "-", "-", "-", origin, "-", reason])
            continue
        checked = price.checked.isoformat() if price.checked else "-"
        source = price.source or "-"
        cells.append([*base, *price_cells(price), origin, checked, source])
    headers = [
        "PROVIDER",
        "MODEL",
        "REGION",
        "TIER",
        "BATCH",
        "INPUT",
        "CACHED INPUT",
        "CACHE WRITE",
        "OUTPUT",
        "FROM",
        "CHECKED",
        "SOURCE",
    ]
    table = render_table(headers, cells, align="lllllrrrr")
    return table + "\n\nPrices in USD per million tokens. FROM is the plugin that wins."


def _row_dict(
    provider: str,
    model: str,
    region: str | None,
    tier: str | None,
    batch: bool,
    found: Resolution,
) -> dict[str, Any]:
    price = found.price
    row: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "region": region,
        "service_tier": tier,
        "batch": batch,
        "price": price_dict(price),
        "price_per_million": None,
        "origin": found.origin,
        "unpriced_reason": None if price else found.reason,
    }
    if price is not None:
        unit = price.price_per_tokens
        row["price_per_million"] = {
            "input": str(per_million(price.input, unit)),
            "output": str(per_million(price.output, unit)),
        }
    return row


def _nothing_listed(args: argparse.Namespace) -> str:
    filters = [
        part
        for part in (
            f"provider {args.provider}" if args.provider else "",
            f"region {args.region}" if args.region else "",
            f"tier {args.tier}" if args.tier else "",
            "batch" if args.batch else "",
        )
        if part
    ]
    if not filters:
        return (
            "No installed plugin lists prices. Provider plugins list their "
            "bundled tables; check `llmfy plugins`, or resolve one model with "
            "--model."
        )
    return (
        f"No listed price matches {', '.join(filters)}. Leave out a filter, or "
        "resolve one model with --model."
    )
