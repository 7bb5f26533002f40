"""Tests of `BedrockConverseModel` through a real boto3 client over HTTP on 127.0.0.1.

The responses come from the replay server of `examples/replay_server.py`,
with bodies and event streams written in the shape of real Converse and
ConverseStream responses. Counting is done by the llmfy-bedrock
instrumentation; these tests check that each request made by the agent is
counted exactly once, with the served usage.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EventStreamError
from llmfy_bedrock.agent import BedrockConverseConfig, BedrockConverseModel

from llmfy import LLMfy, Message, ProviderCallError, Role, llmfy_usage_tracker

from .botocore_support import requires

ROOT = Path(__file__).resolve().parents[3]
MODEL = "amazon.nova-lite-v1:0"
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


@pytest.fixture(autouse=True)
def placeholder_aws_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Give boto3 placeholder credentials and no config, and no metadata lookup."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALLMFYTEST0000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "llmfy-test-secret")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture
def server() -> Iterator[Any]:
    with replay.ReplayServer() as running:
        yield running


def converse_model(server: Any, **config: Any) -> BedrockConverseModel:
    return BedrockConverseModel(
        model=MODEL,
        config=BedrockConverseConfig(temperature=0.7, **config),
        region_name="us-east-1",
        endpoint_url=server.url,
    )


def agent_for(server: Any) -> LLMfy:
    return LLMfy(
        converse_model(server), system_message=SYSTEM_MESSAGE, input_variables=["info"]
    )


def converse_body(text: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Return a Converse body shaped like a real Nova response."""
    return {
        "metrics": {"latencyMs": 318},
        "output": {"message": {"content": [{"text": text}], "role": "assistant"}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
    }


def stream_events(
    pieces: list[str], input_tokens: int, output_tokens: int
) -> list[tuple[str, dict[str, Any]]]:
    """Return the events of a ConverseStream reply; `p` is Bedrock's padding field."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("messageStart", {"p": "abcdefghij", "role": "assistant"})
    ]
    events += [
        (
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"text": piece}, "p": "abc"},
        )
        for piece in pieces
    ]
    events.append(("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefgh"}))
    events.append(("messageStop", {"p": "abcdef", "stopReason": "end_turn"}))
    events.append(
        (
            "metadata",
            {
                "metrics": {"latencyMs": 412},
                "p": "abcdefghijk",
                "usage": {
                    "inputTokens": input_tokens,
                    "outputTokens": output_tokens,
                    "totalTokens": input_tokens + output_tokens,
                },
            },
        )
    )
    return events


# Requests


def test_converse_request(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 50, 8)))

    agent_for(server).chat([Message(Role.USER, "Capital of France?")], info=INFO)

    request = server.requests[0]
    body = request.json()
    assert request.path == "/model/amazon.nova-lite-v1%3A0/converse"
    assert request.model == MODEL
    assert body["system"] == [
        {"text": f"You are a helpful assistant. Use this info: {INFO}"}
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Capital of France?"}]}
    ]
    assert body["inferenceConfig"] == {"temperature": 0.7}


def test_same_role_turns_merged(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Rome.", 30, 2)))
    messages = [
        Message(Role.USER, "Capital of France?"),
        Message(Role.ASSISTANT, "Paris."),
        Message(Role.USER, "And of Italy?"),
        Message(Role.USER, "One word, please."),
    ]

    LLMfy(converse_model(server)).chat(messages)

    assert server.requests[0].json()["messages"] == [
        {"role": "user", "content": [{"text": "Capital of France?"}]},
        {"role": "assistant", "content": [{"text": "Paris."}]},
        {
            "role": "user",
            "content": [{"text": "And of Italy?"}, {"text": "One word, please."}],
        },
    ]


def test_system_messages_sent_as_system_blocks(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 30, 2)))
    messages = [
        Message(Role.SYSTEM, "Answer in one word."),
        Message(Role.USER, "Capital?"),
    ]

    agent_for(server).chat(messages, info=INFO)

    body = server.requests[0].json()
    assert body["system"] == [
        {"text": f"You are a helpful assistant. Use this info: {INFO}"},
        {"text": "Answer in one word."},
    ]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Capital?"}]}]


def test_empty_system_text_left_out(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 30, 2)))
    agent = LLMfy(
        converse_model(server), system_message="{{info}}", input_variables=["info"]
    )

    response = agent.invoke("Capital?", info="")

    body = server.requests[0].json()
    assert "system" not in body
    assert body["messages"] == [{"role": "user", "content": [{"text": "Capital?"}]}]
    assert response.result.content == "Paris."


def test_config_sent_as_inference_config(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 30, 2)))
    config = {
        "top_p": 0.9,
        "max_tokens": 64,
        "stop_sequences": ["\n"],
        "additional_model_request_fields": {"inferenceConfig": {"topK": 20}},
    }

    LLMfy(converse_model(server, **config)).invoke("Capital?")

    body = server.requests[0].json()
    assert body["inferenceConfig"] == {
        "temperature": 0.7,
        "topP": 0.9,
        "maxTokens": 64,
        "stopSequences": ["\n"],
    }
    assert body["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 20}}


def test_injected_client_used(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 50, 8)))
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=server.url
    )

    with llmfy_usage_tracker() as usage:
        response = LLMfy(BedrockConverseModel(client=client)).invoke("Capital?")

    assert response.result.content == "Paris."
    assert usage.request_count == 1


# Responses and counting


def test_chat_returns_content_and_usage(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 50, 8)))

    response = agent_for(server).chat([Message(Role.USER, "Capital?")], info=INFO)

    assert response.result.content == "Paris."
    assert response.result.role is Role.ASSISTANT
    assert response.stop_reason == "end_turn"
    assert response.usage.provider == "bedrock"
    assert response.usage.region == "us-east-1"
    assert response.usage.input_tokens == 50
    assert response.usage.output_tokens == 8


def test_chat_usage_region_of_arn(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 50, 8)))
    arn = (
        "arn:aws:bedrock:us-west-2:123456789012:inference-profile/"
        "us.amazon.nova-lite-v1:0"
    )
    model = BedrockConverseModel(
        model=arn, region_name="us-east-1", endpoint_url=server.url
    )

    with llmfy_usage_tracker() as usage:
        response = LLMfy(model).invoke("Capital?")

    # The request is billed in the ARN's Region, not the client's.
    assert response.usage.region == "us-west-2"
    assert usage.records[0].usage.region == "us-west-2"


def test_chat_counted_once(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 50, 8)))

    with llmfy_usage_tracker() as usage:
        agent_for(server).chat([Message(Role.USER, "Capital?")], info=INFO)

    # Nova Lite in us-east-1 at 0.06 in / 0.24 out per million tokens:
    # 50 * 0.06 + 8 * 0.24 = 3.00 + 1.92 = 4.92 per million = 0.00000492 USD
    assert usage.request_count == 1
    assert usage.input_tokens == 50
    assert usage.output_tokens == 8
    assert usage.total_cost == Decimal("0.00000492")


def test_invoke_counted_once(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("In 1889.", 59, 23)))

    with llmfy_usage_tracker() as usage:
        response = agent_for(server).invoke("When was the tower built?", info=INFO)

    # 59 * 0.06 + 23 * 0.24 = 3.54 + 5.52 = 9.06 per million = 0.00000906 USD
    assert response.result.content == "In 1889."
    assert usage.request_count == 1
    assert usage.input_tokens == 59
    assert usage.output_tokens == 23
    assert usage.total_cost == Decimal("0.00000906")


def test_chat_and_invoke_under_one_tracker(server: Any) -> None:
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 50, 8)))
    server.add(replay.Reply.bedrock_json(converse_body("In 1889.", 59, 23)))
    agent = agent_for(server)

    with llmfy_usage_tracker() as usage:
        agent.chat([Message(Role.USER, "Capital?")], info=INFO)
        agent.invoke("When was the tower built?", info=INFO)

    # 0.00000492 + 0.00000906 = 0.00001398 USD (the two requests above)
    assert usage.request_count == 2
    assert usage.input_tokens == 109
    assert usage.output_tokens == 31
    assert usage.total_cost == Decimal("0.00001398")
    assert [record.usage.region for record in usage.records] == [
        "us-east-1",
        "us-east-1",
    ]


# Streaming


def test_stream_request_path(server: Any) -> None:
    server.add(replay.Reply.bedrock_event_stream(stream_events(["Paris."], 50, 3)))

    list(agent_for(server).invoke_stream("Capital?", info=INFO))

    assert server.requests[0].path == "/model/amazon.nova-lite-v1%3A0/converse-stream"


def test_stream_yields_text_as_it_arrives(server: Any) -> None:
    # The server sends messageStart and the first delta, then holds the rest
    # until released: the first text must arrive before that.
    events = stream_events(["Paris", " is", " the capital."], 50, 5)
    reply = server.add(replay.Reply.bedrock_event_stream(events, hold_after=2))
    stream = agent_for(server).invoke_stream("Capital?", info=INFO)

    first = next(stream)
    held = not reply.hold_timed_out
    reply.release.set()
    rest = list(stream)

    assert first == "Paris"
    assert held
    assert rest == [" is", " the capital."]


def test_stream_response_and_usage(server: Any) -> None:
    server.add(replay.Reply.bedrock_event_stream(stream_events(["Paris", "."], 50, 3)))

    stream = agent_for(server).invoke_stream("Capital?", info=INFO)
    list(stream)

    assert stream.response.result.content == "Paris."
    assert stream.response.stop_reason == "end_turn"
    assert stream.response.usage.input_tokens == 50
    assert stream.response.usage.output_tokens == 3


def test_stream_counted_once(server: Any) -> None:
    server.add(replay.Reply.bedrock_event_stream(stream_events(["Paris", "."], 50, 3)))

    with llmfy_usage_tracker() as usage:
        list(agent_for(server).chat_stream([Message(Role.USER, "Capital?")], info=INFO))

    # 50 * 0.06 + 3 * 0.24 = 3.00 + 0.72 = 3.72 per million = 0.00000372 USD
    assert usage.request_count == 1
    assert usage.input_tokens == 50
    assert usage.output_tokens == 3
    assert usage.total_cost == Decimal("0.00000372")


def test_stream_finished_after_block_counted(server: Any) -> None:
    server.add(replay.Reply.bedrock_event_stream(stream_events(["Paris", "."], 50, 3)))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
    text = "".join(stream)

    assert text == "Paris."
    assert usage.request_count == 1
    assert usage.input_tokens == 50


def test_unread_stream_counted_on_close(server: Any) -> None:
    server.add(replay.Reply.bedrock_event_stream(stream_events(["Paris", "."], 50, 3)))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        stream.close()

    # `stream` is still referenced, so only close() can have counted it. It
    # ended before the metadata event, so its usage is unknown.
    assert usage.open_streams == 0
    assert usage.request_count == 1
    assert usage.records[0].usage.input_tokens is None


# Errors


def test_access_denied_raised_as_provider_call_error(server: Any) -> None:
    server.add(
        replay.Reply.bedrock_error(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        )
    )

    with pytest.raises(ProviderCallError) as caught:
        agent_for(server).invoke("Capital?", info=INFO)

    assert isinstance(caught.value.__cause__, ClientError)
    assert caught.value.provider == "bedrock"
    assert caught.value.model == MODEL
    message = str(caught.value)
    assert (
        "Bedrock Converse request failed for model 'amazon.nova-lite-v1:0' in "
        "region 'us-east-1'" in message
    )
    assert "AccessDeniedException" in message
    assert "Check the AWS credentials" in message


def body_with_content(content: Any) -> dict[str, Any]:
    body = converse_body("Paris.", 50, 8)
    body["output"]["message"]["content"] = content
    return body


@pytest.mark.parametrize(
    ("reply", "described"),
    [
        (
            lambda: replay.Reply(
                route="bedrock",
                parts=[b"<html>Gateway</html>"],
                headers={"content-type": "application/json"},
            ),
            "a response without output.message",
        ),
        (
            lambda: replay.Reply.bedrock_json({"stopReason": "end_turn"}),
            "a response without output.message",
        ),
        # botocore rejects a content block with no member set.
        (
            lambda: replay.Reply.bedrock_json(body_with_content([{"text": None}])),
            "ContentBlock must have one and only one member set",
        ),
        (
            lambda: replay.Reply.bedrock_json(body_with_content([{"text": 5}])),
            "a text block of type int",
        ),
        # botocore parses a null content block as None.
        (
            lambda: replay.Reply.bedrock_json(body_with_content([None])),
            "a content block of type NoneType",
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

    assert caught.value.provider == "bedrock"
    assert "not a Converse response" in str(caught.value)
    assert usage.request_count == 1


def test_stream_text_not_string_raised(server: Any, wait_for: Any) -> None:
    events = stream_events(["Paris"], 50, 8)
    events[1][1]["delta"]["text"] = 5
    server.add(replay.Reply.bedrock_event_stream(events))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        with pytest.raises(
            ProviderCallError, match="a text delta of type int"
        ) as caught:
            list(stream)

    assert "not a ConverseStream response" in str(caught.value)
    wait_for(lambda: usage.request_count == 1)
    assert usage.request_count == 1


def test_stream_open_error_raised_as_provider_call_error(server: Any) -> None:
    server.add(
        replay.Reply.bedrock_error(400, "ValidationException", "Malformed input.")
    )

    with pytest.raises(
        ProviderCallError, match="Bedrock ConverseStream request"
    ) as caught:
        agent_for(server).invoke_stream("Capital?", info=INFO)

    assert isinstance(caught.value.__cause__, ClientError)


def test_error_inside_stream_raised_as_provider_call_error(server: Any) -> None:
    events = stream_events(["Paris"], 50, 1)[:2]
    events.append(("modelStreamErrorException", {"message": "The model failed."}))
    server.add(replay.Reply.bedrock_event_stream(events))
    stream = agent_for(server).invoke_stream("Capital?", info=INFO)

    with pytest.raises(ProviderCallError, match="modelStreamErrorException") as caught:
        list(stream)

    assert isinstance(caught.value.__cause__, EventStreamError)


# An exception event inside a stream carries its type in lower camel case
# (`throttlingException`), where an HTTP error carries `ThrottlingException`.
@pytest.mark.parametrize(
    ("event_type", "hint"),
    [
        ("throttlingException", "Retry later, or request a higher quota"),
        pytest.param(
            "serviceUnavailableException",
            "The service failed; retry later.",
            marks=requires(
                "ConverseStreamOutput",
                "serviceUnavailableException",
                "it raises the event as an error without a code",
            ),
        ),
        ("internalServerException", "The service failed; retry later."),
        ("modelStreamErrorException", "The service failed; retry later."),
        ("validationException", "Check the model id, the messages"),
    ],
)
def test_error_inside_stream_gets_hint(server: Any, event_type: str, hint: str) -> None:
    events = stream_events(["Paris"], 50, 1)[:2]
    events.append((event_type, {"message": "The request failed."}))
    server.add(replay.Reply.bedrock_event_stream(events))
    stream = agent_for(server).invoke_stream("Capital?", info=INFO)

    with pytest.raises(ProviderCallError) as caught:
        list(stream)

    assert event_type in str(caught.value)
    assert hint in str(caught.value)


def test_stream_ended_early_raises(server: Any) -> None:
    # A well-formed body that stops after the first text: no messageStop and
    # no metadata event, which botocore does not notice.
    events = stream_events(["Paris", " is"], 50, 2)[:2]
    server.add(replay.Reply.bedrock_event_stream(events))

    with llmfy_usage_tracker() as usage:
        stream = agent_for(server).invoke_stream("Capital?", info=INFO)
        with pytest.raises(ProviderCallError, match="before its messageStop") as caught:
            list(stream)

    assert stream.text == "Paris"
    assert "may be cut short" in str(caught.value)
    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1


def test_stream_cut_raised_as_provider_call_error(
    bedrock_server: Any, frames: Any
) -> None:
    first = frames.event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Par"}}
    )
    second = frames.event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "is"}}
    )
    # The connection closes after the first frame, in the middle of the
    # chunked body, as when a proxy or the network drops it.
    bedrock_server.queue_stream([first, second], cut_after=1)
    model = BedrockConverseModel(
        model=MODEL, region_name="us-east-1", endpoint_url=bedrock_server.url
    )
    stream = LLMfy(model).invoke_stream("Capital?")

    with pytest.raises(ProviderCallError) as caught:
        list(stream)

    assert stream.text == "Par"
    assert "Bedrock ConverseStream request failed" in str(caught.value)
    assert "Check the network connection" in str(caught.value)


def test_missing_region_raised_on_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    model = BedrockConverseModel(endpoint_url="http://127.0.0.1:9")

    with pytest.raises(ProviderCallError, match="Set AWS_REGION") as caught:
        LLMfy(model).invoke("Capital?")

    assert type(caught.value.__cause__).__name__ == "NoRegionError"


# Construction


def test_client_and_region_rejected_together() -> None:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    )

    with pytest.raises(ValueError, match="either client= or region_name="):
        BedrockConverseModel(client=client, region_name="us-east-1")


def test_config_rejects_out_of_range_temperature() -> None:
    with pytest.raises(
        ValueError, match="temperature must be a number between 0 and 1"
    ):
        BedrockConverseConfig(temperature=1.5)


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("temperature", "hot", "a number between 0 and 1"),
        ("temperature", "0.7", "a number between 0 and 1"),
        ("temperature", True, "a number between 0 and 1"),
        ("temperature", float("nan"), "a number between 0 and 1"),
        ("temperature", float("inf"), "a number between 0 and 1"),
        ("temperature", Decimal("NaN"), "a number between 0 and 1"),
        ("temperature", Decimal("sNaN"), "a number between 0 and 1"),
        ("top_p", "high", "a number between 0 and 1"),
        ("top_p", False, "a number between 0 and 1"),
        ("top_p", float("nan"), "a number between 0 and 1"),
        ("top_p", Decimal("-Infinity"), "a number between 0 and 1"),
        ("max_tokens", "200", "a whole number of at least 1"),
        ("max_tokens", True, "a whole number of at least 1"),
        ("max_tokens", 200.0, "a whole number of at least 1"),
        ("stop_sequences", 5, "a list of strings"),
        ("stop_sequences", ("END", 1), "a list of strings"),
        ("additional_model_request_fields", "topK=20", "a dict"),
        ("additional_model_request_fields", [("topK", 20)], "a dict"),
    ],
)
def test_config_rejects_invalid_value(field: str, value: Any, accepted: str) -> None:
    with pytest.raises(ValueError) as raised:
        BedrockConverseConfig(**{field: value})

    message = str(raised.value)
    assert f"BedrockConverseConfig.{field} must be {accepted}" in message
    assert f"got {value!r}." in message


def test_config_rejects_stop_sequences_as_string() -> None:
    with pytest.raises(
        ValueError, match=r"got the str 'END'; write stop_sequences=\['END'\]"
    ):
        BedrockConverseConfig(stop_sequences="END")


def test_config_decimal_temperature_sent(server: Any) -> None:
    # The config passes a Decimal to botocore as a float: botocore before
    # 1.38.35 raises TypeError on a Decimal.
    server.add(replay.Reply.bedrock_json(converse_body("Paris.", 30, 2)))
    config = BedrockConverseConfig(temperature=Decimal("0.25"), top_p=1)
    model = BedrockConverseModel(
        model=MODEL, config=config, region_name="us-east-1", endpoint_url=server.url
    )

    LLMfy(model).invoke("Capital?")

    body = server.requests[0].json()
    inference = config.request_parameters()["inferenceConfig"]
    assert body["inferenceConfig"] == {"temperature": 0.25, "topP": 1}
    assert type(inference["temperature"]) is float
    assert type(inference["topP"]) is int


def test_config_rejects_zero_max_tokens() -> None:
    with pytest.raises(ValueError, match="max_tokens must be a whole number"):
        BedrockConverseConfig(max_tokens=0)


def test_documented_defaults() -> None:
    model = BedrockConverseModel()

    assert model.model == MODEL
    assert model.provider == "bedrock"
