"""Requests sent to OpenAI's regional processing endpoints, such as eu.api.openai.com.

The clients name a regional host in their `base_url`, and a transport sends
every request to the local server on 127.0.0.1 instead, so that no request
leaves the machine. Costs are worked out by hand from the bundled table, in
USD per million tokens: the models that OpenAI charges a 10% uplift on such
endpoints cost 1.1 times their standard rates there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest

from llmfy import llmfy_usage_tracker

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


class LoopbackTransport(httpx2.HTTPTransport):
    """Send every request to 127.0.0.1:`port`, whatever host its URL names."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(
            scheme="http", host="127.0.0.1", port=self.port
        )
        return super().handle_request(request)


class AsyncLoopbackTransport(httpx2.AsyncHTTPTransport):
    """The async `LoopbackTransport`."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(
            scheme="http", host="127.0.0.1", port=self.port
        )
        return await super().handle_async_request(request)


@pytest.fixture
def eu_client(server: Any) -> Iterator[openai.OpenAI]:
    """An `openai.OpenAI` client for eu.api.openai.com, served by the local server."""
    http_client = openai.DefaultHttpxClient(transport=LoopbackTransport(server.port))
    with openai.OpenAI(
        base_url="https://eu.api.openai.com/v1",
        api_key="test-key",
        max_retries=0,
        http_client=http_client,
    ) as sdk:
        yield sdk


def test_regional_endpoint_uplift(server, eu_client, bodies):
    body = bodies.response(
        model="gpt-5.4-2026-03-05", input_tokens=1000, cached=200, output_tokens=100
    )
    server.add_json(RESPONSES, body)

    with llmfy_usage_tracker() as usage:
        eu_client.responses.create(model="gpt-5.4", input="Hello")

    record = usage.records[0]
    assert record.usage.region == "eu"
    # 800 x 2.50 + 200 x 0.25 + 100 x 15.00 = 2000 + 50 + 1500 = 3550, and
    # 3550 x 1.1 = 3905 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.003905")


def test_regional_endpoint_older_model(server, eu_client, bodies):
    # gpt-4o-mini was released before OpenAI's uplift applies.
    server.add_json(CHAT, bodies.chat(prompt=60, completion=3))

    with llmfy_usage_tracker() as usage:
        eu_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    record = usage.records[0]
    assert record.usage.region == "eu"
    # 60 x 0.15 + 3 x 0.60 = 9 + 1.8 = 10.8 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000108")


def test_regional_endpoint_async_stream(server, bodies):
    chunk_usage = bodies.chunk_usage(2000, 50, cached=1000)
    events = [
        bodies.chunk("Par", model="gpt-5.5-2026-04-23"),
        bodies.chunk(None, finish="stop", model="gpt-5.5-2026-04-23"),
        bodies.chunk(None, usage=chunk_usage, model="gpt-5.5-2026-04-23"),
        "[DONE]",
    ]
    server.add_sse(CHAT, events)

    async def ask() -> None:
        http_client = openai.DefaultAsyncHttpxClient(
            transport=AsyncLoopbackTransport(server.port)
        )
        async with openai.AsyncOpenAI(
            base_url="https://us.api.openai.com/v1",
            api_key="test-key",
            max_retries=0,
            http_client=http_client,
        ) as client:
            stream = await client.chat.completions.create(
                model="gpt-5.5",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in stream:
                pass

    with llmfy_usage_tracker() as usage:
        asyncio.run(ask())

    record = usage.records[0]
    assert record.usage.region == "us"
    # 1000 x 5.00 + 1000 x 0.50 + 50 x 30.00 = 5000 + 500 + 1500 = 7000, and
    # 7000 x 1.1 = 7700 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0077")


def test_global_endpoint_has_no_region(server, client, bodies):
    body = bodies.response(model="gpt-5.4-2026-03-05", input_tokens=1000)
    server.add_json(RESPONSES, body)

    with llmfy_usage_tracker() as usage:
        client.responses.create(model="gpt-5.4", input="Hello")

    record = usage.records[0]
    assert record.usage.region is None
    # 1000 x 2.50 + 50 x 15.00 = 2500 + 750 = 3250 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00325")


def test_regional_background_response(server, eu_client, bodies):
    # The request is counted when a retrieve returns it in a final status,
    # at the rates of the endpoint that created it.
    queued = bodies.response(model="gpt-5.4-2026-03-05", status="queued", usage=False)
    queued.update(id="resp_1", background=True, output=[])
    completed = bodies.response(
        model="gpt-5.4-2026-03-05", input_tokens=1000, output_tokens=100
    )
    completed.update(id="resp_1", background=True)
    server.add_json(RESPONSES, queued)
    server.add_json(f"{RESPONSES}/resp_1", completed)

    with llmfy_usage_tracker() as usage:
        created = eu_client.responses.create(
            model="gpt-5.4", input="Hello", background=True
        )
        eu_client.responses.retrieve(created.id)

    assert usage.request_count == 1
    record = usage.records[0]
    assert record.usage.region == "eu"
    # 1000 x 2.50 + 100 x 15.00 = 2500 + 1500 = 4000, and 4000 x 1.1 = 4400
    # millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0044")


def test_tracker_adds_no_base_url_read(server, client, bodies, monkeypatch):
    # openai 3.63 made `_base_url` a property that runs `base_url`, whose
    # getter imports a module on every call (about 1.3 us, timeit, Python
    # 3.11), so llmfy reads the stored URL rather than the property.
    from openai.lib import _client_auth

    reads = []
    original = _client_auth.syncbase_url

    def counting_base_url(sdk: openai.OpenAI) -> httpx2.URL:
        reads.append(sdk)
        return original(sdk)

    monkeypatch.setattr(_client_auth, "syncbase_url", counting_base_url)
    server.add_json(RESPONSES, bodies.response(model="gpt-4o-mini"))
    server.add_json(RESPONSES, bodies.response(model="gpt-4o-mini"))

    client.responses.create(model="gpt-4o-mini", input="Hello")
    untracked_reads = len(reads)
    reads.clear()
    with llmfy_usage_tracker() as usage:
        client.responses.create(model="gpt-4o-mini", input="Hello")

    assert len(usage.records) == 1
    assert len(reads) == untracked_reads


def test_base_url_setter_changes_region(server, eu_client, bodies):
    server.add_json(RESPONSES, bodies.response(model="gpt-5.4-2026-03-05"))
    server.add_json(RESPONSES, bodies.response(model="gpt-5.4-2026-03-05"))

    with llmfy_usage_tracker() as usage:
        eu_client.responses.create(model="gpt-5.4", input="Hello")
        eu_client.base_url = "https://api.openai.com/v1"
        eu_client.responses.create(model="gpt-5.4", input="Hello")

    assert [record.usage.region for record in usage.records] == ["eu", None]


def test_module_client_region_follows_setting(server, bodies, monkeypatch):
    # The module-level client returns `openai.base_url` from its `base_url`
    # property, so the region comes from that setting, not from the URL the
    # client was built with.
    http_client = openai.DefaultHttpxClient(transport=LoopbackTransport(server.port))
    monkeypatch.setattr(openai, "_client", None)
    monkeypatch.setattr(openai, "api_key", "test")
    monkeypatch.setattr(openai, "max_retries", 0)
    monkeypatch.setattr(openai, "http_client", http_client)
    monkeypatch.setattr(openai, "base_url", "https://api.openai.com/v1/")
    server.add_json(RESPONSES, bodies.response(model="gpt-5.4-2026-03-05"))
    server.add_json(RESPONSES, bodies.response(model="gpt-5.4-2026-03-05"))

    with http_client, llmfy_usage_tracker() as usage:
        openai.responses.create(model="gpt-5.4", input="Hello")
        monkeypatch.setattr(openai, "base_url", "https://eu.api.openai.com/v1/")
        openai.responses.create(model="gpt-5.4", input="Hello")

    assert [record.usage.region for record in usage.records] == [None, "eu"]
