"""Hook implementations of the llmfy-openai plugin."""

from __future__ import annotations

from llmfy_core import PriceRank

llmfy_price_rank = PriceRank.PROVIDER
