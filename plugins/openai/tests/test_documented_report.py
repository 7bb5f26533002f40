"""The documented report, produced by real SDK calls through the plugin."""

from __future__ import annotations

import openai

from llmfy import llmfy_usage_tracker

from .conftest import Bodies, LocalServer

# The report that the documentation shows for two gpt-4o-mini requests of
# 60 + 3 and 107 + 3 tokens at 0.15 and 0.60 USD per million tokens.
DOCUMENTED_REPORT = """
------------------
USAGE: 

Total Tokens: 173
\tInput Tokens: 167
\tOutput Tokens: 6
Total Requests: 2
Total Cost (USD): $2.865e-05
Total Cost (USD formatted): $0.00002865

Request Details:
1. gpt-4o-mini 
\tprovider: OPENAI 
\tinput_tokens: 60 
\toutput_tokens: 3 
\ttotal_tokens: 63 
\tinput_price: 0.15 
\toutput_price: 0.6 
\tprice_per_tokens: 1000000 
\ttotal_cost (USD): 1.08e-05 
\ttotal_cost (USD formatted): 0.0000108

2. gpt-4o-mini 
\tprovider: OPENAI 
\tinput_tokens: 107 
\toutput_tokens: 3 
\ttotal_tokens: 110 
\tinput_price: 0.15 
\toutput_price: 0.6 
\tprice_per_tokens: 1000000 
\ttotal_cost (USD): 1.785e-05 
\ttotal_cost (USD formatted): 0.00001785

------------------
"""  # noqa: W291 - the report's lines end with a space


def test_documented_report_from_real_sdk_calls(
    server: LocalServer, client: openai.OpenAI
) -> None:
    # The served id is the dated snapshot, as OpenAI returns it; the report
    # still names the model as requested.
    server.add_json("/v1/chat/completions", Bodies.chat(prompt=60, completion=3))
    server.add_json("/v1/chat/completions", Bodies.chat(prompt=107, completion=3))
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    with llmfy_usage_tracker() as usage:
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]

    assert str(usage) == DOCUMENTED_REPORT
    assert usage.to_dict()["requests"][0]["served_model"] == "gpt-4o-mini-2024-07-18"
