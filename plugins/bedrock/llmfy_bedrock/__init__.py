"""llmfy plugin for AWS Bedrock Runtime through boto3.

The functions other code can call: `usage_from_invocation_log`,
`read_invocation_logs` and `record_invocation_logs` for model invocation logs,
`usage_from_saved_response` for a saved response body, `bundled_table` for the
bundled prices, and `register_profile_model` to name the model behind an
application inference profile. Importing this package does not import boto3.
"""

from llmfy_bedrock.offline import (
    invocation_log_sent_at,
    read_invocation_logs,
    record_invocation_logs,
    usage_from_invocation_log,
    usage_from_saved_response,
)
from llmfy_bedrock.prices import BedrockPriceTable, bundled_table
from llmfy_bedrock.resolve import parse_model_id, register_profile_model

__all__ = [
    "BedrockPriceTable",
    "bundled_table",
    "invocation_log_sent_at",
    "parse_model_id",
    "read_invocation_logs",
    "record_invocation_logs",
    "register_profile_model",
    "usage_from_invocation_log",
    "usage_from_saved_response",
]
