"""llmfy plugin for the (fictional) Acme LLM API."""

from llmfy_acme.client import complete

__all__ = ["complete"]
