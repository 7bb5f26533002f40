"""The OpenAI chat model for the llmfy agent, on the official `openai` client.

    from llmfy import LLMfy
    from llmfy_openai.agent import OpenAIChatModel, OpenAIChatConfig

    llm = OpenAIChatModel(model="gpt-4o-mini", config=OpenAIChatConfig(temperature=0.7))
    agent = LLMfy(llm, system_message="You are a helpful assistant.")

Requests go through `client.chat.completions.create`, so the llmfy-openai
instrumentation counts each of them once; this module never records usage.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import attrs
import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessage,
    ChatCompletionMessageParam,
)
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChoiceChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from llmfy_core import CallContext, ProviderCallError
from llmfy_core.agent import (
    ChatResponse,
    ClosingChunks,
    Message,
    Role,
    StreamChunk,
    read_usage,
    string_list_field,
)
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger

# A logger whose calls never raise, even when a handler of the application does.
logger = get_logger("llmfy.openai")

__all__ = ["OpenAIChatConfig", "OpenAIChatModel"]

PROVIDER = "openai"
OPERATION = "chat.completions"


def _optional_range(low: float, high: float) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        # bool is a subclass of int, so True would pass as 1 without the first
        # check. NaN fails every comparison, so the range check rejects it.
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not low <= value <= high:
            raise ValueError(
                f"OpenAIChatConfig.{attribute.name} must be a number between {low} "
                f"and {high}, got {value!r}."
            )

    return check


def _optional_positive(
    instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < 1
    ):
        raise ValueError(
            f"OpenAIChatConfig.{attribute.name} must be a whole number of at least 1, "
            f"got {value!r}."
        )


@attrs.frozen(slots=True)
class OpenAIChatConfig:
    """Sampling settings sent with every Chat Completions request.

    A field left as None is not sent, so the API default applies. `max_tokens`
    is sent as `max_completion_tokens`, the parameter that current models
    accept (the older `max_tokens` is rejected by reasoning models).
    """

    temperature: float | None = attrs.field(
        default=None, validator=_optional_range(0, 2)
    )
    top_p: float | None = attrs.field(default=None, validator=_optional_range(0, 1))
    max_tokens: int | None = attrs.field(default=None, validator=_optional_positive)
    stop: tuple[str, ...] = string_list_field()

    def request_parameters(self) -> dict[str, Any]:
        """Return the settings as keyword arguments of `chat.completions.create`."""
        parameters: dict[str, Any] = {}
        if self.temperature is not None:
            parameters["temperature"] = self.temperature
        if self.top_p is not None:
            parameters["top_p"] = self.top_p
        if self.max_tokens is not None:
            parameters["max_completion_tokens"] = self.max_tokens
        if self.stop:
            parameters["stop"] = list(self.stop)
        return parameters


class OpenAIChatModel:
    """A chat model served by the OpenAI Chat Completions API.

    Without `client`, an `openai.OpenAI` client is created on the first
    request, from `base_url` and `api_key` or else from the `OPENAI_API_KEY`
    and `OPENAI_BASE_URL` environment variables. Failures are raised as
    `llmfy_core.ProviderCallError`, with the `openai` exception as the cause.
    """

    provider = PROVIDER

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        config: OpenAIChatConfig | None = None,
        client: openai.OpenAI | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(
                "model must be an OpenAI model id such as 'gpt-4o-mini', got "
                f"{model!r}."
            )
        if client is not None and (base_url is not None or api_key is not None):
            raise ValueError(
                "Pass either client= or base_url=/api_key= to OpenAIChatModel, not "
                "both: base_url and api_key configure the client that it creates."
            )
        self.model = model
        self.config = config or OpenAIChatConfig()
        self._client = client
        self._base_url = base_url
        self._api_key = api_key
        self._client_lock = new_lock()

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, config={self.config!r})"

    @property
    def client(self) -> openai.OpenAI:
        """The `openai.OpenAI` client, created on first use when none was given."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = openai.OpenAI(
                        base_url=self._base_url, api_key=self._api_key
                    )
                except openai.OpenAIError as error:
                    raise ProviderCallError(
                        PROVIDER,
                        self.model,
                        f"Could not create the OpenAI client for model {self.model!r}: "
                        f"{error} Set OPENAI_API_KEY, or pass api_key= or client= to "
                        "OpenAIChatModel.",
                    ) from error
            return self._client

    def generate(self, messages: Sequence[Message]) -> ChatResponse:
        """Send the conversation with `chat.completions.create` and return the reply."""
        client = self.client
        try:
            completion = client.chat.completions.create(
                model=self.model,
                messages=_message_params(messages),
                **self.config.request_parameters(),
            )
        except openai.OpenAIError as error:
            raise self._call_error("chat completion", error) from error
        except json.JSONDecodeError as error:
            # The SDK (openai 3.63) parses a body of a JSON content type with
            # `json.loads`, and lets its error escape.
            raise self._invalid_reply_error(
                f"a body that is not valid JSON ({error})"
            ) from error
        return self._response(completion)

    def _response(self, completion: object) -> ChatResponse:
        # The SDK (openai 3.63) returns the body as a str when its content type
        # is not JSON, and builds a ChatCompletion from any JSON object without
        # checking its fields.
        if isinstance(completion, str):
            raise self._invalid_reply_error("a body that is not JSON")
        if not isinstance(completion, ChatCompletion):
            if isinstance(completion, list):
                raise self._invalid_reply_error("a JSON array")
            name = type(completion).__name__
            raise self._invalid_reply_error(f"a body of type {name}")
        content = ""
        stop_reason = None
        if completion.choices:
            choice = self._first_choice(completion.choices)
            if not isinstance(choice, Choice):
                raise self._invalid_reply_error("a choice that is not an object")
            content = self._choice_text(choice)
            stop_reason = choice.finish_reason
        # The SDK sets `_request_id` from the x-request-id header, which the
        # instrumentation records too, so both usages name the same request.
        context = self._context(getattr(completion, "_request_id", None))
        return ChatResponse(
            result=Message(Role.ASSISTANT, content),
            usage=read_usage(completion, context),
            stop_reason=stop_reason,
            raw=completion,
        )

    def stream(self, messages: Sequence[Message]) -> Iterator[StreamChunk]:
        """Send a streaming request now, and return an iterator over its chunks.

        The request sets `stream_options={"include_usage": True}`, because
        without it the API reports no usage for a stream.
        """
        client = self.client
        try:
            stream = client.chat.completions.create(
                model=self.model,
                messages=_message_params(messages),
                stream=True,
                stream_options={"include_usage": True},
                **self.config.request_parameters(),
            )
        except openai.OpenAIError as error:
            raise self._call_error("streaming chat completion", error) from error
        return ClosingChunks(self._chunks(stream), stream.close)

    def _chunks(self, stream: openai.Stream[Any]) -> Generator[StreamChunk, None, None]:
        context = self._context(stream.response.headers.get("x-request-id"))
        finished = False
        try:
            for chunk in stream:
                # The usage arrives in a chunk with no choices; it is not always
                # the last chunk, so the stream is read to its end.
                if chunk.usage is not None:
                    yield StreamChunk(usage=read_usage(chunk, context), raw=chunk)
                if not chunk.choices:
                    continue
                choice = self._first_choice(chunk.choices)
                text, finish_reason = self._chunk_delta(choice)
                finished = finished or finish_reason is not None
                yield StreamChunk(text=text, stop_reason=finish_reason)
        except openai.OpenAIError as error:
            raise self._call_error("streaming chat completion", error) from error
        finally:
            stream.close()
        if not finished:
            # The SDK raises no error when the events stop early, as when the
            # connection closes cleanly between two of them.
            raise ProviderCallError(
                PROVIDER,
                self.model,
                f"OpenAI streaming chat completion for model {self.model!r} at "
                f"{self.client.base_url} ended before a chunk with a finish_reason, "
                "so the reply may be cut short. Retry the request; if this repeats, "
                "check for a proxy or network device that closes long responses.",
            )

    def _choice_text(self, choice: Choice) -> str:
        """Return the text of a choice: its content, else its refusal, else ""."""
        message = choice.message
        if message is None:
            raise self._invalid_reply_error("a choice without a message")
        if not isinstance(message, ChatCompletionMessage):
            raise self._invalid_reply_error("a message that is not an object")
        for field in ("content", "refusal"):
            text = getattr(message, field, None)
            if text is not None and not isinstance(text, str):
                name = type(text).__name__
                raise self._invalid_reply_error(f"message {field} of type {name}")
            if text:
                return text
        return ""

    def _chunk_delta(self, choice: Any) -> tuple[str, str | None]:
        """Return the text and the finish reason of a stream chunk's choice.

        The SDK builds chunks from the server's JSON without checking it.
        """
        if not isinstance(choice, ChoiceChunk):
            raise self._invalid_reply_error("a chunk whose choice is not an object")
        # Typed as never None, but None when the server sends null or no delta.
        delta: ChoiceDelta | None = getattr(choice, "delta", None)
        if delta is None:
            raise self._invalid_reply_error("a chunk without a delta")
        if not isinstance(delta, ChoiceDelta):
            raise self._invalid_reply_error("a delta that is not an object")
        content: object = delta.content
        if content is None:
            return "", choice.finish_reason
        if not isinstance(content, str):
            name = type(content).__name__
            raise self._invalid_reply_error(f"delta content of type {name}")
        return content, choice.finish_reason

    def _first_choice(self, choices: object) -> object:
        # The SDK keeps `choices` as the server sent it, which may be an object.
        if not isinstance(choices, list):
            name = type(choices).__name__
            raise self._invalid_reply_error(f"choices of type {name}")
        return choices[0]

    def _invalid_reply_error(self, described: str) -> ProviderCallError:
        return ProviderCallError(
            PROVIDER,
            self.model,
            f"OpenAI chat completion for model {self.model!r} at "
            f"{self.client.base_url} returned {described}, which is not a Chat "
            "Completions response. Check that the base URL is an OpenAI-compatible "
            "API, and any proxy in front of it.",
        )

    def _context(self, request_id: str | None) -> CallContext:
        headers = {"x-request-id": request_id} if isinstance(request_id, str) else {}
        return CallContext(
            provider=PROVIDER, operation=OPERATION, model=self.model, headers=headers
        )

    def _call_error(
        self, operation: str, error: openai.OpenAIError
    ) -> ProviderCallError:
        base_url = str(self.client.base_url)
        return ProviderCallError(
            PROVIDER,
            self.model,
            f"OpenAI {operation} request failed for model {self.model!r} at "
            f"{base_url}: {str(error).rstrip('.')}. {_hint(error, base_url)}",
        )


def _hint(error: openai.OpenAIError, base_url: str) -> str:
    if isinstance(error, openai.AuthenticationError):
        return "Check OPENAI_API_KEY, or the api_key of the client."
    if isinstance(error, openai.PermissionDeniedError):
        return "Check that the API key's project may use this model."
    if isinstance(error, openai.NotFoundError):
        return "Check the model id, and that the account has access to it."
    if isinstance(error, openai.RateLimitError):
        return "Retry later, or check the account's rate limits and quota."
    if isinstance(error, openai.BadRequestError):
        return "Check the messages and the settings in OpenAIChatConfig."
    if isinstance(error, openai.APITimeoutError):
        return "Retry, or give the client a longer timeout."
    if isinstance(error, openai.APIConnectionError):
        return f"Check the network connection and the base URL {base_url}."
    if isinstance(error, openai.InternalServerError):
        return "The service failed; retry later."
    return "The cause holds the provider's error."


def _message_params(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    params: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            params.append({"role": "system", "content": message.content})
        elif message.role is Role.USER:
            params.append({"role": "user", "content": message.content})
        else:
            params.append({"role": "assistant", "content": message.content})
    return params
