"""Fixtures for the reliability suite: a loopback LLM and real SDK clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import LoopbackLLM


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep boto3 off real AWS: dummy credentials, no config files, no metadata."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def loopback() -> Iterator[LoopbackLLM]:
    """Run the loopback LLM on 127.0.0.1 for one test."""
    server = LoopbackLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def openai_client(loopback: LoopbackLLM) -> Iterator[Any]:
    """A real `openai.OpenAI` client for the loopback server."""
    import openai

    with openai.OpenAI(
        base_url=loopback.openai_base_url, api_key="test-key", max_retries=0
    ) as client:
        yield client


@pytest.fixture
def bedrock_client(loopback: LoopbackLLM) -> Any:
    """A real boto3 `bedrock-runtime` client for the loopback server."""
    import boto3

    return boto3.session.Session().client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=loopback.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
