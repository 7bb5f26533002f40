"""The plugin's names agree with the installed semantic conventions package."""

from __future__ import annotations

import pytest
from llmfy_otel import names
from opentelemetry.semconv._incubating.attributes import (
    cloud_attributes,
    gen_ai_attributes,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics


def test_metric_name_matches_semconv() -> None:
    assert names.TOKEN_USAGE == gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (names.OPERATION_NAME, gen_ai_attributes.GEN_AI_OPERATION_NAME),
        (names.PROVIDER_NAME, gen_ai_attributes.GEN_AI_PROVIDER_NAME),
        (names.REQUEST_MODEL, gen_ai_attributes.GEN_AI_REQUEST_MODEL),
        (names.RESPONSE_MODEL, gen_ai_attributes.GEN_AI_RESPONSE_MODEL),
        (names.TOKEN_TYPE, gen_ai_attributes.GEN_AI_TOKEN_TYPE),
        (names.TOOL_NAME, gen_ai_attributes.GEN_AI_TOOL_NAME),
        (names.USAGE_INPUT_TOKENS, gen_ai_attributes.GEN_AI_USAGE_INPUT_TOKENS),
        (names.USAGE_OUTPUT_TOKENS, gen_ai_attributes.GEN_AI_USAGE_OUTPUT_TOKENS),
        (
            names.USAGE_CACHE_READ_TOKENS,
            gen_ai_attributes.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        ),
        (
            names.USAGE_CACHE_WRITE_TOKENS,
            gen_ai_attributes.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        ),
        (
            names.USAGE_REASONING_TOKENS,
            gen_ai_attributes.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        ),
        (names.CLOUD_REGION, cloud_attributes.CLOUD_REGION),
    ],
)
def test_attribute_name_matches_semconv(ours: str, theirs: str) -> None:
    assert ours == theirs


def test_token_types_are_well_known() -> None:
    values = {member.value for member in gen_ai_attributes.GenAiTokenTypeValues}

    assert {"input", "output"} <= values


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("openai", "openai"), ("bedrock", "aws.bedrock"), ("anthropic", "anthropic")],
)
def test_provider_values_are_well_known(provider: str, expected: str) -> None:
    values = {member.value for member in gen_ai_attributes.GenAiProviderNameValues}

    assert names.provider_name(provider) == expected
    assert expected in values


@pytest.mark.parametrize(
    ("operation", "model", "expected"),
    [
        ("chat.completions", "gpt-4o-mini", "chat"),
        ("responses", "gpt-5", "chat"),
        ("embeddings", "text-embedding-3-small", "embeddings"),
        ("Converse", "amazon.nova-micro-v1:0", "chat"),
        ("ConverseStream", "amazon.nova-micro-v1:0", "chat"),
        ("InvokeModel", "anthropic.claude-3-haiku-20240307-v1:0", "chat"),
        ("InvokeModel", "amazon.titan-embed-text-v2:0", "embeddings"),
        ("InvokeModelWithResponseStream", "amazon.nova-micro-v1:0", "chat"),
        ("completions", "gpt-3.5-turbo-instruct", "text_completion"),
        ("images.generate", "gpt-image-1", "images.generate"),
        (None, "gpt-4o-mini", "unknown"),
    ],
)
def test_operation_names(operation: str | None, model: str, expected: str) -> None:
    values = {member.value for member in gen_ai_attributes.GenAiOperationNameValues}

    assert names.operation_name(operation, model) == expected
    assert expected in values or expected in {"images.generate", "unknown"}


def test_token_buckets_as_advised() -> None:
    # The GenAI metrics page advises these boundaries for the token histogram.
    assert names.TOKEN_USAGE_BUCKETS == (
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
        16777216, 67108864,
    )  # fmt: skip
