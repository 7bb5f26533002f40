"""llmfy plugin for the official OpenAI Python SDK.

Importing this package does not import `openai`. The functions below are for
other llmfy tools (reports, price listings) and for applications. Each is
imported from its module when first used, so that plugin discovery, which
imports `llmfy_openai.plugin`, does not load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmfy_core.lazy import lazy_exports

if TYPE_CHECKING:
    from llmfy_openai.batch import (
        BatchFileError,
        iter_batch_usages,
        read_batch_file,
        record_batch_file,
        record_batch_usages,
    )
    from llmfy_openai.extract import extract_usage, usage_from_body
    from llmfy_openai.prices import PriceListing, list_prices, lookup_price
    from llmfy_openai.resolve import clear_azure_deployments, map_azure_deployments

# Each public name and the module that defines it.
_MODULES = {
    "BatchFileError": "llmfy_openai.batch",
    "PriceListing": "llmfy_openai.prices",
    "clear_azure_deployments": "llmfy_openai.resolve",
    "extract_usage": "llmfy_openai.extract",
    "iter_batch_usages": "llmfy_openai.batch",
    "list_prices": "llmfy_openai.prices",
    "lookup_price": "llmfy_openai.prices",
    "map_azure_deployments": "llmfy_openai.resolve",
    "read_batch_file": "llmfy_openai.batch",
    "record_batch_file": "llmfy_openai.batch",
    "record_batch_usages": "llmfy_openai.batch",
    "usage_from_body": "llmfy_openai.extract",
}

__all__ = [
    "BatchFileError",
    "PriceListing",
    "clear_azure_deployments",
    "extract_usage",
    "iter_batch_usages",
    "list_prices",
    "lookup_price",
    "map_azure_deployments",
    "read_batch_file",
    "record_batch_file",
    "record_batch_usages",
    "usage_from_body",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
