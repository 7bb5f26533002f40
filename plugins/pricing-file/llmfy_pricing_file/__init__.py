"""llmfy plugin: price requests from an organisation's own price file.

Name the file with `use_price_file(path)` or the environment variable
`LLMFY_PRICE_FILE`. Its prices rank above the provider plugins' bundled tables
and below the prices passed to `llmfy_usage_tracker(...)`.
"""

from .plugin import ENV_VAR, check_price_file, use_price_file
from .prices import PriceEntry, PriceList, ProviderAdjustment, model_candidates
from .reader import (
    MAX_FILE_BYTES,
    UNITS,
    PriceFileError,
    load_price_file,
    parse_price_bytes,
    parse_price_document,
)

__all__ = [
    "ENV_VAR",
    "MAX_FILE_BYTES",
    "UNITS",
    "PriceEntry",
    "PriceFileError",
    "PriceList",
    "ProviderAdjustment",
    "check_price_file",
    "load_price_file",
    "model_candidates",
    "parse_price_bytes",
    "parse_price_document",
    "use_price_file",
]
