"""OpenAI requests that the openai SDK sends to Amazon Bedrock's endpoints.

`BedrockOpenAI`, `OpenAI(provider=bedrock(...))` and a plain client whose base
URL names a Bedrock host all send OpenAI-shaped requests that Bedrock serves
and bills at its own prices per model and AWS Region. The clients point at the
local server on 127.0.0.1. The prices are made up for these tests, in USD per
1,000 tokens as `bedrock_pricing` takes them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.providers import bedrock

from llmfy import PricingWarning, llmfy_usage_tracker

from .test_regional import LoopbackTransport

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
GPT_OSS = "openai.gpt-oss-120b-1:0"
RATES = {"input": "0.0002", "output": "0.0008", "long_context": []}
PRICES = {GPT_OSS: {"us-west-2": RATES, "eu-west-1": RATES, "us-east-1": RATES}}


def test_bedrock_client_priced_as_bedrock(server, bodies):
    server.add_json(CHAT, bodies.chat(model=GPT_OSS, prompt=1000, completion=200))
    client = openai.BedrockOpenAI(
        aws_region="us-west-2", api_key="test", base_url=server.base_url, max_retries=0
    )

    with client, llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        client.chat.completions.create(model=GPT_OSS, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.provider == "bedrock"
    assert record.usage.region == "us-west-2"
    assert record.usage.model == GPT_OSS
    assert record.usage.input_tokens == 1000
    assert record.usage.output_tokens == 200
    assert record.price_origin == "override"
    # 1,000 x 0.0002 + 200 x 0.0008 = 0.2 + 0.16 = 0.36 thousandths of a USD.
    assert record.cost.total == Decimal("0.00036")


def test_bedrock_provider_stream_priced_as_bedrock(server, bodies):
    server.add_sse(
        CHAT,
        [
            bodies.chunk("Paris.", model=GPT_OSS),
            bodies.chunk(None, model=GPT_OSS, usage=bodies.chunk_usage(500, 50)),
        ],
    )
    provider = bedrock(region="eu-west-1", api_key="test", base_url=server.base_url)
    client = openai.OpenAI(provider=provider, max_retries=0)

    with client, llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        stream = client.chat.completions.create(
            model=GPT_OSS,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)

    assert len(chunks) == 2
    record = usage.records[0]
    assert record.usage.provider == "bedrock"
    assert record.usage.region == "eu-west-1"
    # 500 x 0.0002 + 50 x 0.0008 = 0.1 + 0.04 = 0.14 thousandths of a USD.
    assert record.cost.total == Decimal("0.00014")


def test_async_bedrock_client_priced_as_bedrock(server, bodies):
    server.add_json(CHAT, bodies.chat(model=GPT_OSS, prompt=2000, completion=100))

    async def ask() -> None:
        async with openai.AsyncBedrockOpenAI(
            aws_region="us-east-1",
            api_key="test",
            base_url=server.base_url,
            max_retries=0,
        ) as client:
            await client.chat.completions.create(model=GPT_OSS, messages=MESSAGES)

    with llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        asyncio.run(ask())

    record = usage.records[0]
    assert record.usage.provider == "bedrock"
    assert record.usage.region == "us-east-1"
    # 2,000 x 0.0002 + 100 x 0.0008 = 0.4 + 0.08 = 0.48 thousandths of a USD.
    assert record.cost.total == Decimal("0.00048")


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("bedrock-runtime.us-east-1.amazonaws.com", "us-east-1"),
        ("bedrock-mantle.us-west-2.api.aws", "us-west-2"),
        # The European Sovereign Cloud's Regions start with four letters.
        ("bedrock-runtime.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1"),
    ],
)
def test_bedrock_host_in_base_url(server, bodies, host, region):
    # The SDK sends to the base URL's path, under /openai/v1.
    server.add_json(
        f"/openai{RESPONSES}", bodies.response(model=GPT_OSS, input_tokens=100)
    )
    transport = LoopbackTransport(server.port)
    http_client = openai.DefaultHttpxClient(transport=transport)
    client = openai.OpenAI(
        base_url=f"https://{host}/openai/v1",
        api_key="test",
        max_retries=0,
        http_client=http_client,
    )

    with client, llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        client.responses.create(model=GPT_OSS, input="Hello")

    record = usage.records[0]
    assert record.usage.provider == "bedrock"
    assert record.usage.region == region
    assert record.usage.input_tokens == 100
    assert record.cost is not None


def test_bedrock_provider_region_from_host(server, bodies):
    # With a bearer credential and a base URL, the SDK leaves the runtime's
    # Region unset, but the host still names it.
    server.add_json(
        f"/openai{CHAT}", bodies.chat(model=GPT_OSS, prompt=1000, completion=200)
    )
    http_client = openai.DefaultHttpxClient(transport=LoopbackTransport(server.port))
    provider = bedrock(
        api_key="test",
        base_url="https://bedrock-runtime.us-east-1.amazonaws.com/openai/v1",
    )
    client = openai.OpenAI(provider=provider, max_retries=0, http_client=http_client)

    with client, llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        client.chat.completions.create(model=GPT_OSS, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.provider == "bedrock"
    assert record.usage.region == "us-east-1"
    assert record.price_origin == "override"
    # 1,000 x 0.0002 + 200 x 0.0008 = 0.36 thousandths of a USD.
    assert record.cost.total == Decimal("0.00036")


def test_bedrock_client_region_from_environment(server, bodies, monkeypatch):
    # BedrockOpenAI takes AWS_REGION as its `aws_region`, though its runtime
    # has no Region when a bearer credential and a base URL are given.
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    server.add_json(CHAT, bodies.chat(model=GPT_OSS, prompt=500, completion=50))
    client = openai.BedrockOpenAI(
        api_key="test", base_url=server.base_url, max_retries=0
    )

    with client, llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        client.chat.completions.create(model=GPT_OSS, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.region == "eu-west-1"
    assert record.price_origin == "override"
    # 500 x 0.0002 + 50 x 0.0008 = 0.14 thousandths of a USD.
    assert record.cost.total == Decimal("0.00014")


def test_bedrock_client_region_set_later(server, bodies):
    server.add_json(CHAT, bodies.chat(model=GPT_OSS, prompt=1000, completion=200))
    client = openai.BedrockOpenAI(
        aws_region="us-west-2", api_key="test", base_url=server.base_url, max_retries=0
    )
    client.aws_region = "us-east-1"

    with client, llmfy_usage_tracker(bedrock_pricing=PRICES) as usage:
        client.chat.completions.create(model=GPT_OSS, messages=MESSAGES)

    assert usage.records[0].usage.region == "us-east-1"


def test_bedrock_model_without_price_unpriced(server, bodies):
    # A model id that no price source lists.
    model = "example.unlisted-model-v1:0"
    server.add_json(CHAT, bodies.chat(model=model))
    client = openai.BedrockOpenAI(
        aws_region="us-east-1", api_key="test", base_url=server.base_url, max_retries=0
    )

    unpriced = f"No price for bedrock model '{model}' in region 'us-east-1'"
    with client, llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning, match=unpriced):
            client.chat.completions.create(model=model, messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.provider == "bedrock"
    assert record.usage.input_tokens == 60
    assert record.cost is None
    assert usage.cost_complete is False


def test_openai_client_still_openai(server, client: Any, bodies):
    server.add_json(CHAT, bodies.chat(prompt=60, completion=3))

    with llmfy_usage_tracker() as usage:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.provider == "openai"
    assert record.usage.region is None
    # 60 x 0.15 + 3 x 0.60 = 9 + 1.8 = 10.8 millionths of a USD.
    assert record.cost.total == Decimal("0.0000108")
