"""Hook specifications: the contract between the llmfy core and its plugins.

A plugin is a module or object with functions marked `@llmfy_core.hookimpl`,
registered through the entry-point group `llmfy`. An implementation may accept
any subset of a hook's arguments, by name.

A plugin may also define these attributes, which the core reads:

- `llmfy_price_rank`: an int, usually a `PriceRank`, placing its
  `price_lookup` above or below the provider plugins' tables.
- `llmfy_price_dated`: true when its prices depend on `requested_at`, so that
  cached prices are keyed by the UTC day a request was sent.
- `llmfy_price_version()`: a cheap call returning a new value whenever its
  prices changed (a price file that was edited), so that trackers drop their
  cached prices.
- `llmfy_wants_records()`: a cheap call returning False while its
  `request_recorded` has nothing to do, so that no record is built for it.
- `llmfy_providers`: the providers whose responses its `usage_extract`
  reads, such as `("openai",)`. Plugins that do not declare it are asked for
  every provider's responses, and one asked before the provider's own plugin
  turns the recording fast path off for that provider.
- `llmfy_usage_reader(provider, response_type)`: returns a function that
  reads a well-formed response of that type as `UsageCounts` (see
  `llmfy_core.model`), or None. It is asked once per type, after the
  plugin's `usage_extract` has returned a usage for it; later responses of
  that type are read by the function, which returns None for any response
  that needs `usage_extract`'s checks.
- `llmfy_readers_check_counts`: true when its readers return only valid
  counts (ints of at least 0, parts within their totals), so that the core
  does not check each request's counts again.
- `llmfy_regions(provider)`: returns every region that requests of
  `provider` can be sent to, such as the AWS Regions for `bedrock`, or None
  when the plugin does not know them. Price files use it to warn of a
  region that is misspelt or unknown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from llmfy_core.model import CallContext, Price, RequestRecord, Unpriced, Usage
    from llmfy_core.pricing import CatalogEntry, PriceTable

PROJECT_NAME = "llmfy"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def usage_extract(response: Any, context: CallContext) -> Usage | None:
    """Normalize the token usage of one provider response.

    `response` is what the provider returned: an SDK object, a parsed JSON
    dict, or the final event of a stream. `context` carries what the caller
    knows besides the response (provider, operation, requested model id,
    region, service tier, HTTP response headers).

    Return the request's `Usage`, following the inclusion rules of
    `llmfy_core.model`, or None when the response is not this plugin's. A
    response that is this plugin's but carries no usage should return a `Usage`
    with `input_tokens` and `output_tokens` of None, so that the request is
    still counted. The first non-None result wins.
    """


@hookspec(firstresult=True)
def price_lookup(
    provider: str,
    model: str,
    region: str | None,
    service_tier: str | None,
    batch: bool,
    requested_at: dt.datetime | None,
) -> Price | Unpriced | None:
    """Return the price of one model, or None when this plugin has none.

    `model` is a model id as the provider names it (a dated snapshot, a
    Bedrock inference profile or ARN, ...); resolve it the way the provider
    bills it. `service_tier` is the tier the response reported, such as
    `default`, `flex` or `priority`, or None when it reported none. None and the
    names in `llmfy_core.pricing.STANDARD_TIERS` (`default`, `standard`) both
    mean the standard tier. `batch` is true for Batch API requests.
    `requested_at` is when the request was sent, for price lists with effective
    dates.

    Return `Unpriced` to state why a known model has no per-token price.
    Implementations are asked in the order of the rank their plugin declares
    with a `llmfy_price_rank` attribute (see `llmfy_core.PriceRank`); the first
    `Price` wins, and the first final `Unpriced` stops the lookup. A `Price`
    that fails `llmfy_core.pricing.price_problem` (a rate that is not a
    finite `Decimal` of at least 0, a `price_per_tokens` below 1, a
    `checked` that is not a date, or an invalid long-context tier) is skipped
    with a logged `PricingWarning`, and so is a result that is not a `Price`,
    an `Unpriced` or None.
    """


@hookspec(firstresult=True)
def pricing_table_parse(provider: str, table: Mapping[str, Any]) -> PriceTable | None:
    """Turn a user's override table for `provider` into a `PriceTable`.

    `table` is the value given as `<provider>_pricing=` to
    `llmfy_usage_tracker`. Return None unless `provider` is this plugin's.
    Validate every entry and raise `llmfy_core.PricingTableError` naming the
    provider, model, region and field at fault, with the expected shape. A
    `Price` that the table's `lookup` returns and that fails the checks of
    `price_lookup` results is logged and skipped.
    """


@hookspec
def price_catalog(provider: str | None) -> Iterable[CatalogEntry] | None:
    """List the prices this plugin can return, for `llmfy prices`.

    `provider` limits the listing to one provider, or is None for all. Return
    None or an empty iterable when the plugin lists nothing. An entry whose
    `Price` fails the checks of `price_lookup` results is logged and skipped.
    """


@hookspec
def provider_instrument() -> str | None:
    """Install this plugin's SDK instrumentation, and return the provider name.

    Called once per process, when the first tracker starts. The instrumentation
    must not import the provider SDK before the application does; it may
    instead patch the SDK when the application imports it. Plugins that only
    price requests return None.
    """


@hookspec
def request_recorded(record: RequestRecord) -> None:
    """Receive one finished request, once, however many trackers counted it.

    For exporters, loggers and budget watchers. `record` is priced as the
    innermost tracker that counted it priced it. An exception raised here is
    logged and counted, and never reaches the application.
    """
