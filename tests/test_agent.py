"""Tests of the provider-neutral agent (`llmfy_core.agent`) and of the demo.

The agent tests use `RecordingModel`, an in-memory `ChatModel`, because they
check what the agent hands to a model. The provider models are tested against
the real SDK clients in each plugin's `tests/test_agent.py`. The demo test
runs `examples/agent_usage.py` as `scripts/demo` does, with the real SDK
clients and a replay server on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import llmfy_core
from llmfy import LLMfy, Message, Role, llmfy_usage_tracker
from llmfy_core import (
    CallContext,
    ChatModel,
    ChatResponse,
    StreamChunk,
    TemplateVariableError,
    Usage,
)
from llmfy_core.agent import read_usage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "agent_usage.py"


class RecordingModel:
    """A `ChatModel` that keeps the conversations it receives and sends nothing."""

    provider = "fake"
    model = "fake-model"

    def __init__(self, reply: str = "Paris.", usage: Usage | None = None) -> None:
        self.reply = reply
        self.usage = usage or Usage("fake", "fake-model", 11, 2)
        self.conversations: list[list[Message]] = []
        self.streams_sent = 0

    def generate(self, messages: Sequence[Message]) -> ChatResponse:
        self.conversations.append(list(messages))
        return ChatResponse(
            result=Message(Role.ASSISTANT, self.reply), usage=self.usage
        )

    def stream(self, messages: Sequence[Message]) -> Iterator[StreamChunk]:
        self.conversations.append(list(messages))
        self.streams_sent += 1
        return self._chunks()

    def _chunks(self) -> Iterator[StreamChunk]:
        for word in self.reply.split(" "):
            yield StreamChunk(text=word + " ")
        yield StreamChunk(stop_reason="stop")
        yield StreamChunk(usage=self.usage, raw={"final": True})


def agent_with_info(model: ChatModel | None = None) -> LLMfy:
    return LLMfy(
        model or RecordingModel(),
        system_message="You are a helpful assistant. Use this info: {{info}}",
        input_variables=["info"],
    )


# Placeholders, checked at construction


def test_undeclared_placeholder_rejected_at_construction() -> None:
    with pytest.raises(TemplateVariableError, match=r"\{\{info\}\}.*'info'"):
        LLMfy(RecordingModel(), system_message="Use this: {{info}}")


def test_placeholder_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="not in input_variables"):
        LLMfy(
            RecordingModel(),
            system_message="{{info}} and {{topic}}",
            input_variables=["info"],
        )


def test_placeholder_error_names_declared_variables() -> None:
    with pytest.raises(TemplateVariableError, match=r"'topic'.*declared: info"):
        LLMfy(
            RecordingModel(),
            system_message="{{info}} and {{topic}}",
            input_variables=["info"],
        )


@pytest.mark.parametrize(
    ("template", "written"),
    [
        ("Use {info}", "{info}"),
        ("Use { info }", "{ info }"),
        ("Use {{info}", "{{info}"),
        ("Use {info}}", "{info}}"),
        ("{{info}} and again {info}", "{info}"),
    ],
)
def test_single_braced_variable_rejected(template: str, written: str) -> None:
    with pytest.raises(TemplateVariableError) as raised:
        LLMfy(RecordingModel(), system_message=template, input_variables=["info"])

    message = str(raised.value)
    assert f"contains {written}, which is not a placeholder" in message
    assert "input variable 'info'" in message
    assert "Write {{info}}, with double braces." in message


def test_single_brace_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="not a placeholder"):
        LLMfy(RecordingModel(), system_message="Use {info}", input_variables=["info"])


def test_long_brace_run_checked_quickly() -> None:
    # A regex that may start at each brace of a run backtracks over the rest,
    # in time quadratic in its length. It took 29 s for these 50,000 braces
    # (2-core AMD EPYC VM, Python 3.11). Starting at the first brace is linear.
    template = "{" * 50_000 + "info"

    started = time.perf_counter()
    agent = LLMfy(RecordingModel(), system_message=template, input_variables=["x"])
    elapsed = time.perf_counter() - started

    assert agent.system_message == template
    assert elapsed < 5


def test_other_braces_kept_with_variables() -> None:
    template = 'Reply as {"info": "..."} about {topic}, {info,x} and {{{info}}}.'
    agent = LLMfy(RecordingModel(), system_message=template, input_variables=["info"])

    rendered = agent.render_system_message(info="Paris")

    assert rendered == 'Reply as {"info": "..."} about {topic}, {info,x} and {Paris}.'


def test_user_text_with_braces_sent_as_written() -> None:
    model = RecordingModel()
    agent = agent_with_info(model)

    agent.chat([Message(Role.USER, "What is {info}?")], info="x")
    agent.invoke("And {{info}}?", info="x")

    assert model.conversations[0][1] == Message(Role.USER, "What is {info}?")
    assert model.conversations[1][1] == Message(Role.USER, "And {{info}}?")


def test_input_variables_as_string_rejected() -> None:
    with pytest.raises(TemplateVariableError, match=r"input_variables=\['info'\]"):
        LLMfy(RecordingModel(), system_message="{{info}}", input_variables="info")


def test_input_variable_name_must_be_identifier() -> None:
    with pytest.raises(TemplateVariableError, match="'my-info'"):
        LLMfy(RecordingModel(), system_message="x", input_variables=["my-info"])


@pytest.mark.parametrize("name", ["messages", "contents", "self"])
def test_input_variable_name_of_parameter_rejected(name: str) -> None:
    with pytest.raises(TemplateVariableError, match=f"'{name}'.*Rename it"):
        LLMfy(
            RecordingModel(),
            system_message=f"Use {{{{{name}}}}}",
            input_variables=[name],
        )


@pytest.mark.parametrize("name", ["class", "for", "None"])
def test_input_variable_name_of_keyword_rejected(name: str) -> None:
    with pytest.raises(TemplateVariableError, match=f"'{name}'.*keyword.*Rename it"):
        LLMfy(
            RecordingModel(),
            system_message=f"Use {{{{{name}}}}}",
            input_variables=[name],
        )


def test_input_variable_name_debug_rejected() -> None:
    # `invoke(text, __debug__="x")` is a syntax error ("cannot assign to
    # __debug__"), although keyword.iskeyword("__debug__") is false.
    name = "__debug__"

    with pytest.raises(TemplateVariableError, match=r"'__debug__'.*reserved.*Rename"):
        LLMfy(
            RecordingModel(),
            system_message=f"Use {{{{{name}}}}}",
            input_variables=[name],
        )


# Each name below is NFKC-normalized by Python to a parameter name or to
# `__debug__`: U+FF4D is the fullwidth "m", U+FF53 the fullwidth "s", U+FF43 the
# fullwidth "c" and U+1D48 the modifier letter small "d".
@pytest.mark.parametrize(
    "name",
    ["\uff4dessages", "\uff53elf", "\uff43ontents", "__\u1d48ebug__"],
)
def test_input_variable_name_normalized_to_reserved_rejected(name: str) -> None:
    with pytest.raises(TemplateVariableError, match="Rename it"):
        LLMfy(
            RecordingModel(),
            system_message=f"Use {{{{{name}}}}}",
            input_variables=[name],
        )


def test_input_variable_name_normalized_to_keyword_kept() -> None:
    # Python tests for keywords before it normalizes an identifier, so the
    # keyword argument written with the ligature U+FB01 ("fi") is valid and
    # arrives as "finally".
    name = "\ufb01nally"
    model = RecordingModel()
    agent = LLMfy(model, system_message=f"Use {{{{{name}}}}}", input_variables=[name])

    agent.invoke("Hi", **{"finally": "x"})

    assert model.conversations[0][0] == Message(Role.SYSTEM, "Use x")


def test_input_variable_name_of_soft_keyword_kept() -> None:
    model = RecordingModel()
    agent = LLMfy(model, system_message="Use {{match}}", input_variables=["match"])

    agent.invoke("Hi", match="x")

    assert model.conversations[0][0] == Message(Role.SYSTEM, "Use x")


def test_agent_rejects_non_model() -> None:
    with pytest.raises(TypeError, match="chat model"):
        LLMfy("gpt-4o-mini")  # type: ignore[arg-type]


# Variables, checked on each call


def test_missing_variable_rejected_on_call() -> None:
    agent = agent_with_info()

    with pytest.raises(
        TemplateVariableError, match=r"Missing .*'info'.*expected.*info"
    ):
        agent.chat([Message(Role.USER, "Hi")])


def test_missing_variable_rejected_by_invoke() -> None:
    agent = agent_with_info()

    with pytest.raises(TemplateVariableError, match="'info'"):
        agent.invoke("Hi")


def test_missing_variable_rejected_by_streams() -> None:
    model = RecordingModel()
    agent = agent_with_info(model)

    with pytest.raises(TemplateVariableError, match="'info'"):
        agent.invoke_stream("Hi")
    assert model.streams_sent == 0


def test_unexpected_variable_rejected_on_call() -> None:
    agent = agent_with_info()

    with pytest.raises(TemplateVariableError, match=r"Unexpected .*'topic'.*: info"):
        agent.invoke("Hi", info="Paris", topic="travel")


@pytest.mark.parametrize(
    ("variables", "hint"),
    [
        ({"inf": "Paris"}, "Did you mean info= instead of inf=?"),
        ({"colour": "blue"}, "Unexpected keyword argument(s) given: 'colour'."),
    ],
)
def test_wrong_variable_named_with_missing_one(
    variables: dict[str, str], hint: str
) -> None:
    # A misspelling is paired with the variable it was meant for, and any
    # other unexpected name is listed.
    agent = agent_with_info()

    with pytest.raises(TemplateVariableError) as raised:
        agent.invoke("Hi", **variables)

    message = str(raised.value)
    assert "Missing input variable(s) 'info'" in message
    assert hint in message


def test_variables_rejected_without_system_message() -> None:
    agent = LLMfy(RecordingModel())

    with pytest.raises(TemplateVariableError, match="expected keyword arguments: none"):
        agent.invoke("Hi", info="Paris")


def test_rejected_call_sends_nothing() -> None:
    model = RecordingModel()
    agent = agent_with_info(model)

    with pytest.raises(TemplateVariableError):
        agent.invoke("Hi")
    assert model.conversations == []


# Rendering


def test_value_inserted_literally() -> None:
    agent = LLMfy(
        RecordingModel(), system_message="A {{info}} Z", input_variables=["info"]
    )
    value = r"{{info}} {} {0} %s \1 {{other}}"

    assert agent.render_system_message(info=value) == f"A {value} Z"


def test_placeholder_with_spaces_and_repeats() -> None:
    agent = LLMfy(
        RecordingModel(),
        system_message="{{ city }} is in {{country}}; {{city}} again.",
        input_variables=["city", "country"],
    )

    rendered = agent.render_system_message(city="Lyon", country="France")

    assert rendered == "Lyon is in France; Lyon again."


def test_non_ascii_variable_rendered() -> None:
    agent = LLMfy(
        RecordingModel(),
        system_message="Ville : {{ville_éloignée}}.",
        input_variables=["ville_éloignée"],
    )

    rendered = agent.render_system_message(ville_éloignée="Lyon")

    assert rendered == "Ville : Lyon."


def test_non_ascii_placeholder_needs_declaring() -> None:
    with pytest.raises(TemplateVariableError, match="'café' is not in input_variables"):
        LLMfy(RecordingModel(), system_message="{{café}}", input_variables=["cafe"])


# "नाम" (Hindi for "name") contains the vowel sign U+093E, a combining mark.
# Python accepts it in identifiers, but the regex class \w does not match it.
HINDI_NAME = "\u0928\u093e\u092e"


def test_placeholder_with_combining_mark_rendered() -> None:
    agent = LLMfy(
        RecordingModel(),
        system_message=f"Name: {{{{{HINDI_NAME}}}}}.",
        input_variables=[HINDI_NAME],
    )

    rendered = agent.render_system_message(**{HINDI_NAME: "Asha"})

    assert rendered == "Name: Asha."


def test_undeclared_combining_mark_placeholder_rejected() -> None:
    with pytest.raises(TemplateVariableError, match="is not in input_variables"):
        LLMfy(RecordingModel(), system_message=f"Name: {{{{{HINDI_NAME}}}}}.")


def test_single_braced_combining_mark_name_rejected() -> None:
    with pytest.raises(TemplateVariableError, match="which is not a placeholder"):
        LLMfy(
            RecordingModel(),
            system_message=f"Name: {{{HINDI_NAME}}}.",
            input_variables=[HINDI_NAME],
        )


def test_decomposed_variable_name_matches_keyword() -> None:
    # Python normalizes identifiers to NFKC, so the keyword argument `café=`
    # arrives as the composed "caf\u00e9" even when the source spells it with
    # "e" and the combining acute accent U+0301, as the declaration does here.
    decomposed = "cafe\u0301"
    agent = LLMfy(
        RecordingModel(),
        system_message=f"Order: {{{{{decomposed}}}}}.",
        input_variables=[decomposed],
    )

    rendered = agent.render_system_message(**{"caf\u00e9": "espresso"})

    assert rendered == "Order: espresso."


def test_non_string_value_converted_with_str() -> None:
    agent = LLMfy(RecordingModel(), system_message="n={{n}}", input_variables=["n"])

    assert agent.render_system_message(n=3) == "n=3"


def test_text_outside_placeholders_kept() -> None:
    message = "Braces {like this} and {{ not a name! }} stay."
    agent = LLMfy(RecordingModel(), system_message=message)

    assert agent.render_system_message() == message


# What the model receives


def test_chat_sends_system_then_messages() -> None:
    model = RecordingModel()
    agent = agent_with_info(model)
    messages = [
        Message(Role.USER, "What is the capital of France?"),
        Message(Role.ASSISTANT, "Paris."),
        Message(Role.USER, "And of Italy?"),
    ]

    agent.chat(messages, info="Capitals of Europe.")

    assert model.conversations == [
        [
            Message(
                Role.SYSTEM,
                "You are a helpful assistant. Use this info: Capitals of Europe.",
            ),
            *messages,
        ]
    ]


def test_invoke_sends_one_user_turn() -> None:
    model = RecordingModel()
    agent = agent_with_info(model)

    agent.invoke("What is the capital of France?", info="x")

    assert model.conversations[0][1:] == [
        Message(Role.USER, "What is the capital of France?")
    ]


def test_no_system_message_sends_messages_only() -> None:
    model = RecordingModel()
    agent = LLMfy(model)

    agent.invoke("Hi")

    assert model.conversations == [[Message(Role.USER, "Hi")]]


def test_chat_returns_result_and_usage() -> None:
    usage = Usage("fake", "fake-model", 60, 3)
    agent = agent_with_info(RecordingModel(reply="Paris.", usage=usage))

    response = agent.chat([Message(Role.USER, "Capital of France?")], info="x")

    assert response.result.content == "Paris."
    assert response.result.role is Role.ASSISTANT
    assert response.usage == usage


def test_chat_rejects_single_message() -> None:
    agent = LLMfy(RecordingModel())

    with pytest.raises(TypeError, match="invoke"):
        agent.chat(Message(Role.USER, "Hi"))  # type: ignore[arg-type]


def test_chat_rejects_non_message_items() -> None:
    agent = LLMfy(RecordingModel())

    with pytest.raises(TypeError, match="Message objects"):
        agent.chat([{"role": "user", "content": "Hi"}])  # type: ignore[list-item]


def test_chat_dict_error_shows_conversion() -> None:
    agent = LLMfy(RecordingModel())
    messages = [Message(Role.USER, "Hi"), {"role": "user", "content": "Secret plan"}]

    with pytest.raises(TypeError) as caught:
        agent.chat(messages)  # type: ignore[arg-type]

    assert "item 1 is a dict" in str(caught.value)
    assert "Message(**item)" in str(caught.value)
    assert "Secret plan" not in str(caught.value)


def test_chat_tuple_error_shows_message_form() -> None:
    agent = LLMfy(RecordingModel())

    with pytest.raises(TypeError) as caught:
        agent.chat([("user", "Secret plan")])  # type: ignore[list-item]

    assert "item 0 is a tuple" in str(caught.value)
    assert "Message(role=Role.USER, content=...)" in str(caught.value)
    assert "Secret plan" not in str(caught.value)


def test_chat_needs_a_non_system_message() -> None:
    agent = agent_with_info()

    with pytest.raises(ValueError, match="no user or assistant message"):
        agent.chat([], info="x")


def test_invoke_rejects_non_text() -> None:
    agent = LLMfy(RecordingModel())

    with pytest.raises(TypeError, match="str"):
        agent.invoke([Message(Role.USER, "Hi")])  # type: ignore[arg-type]


def test_message_role_from_string() -> None:
    assert Message("user", "Hi").role is Role.USER  # type: ignore[arg-type]


def test_message_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="'bot'"):
        Message("bot", "Hi")  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["human", "User", None, ["user"]])
def test_unknown_role_error_lists_roles(role: Any) -> None:
    with pytest.raises(ValueError) as raised:
        Message(role, "Hi")

    message = str(raised.value)
    assert f"Invalid message role {role!r}." in message
    assert "Valid roles are 'system', 'user', 'assistant'" in message
    assert "llmfy.Role" in message


def test_message_rejects_non_text_content() -> None:
    with pytest.raises(TypeError, match="content must be a str"):
        Message(Role.USER, None)  # type: ignore[arg-type]


# Streaming


def test_stream_sent_before_iteration() -> None:
    model = RecordingModel()
    agent = agent_with_info(model)

    agent.invoke_stream("Hi", info="x")

    assert model.streams_sent == 1


def test_stream_yields_text_then_response() -> None:
    usage = Usage("fake", "fake-model", 12, 3)
    agent = agent_with_info(RecordingModel(reply="Paris is there", usage=usage))

    stream = agent.chat_stream([Message(Role.USER, "Where?")], info="x")
    pieces = list(stream)

    assert pieces == ["Paris ", "is ", "there "]
    assert stream.response.result.content == "Paris is there "
    assert stream.response.usage == usage
    assert stream.response.stop_reason == "stop"
    assert stream.response.raw == {"final": True}


def test_stream_response_before_end_raises() -> None:
    agent = agent_with_info()
    stream = agent.invoke_stream("Hi", info="x")
    next(stream)

    with pytest.raises(RuntimeError, match="has not ended"):
        _ = stream.response


def test_stream_text_so_far() -> None:
    agent = agent_with_info(RecordingModel(reply="a b c"))
    stream = agent.invoke_stream("Hi", info="x")
    next(stream)
    next(stream)

    assert stream.text == "a b "


def test_stream_without_usage_has_unknown_usage() -> None:
    class NoUsageModel(RecordingModel):
        def _chunks(self) -> Iterator[StreamChunk]:
            yield StreamChunk(text="Paris.")

    stream = LLMfy(NoUsageModel()).invoke_stream("Hi")
    list(stream)

    assert stream.response.usage.input_tokens is None
    assert stream.response.usage.output_tokens is None
    assert stream.response.usage.provider == "fake"


def test_stream_close_closes_model_iterator() -> None:
    closed = []

    class ClosingModel(RecordingModel):
        def _chunks(self) -> Iterator[StreamChunk]:
            try:
                yield StreamChunk(text="one")
                yield StreamChunk(text="two")
            finally:
                closed.append(True)

    with LLMfy(ClosingModel()).invoke_stream("Hi") as stream:
        assert next(stream) == "one"

    assert closed == [True]


# Usage reading and counting


class ProviderPlugin:
    """A provider plugin for the `fake` provider: instruments nothing, reads dicts."""

    @llmfy_core.hookimpl
    def provider_instrument(self) -> str:
        return "fake"

    @llmfy_core.hookimpl
    def usage_extract(self, response: Any, context: CallContext) -> Usage | None:
        if context.provider != "fake" or not isinstance(response, dict):
            return None
        if response.get("broken"):
            raise KeyError("tokens")
        return Usage("fake", context.model or "?", response["in"], response["out"])


def test_read_usage_through_plugin() -> None:
    llmfy_core.register_plugin(ProviderPlugin(), "fake-provider")

    usage = read_usage({"in": 5, "out": 7}, CallContext("fake", model="m"))

    assert usage == Usage("fake", "m", 5, 7)


def test_read_usage_unread_response_is_unknown() -> None:
    usage = read_usage(object(), CallContext("fake", model="m"))

    assert usage.input_tokens is None
    assert usage.output_tokens is None
    assert usage.model == "m"


def test_read_usage_plugin_fault_is_unknown() -> None:
    llmfy_core.register_plugin(ProviderPlugin(), "fake-provider")

    usage = read_usage({"broken": True}, CallContext("fake", model="m"))

    assert usage.input_tokens is None
    assert usage.output_tokens is None


def test_agent_records_nothing_itself() -> None:
    # Counting is the provider plugins' instrumentation's job; the in-memory
    # model sends no request, so a tracker must see none.
    llmfy_core.register_plugin(ProviderPlugin(), "fake-provider")
    agent = agent_with_info()

    with llmfy_usage_tracker() as usage:
        agent.invoke("Hi", info="x")
        list(agent.invoke_stream("Hi", info="x"))

    assert usage.request_count == 0


# The demo (scripts/demo runs examples/agent_usage.py after scripts/setup)


def run_demo(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLMFY_", "OPENAI_", "AWS_"))
    }
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(environment)
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    return run_demo()


def test_demo_exits_cleanly(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""


def test_demo_names_replay_mode(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.stdout.startswith("Mode: replay (LLMFY_DEMO_LIVE is not 1).")


def test_demo_prints_four_answers(demo: subprocess.CompletedProcess[str]) -> None:
    answers = [
        "The capital of France is Paris.",
        "The Eiffel Tower was completed in 1889, and about 2.1 million people "
        "live in Paris.",
        "Paris is the capital of France.",
        "The Eiffel Tower was completed in 1889, and Paris has about 2.1 million "
        "residents.",
    ]
    for answer in answers:
        assert f"\n>> {answer}\n" in demo.stdout


def test_demo_report_totals(demo: subprocess.CompletedProcess[str]) -> None:
    # Served usage (examples/fixtures): OpenAI gpt-4o-mini 59 in / 7 out and
    # 68 / 22; Bedrock Nova Lite 50 / 8 and 59 / 23.
    # Input 59 + 68 + 50 + 59 = 236, output 7 + 22 + 8 + 23 = 60.
    # Cost in USD per million tokens, at gpt-4o-mini 0.15 in / 0.60 out and
    # Nova Lite us-east-1 0.06 in / 0.24 out:
    #   59 * 0.15 + 7 * 0.60 = 8.85 + 4.20 = 13.05
    #   68 * 0.15 + 22 * 0.60 = 10.20 + 13.20 = 23.40
    #   50 * 0.06 + 8 * 0.24 = 3.00 + 1.92 = 4.92
    #   59 * 0.06 + 23 * 0.24 = 3.54 + 5.52 = 9.06
    #   total 50.43 per million = 0.00005043 USD
    report = demo.stdout.split("Usage:\n", 1)[1]

    assert "Total Tokens: 296\n" in report
    assert "\tInput Tokens: 236\n" in report
    assert "\tOutput Tokens: 60\n" in report
    assert "Total Requests: 4\n" in report
    assert "Total Cost (USD): $5.043e-05\n" in report
    assert "Total Cost (USD formatted): $0.00005043\n" in report


def test_demo_report_requests(demo: subprocess.CompletedProcess[str]) -> None:
    report = demo.stdout.split("Request Details:\n", 1)[1]
    requests = report.split("\n\n")

    assert requests[0].startswith("1. gpt-4o-mini \n\tprovider: OPENAI ")
    assert "\ttotal_cost (USD formatted): 0.00001305" in requests[0]
    assert requests[1].startswith("2. gpt-4o-mini \n")
    assert "\ttotal_cost (USD formatted): 0.0000234" in requests[1]
    assert requests[2].startswith("3. amazon.nova-lite-v1:0 \n\tprovider: BEDROCK ")
    assert "\tregion: us-east-1 " in requests[2]
    assert "\ttotal_cost (USD formatted): 0.00000492" in requests[2]
    assert requests[3].startswith("4. amazon.nova-lite-v1:0 \n")
    assert "\ttotal_cost (USD formatted): 0.00000906" in requests[3]


def test_demo_live_switch_without_key_replays() -> None:
    result = run_demo(LLMFY_DEMO_LIVE="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "Mode: replay (LLMFY_DEMO_LIVE=1 but OPENAI_API_KEY is not set)."
    )
