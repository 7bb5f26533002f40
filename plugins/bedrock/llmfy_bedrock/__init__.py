"""llmfy plugin for AWS Bedrock Runtime through boto3.

The functions other code can call: `usage_from_invocation_log`,
`read_invocation_logs`, `record_invocation_logs` and `failed_invocation` for
model invocation logs, `usage_from_saved_response` for a saved response body,
`bundled_table` for the bundled prices, and `register_profile_model` to name
the model behind an application inference profile. Importing this package
does not import boto3. Each name is imported from its module when first used,
so that plugin discovery, which imports `llmfy_bedrock.plugin`, does not load
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmfy_core.lazy import lazy_exports

if TYPE_CHECKING:
    from llmfy_bedrock.offline import (
        failed_invocation,
        invocation_log_sent_at,
        read_invocation_logs,
        record_invocation_logs,
        usage_from_invocation_log,
        usage_from_saved_response,
    )
    from llmfy_bedrock.prices import BedrockPriceTable, bundled_table
    from llmfy_bedrock.resolve import parse_model_id, register_profile_model

# Each public name and the module that defines it.
_MODULES = {
    "BedrockPriceTable": "llmfy_bedrock.prices",
    "bundled_table": "llmfy_bedrock.prices",
    "failed_invocation": "llmfy_bedrock.offline",
    "invocation_log_sent_at": "llmfy_bedrock.offline",
    "parse_model_id": "llmfy_bedrock.resolve",
    "read_invocation_logs": "llmfy_bedrock.offline",
    "record_invocation_logs": "llmfy_bedrock.offline",
    "register_profile_model": "llmfy_bedrock.resolve",
    "usage_from_invocation_log": "llmfy_bedrock.offline",
    "usage_from_saved_response": "llmfy_bedrock.offline",
}

__all__ = [
    "BedrockPriceTable",
    "bundled_table",
    "failed_invocation",
    "invocation_log_sent_at",
    "parse_model_id",
    "read_invocation_logs",
    "record_invocation_logs",
    "register_profile_model",
    "usage_from_invocation_log",
    "usage_from_saved_response",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
