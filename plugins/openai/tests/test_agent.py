"""Tests of `OpenAIChatModel` through the real `openai` client over HTTP on 127.0.0.1.

The responses come from the replay server of `examples/replay_server.py`,
with bodies written in the shape of real Chat Completions responses
(gpt-4o-mini, served as gpt-4o-mini-2024-07-18). Counting is done by the
llmfy-openai instrumentation; these tests check that each request made by
the agent is counted exactly once, with the served usage.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
from llmfy_openai.agent import OpenAIChatConfig, OpenAIChatModel

from llmfy import LLMfy, Message, ProviderCallError, Role, llmfy_usage_tracker

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_MESSAGE = "You are a helpful assistant. Use this info: {{info}}"
INFO = "Paris is the capital of France."


def load_replay_server() -> ModuleType:
    """Import `examples/replay_server.py`, which is not an installed package."""
    name = "llmfy_examples_replay_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "examples" / "replay_server.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


replay = load_replay_server()


@pytest.fixture
def server() -> Iterator[Any]:
    with replay.ReplayServer() as running:
        yield running


def chat_model(server: Any, **config: Any) -> OpenAIChatModel:
    return OpenAIChatModel(
        model="gpt-4o-mini",
        config=OpenAIChatConfig(temperature=0.7, **config),
        base_url=server.openai_base_url,
        api_key="sk-test",
    )


def agent_for(server: Any) -> LLMfy:
    return LLMfy(
        chat_model(server), system_message=SYSTEM_MESSAGE, input_variables=["info"]
    )


def usage_body(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(content: str, prompt: int, completion_tokens: int) -> dict[str, Any]:
    """Return a Chat Completions body shaped like a real gpt-4o-mini response."""
    return {
        "id": "chatcmpl-LfyTest0Completion1Xx2Yy3Zz",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_body(prompt, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_560af6e559",
    }


def stream_chunks(pieces: list[str], prompt: int, completion_tokens: int) -> list[Any]:
    """Return the chunks of a streamed reply, with the usage chunk last."""
    base = {
        "id": "chatcmpl-LfyTest1Stream2Xx3Yy4Zz",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_560af6e559",
        "usage": None,
    }

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    chunks = [choice({"role": "assistant", "content": "", "refusal": None})]
    chunks += [choice({"content": piece}) for piece in pieces]
    chunks.append(choice({}, "stop"))
    chunks.append(
        {**base, "choices": [], "usage": usage_body(prompt, completion_tokens)}
    )
    return chunks


# Requests


def test_chat_request_body(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Paris.", 60, 3)))

    agent_for(server).chat([Message(Role.USER, "Capital of France?")], info=INFO)

    body = server.requests[0].json()
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {
            "role": "system",
            "content": f"You are a helpful assistant. Use this info: {INFO}",
        },
        {"role": "user", "content": "Capital of France?"},
    ]
    assert body["temperature"] == 0.7
    assert "stream" not in body


def test_chat_sends_assistant_turns(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Rome.", 30, 2)))
    messages = [
        Message(Role.USER, "Capital of France?"),
        Message(Role.ASSISTANT, "Paris."),
        Message(Role.USER, "And of Italy?"),
    ]

    LLMfy(chat_model(server)).chat(messages)

    assert [m["role"] for m in server.requests[0].json()["messages"]] == [
        "user",
        "assistant",
        "user",
    ]


def test_config_max_tokens_sent_as_max_completion_tokens(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Paris.", 60, 3)))

    LLMfy(chat_model(server, max_tokens=50, stop=["\n"])).invoke("Capital?")

    body = server.requests[0].json()
    assert body["max_completion_tokens"] == 50
    assert body["stop"] == ["\n"]
    assert "max_tokens" not in body


def test_injected_client_used(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Paris.", 60, 3)))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")

    with llmfy_usage_tracker() as usage:
        response = LLMfy(OpenAIChatModel(client=client)).invoke("Capital?")

    assert response.result.content == "Paris."
    assert len(server.requests) == 1
    assert usage.request_count == 1


# Responses and counting


def test_chat_returns_content_and_usage(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Paris.", 60, 3)))

    response = agent_for(server).chat([Message(Role.USER, "Capital?")], info=INFO)

    assert response.result.content == "Paris."
    assert response.result.role is Role.ASSISTANT
    assert response.stop_reason == "stop"
    assert response.usage.provider == "openai"
    assert response.usage.input_tokens == 60
    assert response.usage.output_tokens == 3


def test_chat_counted_once(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Paris.", 60, 3)))

    with llmfy_usage_tracker() as usage:
        agent_for(server).chat([Message(Role.USER, "Capital?")], info=INFO)

    # gpt-4o-mini at 0.15 in / 0.60 out per million tokens:
    # 60 * 0.15 + 3 * 0.60 = 9.00 + 1.80 = 10.80 per million = 0.0000108 USD
    assert usage.request_count == 1
    assert usage.input_tokens == 60
    assert usage.output_tokens == 3
    assert usage.total_cost == Decimal("0.0000108")


def test_invoke_counted_once(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("In 1889.", 107, 3)))

    with llmfy_usage_tracker() as usage:
        response = agent_for(server).invoke("When was the tower built?", info=INFO)

    # 107 * 0.15 + 3 * 0.60 = 16.05 + 1.80 = 17.85 per million = 0.00001785 USD
    assert response.result.content == "In 1889."
    assert usage.request_count == 1
    assert usage.input_tokens == 107
    assert usage.output_tokens == 3
    assert usage.total_cost == Decimal("0.00001785")


def test_chat_and_invoke_under_one_tracker(server: Any) -> None:
    server.add(replay.Reply.openai_json(completion("Paris.", 60, 3)))
    server.add(replay.Reply.openai_json(completion("In 1889.", 107, 3)))
    agent = agent_for(server)

    with llmfy_usage_tracker() as usage:
        agent.chat([Message(Role.USER, "Capital?")], info=INFO)
        agent.invoke("When was the tower built?", info=INFO)

    # 0.0000108 + 0.00001785 = 0.00002865 USD (the two requests above)
    assert usage.request_count == 2
    assert usage.input_tokens == 167
    assert usage.output_tokens == 6
    assert usage.total_cost == Decimal("0.00002865")
    assert [record.usage.model for record in usage.records] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]


# Streaming


def test_stream_requests_usage(server: Any) -> None:
    server.add(replay.Reply.openai_stream(stream_chunks(["Paris", "."], 60, 3)))

    list(agent_for(server).invoke_stream("Capital?", info=INFO))

    body = server.requests[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_stream_yields_text_as_it_arrives(server: Any) -> None:
    # The server sends the first two chunks (role, "Paris"), then holds the
    # rest until released: the first text must arrive before that.
    reply = server.add(
        replay.Reply.openai_stream(
            stream_chunks(["Paris", " is", " the capital."], 60, 5), hold_after=2
        )
    )
    stream = agent_for(server).invoke_stream("Capital?", info=INFO)

    first = next(stream)
    held = not reply.hold_timed_out
    reply.release.set()
    rest = list(stream)

    assert first == "Paris"
    assert held
    assert rest == [" is", " the capital."]


def test_stream_response_and_usage(server: Any) -> None:
    server.add(replay.Reply.openai_stream(stream_chunks(["Paris", "."], 60, 3)))

    stream = agent_for(server).invoke_stream("Capital?", info=INFO)
    list(stream)

    assert stream.response.result.content == "Paris."
    assert stream.response.stop_reason == "stop"
    assert stream.response.usage.input_tokens == 60
    assert stream.response.usage.output_tokens == 3


def test_stream_counted_once(server: Any) -> None:
    server.add(replay.Reply.openai_stream(stream_chunks(["Paris", "."], 60, 3)))

    with llmfy_usage_tracker() as usage:
        list(agent_for(server).chat_stream([Message(Role.USER, "Capital?")], info=INFO))

    # 60 * 0.15 + 3 * 0.60 = 10.80 per million = 0.0000108 USD
    assert usage.request_count == 1
    assert usage.input_tokens == 60
    assert usage.output_tokens == 3
    assert usage.total_cost == Decimal("0.0000108")


def test_response_usage_equals_tracker_record(server: Any) -> None:
    body = completion("Paris.", 1000, 200)
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 400
    server.add(replay.Reply.openai_json(body))
    chunks = stream_chunks(["Paris", "."], 1000, 200)
    chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] = 400
    server.add(replay.Reply.openai_stream(chunks))
    agent = agent_for(server)

    with llmfy_usage_tracker() as usage:
        response = agent.invoke("Capital?", info=INFO)
        with agent.invoke_stream("Capital?", info=INFO) as stream:
            list(stream)

    first, second = usage.records
    assert first.usage.request_id is not None
    assert second.usage.request_id is not None
    assert response.usage == first.usage
    assert stream.response.usage == second.usage
    # 600 uncached * 0.15 + 400 cached * 0.075 + 200 * 0.60
    # = 90 + 30 + 120 = 240 per million = 0.00024 USD each
    assert first.cost is not None
    assert first.cost.total == Decimal("0.00024")
    assert usage.total_cost == Decimal("0.00048")


def test_stream_finished_after_block_counted(server: Any) -> None:
    server.add(replay.Reply.openai_stream(stream_chunks(["Paris", "."], 60, 3)))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
    text = "".join(stream)

    assert text == "Paris."
    assert usage.request_count == 1
    assert usage.input_tokens == 60


def test_unread_stream_counted_on_close(server: Any) -> None:
    server.add(replay.Reply.openai_stream(stream_chunks(["Paris", "."], 60, 3)))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        stream.close()

    # `stream` is still referenced, so only close() can have counted it. It
    # ended before the usage chunk, so its usage is unknown.
    assert usage.open_streams == 0
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None


# Errors


def test_auth_error_raised_as_provider_call_error(server: Any) -> None:
    server.add(
        replay.Reply.openai_error(
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            "invalid_api_key",
        )
    )

    with pytest.raises(ProviderCallError) as caught:
        agent_for(server).invoke("Capital?", info=INFO)

    assert isinstance(caught.value.__cause__, openai.AuthenticationError)
    assert caught.value.provider == "openai"
    assert caught.value.model == "gpt-4o-mini"
    assert "OpenAI chat completion request failed for model 'gpt-4o-mini'" in str(
        caught.value
    )
    assert "OPENAI_API_KEY" in str(caught.value)


def test_stream_open_error_raised_as_provider_call_error(server: Any) -> None:
    server.add(
        replay.Reply.openai_error(
            404, "The model does not exist.", "invalid_request_error"
        )
    )

    with pytest.raises(ProviderCallError, match="streaming chat completion") as caught:
        agent_for(server).invoke_stream("Capital?", info=INFO)

    assert isinstance(caught.value.__cause__, openai.NotFoundError)


def test_error_inside_stream_raised_as_provider_call_error(server: Any) -> None:
    chunks = stream_chunks(["Paris"], 60, 1)[:2]
    chunks.append(
        {"error": {"message": "The server had an error.", "type": "server_error"}}
    )
    server.add(replay.Reply.openai_stream(chunks))
    stream = agent_for(server).invoke_stream("Capital?", info=INFO)

    with pytest.raises(ProviderCallError, match="The server had an error") as caught:
        list(stream)

    assert isinstance(caught.value.__cause__, openai.APIError)


def test_stream_ended_early_raises(server: Any) -> None:
    # The stream ends, with [DONE], after the first piece of text. No chunk
    # has a finish_reason, and no usage chunk comes.
    chunks = stream_chunks(["Paris", " is"], 60, 2)[:2]
    server.add(replay.Reply.openai_stream(chunks))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        with pytest.raises(ProviderCallError, match="ended before a chunk") as caught:
            list(stream)

    assert stream.text == "Paris"
    assert "may be cut short" in str(caught.value)
    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


def raw_reply(body: bytes, content_type: str) -> Any:
    """Return a 200 reply with `body` as it is, for a server that is not OpenAI's."""
    return replay.Reply(
        route="openai", parts=[body], headers={"content-type": content_type}
    )


def choice_with(message: Any) -> dict[str, Any]:
    body = completion("Paris.", 60, 3)
    body["choices"][0]["message"] = message
    return body


def choices_as(choices: Any) -> dict[str, Any]:
    body = completion("Paris.", 60, 3)
    body["choices"] = choices
    return body


@pytest.mark.parametrize(
    ("reply", "described"),
    [
        (lambda: raw_reply(b"<html>Gateway</html>", "text/html"), "not JSON"),
        (lambda: raw_reply(b"[1, 2]", "application/json"), "a JSON array"),
        (lambda: raw_reply(b"{not json", "application/json"), "not valid JSON"),
        (
            lambda: replay.Reply.openai_json(choice_with(None)),
            "a choice without a message",
        ),
        (
            lambda: replay.Reply.openai_json(
                choice_with({"role": "assistant", "content": [{"text": "Paris."}]})
            ),
            "message content of type list",
        ),
        (
            lambda: replay.Reply.openai_json(choice_with("Paris.")),
            "a message that is not an object",
        ),
        (
            lambda: replay.Reply.openai_json(choices_as(["Paris."])),
            "a choice that is not an object",
        ),
        (
            lambda: replay.Reply.openai_json(choices_as([None])),
            "a choice that is not an object",
        ),
        (
            lambda: replay.Reply.openai_json(choices_as({"text": "Paris."})),
            "choices of type dict",
        ),
    ],
)
def test_malformed_reply_raised_as_provider_call_error(
    server: Any, reply: Any, described: str
) -> None:
    server.add(reply())

    with llmfy_usage_tracker() as usage:
        with pytest.raises(ProviderCallError, match=described) as caught:
            agent_for(server).invoke("Capital?", info=INFO)

    assert caught.value.provider == "openai"
    assert "not a Chat Completions response" in str(caught.value)
    assert "OpenAI-compatible" in str(caught.value)
    assert usage.request_count == 1


@pytest.mark.parametrize(
    ("choice", "described"),
    [
        ({"index": 0, "delta": {"content": 5}}, "delta content of type int"),
        ({"index": 0, "delta": None}, "a chunk without a delta"),
        ("Paris", "a chunk whose choice is not an object"),
        ({"index": 0, "delta": "Paris"}, "a delta that is not an object"),
    ],
)
def test_malformed_stream_chunk_raised_as_provider_call_error(
    server: Any, choice: Any, described: str, wait_for: Any
) -> None:
    chunks = stream_chunks(["Paris"], 60, 1)
    chunks[1]["choices"] = [choice]
    server.add(replay.Reply.openai_stream(chunks))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        with pytest.raises(ProviderCallError, match=described) as caught:
            list(stream)

    assert "not a Chat Completions response" in str(caught.value)
    wait_for(lambda: usage.request_count == 1)
    assert usage.request_count == 1


def test_stream_chunk_choices_of_dict_raised(server: Any, wait_for: Any) -> None:
    chunks = stream_chunks(["Paris"], 60, 1)
    chunks[1]["choices"] = {"text": "Paris"}
    server.add(replay.Reply.openai_stream(chunks))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        with pytest.raises(ProviderCallError, match="choices of type dict") as caught:
            list(stream)

    assert "not a Chat Completions response" in str(caught.value)
    wait_for(lambda: usage.request_count == 1)
    assert usage.request_count == 1


def test_connection_error_raised_as_provider_call_error() -> None:
    with replay.ReplayServer() as stopped:
        base_url = stopped.openai_base_url
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)

    with pytest.raises(ProviderCallError, match="Check the network") as caught:
        LLMfy(OpenAIChatModel(client=client)).invoke("Capital?")

    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


def test_missing_api_key_raised_on_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIChatModel(base_url="http://127.0.0.1:9/v1")

    with pytest.raises(ProviderCallError, match="Set OPENAI_API_KEY") as caught:
        LLMfy(model).invoke("Capital?")

    assert isinstance(caught.value.__cause__, openai.OpenAIError)


# Construction


def test_client_and_base_url_rejected_together() -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test")

    with pytest.raises(ValueError, match="either client= or base_url="):
        OpenAIChatModel(client=client, base_url="http://127.0.0.1:9/v1")


def test_config_rejects_out_of_range_temperature() -> None:
    with pytest.raises(
        ValueError, match="temperature must be a number between 0 and 2"
    ):
        OpenAIChatConfig(temperature=2.5)


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("temperature", "hot", "a number between 0 and 2"),
        ("temperature", "0.7", "a number between 0 and 2"),
        ("temperature", True, "a number between 0 and 2"),
        ("temperature", float("nan"), "a number between 0 and 2"),
        ("temperature", float("inf"), "a number between 0 and 2"),
        ("top_p", "high", "a number between 0 and 1"),
        ("top_p", False, "a number between 0 and 1"),
        ("top_p", float("nan"), "a number between 0 and 1"),
        ("top_p", float("-inf"), "a number between 0 and 1"),
        ("max_tokens", "200", "a whole number of at least 1"),
        ("max_tokens", True, "a whole number of at least 1"),
        ("max_tokens", 200.0, "a whole number of at least 1"),
        ("stop", 5, "a list of strings"),
        ("stop", ("END", 1), "a list of strings"),
    ],
)
def test_config_rejects_invalid_value(field: str, value: Any, accepted: str) -> None:
    with pytest.raises(ValueError) as raised:
        OpenAIChatConfig(**{field: value})

    message = str(raised.value)
    assert f"OpenAIChatConfig.{field} must be {accepted}" in message
    assert f"got {value!r}." in message


def test_config_rejects_stop_as_string() -> None:
    with pytest.raises(ValueError, match=r"got the str 'END'; write stop=\['END'\]"):
        OpenAIChatConfig(stop="END")


def test_config_accepts_range_ends_and_lists() -> None:
    config = OpenAIChatConfig(temperature=2, top_p=0.0, max_tokens=1, stop=["END"])

    assert config.request_parameters() == {
        "temperature": 2,
        "top_p": 0.0,
        "max_completion_tokens": 1,
        "stop": ["END"],
    }


def test_config_rejects_zero_max_tokens() -> None:
    with pytest.raises(ValueError, match="max_tokens must be a whole number"):
        OpenAIChatConfig(max_tokens=0)


def test_documented_defaults() -> None:
    model = OpenAIChatModel()

    assert model.model == "gpt-4o-mini"
    assert model.provider == "openai"
