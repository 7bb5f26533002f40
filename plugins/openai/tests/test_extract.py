"""Usage extraction from SDK objects and plain JSON bodies."""

from __future__ import annotations

import collections
import copy
import types

import pydantic
import pytest
from llmfy_openai import extract_usage, plugin, usage_from_body
from llmfy_openai.extract import (
    read_chat_object,
    read_embeddings_object,
    read_responses_object,
    reader_for,
)
from openai.types import CreateEmbeddingResponse, Decision, ImagesResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.responses import CompactedResponse, Response

from llmfy import CallContext
from llmfy_core.model import counts_of_usage

CHAT_CONTEXT = CallContext(
    provider="openai", operation="chat.completions", model="gpt-4o-mini"
)


def test_chat_body_all_details(bodies):
    body = bodies.chat(
        prompt=1000,
        completion=300,
        cached=600,
        cache_write=100,
        reasoning=200,
        input_audio=50,
        output_audio=40,
    )

    usage = usage_from_body(body, CHAT_CONTEXT)

    assert usage is not None
    assert usage.input_tokens == 1000
    assert usage.output_tokens == 300
    assert usage.cache_read_tokens == 600
    assert usage.cache_write_tokens == 100
    assert usage.reasoning_tokens == 200
    assert dict(usage.other_tokens) == {"input_audio": 50, "output_audio": 40}
    assert usage.model == "gpt-4o-mini"
    assert usage.served_model == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("details", ["missing", "none"])
def test_chat_body_without_details(bodies, details):
    body = bodies.chat(prompt=7, completion=2, details=False)
    if details == "none":
        body["usage"]["prompt_tokens_details"] = None
        body["usage"]["completion_tokens_details"] = None

    usage = usage_from_body(body, CHAT_CONTEXT)

    assert usage is not None
    assert usage.input_tokens == 7
    assert usage.output_tokens == 2
    assert usage.cache_read_tokens == 0
    assert usage.reasoning_tokens == 0
    assert dict(usage.other_tokens) == {}


def test_chat_body_huge_invalid_count(bodies, caplog):
    # Python converts at most 4,300 digits to text by default, so the warning
    # gives the count's size.
    body = bodies.chat(prompt=60, completion=3)
    body["usage"]["prompt_tokens"] = -(10**5000)

    usage = usage_from_body(body, CHAT_CONTEXT)

    assert usage is not None
    assert usage.input_tokens is None
    assert "an integer of 16610 bits" in caplog.text


def test_chat_body_details_with_none_counts(bodies):
    body = bodies.chat(
        prompt=7, completion=2, cached=None, reasoning=None, input_audio=None
    )

    usage = usage_from_body(body, CHAT_CONTEXT)

    assert usage is not None
    assert usage.cache_read_tokens == 0
    assert usage.reasoning_tokens == 0


def test_chat_object_matches_body(bodies):
    body = bodies.chat(
        prompt=64, completion=9, cached=32, cache_write=8, input_audio=44, reasoning=3
    )

    from_object = extract_usage(ChatCompletion.construct(**body), CHAT_CONTEXT)
    from_body = usage_from_body(body, CHAT_CONTEXT)

    assert from_object == from_body


def test_chat_object_details_none(bodies):
    body = bodies.chat(prompt=5, completion=1, details=False)
    body["usage"]["prompt_tokens_details"] = None

    usage = extract_usage(ChatCompletion.construct(**body), CHAT_CONTEXT)

    assert usage is not None
    assert usage.input_tokens == 5
    assert usage.cache_read_tokens == 0


def test_chunk_without_usage_is_unknown(bodies):
    chunk = ChatCompletionChunk.construct(**bodies.chunk("Par"))

    usage = extract_usage(chunk, CHAT_CONTEXT)

    assert usage is not None
    assert usage.input_tokens is None
    assert usage.output_tokens is None
    assert usage.served_model == "gpt-4o-mini-2024-07-18"


def test_responses_object_without_cache_write(bodies):
    body = bodies.response(
        input_tokens=9299, cached=8448, output_tokens=577, reasoning=512
    )
    context = CallContext(provider="openai", operation="responses", model="gpt-5")

    usage = extract_usage(Response.construct(**body), context)

    assert usage is not None
    assert usage.input_tokens == 9299
    assert usage.cache_read_tokens == 8448
    assert usage.cache_write_tokens == 0
    assert usage.output_tokens == 577
    assert usage.reasoning_tokens == 512


def test_responses_object_matches_body(bodies):
    output = [
        {
            "id": "ws_1",
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search"},
        },
        {
            "id": "fs_1",
            "type": "file_search_call",
            "status": "completed",
            "queries": [],
        },
    ]
    # Cache write tokens are part of the input tokens, as in a real response.
    body = bodies.response(input_tokens=8576, cache_write=4418, output=output)
    context = CallContext(provider="openai", operation="responses", model="gpt-5.6")

    from_object = extract_usage(Response.construct(**body), context)
    from_body = usage_from_body(body, context)

    assert from_object == from_body
    assert from_body is not None
    assert from_body.cache_write_tokens == 4418
    assert dict(from_body.tool_calls) == {"web_search": 1, "file_search": 1}


def test_responses_completed_event_body(bodies):
    event = {
        "type": "response.completed",
        "response": bodies.response(input_tokens=22, output_tokens=6),
    }

    usage = usage_from_body(event, CallContext(provider="openai"))

    assert usage is not None
    assert usage.input_tokens == 22
    assert usage.operation == "responses"


def test_image_generation_object_matches_body(bodies):
    output = [
        {"id": "ig_1", "type": "image_generation_call", "status": "completed"},
        {"id": "ig_2", "type": "image_generation_call", "status": "completed"},
    ]
    body = bodies.response(output=output, tool_usage=bodies.image_gen_usage(80, 8320))
    context = CallContext(provider="openai", operation="responses", model="gpt-5")

    from_object = extract_usage(Response.construct(**body), context)
    from_body = usage_from_body(body, context)

    assert from_object == from_body
    assert from_body is not None
    assert dict(from_body.tool_calls) == {"image_generation": 2}
    assert dict(from_body.other_tokens) == {
        "image_generation_input": 80,
        "image_generation_output": 8320,
    }


@pytest.mark.parametrize(
    ("items", "tokens", "calls", "other"),
    [
        # The shape of a real response that ran web search and no image tool.
        (0, (0, 0), {}, {}),
        # OpenAI may leave a call without usage out of `tool_usage.image_gen`.
        (1, (0, 0), {"image_generation": 1}, {}),
        # Tokens without an output item still come from a call.
        (
            0,
            (50, 4160),
            {"image_generation": 1},
            {"image_generation_input": 50, "image_generation_output": 4160},
        ),
    ],
    ids=["no image tool", "item without tokens", "tokens without item"],
)
def test_image_generation_calls_and_tokens(bodies, items, tokens, calls, other):
    output = [
        {"id": f"ig_{number}", "type": "image_generation_call", "status": "completed"}
        for number in range(items)
    ]
    tool_usage = bodies.image_gen_usage(*tokens)
    body = bodies.response(output=output or (), tool_usage=tool_usage)
    context = CallContext(provider="openai", operation="responses", model="gpt-5")

    usage = usage_from_body(body, context)

    assert usage is not None
    assert dict(usage.tool_calls) == calls
    assert dict(usage.other_tokens) == other


def test_image_edit_object_matches_body(bodies):
    body = bodies.images(text=30, image=1000, output_tokens=4160)
    context = CallContext("openai", "images.edits", "gpt-image-1")

    from_object = extract_usage(ImagesResponse.construct(**body), context)
    from_body = extract_usage(body, context)

    assert from_object == from_body
    assert from_body is not None
    assert from_body.operation == "images.edits"
    assert from_body.input_tokens == 1030
    assert from_body.output_tokens == 4160
    assert dict(from_body.other_tokens) == {
        "input_image": 1000,
        "output_image": 4160,
    }
    assert reader_for(ImagesResponse) is None


def test_decision_object_matches_body(bodies):
    body = bodies.decision(input_tokens=900, cached=400, output_tokens=12)
    context = CallContext("openai", "decisions", "gpt-6-luna")

    from_object = extract_usage(Decision.construct(**body), context)
    from_body = extract_usage(body, context)
    from_batch_line = usage_from_body(body, CallContext("openai", None, None))

    assert from_object == from_body
    assert from_body is not None
    assert from_body.operation == "decisions"
    assert from_body.served_model == "gpt-6-luna"
    # Billed by input tokens alone, cached ones at the full input rate.
    assert from_body.input_tokens == 900
    assert from_body.cache_read_tokens == 0
    assert from_body.output_tokens == 0
    assert from_batch_line is not None
    assert from_batch_line.operation == "decisions"
    assert from_batch_line.model == "gpt-6-luna"
    assert from_batch_line.input_tokens == 900


def test_decision_without_usage_unknown():
    body = {"answers": [], "model": "gpt-6-luna"}
    context = CallContext("openai", "decisions", "gpt-6-luna")

    usage = extract_usage(body, context)

    assert usage is not None
    assert usage.input_tokens is None
    assert usage.output_tokens is None


def test_compaction_object_and_body(bodies):
    body = bodies.compaction(input_tokens=5000, cached=1000, output_tokens=300)
    context = CallContext(
        provider="openai", operation="responses.compact", model="gpt-5.4"
    )

    from_object = extract_usage(CompactedResponse.construct(**body), context)
    from_body = usage_from_body(body, CallContext(provider="openai", model="gpt-5.4"))

    assert from_object == from_body
    assert from_body is not None
    assert from_body.operation == "responses.compact"
    assert from_body.input_tokens == 5000
    assert from_body.cache_read_tokens == 1000
    assert from_body.output_tokens == 300


def test_failed_response_without_usage_is_unknown(bodies):
    body = bodies.response(status="failed", usage=False)

    usage = usage_from_body(body, CallContext(provider="openai"))

    assert usage is not None
    assert usage.input_tokens is None
    assert usage.served_model == "gpt-5-2025-08-07"


def test_embeddings_object_and_body(bodies):
    body = bodies.embeddings(prompt=8, model="text-embedding-ada-002-v2")
    context = CallContext(
        provider="openai", operation="embeddings", model="text-embedding-ada-002"
    )

    from_object = extract_usage(CreateEmbeddingResponse.construct(**body), context)
    from_body = usage_from_body(body, context)

    assert from_object == from_body
    assert from_body is not None
    assert from_body.input_tokens == 8
    assert from_body.output_tokens == 0
    assert from_body.served_model == "text-embedding-ada-002-v2"


def test_legacy_completion_body():
    body = {
        "object": "text_completion",
        "model": "gpt-3.5-turbo-instruct",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }

    usage = usage_from_body(body, CallContext(provider="openai"))

    assert usage is not None
    assert usage.operation == "completions"
    assert usage.output_tokens == 7


def test_body_with_list_object_is_not_read():
    body = {"object": ["response"], "output": [], "usage": None}

    assert usage_from_body(body, CallContext(provider="openai")) is None


def test_foreign_body_is_not_read():
    assert (
        usage_from_body(
            {"object": "model", "id": "gpt-4o"}, CallContext(provider="openai")
        )
        is None
    )


def test_foreign_object_is_not_read():
    assert extract_usage(object(), CallContext(provider="openai")) is None


def test_hook_ignores_other_providers(bodies):
    context = CallContext(provider="bedrock", model="gpt-4o-mini")

    assert plugin.usage_extract(bodies.chat(), context) is None


def test_readers_match_extract_usage(bodies):
    chat = ChatCompletion.construct(
        **bodies.chat(prompt=1370, completion=155, cached=1280)
    )
    response = Response.construct(
        **bodies.response(
            input_tokens=9299, cached=8448, output_tokens=577, reasoning=512
        )
    )
    cases = [
        (chat, CHAT_CONTEXT, read_chat_object),
        (response, CallContext("openai", "responses", "gpt-5"), read_responses_object),
    ]

    for sdk_object, context, reader in cases:
        assert reader_for(type(sdk_object)) is reader
        counts = reader(sdk_object, context)
        usage = extract_usage(sdk_object, context)
        assert counts is not None, type(sdk_object).__name__
        assert usage is not None
        assert counts == counts_of_usage(usage)


if pydantic.VERSION.startswith("1."):
    Pydantic1Model = pydantic.BaseModel
else:
    from pydantic.v1 import BaseModel as Pydantic1Model


class Pydantic1Details(Pydantic1Model):
    """The details of a Chat Completion usage, as a pydantic 1 model."""

    audio_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class Pydantic1ChatUsage(Pydantic1Model):
    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_details: Pydantic1Details | None = None
    completion_tokens_details: Pydantic1Details | None = None


class Pydantic1Chat(Pydantic1Model):
    """A Chat Completion as openai 3.x builds it when pydantic 1 is installed."""

    model: str
    choices: list[object]
    service_tier: str | None = None
    usage: Pydantic1ChatUsage | None = None


class Pydantic1ResponseUsage(Pydantic1Model):
    input_tokens: int
    output_tokens: int
    input_tokens_details: Pydantic1Details
    output_tokens_details: Pydantic1Details


class Pydantic1Response(Pydantic1Model):
    """A Responses object as openai 3.x builds it when pydantic 1 is installed."""

    model: str
    output: list[object]
    service_tier: str | None = None
    usage: Pydantic1ResponseUsage | None = None


def test_pydantic1_objects_read():
    # openai 3.x accepts pydantic 1, whose models declare their fields in
    # `__fields__` and have no `model_fields`.
    chat = Pydantic1Chat(
        model="gpt-4o-mini-2024-07-18",
        choices=[],
        usage=Pydantic1ChatUsage(
            prompt_tokens=1370,
            completion_tokens=155,
            prompt_tokens_details=Pydantic1Details(cached_tokens=1280),
            completion_tokens_details=Pydantic1Details(reasoning_tokens=64),
        ),
    )
    response = Pydantic1Response(
        model="gpt-5-2025-08-07",
        output=[],
        usage=Pydantic1ResponseUsage(
            input_tokens=9299,
            output_tokens=577,
            input_tokens_details=Pydantic1Details(cached_tokens=8448),
            output_tokens_details=Pydantic1Details(reasoning_tokens=512),
        ),
    )
    responses_context = CallContext("openai", "responses", "gpt-5")

    chat_usage = extract_usage(chat, CHAT_CONTEXT)
    response_usage = extract_usage(response, responses_context)

    assert chat_usage is not None
    assert chat_usage.input_tokens == 1370
    assert chat_usage.output_tokens == 155
    assert chat_usage.cache_read_tokens == 1280
    assert chat_usage.reasoning_tokens == 64
    assert response_usage is not None
    assert response_usage.input_tokens == 9299
    assert response_usage.output_tokens == 577
    assert response_usage.cache_read_tokens == 8448
    assert response_usage.reasoning_tokens == 512
    assert reader_for(Pydantic1Chat) is read_chat_object
    assert reader_for(Pydantic1Response) is read_responses_object
    assert read_chat_object(chat, CHAT_CONTEXT) == counts_of_usage(chat_usage)
    assert read_responses_object(response, responses_context) == counts_of_usage(
        response_usage
    )


def test_reader_declines_what_extract_checks(bodies):
    context = CallContext("openai", "responses", "gpt-5")
    declined = {
        "web search": bodies.response(
            output=[{"id": "ws_1", "type": "web_search_call", "status": "completed"}]
        ),
        "image generation": bodies.response(
            output=[{"id": "ig_1", "type": "image_generation_call"}]
        ),
        "item type not text": bodies.response(
            output=[{"type": ["message"], "id": "msg_1"}]
        ),
    }

    for name, body in declined.items():
        response = Response.construct(**body)
        assert read_responses_object(response, context) is None, name
        usage = extract_usage(response, context)
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens) == (100, 50), name


def test_reader_follows_details_type_changes(bodies):
    # A details object of another type, one without some fields or a scalar,
    # must be read by its own rules, and the SDK's type again after it.
    # Each response is built on its own: a copy of a pydantic 1 model shares
    # its fields with the original.
    body = bodies.chat(prompt=1370, completion=155, cached=1280)
    chat = ChatCompletion.construct(**copy.deepcopy(body))
    other_details = ChatCompletion.construct(**copy.deepcopy(body))
    # A details object that declares no cache_write_tokens or audio_tokens.
    other_details.usage.prompt_tokens_details = types.SimpleNamespace(
        cached_tokens=1024
    )
    scalar_details = ChatCompletion.construct(**copy.deepcopy(body))
    scalar_details.usage.prompt_tokens_details = 1280

    for response in (chat, other_details, scalar_details, chat, other_details):
        usage = extract_usage(response, CHAT_CONTEXT)
        assert usage is not None
        counts = read_chat_object(response, CHAT_CONTEXT)
        if response is scalar_details:
            assert counts is None
        else:
            assert counts == counts_of_usage(usage)
    assert read_chat_object(chat, CHAT_CONTEXT)[10] == 1280
    assert read_chat_object(other_details, CHAT_CONTEXT)[10] == 1024


class DetailsWithoutCacheWrites(pydantic.BaseModel, extra="allow"):
    """A details model of an SDK that does not declare cache_write_tokens."""

    audio_tokens: int | None = None
    cached_tokens: int | None = None


class ChatWithUsageProperty:
    """A Chat Completion wrapper whose usage is a property, outside `__dict__`."""

    def __init__(self, chat: ChatCompletion) -> None:
        self.chat = chat
        self.model = chat.model
        self.service_tier = chat.service_tier

    @property
    def usage(self) -> object:
        return self.chat.usage


@pytest.mark.skipif(
    pydantic.VERSION.startswith("1."),
    reason="pydantic 1 keeps extra fields in `__dict__` with the declared ones",
)
def test_reader_reads_fields_outside_dict(bodies):
    # The reader reads fields from `__dict__` and falls back to attributes
    # for a pydantic extra field or a property, as the checked path does.
    chat = ChatCompletion.construct(
        **bodies.chat(prompt=1370, completion=155, cached=1280)
    )
    chat.usage.prompt_tokens_details = DetailsWithoutCacheWrites(
        audio_tokens=0, cached_tokens=1024, cache_write_tokens=6
    )
    assert "cache_write_tokens" not in vars(chat.usage.prompt_tokens_details)

    counts = read_chat_object(chat, CHAT_CONTEXT)
    usage = extract_usage(chat, CHAT_CONTEXT)
    assert counts is not None
    assert usage is not None
    assert counts == counts_of_usage(usage)
    assert counts[8:12] == (1370, 155, 1024, 6)
    assert read_chat_object(ChatWithUsageProperty(chat), CHAT_CONTEXT) == counts


class CountWithFields(int):
    """An int that also has the fields of a details object."""

    audio_tokens = 0
    cached_tokens = 1024
    cache_write_tokens = 0


@pytest.mark.parametrize(
    "details",
    [
        collections.namedtuple(
            "Details", "audio_tokens cached_tokens cache_write_tokens"
        )(0, 1024, 0),
        CountWithFields(7),
        {"cached_tokens": 1024},
    ],
    ids=["namedtuple", "int subclass", "dict"],
)
def test_reader_declines_scalar_or_mapping_details(bodies, details):
    # The checked path reports a scalar as invalid and reads a mapping by
    # key, so the reader must leave both to it, even when they have fields.
    chat = ChatCompletion.construct(
        **bodies.chat(prompt=1370, completion=155, cached=1280)
    )
    chat.usage.prompt_tokens_details = details
    response = Response.construct(
        **bodies.response(input_tokens=1370, cached=1280, output_tokens=155)
    )
    response.usage.input_tokens_details = details
    want_cached = 1024 if isinstance(details, dict) else 0

    for sdk_object, context, reader in [
        (chat, CHAT_CONTEXT, read_chat_object),
        (response, CallContext("openai", "responses", "gpt-5"), read_responses_object),
    ]:
        assert reader(sdk_object, context) is None
        usage = extract_usage(sdk_object, context)
        assert usage is not None
        assert usage.cache_read_tokens == want_cached


def test_reader_declines_namedtuple_usage(bodies):
    chat = ChatCompletion.construct(**bodies.chat(prompt=1370, completion=155))
    fields = "prompt_tokens completion_tokens prompt_tokens_details"
    Usage = collections.namedtuple("Usage", f"{fields} completion_tokens_details")
    chat.usage = Usage(1370, 155, None, None)

    assert read_chat_object(chat, CHAT_CONTEXT) is None
    usage = extract_usage(chat, CHAT_CONTEXT)
    assert usage is not None
    assert usage.input_tokens is None


@pytest.mark.parametrize(
    ("prompt_tokens", "fast"),
    [(8, True), (0, True), (-1, False), (8.0, False), (True, False), (None, False)],
)
def test_embeddings_reader_matches_body(bodies, prompt_tokens, fast):
    body = bodies.embeddings(prompt=8, model="text-embedding-3-small")
    body["usage"]["prompt_tokens"] = prompt_tokens
    context = CallContext("openai", "embeddings", "text-embedding-3-small")
    # As the SDK builds it: nested models, counts not validated.
    usage = EmbeddingUsage.construct(**body["usage"])
    response = CreateEmbeddingResponse.construct(**{**body, "usage": usage})

    counts = read_embeddings_object(response, context)

    assert reader_for(CreateEmbeddingResponse) is read_embeddings_object
    if not fast:
        assert counts is None
        return
    assert counts is not None
    assert counts == counts_of_usage(usage_from_body(body, context))
    assert counts[8] == prompt_tokens


def test_embeddings_reader_without_usage(bodies):
    body = bodies.embeddings(prompt=8, model="text-embedding-3-small")
    context = CallContext("openai", "embeddings", "text-embedding-3-small")
    without_usage = CreateEmbeddingResponse.construct(**{**body, "usage": None})
    usage_as_dict = CreateEmbeddingResponse.construct(**body)
    usage_as_dict.usage = {"prompt_tokens": 8, "total_tokens": 8}

    assert read_embeddings_object(without_usage, context) is None
    assert read_embeddings_object(usage_as_dict, context) is None
    usage = extract_usage(usage_as_dict, context)
    assert usage is not None
    assert usage.input_tokens == 8


def test_embeddings_object_reads_like_body(bodies):
    # Fields that embeddings responses do not carry today are read alike from
    # the SDK object and from the raw body.
    body = bodies.embeddings(prompt=8, model="text-embedding-3-small")
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 4}
    body["service_tier"] = "flex"
    context = CallContext("openai", "embeddings", "text-embedding-3-small")
    response = CreateEmbeddingResponse.construct(**body)

    from_object = extract_usage(response, context)
    from_body = usage_from_body(body, context)

    assert read_embeddings_object(response, context) is None
    assert from_object == from_body
    assert from_object is not None
    assert from_object.cache_read_tokens == 4
    assert from_object.service_tier == "flex"


class ModelName(str):
    """A str subclass, as some wrappers return for model names."""


def test_readers_keep_str_subclass_model(bodies):
    body = bodies.embeddings(prompt=8, model="text-embedding-3-small")
    response = CreateEmbeddingResponse.construct(**body)
    response.model = ModelName("text-embedding-3-small")
    chat = ChatCompletion.construct(**bodies.chat(prompt=10, completion=2))
    chat.model = ModelName("gpt-4o-mini-2024-07-18")
    no_model = CallContext("openai")

    embedding_counts = read_embeddings_object(response, no_model)
    chat_counts = read_chat_object(chat, no_model)

    assert embedding_counts is not None
    assert embedding_counts[1:3] == ("text-embedding-3-small",) * 2
    assert chat_counts is not None
    assert chat_counts[1:3] == ("gpt-4o-mini-2024-07-18",) * 2
