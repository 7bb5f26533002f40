"""Fixtures for the core's tests: a registry without installed plugins, plus
a small provider plugin whose prices the tests choose."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

import llmfy_core
from llmfy_core import (
    CallContext,
    Price,
    PriceKey,
    PriceRank,
    StaticPriceTable,
    Usage,
    hookimpl,
)
from llmfy_core.pricing import price_from_mapping

EXPECTED_SHAPE = '{"model-id": {"input": 0.15, "output": 0.60}}'


class ProviderPlugin:
    """A provider plugin for tests: a fixed price table and dict responses.

    A response is a dict such as `{"model": "m", "in": 10, "out": 2}`;
    override tables use the per-million format of the OpenAI plugin.
    """

    llmfy_price_rank = PriceRank.PROVIDER

    def __init__(self, provider: str, prices: Mapping[str, Price]) -> None:
        self.provider = provider
        self.prices = dict(prices)

    @hookimpl
    def provider_instrument(self) -> str:
        return self.provider

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        if provider != self.provider:
            return None
        return self.prices.get(model)

    @hookimpl
    def pricing_table_parse(
        self, provider: str, table: Mapping[str, Any]
    ) -> StaticPriceTable | None:
        if provider != self.provider:
            return None
        entries = {
            PriceKey(model): price_from_mapping(
                entry,
                provider=provider,
                model=model,
                region=None,
                default_unit=1_000_000,
                expected_shape=EXPECTED_SHAPE,
                source="override",
            )
            for model, entry in table.items()
        }
        return StaticPriceTable(entries)

    @hookimpl
    def usage_extract(self, response: Any, context: CallContext) -> Usage | None:
        if context.provider != self.provider or not isinstance(response, dict):
            return None
        return Usage(
            provider=self.provider,
            model=context.model or response["model"],
            input_tokens=response.get("in"),
            output_tokens=response.get("out"),
            cache_read_tokens=response.get("cached", 0),
            served_model=response.get("model"),
        )


GPT_4O_MINI = Price(Decimal("0.15"), Decimal("0.60"), cache_read=Decimal("0.075"))


@pytest.fixture
def provider() -> Iterator[ProviderPlugin]:
    """Load no installed plugin; register one test provider, `openai`-named."""
    llmfy_core.load_plugins(autoload=False)
    plugin = ProviderPlugin("openai", {"gpt-4o-mini": GPT_4O_MINI})
    llmfy_core.register_plugin(plugin, "test-openai")
    yield plugin
