"""Metric and attribute names, and how llmfy's values map onto them.

The `gen_ai.*` and `cloud.region` names are the ones that
opentelemetry-semantic-conventions 0.66b2 ships (schema 1.44.0). That release
marks every `gen_ai.*` name deprecated, because the GenAI conventions moved to
their own repository, where they still have the status Development
(experimental). The names are written out here so that the plugin needs only
opentelemetry-api at run time; a test compares them with the installed
package. The `llmfy.*` names are this plugin's own, for what the conventions
do not name.
"""

from __future__ import annotations

from typing import Final

# Metrics named by the GenAI conventions.
TOKEN_USAGE: Final = "gen_ai.client.token.usage"
TOKEN_UNIT: Final = "{token}"

# The boundaries that the GenAI metrics page advises for the token usage
# histogram: powers of 4 from 1 to 67,108,864.
TOKEN_USAGE_BUCKETS: Final = tuple(float(4**power) for power in range(14))

# Metrics of this plugin. The token counters count tokens that are already part
# of the input or output tokens of `gen_ai.client.token.usage`.
CACHE_READ_TOKENS: Final = "llmfy.client.token.cache_read"
CACHE_WRITE_TOKENS: Final = "llmfy.client.token.cache_write"
REASONING_TOKENS: Final = "llmfy.client.token.reasoning"
OTHER_TOKENS: Final = "llmfy.client.token.other"
# Requests, by `gen_ai.token.type`, whose count of that type is unknown.
UNKNOWN_TOKEN_REQUESTS: Final = "llmfy.client.token.unknown_requests"
TOOL_CALLS: Final = "llmfy.client.tool_calls"
REQUESTS: Final = "llmfy.client.requests"
COST: Final = "llmfy.client.cost"
COST_UNIT: Final = "USD"

# Attributes named by the GenAI conventions.
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
TOKEN_TYPE: Final = "gen_ai.token.type"
TOOL_NAME: Final = "gen_ai.tool.name"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_WRITE_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
CLOUD_REGION: Final = "cloud.region"

# Attributes of this plugin.
PRICED: Final = "llmfy.priced"
USAGE_KNOWN: Final = "llmfy.usage.known"
USAGE_UNKNOWN: Final = "llmfy.usage.unknown_token_types"
OTHER_TOKEN_TYPE: Final = "llmfy.token.type"
TAG_PREFIX: Final = "llmfy.tag."
SPAN_COST: Final = "llmfy.cost.usd"
SPAN_COST_COMPLETE: Final = "llmfy.cost.complete"
SPAN_REQUESTS: Final = "llmfy.request.count"

# llmfy provider names whose `gen_ai.provider.name` differs; others pass as
# they are.
_PROVIDER_NAMES: Final = {
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}

# Operation names as the provider plugins record them (lower-cased), and the
# well-known `gen_ai.operation.name` value each one is.
_OPERATION_NAMES: Final = {
    "chat": "chat",
    "chat.completions": "chat",
    "chat_completions": "chat",
    "responses": "chat",
    "converse": "chat",
    "conversestream": "chat",
    "embeddings": "embeddings",
    "embedding": "embeddings",
    "completions": "text_completion",
    "text_completion": "text_completion",
}
_INVOKE_OPERATIONS: Final = frozenset({"invokemodel", "invokemodelwithresponsestream"})
UNKNOWN_OPERATION: Final = "unknown"


def provider_name(provider: str) -> str:
    """Return the `gen_ai.provider.name` value for an llmfy provider name."""
    return _PROVIDER_NAMES.get(provider, provider)


def operation_name(operation: str | None, model: str) -> str:
    """Return the `gen_ai.operation.name` value for a recorded operation.

    Bedrock's InvokeModel serves both text and embedding models, so its
    requests count as `embeddings` when the model id names an embedding model
    and as `chat` otherwise. An operation this table does not know passes as it
    is, which the conventions allow, and a missing one becomes `unknown`.
    """
    if operation is None:
        return UNKNOWN_OPERATION
    key = operation.lower()
    known = _OPERATION_NAMES.get(key)
    if known is not None:
        return known
    if key in _INVOKE_OPERATIONS:
        return "embeddings" if "embed" in model.lower() else "chat"
    return operation
