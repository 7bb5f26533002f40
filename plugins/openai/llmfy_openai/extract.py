"""Usage extraction from OpenAI responses: SDK objects and plain JSON bodies.

Chat Completions, legacy Completions and Embeddings report `prompt_tokens`
(cached, cache write and audio tokens included) and `completion_tokens`
(reasoning and audio tokens included). The Responses API reports
`input_tokens` and `output_tokens` with the same inclusions, and so do audio
transcriptions and GPT Image generations, with their audio or image tokens
included. All match the inclusion rules of `llmfy_core.model`, so the counts
are copied, never summed. A Decisions response reports the fields of the
Responses API, but only its input tokens are billed, so only they are counted.

SDK objects are read field by field, from their `__dict__` on the fast path
of Chat Completions, and never converted to dicts. Plain dicts (Batch API
output lines, stored bodies) take a separate path.
Nothing here imports `openai`.

The SDK builds its objects without validating them, so a malformed response
reaches this module as it was sent. A count that is missing, negative, not a
whole number or of another type is not trusted. An invalid input or output
count becomes unknown, and an invalid cached, cache write, reasoning or audio
count becomes 0. A part larger than the count it belongs to is cut to that
count. Each such field is logged on `llmfy.openai` with the model and the
field's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any, NamedTuple

from llmfy_core import CallContext, Usage
from llmfy_core.errors import describe_invalid
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.model import UsageCounts, usage_from_counts

logger = get_logger("llmfy.openai")

PROVIDER = "openai"

# Built-in tools of the Responses API that are billed per call, by tool name.
WEB_SEARCH = "web_search"
FILE_SEARCH = "file_search"
CODE_INTERPRETER = "code_interpreter"
# The image generation tool. OpenAI bills its tokens at the image model's
# rates, which llmfy does not bundle, so its calls have no price and the cost
# of a request that ran it is incomplete. Its tokens are not part of the
# request's input and output tokens, and are kept as `other_tokens` of the
# two kinds below.
IMAGE_GENERATION = "image_generation"
# The web search that a Chat Completions search model (gpt-4o-search-preview,
# gpt-4o-mini-search-preview) runs before each response. OpenAI bills it per
# request on top of the tokens, at a rate that differs from the Responses
# `web_search` tool and is not bundled, so such a request counts one call of
# this kind and its cost is marked incomplete. NOTE: a search model is
# recognized by `SEARCH_MODEL_MARK` in the served model id, a guess from the
# two model names that exist.
CHAT_WEB_SEARCH = "chat_web_search"
SEARCH_MODEL_MARK = "-search-"
IMAGE_GENERATION_INPUT = "image_generation_input"
IMAGE_GENERATION_OUTPUT = "image_generation_output"

# Operations whose responses report token usage only for the models billed
# per token: gpt-4o-transcribe and the other token-billed transcription
# models, and the GPT Image models. whisper-1 reports the audio duration
# instead, and DALL-E reports no usage: those are billed by the duration of
# the audio or per image, which llmfy does not price.
TOKEN_USAGE_OPERATIONS = frozenset(
    {"audio.transcriptions", "images.generations", "images.edits"}
)
# The Decisions API (`decisions.create()`): typed answers to questions about
# an input, with a usage of the Responses API's fields and no `object` field.
DECISIONS = "decisions"
# The operation of a GPT Image body read without its request, as in a Batch
# API output line, which does not say whether a generation or an edit made it.
IMAGES = "images"

_Extractor = Callable[[Any, CallContext], Usage]
UsageReader = Callable[[Any, CallContext], UsageCounts | None]


def extract_usage(response: Any, context: CallContext) -> Usage | None:
    """Return the usage of one OpenAI response, or None when it is not one.

    `response` is a Chat Completions, Completions, Responses, Embeddings or
    Decisions object of the SDK, a stream chunk or final `Response` of a
    stream, or the same shapes as plain dicts. For an operation in
    `TOKEN_USAGE_OPERATIONS` it is a transcription or an image response, or
    the stream event that carries its usage.
    """
    if context.operation in TOKEN_USAGE_OPERATIONS:
        return _from_token_usage(response, context)
    if isinstance(response, Mapping):
        return usage_from_body(response, context)

    extractor = _EXTRACTORS.get(type(response))
    if extractor is None:
        extractor = _choose_extractor(type(response))
        if extractor is None:
            return None
        _EXTRACTORS[type(response)] = extractor
    return extractor(response, context)


def _choose_extractor(response_type: type) -> _Extractor | None:
    fields = _model_fields(response_type)
    if not fields or "usage" not in fields:
        return None
    if "output" in fields:
        return _from_responses_object
    if "answers" in fields:
        return _decision_usage
    if "choices" in fields:
        return _from_chat_object
    if "data" in fields and "model" in fields:
        # An images response has `data` and `usage` too, but no `model`.
        return _from_embeddings_object
    return None


def _model_fields(response_type: type) -> Any:
    """Return the declared fields of an SDK model class, or None.

    The SDK's models are pydantic 2 models, or pydantic 1 models when the
    application has pydantic 1, which openai 3.x accepts. Pydantic 1 names
    the fields `__fields__`, which pydantic 2 deprecates, so it is read only
    when `model_fields` is missing.
    """
    fields = getattr(response_type, "model_fields", None)
    if fields is None:
        fields = getattr(response_type, "__fields__", None)
    return fields


_EXTRACTORS: dict[type, _Extractor] = {}


def reader_for(response_type: type) -> UsageReader | None:
    """Return the fast reader for SDK objects of `response_type`, or None.

    A reader returns the `UsageCounts` of a well-formed response, equal to
    what `extract_usage` returns for it, and None for every other response
    (no usage, an invalid count, audio tokens, billed tool calls), which
    `extract_usage` then reads and checks.
    """
    extractor = _choose_extractor(response_type)
    if extractor is _from_chat_object:
        return read_chat_object
    if extractor is _from_responses_object:
        return read_responses_object
    if extractor is _from_embeddings_object:
        return read_embeddings_object
    return None


def read_chat_object(response: Any, context: CallContext) -> UsageCounts | None:
    """Read a Chat Completion, or a chunk that carries usage, quickly.

    Returns None when usage is missing, when a count is invalid, when a
    usage or details object is a scalar or a mapping, when audio tokens are
    billed, or when a search model served the request, and `extract_usage`
    then reads and checks the response.
    This runs per request, so the checks are inline: a shared helper for
    them cost each request about 0.1 us. The fields are read from each
    object's `__dict__`, where the SDK's models keep them: reading them as
    attributes goes through pydantic's `__getattr__` hook, which added about
    9% to the instructions of `record_response` (callgrind, Python 3.11). An
    object without the fields there, such as a mapping, a scalar, a property
    or a pydantic extra field, is read by attribute.
    """
    try:
        fields = response.__dict__
        usage = fields["usage"]
        if usage is None:
            return None
        counts = usage.__dict__
        inputs = counts["prompt_tokens"]
        outputs = counts["completion_tokens"]
        cached: object = 0
        written: object = 0
        reasoning: object = 0
        details = counts["prompt_tokens_details"]
        if details is not None:
            values = details.__dict__
            audio = values["audio_tokens"]
            if audio is not None and (type(audio) is not int or audio != 0):
                return None
            cached = values["cached_tokens"]
            written = values["cache_write_tokens"]
            if cached is None:
                cached = 0
            if written is None:
                written = 0
        details = counts["completion_tokens_details"]
        if details is not None:
            values = details.__dict__
            audio = values["audio_tokens"]
            if audio is not None and (type(audio) is not int or audio != 0):
                return None
            reasoning = values["reasoning_tokens"]
            if reasoning is None:
                reasoning = 0
        served = fields["model"]
        tier = fields["service_tier"]
    except (AttributeError, KeyError):
        read = _chat_fields_by_attribute(response)
        if read is None:
            return None
        inputs, outputs, cached, written, reasoning, served, tier = read
    if not (
        type(inputs) is int
        and type(outputs) is int
        and type(cached) is int
        and type(written) is int
        and type(reasoning) is int
        and cached >= 0
        and written >= 0
        and reasoning >= 0
        and cached + written <= inputs
        and reasoning <= outputs
    ):
        return None
    if type(served) is not str or not served:
        if served is not None and not isinstance(served, str):
            return None  # the checked path logs it
        # A str subclass is kept, as the checked path keeps it.
        served = _text(served)
    if type(tier) is not str or not tier:
        if tier is not None and not isinstance(tier, str):
            return None
        tier = _text(tier) or context.service_tier
    if served and SEARCH_MODEL_MARK in served:
        # A search model's request carries a billed search call.
        return None
    return (
        PROVIDER,
        context.model or served or "unknown",
        served,
        context.region,
        tier,
        context.operation or "chat.completions",
        context.batch,
        context.headers.get("x-request-id"),
        inputs,
        outputs,
        cached,
        written,
        reasoning,
    )


def _chat_fields_by_attribute(response: Any) -> tuple[Any, ...] | None:
    """Return the fields that `read_chat_object` checks, read as attributes.

    Returns None for a usage or details object that is a scalar or a
    mapping, or for billed audio tokens.
    """
    try:
        usage = response.usage
        if usage is None:
            return None
        if type(usage) not in _READABLE_TYPES and not _is_readable(type(usage)):
            return None
        inputs = usage.prompt_tokens
        outputs = usage.completion_tokens
        cached: object = 0
        written: object = 0
        reasoning: object = 0
        details = usage.prompt_tokens_details
        if details is not None:
            if type(details) not in _READABLE_TYPES and not _is_readable(type(details)):
                return None
            try:
                audio = details.audio_tokens
                cached = details.cached_tokens
                written = details.cache_write_tokens
            except AttributeError:
                audio, cached, written = _details(details, _INPUT_DETAILS)
            if audio is not None and (type(audio) is not int or audio != 0):
                return None
            if cached is None:
                cached = 0
            if written is None:
                written = 0
        details = usage.completion_tokens_details
        if details is not None:
            if type(details) not in _READABLE_TYPES and not _is_readable(type(details)):
                return None
            try:
                audio = details.audio_tokens
                reasoning = details.reasoning_tokens
            except AttributeError:
                audio, reasoning = _details(details, _OUTPUT_DETAILS)
            if audio is not None and (type(audio) is not int or audio != 0):
                return None
            if reasoning is None:
                reasoning = 0
        served = response.model
        tier = response.service_tier
    except AttributeError:
        # A scalar where an object belongs, or an SDK without the field.
        return None
    return inputs, outputs, cached, written, reasoning, served, tier


def _read_responses_counts(response: Any, context: CallContext) -> UsageCounts | None:
    """Read a Responses object's usage as `read_chat_object` reads a Chat Completion.

    The SDK's details types of this API declare no audio tokens, so a
    response that reports them anyway carries them as an extra field.
    """
    try:
        usage = response.usage
        if usage is None:
            return None
        if type(usage) not in _READABLE_TYPES and not _is_readable(type(usage)):
            return None
        inputs = usage.input_tokens
        outputs = usage.output_tokens
        cached: object = 0
        written: object = 0
        reasoning: object = 0
        details = usage.input_tokens_details
        if details is not None:
            if type(details) not in _READABLE_TYPES and not _is_readable(type(details)):
                return None
            try:
                audio = getattr(details, "audio_tokens", None)
                cached = details.cached_tokens
                written = details.cache_write_tokens
            except AttributeError:
                audio, cached, written = _details(details, _INPUT_DETAILS)
            if audio is not None and (type(audio) is not int or audio != 0):
                return None
            if cached is None:
                cached = 0
            if written is None:
                written = 0
        details = usage.output_tokens_details
        if details is not None:
            if type(details) not in _READABLE_TYPES and not _is_readable(type(details)):
                return None
            try:
                audio = getattr(details, "audio_tokens", None)
                reasoning = details.reasoning_tokens
            except AttributeError:
                audio, reasoning = _details(details, _OUTPUT_DETAILS)
            if audio is not None and (type(audio) is not int or audio != 0):
                return None
            if reasoning is None:
                reasoning = 0
        served = response.model
        tier = response.service_tier
    except AttributeError:
        return None
    if not (
        type(inputs) is int
        and type(outputs) is int
        and type(cached) is int
        and type(written) is int
        and type(reasoning) is int
        and cached >= 0
        and written >= 0
        and reasoning >= 0
        and cached + written <= inputs
        and reasoning <= outputs
    ):
        return None
    if type(served) is not str or not served:
        if served is not None and not isinstance(served, str):
            return None  # the checked path logs it
        served = _text(served)
    if type(tier) is not str or not tier:
        if tier is not None and not isinstance(tier, str):
            return None
        tier = _text(tier) or context.service_tier
    return (
        PROVIDER,
        context.model or served or "unknown",
        served,
        context.region,
        tier,
        context.operation or "responses",
        context.batch,
        context.headers.get("x-request-id"),
        inputs,
        outputs,
        cached,
        written,
        reasoning,
    )


# The fields of a details object that the readers read with `_details`, in
# the order they unpack them.
_INPUT_DETAILS = ("audio_tokens", "cached_tokens", "cache_write_tokens")
_OUTPUT_DETAILS = ("audio_tokens", "reasoning_tokens")


def _details(details: object, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Return the fields `names` of a details object, a missing one as None.

    `extract_usage` reads a missing field as None too.
    """
    return tuple(getattr(details, name, None) for name in names)


def _is_readable(kind: type) -> bool:
    """Return whether a reader reads usage or details objects of type `kind`.

    It does not read a scalar or a mapping, even one with the fields: the
    checked path reports a scalar as invalid and reads a mapping by key. The
    readers look `kind` up in `_READABLE_TYPES` before calling this.
    """
    if issubclass(kind, (*_SCALARS, Mapping)):
        return False
    if len(_READABLE_TYPES) < _MAX_READABLE_TYPES:
        _READABLE_TYPES.add(kind)
    return True


# The types that `_is_readable` accepted, so that a request costs one set
# lookup per object. An SDK version has a few.
_READABLE_TYPES: set[type] = set()
_MAX_READABLE_TYPES = 64


def read_responses_object(response: Any, context: CallContext) -> UsageCounts | None:
    """Read a well-formed Responses object without billed tool calls quickly."""
    if getattr(response, "tool_usage", None) is not None:
        return None
    output = getattr(response, "output", None)
    if not isinstance(output, (list, tuple)):
        return None
    for item in output:
        kind = getattr(item, "type", None)
        if type(kind) is not str or kind in _BILLED_TOOL_ITEMS:
            return None
    return _read_responses_counts(response, context)


_embeddings_fields = attrgetter("usage", "model")

# Azure OpenAI names text-embedding-ada-002 "ada" in its embeddings responses.
# OpenAI's `ada` is a retired completions model, which genai-prices prices at
# 0.40 USD per million tokens, four times ada-002's rate, so the readers map
# the name to the embeddings model.
EMBEDDINGS_MODEL_NAMES = {"ada": "text-embedding-ada-002"}


def _embeddings_model(served: str | None) -> str | None:
    """Return the model id that an embeddings response's `model` names."""
    if served is None:
        return None
    return EMBEDDINGS_MODEL_NAMES.get(served, served)


def read_embeddings_object(response: Any, context: CallContext) -> UsageCounts | None:
    """Read a well-formed embeddings response quickly: input tokens only.

    Returns None for input token details, which embeddings responses do not
    carry today, so that the checked path reads them.
    """
    try:
        usage, served = _embeddings_fields(response)
        inputs = usage.prompt_tokens
    except AttributeError:
        # Usage is None or a dict, or the SDK lacks a field.
        return None
    if type(inputs) is not int or inputs < 0:
        return None
    if getattr(usage, "prompt_tokens_details", None) is not None:
        return None
    text = _text(served)
    tier = getattr(response, "service_tier", None)
    if text is None and served is not None and not isinstance(served, str):
        return None  # the checked path logs it
    if tier is not None and not isinstance(tier, str):
        return None
    served = _embeddings_model(text)
    return (
        PROVIDER,
        context.model or served or "unknown",
        served,
        context.region,
        _text(tier) or context.service_tier,
        context.operation or "embeddings",
        context.batch,
        context.headers.get("x-request-id"),
        inputs,
        0,
        0,
        0,
        0,
    )


_BILLED_TOOL_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
    }
)


def _read_or_none(
    reader: UsageReader, response: Any, context: CallContext
) -> UsageCounts | None:
    """Run a reader for the checked path, which handles whatever the reader cannot."""
    try:
        return reader(response, context)
    except Exception:
        return None


def _from_chat_object(response: Any, context: CallContext) -> Usage:
    counts = _read_or_none(read_chat_object, response, context)
    if counts is not None:
        return usage_from_counts(counts)
    usage = getattr(response, "usage", None)
    served = checked_text(getattr(response, "model", None), "model", context)
    tier = _checked_tier(getattr(response, "service_tier", None), context)
    checker = _Checker(context, served)
    if usage is None and getattr(response, "object", None) == "chat.completion.chunk":
        # Only the usage chunk of a stream carries usage; the others are normal.
        return _unknown(context, served, tier)
    tools = _chat_tools(served)
    if not checker.usage_present(usage):
        return _unknown(context, served, tier, tools)
    return _usage_from_counts(
        context,
        checker,
        operation="chat.completions",
        served=served,
        tier=tier,
        input_tokens=_field(usage, "prompt_tokens"),
        output_tokens=_field(usage, "completion_tokens"),
        input_details=_field(usage, "prompt_tokens_details"),
        output_details=_field(usage, "completion_tokens_details"),
        tools=tools,
    )


def _chat_tools(served: str | None) -> _ToolUse:
    """Return the search call of a Chat Completion served by a search model.

    The served model decides, as in `read_chat_object`, so that both paths
    give the same usage.
    """
    if served and SEARCH_MODEL_MARK in served:
        return _ToolUse({CHAT_WEB_SEARCH: 1}, {})
    return _NO_TOOLS


def _from_responses_object(response: Any, context: CallContext) -> Usage:
    counts = _read_or_none(read_responses_object, response, context)
    if counts is not None:
        return usage_from_counts(counts)
    usage = getattr(response, "usage", None)
    served = checked_text(getattr(response, "model", None), "model", context)
    tier = _checked_tier(getattr(response, "service_tier", None), context)
    checker = _Checker(context, served)
    tools = _tools_of_object(response, checker)
    if not checker.usage_present(usage):
        return _unknown(context, served, tier, tools)
    return _usage_from_counts(
        context,
        checker,
        operation="responses",
        served=served,
        tier=tier,
        input_tokens=_field(usage, "input_tokens"),
        output_tokens=_field(usage, "output_tokens"),
        input_details=_field(usage, "input_tokens_details"),
        output_details=_field(usage, "output_tokens_details"),
        tools=tools,
    )


def _from_embeddings_object(response: Any, context: CallContext) -> Usage:
    counts = _read_or_none(read_embeddings_object, response, context)
    if counts is not None:
        return usage_from_counts(counts)
    usage = getattr(response, "usage", None)
    served = checked_text(getattr(response, "model", None), "model", context)
    served = _embeddings_model(served)
    tier = _checked_tier(getattr(response, "service_tier", None), context)
    checker = _Checker(context, served)
    if not checker.usage_present(usage):
        return _unknown(context, served, tier)

    # Read as the raw body is read, so that both give the same usage.
    return _usage_from_counts(
        context,
        checker,
        operation="embeddings",
        served=served,
        tier=tier,
        input_tokens=_field(usage, "prompt_tokens"),
        output_tokens=0,
        input_details=_field(usage, "prompt_tokens_details"),
        output_details=None,
        tools=_NO_TOOLS,
    )


class _ToolUse(NamedTuple):
    """The built-in tools that a Responses call ran.

    `calls` counts the calls by tool name, and `tokens` the image generation
    tokens by kind, which become `other_tokens`.
    """

    calls: Mapping[str, int]
    tokens: Mapping[str, int]


_NO_TOOLS = _ToolUse({}, {})


def reports_token_usage(response: Any) -> bool:
    """Return whether a transcription or an image response is billed per token.

    `response` is an SDK object, a stream event or a JSON dict. It is billed
    per token when it has a `usage` whose `type` is not "duration".
    """
    usage = _field(response, "usage")
    return usage is not None and _field(usage, "type") != "duration"


# Operations of a GPT Image model, whose output tokens are image tokens unless
# `output_tokens_details` splits them. The Images API leaves the details out of
# a response and of the completed event of a stream (openai 3.63 documents the
# event's `output_tokens` as image tokens).
_IMAGE_OPERATIONS = frozenset({"images.generations", "images.edits", IMAGES})


def _from_token_usage(response: Any, context: CallContext) -> Usage:
    """Read the usage of a transcription or an image response.

    A transcription's usage has `input_token_details` with `audio_tokens`,
    and an image response's has `input_tokens_details` and
    `output_tokens_details` with `image_tokens`: these become `input_audio`,
    `input_image` and `output_image`, which have rates of their own. The
    output tokens of an image response without `output_tokens_details` are all
    image tokens. The other output tokens of an image model, such as text
    tokens, take its output rate. Neither response names its model, so the
    requested one prices it.
    """
    # NOTE: an images response for output_format "svg" also has `svg_usage`,
    # tokens of another model that writes the SVG. They are not counted.
    usage = _field(response, "usage")
    served = checked_text(_field(response, "model"), "model", context)
    tier = _checked_tier(_field(response, "service_tier"), context)
    checker = _Checker(context, served)
    if not checker.usage_present(usage):
        return _unknown(context, served, tier)

    inputs = checker.total(_field(usage, "input_tokens"), "usage.input_tokens")
    outputs = checker.total(_field(usage, "output_tokens"), "usage.output_tokens")
    other = {}
    for name, field, kind, limit in (
        ("input_token_details", "audio_tokens", "input_audio", inputs),
        ("input_tokens_details", "image_tokens", "input_image", inputs),
        ("output_tokens_details", "image_tokens", "output_image", outputs),
    ):
        path = f"usage.{name}"
        details = checker.details(_field(usage, name), path)
        count = checker.part(details, path, field, limit)
        if count:
            other[kind] = count
    if (
        outputs
        and context.operation in _IMAGE_OPERATIONS
        and _field(usage, "output_tokens_details") is None
    ):
        other["output_image"] = outputs
    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=inputs,
        output_tokens=outputs,
        other_tokens=other,
        served_model=served,
        region=context.region,
        service_tier=tier,
        operation=context.operation,
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _tools_of_object(response: Any, checker: _Checker) -> _ToolUse:
    """Count the built-in tool calls of a Responses object and their tokens.

    Each `web_search_call` item whose action is a search counts once, and
    Code Interpreter is billed per container, so distinct `container_id`s are
    counted. `_tool_use` adds what `tool_usage` reports.
    """
    output = _output_items(getattr(response, "output", None), checker)
    searches = file_searches = images = 0
    containers: set[object] = set()
    for item in output:
        kind = getattr(item, "type", None)
        if kind == "web_search_call":
            action = getattr(item, "action", None)
            if action is None or getattr(action, "type", "search") == "search":
                searches += 1
        elif kind == "file_search_call":
            file_searches += 1
        elif kind == "code_interpreter_call":
            containers.add(getattr(item, "container_id", None))
        elif kind == "image_generation_call":
            images += 1

    counts = _ToolCounts(searches, file_searches, len(containers), images)
    return _tool_use(counts, getattr(response, "tool_usage", None), checker)


def _output_items(output: object, checker: _Checker) -> Iterable[Any]:
    """Return the output items of a Responses call, or () when `output` is not a list.

    The SDK passes an `output` of another type through unchanged, and such a
    value is logged unless it is None.
    """
    if output is None:
        return ()
    if not isinstance(output, (list, tuple)):
        problem = describe_invalid(output)
        checker.report("output", problem, "its built-in tool calls are not counted")
        return ()
    return output


class _ToolCounts(NamedTuple):
    """The tool calls counted from the output items of a Responses call."""

    searches: int
    file_searches: int
    containers: int
    images: int


def _tool_use(counts: _ToolCounts, tool_usage: Any, checker: _Checker) -> _ToolUse:
    """Combine the tool calls counted from output items with `tool_usage`.

    `tool_usage.web_search.num_requests` is OpenAI's own count of billable
    searches and wins where present. `tool_usage.image_gen` sums the tokens
    of the image generation calls but may leave out a call whose usage is
    missing (openai 3.63, `ToolUsage`), so each `image_generation_call` item
    counts as a call, and tokens without such an item count as one call.
    """
    searches = counts.searches
    reported = _reported_web_searches(tool_usage, checker)
    if reported is not None:
        searches = reported
    tokens = _image_generation_tokens(tool_usage, checker)
    images = counts.images
    if tokens and not images:
        images = 1

    calls = {}
    if searches:
        calls[WEB_SEARCH] = searches
    if counts.file_searches:
        calls[FILE_SEARCH] = counts.file_searches
    if counts.containers:
        calls[CODE_INTERPRETER] = counts.containers
    if images:
        calls[IMAGE_GENERATION] = images
    return _ToolUse(calls, tokens)


def _reported_web_searches(tool_usage: Any, checker: _Checker) -> int | None:
    if tool_usage is None:
        return None
    count = _field(_field(tool_usage, "web_search"), "num_requests")
    if count is None:
        return None
    return checker.count(count, "tool_usage.web_search.num_requests", "ignored")


def _image_generation_tokens(tool_usage: Any, checker: _Checker) -> dict[str, int]:
    """Return the input and output tokens of `tool_usage.image_gen` that are not 0."""
    image_gen = _field(tool_usage, "image_gen")
    tokens = {}
    for field, kind in (
        ("input_tokens", IMAGE_GENERATION_INPUT),
        ("output_tokens", IMAGE_GENERATION_OUTPUT),
    ):
        value = _field(image_gen, field)
        if value is None:
            continue
        count = checker.count(value, f"tool_usage.image_gen.{field}", "taken as 0")
        if count:
            tokens[kind] = count
    return tokens


def _audio(input_audio: int, output_audio: int) -> dict[str, int]:
    if not input_audio and not output_audio:
        return {}
    other = {}
    if input_audio:
        other["input_audio"] = input_audio
    if output_audio:
        other["output_audio"] = output_audio
    return other


def _unknown(
    context: CallContext,
    served: str | None,
    tier: str | None,
    tools: _ToolUse = _NO_TOOLS,
) -> Usage:
    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=None,
        output_tokens=None,
        other_tokens=tools.tokens,
        tool_calls=tools.calls,
        served_model=served,
        region=context.region,
        service_tier=tier,
        operation=context.operation,
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


# Plain JSON bodies


def usage_from_body(body: Mapping[str, Any], context: CallContext) -> Usage | None:
    """Return the usage of one OpenAI response body given as a parsed JSON dict.

    Reads Chat Completions (and their stream chunks), Completions, Responses
    (also the `response` of a `response.completed` stream event), Responses
    compactions, Embeddings, Decisions and GPT Image bodies. Returns None for a
    body that matches none of these, and a `Usage` with unknown token counts
    for one of these without `usage`. A GPT Image body names no model, so
    `context.model` names it. A body whose `object` is missing or unknown is
    read as the response of `context.operation`, when that is set.
    """
    event_type = body.get("type")
    if (
        isinstance(event_type, str)
        and event_type in _RESPONSE_EVENTS
        and isinstance(body.get("response"), Mapping)
    ):
        body = body["response"]
    kind = body.get("object")
    if context.operation and not (isinstance(kind, str) and kind in _KNOWN_OBJECTS):
        kind = _OBJECT_OF_OPERATION.get(context.operation, kind)
    served = checked_text(body.get("model"), "model", context)
    tier = _checked_tier(body.get("service_tier"), context)
    usage = body.get("usage")

    responses_operation = (
        _RESPONSES_OBJECTS.get(kind) if isinstance(kind, str) else None
    )
    if responses_operation or (kind is None and "output" in body):
        responses_context = _with_operation(context, responses_operation or "responses")
        checker = _Checker(responses_context, served)
        tools = _tools_of_body(body, checker)
        if not checker.usage_present(usage):
            return _unknown(checker.context, served, tier, tools)
        return _usage_from_counts(
            checker.context,
            checker,
            operation="responses",
            served=served,
            tier=tier,
            input_tokens=_field(usage, "input_tokens"),
            output_tokens=_field(usage, "output_tokens"),
            input_details=_field(usage, "input_tokens_details"),
            output_details=_field(usage, "output_tokens_details"),
            tools=tools,
        )

    operation = _BODY_OPERATIONS.get(kind) if isinstance(kind, str) else None
    if operation is None:
        if kind is None and _is_image_body(body):
            return _from_token_usage(body, _with_operation(context, IMAGES))
        if context.operation == DECISIONS or (
            kind is None and isinstance(body.get("answers"), list)
        ):
            return _decision_usage(body, context)
        return None
    if operation == "embeddings":
        served = _embeddings_model(served)
    checker = _Checker(_with_operation(context, operation), served)
    if kind == "chat.completion.chunk" and usage is None:
        # Only the usage chunk of a stream carries usage; the others are normal.
        return _unknown(checker.context, served, tier)
    tools = _NO_TOOLS
    if operation == "chat.completions":
        tools = _chat_tools(served)
    if not checker.usage_present(usage):
        return _unknown(checker.context, served, tier, tools)
    output_tokens = _field(usage, "completion_tokens")
    if operation == "embeddings":
        output_tokens = 0
    return _usage_from_counts(
        context,
        checker,
        operation=operation,
        served=served,
        tier=tier,
        input_tokens=_field(usage, "prompt_tokens"),
        output_tokens=output_tokens,
        input_details=_field(usage, "prompt_tokens_details"),
        output_details=_field(usage, "completion_tokens_details"),
        tools=tools,
    )


def _is_image_body(body: Mapping[str, Any]) -> bool:
    """Return whether a body without `object` is an images response billed per token.

    A GPT Image response has the images in `data` and a `usage` of input and
    output tokens. A DALL-E response has no `usage`: it is billed per image.
    """
    usage = body.get("usage")
    return (
        isinstance(body.get("data"), list)
        and isinstance(usage, Mapping)
        and "input_tokens" in usage
    )


_RESPONSE_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)

# The `object` field of a Responses API body, and the operation it comes from.
# A compaction's usage has the fields of a Responses usage.
_RESPONSES_OBJECTS = {
    "response": "responses",
    "response.compaction": "responses.compact",
}

# The `object` field of another body, and the operation it comes from.
_BODY_OPERATIONS = {
    "chat.completion": "chat.completions",
    "chat.completion.chunk": "chat.completions",
    "text_completion": "completions",
    "list": "embeddings",
}

# The `object` values that `usage_from_body` reads.
_KNOWN_OBJECTS = frozenset(_RESPONSES_OBJECTS) | frozenset(_BODY_OPERATIONS)
# The `object` of the response of each operation that reports it.
_OBJECT_OF_OPERATION = {
    "chat.completions": "chat.completion",
    "completions": "text_completion",
    "embeddings": "list",
    "responses": "response",
    "responses.compact": "response.compaction",
}


# Input, output, cached, cache write, input audio, reasoning and output audio
# tokens, in that order; an unknown input or output count is None.
_Counts = tuple[int | None, int | None, int, int, int, int, int]


def _usage_of(
    context: CallContext,
    operation: str,
    served: str | None,
    tier: str | None,
    counts: _Counts,
    tools: _ToolUse,
) -> Usage:
    inputs, outputs, cached, written, input_audio, reasoning, output_audio = counts
    other = _audio(input_audio, output_audio)
    if tools.tokens:
        other.update(tools.tokens)
    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=inputs,
        output_tokens=outputs,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
        other_tokens=other,
        tool_calls=tools.calls,
        served_model=served,
        region=context.region,
        service_tier=tier,
        operation=context.operation or operation,
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _usage_from_counts(
    context: CallContext,
    checker: _Checker,
    *,
    operation: str,
    served: str | None,
    tier: str | None,
    input_tokens: object,
    output_tokens: object,
    input_details: object,
    output_details: object,
    tools: _ToolUse,
) -> Usage:
    """Build a `Usage` from the raw values of a response, checking each count."""
    prefix = "prompt_tokens" if operation != "responses" else "input_tokens"
    out_prefix = "completion_tokens" if operation != "responses" else "output_tokens"
    inputs = checker.total(input_tokens, f"usage.{prefix}")
    outputs = checker.total(output_tokens, f"usage.{out_prefix}")
    in_details = checker.details(input_details, f"usage.{prefix}_details")
    out_details = checker.details(output_details, f"usage.{out_prefix}_details")

    in_path = f"usage.{prefix}_details"
    cache_read = checker.part(in_details, in_path, "cached_tokens", inputs)
    left = None if inputs is None else inputs - cache_read
    cache_write = checker.part(in_details, in_path, "cache_write_tokens", left)
    input_audio = checker.part(in_details, in_path, "audio_tokens", inputs)
    out_path = f"usage.{out_prefix}_details"
    reasoning = checker.part(out_details, out_path, "reasoning_tokens", outputs)
    output_audio = checker.part(out_details, out_path, "audio_tokens", outputs)

    counts = (inputs, outputs, cache_read, cache_write, input_audio, reasoning)
    return _usage_of(context, operation, served, tier, (*counts, output_audio), tools)


def _decision_usage(response: Any, context: CallContext) -> Usage:
    """Read the usage of a Decisions response, an SDK object or a JSON dict.

    Its usage has the fields of a Responses usage, but OpenAI bills a
    Decisions call by its input tokens alone, cached ones at the full input
    rate, and not its output tokens. So the `Usage` has the input tokens as
    plain input tokens and 0 output tokens, and is priced at the model's
    input rate.
    """
    # NOTE: this billing rule comes from third-party guides, not from OpenAI's
    # pricing page: apidog.com "What is the OpenAI Decisions API?" and the
    # vtcode-llm crate docs, checked 2026-12-06. They give 0.10 USD per million
    # input tokens on gpt-6-luna, its input rate, and no output, cache read or
    # cache write charge.
    usage = _field(response, "usage")
    served = checked_text(_field(response, "model"), "model", context)
    checker = _Checker(_with_operation(context, DECISIONS), served)
    if not checker.usage_present(usage):
        return _unknown(checker.context, served, context.service_tier)
    inputs = checker.total(_field(usage, "input_tokens"), "usage.input_tokens")
    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=inputs,
        output_tokens=0,
        served_model=served,
        region=context.region,
        service_tier=context.service_tier,
        operation=checker.context.operation,
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _tools_of_body(body: Mapping[str, Any], checker: _Checker) -> _ToolUse:
    items = _output_items(body.get("output"), checker)
    searches = file_searches = images = 0
    containers: set[object] = set()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "web_search_call":
            action = item.get("action")
            if (
                not isinstance(action, Mapping)
                or action.get("type", "search") == "search"
            ):
                searches += 1
        elif kind == "file_search_call":
            file_searches += 1
        elif kind == "code_interpreter_call":
            containers.add(item.get("container_id"))
        elif kind == "image_generation_call":
            images += 1

    counts = _ToolCounts(searches, file_searches, len(containers), images)
    return _tool_use(counts, body.get("tool_usage"), checker)


def _with_operation(context: CallContext, operation: str) -> CallContext:
    if context.operation is not None:
        return context
    return CallContext(
        provider=context.provider,
        operation=operation,
        model=context.model,
        region=context.region,
        service_tier=context.service_tier,
        headers=context.headers,
        batch=context.batch,
    )


def _field(record: object, name: str) -> Any:
    """Return a field of an SDK object or of a JSON dict, or None."""
    if isinstance(record, Mapping):
        return record.get(name)
    if record is None or isinstance(record, _SCALARS):
        return None
    return getattr(record, name, None)


# Values that cannot hold fields: a `usage` or details of one of these types
# is malformed.
_SCALARS = (str, bytes, bytearray, int, float, list, tuple)

# (model, field, problem) already logged at WARNING; repeats go to DEBUG, so
# that a provider sending the same malformed field on every response logs it
# once. Bounded, so that endless distinct model ids keep memory flat.
_logged: set[tuple[str, str, str]] = set()
# Reentrant, as a stream finalizer run by garbage collection can log too.
_logged_lock = new_lock()
_MAX_LOGGED = 1024


class _Checker:
    """Validates the counts of one response and logs each field it cannot trust."""

    __slots__ = ("context", "served")

    def __init__(self, context: CallContext, served: str | None) -> None:
        self.context = context
        self.served = served

    def usage_present(self, usage: object) -> bool:
        """Return whether `usage` can hold counts; log it when missing or malformed."""
        if usage is None:
            self.report("usage", "is missing", "all token counts are unknown")
            return False
        if isinstance(usage, _SCALARS):
            problem = describe_invalid(usage)
            self.report("usage", problem, "all token counts are unknown")
            return False
        return True

    def details(self, details: object, path: str) -> object:
        """Return a details object or dict, or None when it is absent or malformed."""
        if details is not None and isinstance(details, _SCALARS):
            self.report(path, describe_invalid(details), "its counts are taken as 0")
            return None
        return details

    def total(self, value: object, path: str) -> int | None:
        """Return an input or output count, or None (unknown) when it is invalid."""
        if value is None:
            self.report(path, "is missing", "the count is unknown")
            return None
        return self.count(value, path, "the count is unknown")

    def part(self, details: object, path: str, name: str, limit: int | None) -> int:
        """Return a count that is part of another, cut to `limit` when larger."""
        value = _field(details, name)
        if value is None:
            return 0
        count = self.count(value, f"{path}.{name}", "taken as 0")
        if count is None:
            return 0
        if limit is not None and count > limit:
            self.report(
                f"{path}.{name}",
                f"is {count}, more than the {limit} tokens it is part of",
                f"taken as {limit}",
            )
            return limit
        return count

    def count(self, value: object, path: str, effect: str) -> int | None:
        """Return `value` if it is a whole number of at least 0, else log it."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        self.report(path, describe_invalid(value), effect)
        return None

    def report(self, path: str, problem: str, effect: str) -> None:
        model = self.context.model or self.served or "unknown"
        key = (model, path, problem)
        with _logged_lock:
            repeated = key in _logged
            if not repeated and len(_logged) < _MAX_LOGGED:
                _logged.add(key)
        logger.log(
            logging.DEBUG if repeated else logging.WARNING,
            "The %s %s response for model %s: field %s %s; %s. The request is "
            "still counted.",
            PROVIDER,
            self.context.operation or "API",
            model,
            path,
            problem,
            effect,
        )


def report_missing_usage(
    context: CallContext, served: str | None, problem: str
) -> None:
    """Log that a response carried no usage, with the model and `problem`.

    As for an invalid field, the first time for a model and problem is logged
    at WARNING and the repeats at DEBUG.
    """
    _Checker(context, served).report("usage", problem, "all token counts are unknown")


def checked_text(value: object, path: str, context: CallContext) -> str | None:
    """Return a non-empty string, else None, and log a value that is not a string.

    None is not logged, because it is how a response leaves the field out.
    """
    if value is not None and not isinstance(value, str):
        _Checker(context, None).report(path, describe_invalid(value), "ignored")
    return _text(value)


def _checked_tier(value: object, context: CallContext) -> str | None:
    """Return the service tier a response names, else the one of `context`."""
    return checked_text(value, "service_tier", context) or context.service_tier


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
