"""A worker process for the end-to-end test: real calls, metrics on Prometheus.

Usage: prometheus_worker.py LLM_URL CHATS CONVERSES [SERVE_SECONDS]

It sets the global meter provider to one with a Prometheus reader, serves
that reader on 127.0.0.1 (a free port), enables llmfy's process-wide mode and
makes CHATS Chat Completions calls outside any `with` block and CONVERSES
Converse calls inside one. Then it prints one JSON line with the port and the
process-wide tracker's report, serves scrapes until its standard input closes
or for SERVE_SECONDS at most (default 60), and exits.
"""

from __future__ import annotations

import json
import os
import select
import sys
from typing import Any

import boto3
import llmfy_otel
import openai
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

from llmfy import llmfy_usage_tracker

DEFAULT_SERVE_SECONDS = 60.0

# USD per million tokens, and USD per 1,000 tokens for Bedrock.
OPENAI_PRICING = {"gpt-4o-mini": {"input": 0.15, "output": 0.60, "cache_read": 0.075}}
BEDROCK_PRICING = {
    "amazon.nova-micro-v1:0": {
        "us-east-1": {
            "region": "US East (N. Virginia)",
            "input": 0.000035,
            "output": 0.00014,
            "cache_read": 0.00000875,
        }
    }
}


def main(llm_url: str, chats: int, converses: int, serve_seconds: float) -> None:
    """Make the calls, print the report and serve metrics until stdin closes."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    server, _ = start_http_server(0, addr="127.0.0.1")
    tracker = llmfy_otel.enable(
        openai_pricing=OPENAI_PRICING, bedrock_pricing=BEDROCK_PRICING
    )

    chat_client = openai.OpenAI(
        base_url=f"{llm_url}/v1", api_key="test-key", max_retries=0
    )
    bedrock: Any = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=llm_url,
        aws_access_key_id="test-key-id",
        aws_secret_access_key="test-secret",
    )
    for _ in range(chats):
        chat_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say ok."}]
        )
    with llmfy_usage_tracker(
        openai_pricing=OPENAI_PRICING, bedrock_pricing=BEDROCK_PRICING
    ):
        for _ in range(converses):
            bedrock.converse(
                modelId="amazon.nova-micro-v1:0",
                messages=[{"role": "user", "content": [{"text": "Say ok."}]}],
            )

    print(json.dumps({"port": server.server_port, "report": tracker.to_dict()}))
    sys.stdout.flush()
    # Serve scrapes until the parent closes stdin, or give up after a while.
    select.select([sys.stdin], [], [], serve_seconds)
    server.shutdown()


if __name__ == "__main__":
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else DEFAULT_SERVE_SECONDS
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), seconds)
