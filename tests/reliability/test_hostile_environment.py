"""Applications that turn warnings into errors or whose logging raises.

llmfy warns and logs from inside the application's LLM calls: an unpriced
model, a stream without usage, a malformed response. Neither `python -W
error` nor a logging handler that raises may turn such a call into a failed
one, and the tracker must still count it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmfy_core import PricingWarning, llmfy_usage_tracker

from .servers import LoopbackLLM

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "Capital of France?"}]}]
NOVA_MICRO = "amazon.nova-micro-v1:0"

# Every call below makes llmfy warn or log: a model without a price, a
# stream without usage, a region without a price, a stream ended early.
APPLICATION = textwrap.dedent(
    """
    import json, os

    import boto3
    import openai

    from llmfy import llmfy_usage_tracker

    url = os.environ["LOOPBACK_URL"]
    chat = openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)
    bedrock = boto3.session.Session().client(
        "bedrock-runtime",
        region_name="eu-south-9",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    messages = [{"role": "user", "content": "Capital of France?"}]
    converse_messages = [{"role": "user", "content": [{"text": "Capital?"}]}]
    seen = []

    with llmfy_usage_tracker() as usage:
        reply = chat.chat.completions.create(model="gpt-unpriced", messages=messages)
        seen.append(reply.choices[0].message.content)
        stream = chat.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        )
        seen.append("".join(c.choices[0].delta.content or "" for c in stream))
        reply = bedrock.converse(modelId="amazon.nova-micro-v1:0",
                                 messages=converse_messages)
        seen.append(reply["output"]["message"]["content"][0]["text"])
        events = bedrock.converse_stream(modelId="amazon.nova-micro-v1:0",
                                         messages=converse_messages)["stream"]
        next(iter(events))
        events.close()

    print(json.dumps({
        "seen": seen,
        "requests": usage.request_count,
        "unpriced": usage.totals.unpriced,
        "unknown_usage": usage.totals.unknown_usage,
    }))
    """
)


def run_application(loopback: LoopbackLLM, *options: str) -> dict[str, Any]:
    environment = {
        **os.environ,
        "LOOPBACK_URL": loopback.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    environment.pop("LLMFY_OTEL_ENABLE", None)
    done = subprocess.run(
        [sys.executable, *options, "-c", APPLICATION],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return output


def test_warnings_as_errors_application(loopback: LoopbackLLM) -> None:
    loopback.replies.served_model = None  # so that gpt-unpriced stays unpriced
    output = run_application(loopback, "-W", "error")

    assert output["seen"] == ["Paris.", "Paris.", "Paris."]
    assert output["requests"] == 4
    # gpt-unpriced has no price; Nova Micro has none in eu-south-9.
    assert output["unpriced"] == 2
    # The stream without include_usage and the stream closed early.
    assert output["unknown_usage"] == 2


def test_warnings_as_errors_reject_own_price_table() -> None:
    # A warning about the application's own price table is raised at tracker
    # start, before any LLM call, as `-W error` requests (the suite runs with
    # warnings as errors); otherwise it is a warning and the table is used.
    table = {"gpt-4o-mini": {"input": 5000, "output": 1}}

    with pytest.raises(PricingWarning, match="USD per 1,000,000 tokens"):
        llmfy_usage_tracker(openai_pricing=table)
    with pytest.warns(PricingWarning, match="Check the unit"):
        usage = llmfy_usage_tracker(openai_pricing=table)
    record = usage.record("openai", "gpt-4o-mini", 1000, 0)

    # 1000 input tokens at 5000 USD per million tokens.
    assert record.cost is not None
    assert record.cost.total == Decimal(5)


class RaisingHandler(logging.Handler):
    """A log shipper that is down: every record raises."""

    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log shipper is down")

    def handleError(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log shipper is down")


@pytest.fixture
def raising_logs() -> Iterator[None]:
    logger = logging.getLogger("llmfy")
    handler = RaisingHandler(logging.DEBUG)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.filterwarnings("ignore::llmfy_core.LlmfyWarning")
def test_raising_log_handler_openai(
    loopback: LoopbackLLM, openai_client: Any, raising_logs: None
) -> None:
    loopback.replies.output_tokens = -1  # malformed: logged by the plugin

    with llmfy_usage_tracker() as usage:
        reply = openai_client.chat.completions.create(
            model="gpt-unpriced", messages=MESSAGES
        )
        stream = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)

    assert reply.choices[0].message.content == "Paris."
    assert text == "Paris."
    assert usage.request_count == 2


@pytest.mark.filterwarnings("ignore::llmfy_core.LlmfyWarning")
def test_raising_log_handler_bedrock(
    loopback: LoopbackLLM, bedrock_client: Any, raising_logs: None
) -> None:
    loopback.replies.input_tokens = -1  # malformed: logged by the plugin

    with llmfy_usage_tracker() as usage:
        reply = bedrock_client.converse(modelId=NOVA_MICRO, messages=BEDROCK_MESSAGES)
        events = bedrock_client.converse_stream(
            modelId=NOVA_MICRO, messages=BEDROCK_MESSAGES
        )["stream"]
        first = next(iter(events))
        events.close()

    assert reply["output"]["message"]["content"][0]["text"] == "Paris."
    assert first == {"messageStart": {"role": "assistant"}}
    assert usage.request_count == 2
