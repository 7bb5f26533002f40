"""llmfy plugin for the official OpenAI Python SDK."""
