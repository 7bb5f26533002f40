"""`examples/serve_replies.py`, the server for running the docs' examples by hand."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import openai
import pytest

from llmfy_core import UsageWarning, llmfy_usage_tracker

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "serve_replies.py"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "Capital of France?"}]}]


@pytest.fixture
def served() -> Iterator[str]:
    """Run the script on a free port with one queued reply; return its URL."""
    with subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0", "--minutes", "2", "openai:7/1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            first_line = process.stdout.readline()
            assert first_line.startswith("Serving on http://127.0.0.1:"), first_line
            yield first_line.split()[2]
        finally:
            process.terminate()


def test_serves_queued_then_default_replies(served: str) -> None:
    client = openai.OpenAI(base_url=f"{served}/v1", api_key="test", max_retries=0)
    bedrock = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=served,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    with llmfy_usage_tracker() as usage:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
        bedrock.converse(modelId="amazon.nova-lite-v1:0", messages=BEDROCK_MESSAGES)
    client.close()

    counts = [
        (record.usage.input_tokens, record.usage.output_tokens)
        for record in usage.records
    ]
    # The queued reply, then the defaults for a Chat Completion, its stream
    # and a Converse request.
    assert counts == [(7, 1), (60, 3), (14, 2), (50, 8)]
    # gpt-4o-mini at 0.15 and 0.60 USD per million tokens:
    # 81 x 0.15 + 6 x 0.60 = 12.15 + 3.6 = 15.75; Nova Lite at 0.06 and 0.24:
    # 50 x 0.06 + 8 x 0.24 = 3 + 1.92 = 4.92. In all 20.67 per million.
    assert usage.total_cost == Decimal("0.00002067")


def test_printed_exports_run_both_sdks(tmp_path: Path) -> None:
    # The export lines that the script prints must be all a user needs to
    # run the docs' OpenAI and Bedrock examples against it.
    with subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0", "--minutes", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as process:
        try:
            assert process.stdout is not None
            # The script prints its lines at once and then serves, so the
            # output is complete once no byte arrives for two seconds.
            output = b""
            while select.select([process.stdout], [], [], 2)[0]:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                output += chunk
            exported = [
                setting
                for line in output.decode().splitlines()
                if line.strip().startswith("export ")
                for setting in line.split()[1:]
            ]
            environment = dict(setting.split("=", 1) for setting in exported)
            environment.update(
                PATH="/usr/bin:/bin",
                HOME=str(tmp_path),
                AWS_CONFIG_FILE=str(tmp_path / "missing"),
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "missing"),
                AWS_EC2_METADATA_DISABLED="true",
            )
            program = (
                "import boto3, openai\n"
                "openai.OpenAI(max_retries=0).chat.completions.create(\n"
                f"    model='gpt-4o-mini', messages={MESSAGES!r})\n"
                "boto3.client('bedrock-runtime').converse(\n"
                f"    modelId='amazon.nova-lite-v1:0', messages={BEDROCK_MESSAGES!r})\n"
            )
            result = subprocess.run(
                [sys.executable, "-c", program],
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            process.terminate()

    assert "OPENAI_BASE_URL" in environment
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" in environment
    assert result.returncode == 0, result.stderr


def test_default_stream_without_include_usage(served: str) -> None:
    client = openai.OpenAI(base_url=f"{served}/v1", api_key="test", max_retries=0)

    with pytest.warns(UsageWarning), llmfy_usage_tracker() as usage:
        # The first request takes the queued reply, the stream a default one.
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        chunks = list(stream)
    client.close()

    # As from OpenAI, a stream sent without include_usage has no usage chunk.
    assert all(chunk.usage is None for chunk in chunks)
    assert usage.records[1].usage.input_tokens is None
    assert usage.records[1].usage.output_tokens is None


def test_unknown_reply_name_rejected() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", "0", "openai:7"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "openai:7" in result.stderr


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fixture:openai-chat-paris", "openai-chat-capital"),
        ("embeddings:eight", "embeddings:8"),
        ("claude:60/3", "bedrock-stream"),
    ],
)
def test_invalid_reply_lists_valid_names(name: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", "0", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert name in result.stderr
    assert expected in result.stderr
