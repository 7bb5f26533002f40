"""`llmfy cost`: the cost of one request, with its breakdown."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from llmfy_core.model import Price, Usage
from llmfy_core.pricing import compute_cost, format_decimal
from llmfy_core.report import price_dict
from llmfy_core.resolver import PriceResolver

from .lookup import KnownPrices, PriceQuery, find_price
from .output import (
    EXIT_OK,
    EXIT_UNPRICED,
    CliError,
    money,
    per_million,
    print_json,
    render_table,
)
from .prices_command import add_prices_option, non_empty_text
from .sources import use_price_file


def add_parser(commands: Any) -> None:
    """Add the `cost` command to the argparse subcommands."""
    parser = commands.add_parser(
        "cost",
        help="compute the cost of one request",
        description=(
            "Compute the cost of one request from its token counts, priced as a "
            "tracker would price it. --input counts every input token, cached "
            "and cache write tokens included; --output counts every output "
            "token, reasoning tokens included. Exits 2 when the arguments do not "
            "select one price (the provider is unknown or cannot be guessed, the "
            "model is priced by region and --region is missing, the region is "
            "misspelt or the tier is unknown, or the model id misspells a listed "
            "one), and 3 when the model has no price."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="the model id")
    parser.add_argument(
        "--input",
        type=_count,
        required=True,
        metavar="N",
        help="the number of input tokens, cached and cache write tokens included",
    )
    parser.add_argument(
        "--output",
        type=_count,
        required=True,
        metavar="N",
        help="the number of output tokens, reasoning tokens included",
    )
    parser.add_argument(
        "--cached",
        type=_count,
        default=0,
        metavar="N",
        help="how many of the input tokens were cached input tokens (cache read)",
    )
    parser.add_argument(
        "--cache-write",
        type=_count,
        default=0,
        metavar="N",
        help="how many of the input tokens were written to the cache",
    )
    parser.add_argument(
        "--reasoning",
        type=_count,
        default=0,
        metavar="N",
        help="how many of the output tokens were reasoning tokens",
    )
    parser.add_argument(
        "--provider",
        type=non_empty_text,
        metavar="P",
        help="the provider, such as openai or bedrock (guessed when only one fits)",
    )
    parser.add_argument(
        "--region",
        type=non_empty_text,
        metavar="R",
        help="region, such as us-east-1",
    )
    parser.add_argument(
        "--tier", metavar="T", help="service tier, such as flex or priority"
    )
    parser.add_argument("--batch", action="store_true", help="a Batch API request")
    add_prices_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of tokens"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; counts start at 0")
    return value


def run(args: argparse.Namespace) -> int:
    """Run `llmfy cost`."""
    _check_counts(args)
    if args.prices:
        use_price_file(args.prices)
    resolver = PriceResolver({})
    query = PriceQuery(args.model, args.provider, args.region, args.tier, args.batch)
    provider, found, reason = find_price(resolver, query, KnownPrices.collect())
    usage = Usage(
        provider=provider,
        model=args.model,
        input_tokens=args.input,
        output_tokens=args.output,
        cache_read_tokens=args.cached,
        cache_write_tokens=args.cache_write,
        reasoning_tokens=args.reasoning,
        region=args.region,
        service_tier=args.tier,
        batch=args.batch,
    )
    if found.price is None:
        if args.json:
            print_json(_cost_dict(usage, None, found.origin, reason))
        else:
            where = f" in region {args.region}" if args.region else ""
            print(f"No price for {provider} model {args.model!r}{where}: {reason}")
        return EXIT_UNPRICED
    if args.json:
        print_json(_cost_dict(usage, found.price, found.origin, None))
    else:
        print(_cost_text(usage, found.price, found.origin))
    return EXIT_OK


def _check_counts(args: argparse.Namespace) -> None:
    if args.cached + args.cache_write > args.input:
        raise CliError(
            f"--cached {args.cached} plus --cache-write {args.cache_write} is more "
            f"than --input {args.input}. --input counts every input token, cached "
            "and cache write tokens included."
        )
    if args.reasoning > args.output:
        raise CliError(
            f"--reasoning {args.reasoning} is more than --output {args.output}. "
            "--output counts every output token, reasoning tokens included."
        )


def _breakdown(usage: Usage, price: Price) -> list[tuple[str, int | None, Decimal]]:
    """Return (part, tokens or calls, rate) for each part `compute_cost` charges."""
    effective = price.for_input_tokens(usage.input_tokens)
    input_tokens = usage.input_tokens or 0
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    cache_read_rate = effective.cache_read
    cache_write_rate = effective.cache_write
    return [
        ("input", input_tokens - cache_read - cache_write, effective.input),
        (
            "cache_read",
            cache_read,
            effective.input if cache_read_rate is None else cache_read_rate,
        ),
        (
            "cache_write",
            cache_write,
            effective.input if cache_write_rate is None else cache_write_rate,
        ),
        ("output", usage.output_tokens, effective.output),
    ]


_LABELS = {
    "input": "input",
    "cache_read": "cached input",
    "cache_write": "cache write",
    "output": "output",
}


def _cost_text(usage: Usage, price: Price, origin: str | None) -> str:
    cost = compute_cost(usage, price)
    effective = price.for_input_tokens(usage.input_tokens)
    rows = []
    for part, tokens, rate in _breakdown(usage, price):
        if not tokens:
            continue
        amount = cost.parts.get(part, Decimal(0))
        # Shown per million tokens whatever the price's unit, as `llmfy prices`.
        shown_rate = per_million(rate, effective.price_per_tokens)
        rows.append([_LABELS[part], f"{tokens:,}", money(shown_rate), money(amount)])
    rows.append(["total", "", "", money(cost.total)])
    headers = ["PART", "TOKENS", "USD per 1,000,000", "COST (USD)"]
    table = render_table(headers, rows, align="lrrr")
    region = f" in {usage.region}" if usage.region else ""
    tier = f", {usage.service_tier} tier" if usage.service_tier else ""
    batch = ", batch" if usage.batch else ""
    lines = [f"{usage.provider} {usage.model}{region}{tier}{batch}", "", table]
    if usage.reasoning_tokens:
        lines.append(
            f"The output includes {usage.reasoning_tokens:,} reasoning tokens, "
            "charged at the output rate."
        )
    # `for_input_tokens` chose the tier of the highest threshold that the
    # request exceeds. Matching the chosen price by identity instead would
    # name the wrong threshold when two tiers share one `Price` object.
    input_tokens = usage.input_tokens or 0
    thresholds = [
        tier.above_input_tokens
        for tier in price.long_context
        if input_tokens > tier.above_input_tokens
    ]
    if thresholds:
        threshold = max(thresholds)
        lines.append(
            "The long-context price applies to the whole request, because it has "
            f"more than {threshold:,} input tokens."
        )
    checked = f", checked {price.checked.isoformat()}" if price.checked else ""
    lines.append(f"Price from {origin or '-'}: {price.source or '-'}{checked}")
    return "\n".join(lines)


def _cost_dict(
    usage: Usage,
    price: Price | None,
    origin: str | None,
    reason: str | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "provider": usage.provider,
        "model": usage.model,
        "region": usage.region,
        "service_tier": usage.service_tier,
        "batch": usage.batch,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "price": price_dict(price),
        "price_origin": origin,
        "unpriced_reason": reason,
        "cost_usd": None,
        "cost_parts_usd": None,
    }
    if price is not None:
        cost = compute_cost(usage, price)
        data["cost_usd"] = format_decimal(cost.total)
        data["cost_parts_usd"] = {
            part: format_decimal(amount) for part, amount in cost.parts.items()
        }
    return data
