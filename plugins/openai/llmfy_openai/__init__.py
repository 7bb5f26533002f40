"""llmfy plugin for the official OpenAI Python SDK.

Importing this package does not import `openai`. The functions below are for
other llmfy tools (reports, price listings) and for applications.
"""

from llmfy_openai.batch import BatchFileError, iter_batch_usages, read_batch_file
from llmfy_openai.extract import extract_usage, usage_from_body
from llmfy_openai.prices import PriceListing, list_prices, lookup_price
from llmfy_openai.resolve import clear_azure_deployments, map_azure_deployments

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
    "usage_from_body",
]
