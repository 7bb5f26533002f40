"""Usage extraction from OpenAI responses: SDK objects and plain JSON bodies.

Chat Completions, legacy Completions and Embeddings report `prompt_tokens`
(cached, cache write and audio tokens included) and `completion_tokens`
(reasoning and audio tokens included). The Responses API reports
`input_tokens` and `output_tokens` with the same inclusions. Both match the
inclusion rules of `llmfy_core.model`, so the counts are copied, never summed.

SDK objects are read attribute by attribute and never converted to dicts;
plain dicts (Batch API output lines, stored bodies) take a separate path.
Nothing here imports `openai`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmfy_core import CallContext, Usage

PROVIDER = "openai"

# Output item types of the Responses API that are billed per call, by tool name.
WEB_SEARCH = "web_search"
FILE_SEARCH = "file_search"
CODE_INTERPRETER = "code_interpreter"

_Extractor = Callable[[Any, CallContext], Usage]


def extract_usage(response: Any, context: CallContext) -> Usage | None:
    """Return the usage of one OpenAI response, or None when it is not one.

    `response` is a Chat Completions, Completions, Responses or Embeddings
    object of the SDK, a stream chunk or final `Response` of a stream, or the
    same shapes as plain dicts.
    """
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
    fields = getattr(response_type, "model_fields", None)
    if not fields or "usage" not in fields:
        return None
    if "output" in fields:
        return _from_responses_object
    if "choices" in fields:
        return _from_chat_object
    if "data" in fields:
        return _from_embeddings_object
    return None


_EXTRACTORS: dict[type, _Extractor] = {}


def _from_chat_object(response: Any, context: CallContext) -> Usage:
    usage = response.usage
    served = response.model
    tier = response.service_tier or context.service_tier
    if usage is None:
        return _unknown(context, served, tier)

    input_tokens = usage.prompt_tokens
    output_tokens = usage.completion_tokens
    cache_read = cache_write = input_audio = reasoning = output_audio = 0
    prompt_details = usage.prompt_tokens_details
    if prompt_details is not None:
        cache_read = prompt_details.cached_tokens or 0
        cache_write = getattr(prompt_details, "cache_write_tokens", None) or 0
        input_audio = prompt_details.audio_tokens or 0
    completion_details = usage.completion_tokens_details
    if completion_details is not None:
        reasoning = completion_details.reasoning_tokens or 0
        output_audio = completion_details.audio_tokens or 0

    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        other_tokens=_audio(input_audio, output_audio),
        served_model=served,
        region=context.region,
        service_tier=tier,
        operation=context.operation or "chat.completions",
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _from_responses_object(response: Any, context: CallContext) -> Usage:
    usage = response.usage
    served = response.model
    tier = response.service_tier or context.service_tier
    tool_calls = _tool_calls_of_object(response)
    if usage is None:
        return _unknown(context, served, tier, tool_calls)

    cache_read = cache_write = reasoning = 0
    input_details = getattr(usage, "input_tokens_details", None)
    if input_details is not None:
        cache_read = getattr(input_details, "cached_tokens", None) or 0
        cache_write = getattr(input_details, "cache_write_tokens", None) or 0
    output_details = getattr(usage, "output_tokens_details", None)
    if output_details is not None:
        reasoning = getattr(output_details, "reasoning_tokens", None) or 0

    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        tool_calls=tool_calls,
        served_model=served,
        region=context.region,
        service_tier=tier,
        operation=context.operation or "responses",
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _from_embeddings_object(response: Any, context: CallContext) -> Usage:
    usage = response.usage
    served = response.model
    if usage is None:
        return _unknown(context, served, context.service_tier)

    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=usage.prompt_tokens,
        output_tokens=0,
        served_model=served,
        region=context.region,
        service_tier=context.service_tier,
        operation=context.operation or "embeddings",
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _tool_calls_of_object(response: Any) -> dict[str, int]:
    """Count the built-in tool calls of a Responses object that are billed per call.

    `tool_usage.web_search.num_requests` is OpenAI's own count of billable
    searches and wins where present. Without it, each `web_search_call` item
    whose action is a search counts once. Code Interpreter is billed per
    container, so distinct `container_id`s are counted.
    """
    output = getattr(response, "output", None) or ()
    searches = file_searches = 0
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

    reported = _reported_web_searches(getattr(response, "tool_usage", None))
    if reported is not None:
        searches = reported
    return _tool_counts(searches, file_searches, len(containers))


def _reported_web_searches(tool_usage: Any) -> int | None:
    if tool_usage is None:
        return None
    if isinstance(tool_usage, Mapping):
        web_search = tool_usage.get("web_search")
        count = (
            web_search.get("num_requests") if isinstance(web_search, Mapping) else None
        )
    else:
        count = getattr(getattr(tool_usage, "web_search", None), "num_requests", None)
    return count if isinstance(count, int) else None


def _tool_counts(searches: int, file_searches: int, containers: int) -> dict[str, int]:
    counts = {}
    if searches:
        counts[WEB_SEARCH] = searches
    if file_searches:
        counts[FILE_SEARCH] = file_searches
    if containers:
        counts[CODE_INTERPRETER] = containers
    return counts


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
    tool_calls: Mapping[str, int] | None = None,
) -> Usage:
    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=None,
        output_tokens=None,
        tool_calls=tool_calls or {},
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
    (also the `response` of a `response.completed` stream event) and
    Embeddings bodies. Returns None for a body that matches none of these, and a
    `Usage` with unknown token counts for one of these without `usage`.
    """
    if body.get("type") in _RESPONSE_EVENTS and isinstance(
        body.get("response"), Mapping
    ):
        body = body["response"]
    kind = body.get("object")
    served = _text(body.get("model"))
    tier = _text(body.get("service_tier")) or context.service_tier
    usage = body.get("usage")

    if kind == "response" or (kind is None and "output" in body):
        tool_calls = _tool_calls_of_body(body)
        if not isinstance(usage, Mapping):
            return _unknown(
                _with_operation(context, "responses"), served, tier, tool_calls
            )
        return _usage_from_counts(
            context,
            operation="responses",
            served=served,
            tier=tier,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            input_details=usage.get("input_tokens_details"),
            output_details=usage.get("output_tokens_details"),
            tool_calls=tool_calls,
        )

    operation = _BODY_OPERATIONS.get(kind) if isinstance(kind, str) else None
    if operation is None:
        return None
    if not isinstance(usage, Mapping):
        return _unknown(_with_operation(context, operation), served, tier)
    output_tokens = usage.get("completion_tokens")
    if operation == "embeddings":
        output_tokens = 0
    return _usage_from_counts(
        context,
        operation=operation,
        served=served,
        tier=tier,
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=output_tokens,
        input_details=usage.get("prompt_tokens_details"),
        output_details=usage.get("completion_tokens_details"),
        tool_calls={},
    )


_RESPONSE_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)

# The `object` field of a body, and the operation it comes from.
_BODY_OPERATIONS = {
    "chat.completion": "chat.completions",
    "chat.completion.chunk": "chat.completions",
    "text_completion": "completions",
    "list": "embeddings",
}


def _usage_from_counts(
    context: CallContext,
    *,
    operation: str,
    served: str | None,
    tier: str | None,
    input_tokens: object,
    output_tokens: object,
    input_details: object,
    output_details: object,
    tool_calls: Mapping[str, int],
) -> Usage:
    input_details = input_details if isinstance(input_details, Mapping) else {}
    output_details = output_details if isinstance(output_details, Mapping) else {}
    return Usage(
        provider=PROVIDER,
        model=context.model or served or "unknown",
        input_tokens=_count_or_none(input_tokens),
        output_tokens=_count_or_none(output_tokens),
        cache_read_tokens=_count(input_details.get("cached_tokens")),
        cache_write_tokens=_count(input_details.get("cache_write_tokens")),
        reasoning_tokens=_count(output_details.get("reasoning_tokens")),
        other_tokens=_audio(
            _count(input_details.get("audio_tokens")),
            _count(output_details.get("audio_tokens")),
        ),
        tool_calls=tool_calls,
        served_model=served,
        region=context.region,
        service_tier=tier,
        operation=context.operation or operation,
        request_id=context.headers.get("x-request-id"),
        batch=context.batch,
    )


def _tool_calls_of_body(body: Mapping[str, Any]) -> dict[str, int]:
    output = body.get("output")
    items: Iterable[Any] = output if isinstance(output, list) else ()
    searches = file_searches = 0
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

    reported = _reported_web_searches(body.get("tool_usage"))
    if reported is not None:
        searches = reported
    return _tool_counts(searches, file_searches, len(containers))


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


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _count_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
