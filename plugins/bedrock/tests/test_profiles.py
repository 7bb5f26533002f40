"""Application inference profiles named with `register_profile_model`.

An application inference profile is created as a copy of a foundation model
or of a system-defined cross-region inference profile, and is billed as what
it copies. Requests go through real boto3 clients to a server on 127.0.0.1.
Claude Sonnet 4.5 costs 3.3 input and 16.5 output USD per million tokens in
us-east-1 (the regional rate), and 3 and 15 through the global profile.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import pytest
from llmfy_bedrock import register_profile_model, resolve

from llmfy_core import (
    Price,
    PriceRank,
    PricingWarning,
    hookimpl,
    llmfy_usage_tracker,
    register_plugin,
)

pytestmark = pytest.mark.usefixtures("profile_models")

SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1"
MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]
REPLY = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 1000, "outputTokens": 1000, "totalTokens": 2000},
    "metrics": {"latencyMs": 1},
}
# 1000 input and 1000 output tokens: 1000*3.3 + 1000*16.5 = 19800 per million
# at the regional rate, 1000*3 + 1000*15 = 18000 at the global rate.
REGIONAL_COST = Decimal("0.0198")
GLOBAL_COST = Decimal("0.018")


def converse_through_profile(server: Any, make_client: Any) -> Any:
    """Send one Converse request through PROFILE and return its record."""
    server.queue_json(REPLY)
    client = make_client("us-east-1")
    with llmfy_usage_tracker() as tracker:
        client.converse(modelId=PROFILE, messages=MESSAGES)
    return tracker.records[0]


@pytest.mark.parametrize(
    ("copied", "expected"),
    [
        pytest.param(SONNET_45, REGIONAL_COST, id="foundation-model"),
        pytest.param(f"us.{SONNET_45}", REGIONAL_COST, id="us-profile"),
        pytest.param(f"eu.{SONNET_45}", REGIONAL_COST, id="eu-profile"),
        pytest.param(f"global.{SONNET_45}", GLOBAL_COST, id="global-profile"),
        pytest.param(
            f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET_45}",
            REGIONAL_COST,
            id="foundation-model-arn",
        ),
        pytest.param(
            f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{SONNET_45}",
            REGIONAL_COST,
            id="us-profile-arn",
        ),
        pytest.param(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            f"global.{SONNET_45}",
            GLOBAL_COST,
            id="global-profile-arn",
        ),
    ],
)
def test_profile_priced_as_its_copy(
    bedrock_server: Any, make_client: Any, copied: str, expected: Decimal
) -> None:
    register_profile_model(PROFILE, copied)

    record = converse_through_profile(bedrock_server, make_client)

    assert record.unpriced_reason is None
    assert record.price_origin == "bedrock"
    assert record.cost is not None
    assert record.cost.total == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Claude Sonnet 4.5",
        "https://aws.amazon.com/bedrock/",
        "arn:aws:s3:::my-bucket",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p2",
        42,
        None,
    ],
)
def test_unpriceable_copy_rejected(value: Any) -> None:
    with pytest.raises(ValueError) as raised:
        register_profile_model(PROFILE, value)

    message = str(raised.value)
    assert repr(value) in message
    assert PROFILE in message
    assert "a foundation-model id such as" in message
    assert resolve.profile_models() == {}


def test_model_name_without_provider_gets_hint() -> None:
    with pytest.raises(ValueError) as raised:
        register_profile_model(PROFILE, "claude-sonnet-4-5-20250929-v1:0")

    assert "'anthropic.claude-sonnet-4-5-20250929-v1:0'" in str(raised.value)


@pytest.mark.parametrize(
    "profile",
    [
        SONNET_45,
        f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET_45}",
        "my-profile",
        7,
    ],
)
def test_non_profile_arn_rejected(profile: Any) -> None:
    with pytest.raises(ValueError) as raised:
        register_profile_model(profile, SONNET_45)

    assert repr(profile) in str(raised.value)
    assert resolve.profile_models() == {}


def test_unknown_copy_warns_once_at_registration(
    bedrock_server: Any, make_client: Any
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        register_profile_model(PROFILE, "us.anthropic.claude-sonet-4-5-20250929-v1:0")

    assert len(caught) == 1
    assert issubclass(caught[0].category, PricingWarning)
    message = str(caught[0].message)
    assert "'us.anthropic.claude-sonet-4-5-20250929-v1:0'" in message
    assert f"Did you mean {SONNET_45!r}?" in message

    with pytest.warns(PricingWarning, match="registered as a copy of"):
        record = converse_through_profile(bedrock_server, make_client)

    assert record.cost is None
    assert record.unpriced_reason is not None
    assert "us.anthropic.claude-sonet-4-5-20250929-v1:0" in record.unpriced_reason


def test_unknown_copy_priced_by_override(bedrock_server: Any, make_client: Any) -> None:
    with pytest.warns(PricingWarning, match="no price for 'acme.chat-v1:0'"):
        register_profile_model(PROFILE, "acme.chat-v1:0")
    prices = {"acme.chat-v1:0": {"us-east-1": {"input": 0.001, "output": 0.002}}}
    bedrock_server.queue_json(REPLY)

    with llmfy_usage_tracker(bedrock_pricing=prices) as tracker:
        make_client("us-east-1").converse(modelId=PROFILE, messages=MESSAGES)

    record = tracker.records[0]
    # 0.001 and 0.002 USD per 1,000 tokens: 1000*0.001/1000 + 1000*0.002/1000
    # = 0.001 + 0.002 = 0.003 USD.
    assert record.price_origin == "override"
    assert record.cost is not None
    assert record.cost.total == Decimal("0.003")


class ListedPrices:
    """A price source of a given rank that prices one Bedrock model id."""

    def __init__(self, rank: PriceRank, model: str, price: Price) -> None:
        self.llmfy_price_rank = rank
        self.model = model
        self.price = price

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        if provider == "bedrock" and model == self.model:
            return self.price
        return None


@pytest.mark.parametrize(
    ("rank", "copied"),
    [
        # A negotiated price of the copied profile, ranked above the bundled one.
        pytest.param(PriceRank.ORGANIZATION, f"us.{SONNET_45}", id="organization"),
        # A model that only a fallback database prices.
        pytest.param(PriceRank.FALLBACK, "acme.chat-v1:0", id="fallback"),
    ],
)
def test_copy_priced_by_other_sources(
    bedrock_server: Any, make_client: Any, rank: PriceRank, copied: str
) -> None:
    listed = ListedPrices(rank, copied, Price(Decimal("2"), Decimal("10")))
    register_plugin(listed, "listed")
    with warnings.catch_warnings():
        # The bundled table has no price for acme.chat-v1:0, which warns.
        warnings.simplefilter("ignore", PricingWarning)
        register_profile_model(PROFILE, copied)

    record = converse_through_profile(bedrock_server, make_client)

    # 2 and 10 USD per million tokens: 1000 x 2 + 1000 x 10 = 12,000 millionths
    # of a USD.
    assert record.unpriced_reason is None
    assert record.cost is not None
    assert record.cost.total == Decimal("0.012")
    assert record.price_origin == "listed"
