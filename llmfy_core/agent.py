"""The llmfy agent: a system-message template in front of a provider's chat model.

`LLMfy` renders its system message, builds the conversation and hands it to a
`ChatModel`. The provider plugins supply the models (`llmfy_openai.agent`,
`llmfy_bedrock.agent`), each built on the provider's official SDK client, so
that the plugin's instrumentation counts every request once. The agent itself
never records usage into a tracker: it only reads the usage of each response
to attach it to the result.
"""

from __future__ import annotations

import keyword
import logging
import re
import unicodedata
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import attrs

from llmfy_core.errors import TemplateVariableError
from llmfy_core.model import CallContext, Usage
from llmfy_core.pricing import closest_name
from llmfy_core.recording import extract_usage, unknown_usage

logger = logging.getLogger("llmfy.agent")

__all__ = [
    "ChatModel",
    "ChatResponse",
    "ChatStream",
    "ClosingChunks",
    "LLMfy",
    "Message",
    "Role",
    "StreamChunk",
    "read_usage",
]

# `{{name}}`, with optional spaces inside the braces. Only a `name` that is a
# Python identifier (`str.isidentifier`) is a placeholder, as input variables
# are, so that every placeholder can be passed as a keyword argument. The
# regex takes any run of other characters and leaves that test to the code,
# because `\w` does not match the combining marks that identifiers may
# contain, such as the vowel sign in the Hindi "नाम".
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

# A name in any number of braces, to find `{name}` written for `{{name}}`. A
# match starts only at the first brace of a run, because a start at each brace
# would backtrack over the rest of the run, in time quadratic in its length.
_BRACED_NAME = re.compile(r"(?<!\{)(\{+)\s*([^{}\s]+)\s*(\}+)")


def _normalize_name(name: str) -> str:
    """Return `name` in NFKC, the form Python gives identifiers and keywords.

    Python normalizes each identifier in source code to NFKC, so `café=`
    arrives as the composed "é" however the file spells it. Declared names,
    placeholders and keyword arguments are compared in that form.
    """
    return unicodedata.normalize("NFKC", name)


def _placeholder_names(template: str) -> list[str]:
    """Return the names of the `{{name}}` placeholders of `template`, in NFKC."""
    names = (match.group(1) for match in _PLACEHOLDER.finditer(template))
    return [_normalize_name(name) for name in names if name.isidentifier()]


class Role(StrEnum):
    """The author of a message in a conversation."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


def string_list_field() -> Any:
    """Return an attrs field of a chat model config for a list of strings.

    Stop sequences take this field: the value is kept as a tuple, and a single
    str raises ValueError, because tuple("END") would send "E", "N" and "D".
    """
    return attrs.field(
        default=(), converter=_tuple_unless_text, validator=_check_string_list
    )


def _tuple_unless_text(value: Any) -> Any:
    # A str is left for the validator to reject.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _check_string_list(
    instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    owner = type(instance).__name__
    if isinstance(value, str):
        raise ValueError(
            f"{owner}.{attribute.name} must be a list of strings, got the str "
            f"{value!r}; write {attribute.name}=[{value!r}]."
        )
    if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError(
            f"{owner}.{attribute.name} must be a list of strings such as ['END'], "
            f"got {value!r}."
        )


def _convert_role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        valid = ", ".join(repr(role.value) for role in Role)
        raise ValueError(
            f"Invalid message role {value!r}. Valid roles are {valid}, or the "
            "members of llmfy.Role."
        ) from None


def _validate_content(instance: Message, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"Message content must be a str, got {type(value).__name__}: {value!r}"
        )


@attrs.frozen(slots=True)
class Message:
    """One turn of a conversation: its role and its text.

    `role` accepts a `Role` or its value (`"user"`, `"assistant"`, `"system"`).
    """

    role: Role = attrs.field(converter=_convert_role)
    content: str = attrs.field(validator=_validate_content)


@attrs.frozen(slots=True)
class ChatResponse:
    """A model's reply to one request.

    `result` is the assistant message, so `response.result.content` is the
    reply text. `usage` is the usage that the provider reported for this
    request, with token counts of None when no plugin could read it.
    `stop_reason` is the provider's own value (`"stop"`, `"end_turn"`, ...) and
    `raw` the provider's response object, for fields the agent does not map.
    """

    result: Message
    usage: Usage
    stop_reason: str | None = None
    raw: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(slots=True)
class StreamChunk:
    """A piece of a streamed reply: text as it arrives, or the final usage.

    A provider model yields chunks with `text` while the reply streams, and
    one chunk with `usage` set (and `raw`, the provider's final event) when
    the provider reports it.
    """

    text: str = ""
    usage: Usage | None = None
    stop_reason: str | None = None
    raw: Any = attrs.field(default=None, eq=False, repr=False)


@runtime_checkable
class ChatModel(Protocol):
    """The interface that `LLMfy` requires of a provider's chat model.

    Implementations send requests through the provider's official SDK client,
    so that the provider plugin's instrumentation counts them, and never
    record usage themselves. Provider failures are raised as
    `llmfy_core.ProviderCallError` with the provider's exception as the cause.
    """

    @property
    def provider(self) -> str:
        """The provider name as llmfy uses it (`"openai"`, `"bedrock"`)."""
        ...

    @property
    def model(self) -> str:
        """The model id sent to the provider."""
        ...

    def generate(self, messages: Sequence[Message]) -> ChatResponse:
        """Send the conversation and return the complete reply."""
        ...

    def stream(self, messages: Sequence[Message]) -> Iterator[StreamChunk]:
        """Send the conversation now, and return an iterator over the reply.

        The request must be sent before this returns, so that it belongs to
        the trackers active at the call, wherever the iterator is consumed.
        The iterator's `close()`, if it has one, must release the provider's
        stream also before the first chunk is read (see `ClosingChunks`).
        """
        ...


class ClosingChunks:
    """The chunks of a streamed reply, with a `close()` that closes the SDK stream.

    A generator closed before its first item skips its `finally` block, so an
    unread stream would keep its connection, and stay uncounted, until garbage
    collection. `close` is the SDK stream's close method, which must be safe
    to call twice.
    """

    def __init__(
        self, chunks: Generator[StreamChunk, None, None], close: Callable[[], object]
    ) -> None:
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        return next(self._chunks)

    def close(self) -> None:
        """Close the chunk generator, then the SDK stream."""
        try:
            self._chunks.close()
        finally:
            self._close()


def read_usage(response: Any, context: CallContext) -> Usage:
    """Read the usage of one provider response through the plugins' `usage_extract`.

    Return a `Usage` with unknown token counts when no plugin reads the
    response, or when reading it fails (logged on `llmfy.agent`), so that a
    fault in usage reading never breaks the model call.
    """
    try:
        usage = extract_usage(response, context)
    except Exception as error:
        logger.warning(
            "reading the usage of a %s response for model %s failed: %r",
            context.provider,
            context.model,
            error,
        )
        return unknown_usage(context)
    if usage is None:
        logger.debug(
            "no plugin read the usage of a %s response for model %s",
            context.provider,
            context.model,
        )
        return unknown_usage(context)
    return usage


class ChatStream:
    """A streamed reply: iterate over it to receive the text as it arrives.

    The request was sent when the stream was created. Once the iteration has
    finished, `response` contains the complete reply with its usage. Close the
    stream (or leave a `with` block) to stop reading early.
    """

    def __init__(
        self, chunks: Iterator[StreamChunk], provider: str, model: str
    ) -> None:
        self._chunks = chunks
        self._context = CallContext(provider=provider, model=model)
        self._parts: list[str] = []
        self._usage: Usage | None = None
        self._stop_reason: str | None = None
        self._raw: Any = None
        self._response: ChatResponse | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._finish()
                raise
            if chunk.usage is not None:
                self._usage = chunk.usage
                self._raw = chunk.raw
            if chunk.stop_reason is not None:
                self._stop_reason = chunk.stop_reason
            if chunk.text:
                self._parts.append(chunk.text)
                return chunk.text

    def _finish(self) -> None:
        if self._response is not None:
            return
        self._response = ChatResponse(
            result=Message(role=Role.ASSISTANT, content="".join(self._parts)),
            usage=self._usage or unknown_usage(self._context),
            stop_reason=self._stop_reason,
            raw=self._raw,
        )

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    @property
    def response(self) -> ChatResponse:
        """The complete reply; raises RuntimeError before the stream has ended."""
        if self._response is None:
            raise RuntimeError(
                "The stream has not ended yet: iterate over it to the end before "
                "reading `response`."
            )
        return self._response

    def close(self) -> None:
        """Stop reading the reply and release the connection."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# Parameters of `LLMfy.chat`, `invoke` and their stream forms, which a
# variable passed as a keyword argument of the same name would collide with.
_PARAMETER_NAMES = frozenset({"self", "messages", "contents"})


def _declared_variables(input_variables: Iterable[str] | None) -> tuple[str, ...]:
    if input_variables is None:
        return ()
    if isinstance(input_variables, str):
        raise TemplateVariableError(
            "input_variables must be a list of names, got the str "
            f"{input_variables!r}; write input_variables=[{input_variables!r}]."
        )
    names: list[str] = []
    for name in input_variables:
        if not isinstance(name, str) or not name.isidentifier():
            raise TemplateVariableError(
                f"Invalid input variable name {name!r}: names must be Python "
                "identifiers, such as 'info' or 'user_name'."
            )
        # Python tests for keywords before it normalizes an identifier to NFKC,
        # but `__debug__` and the parameter names are compared after, because
        # `messages=` written with a fullwidth "m" collides with `messages`.
        normalized = _normalize_name(name)
        if keyword.iskeyword(name) or normalized == "__debug__":
            # `chat(messages, class="x")` is a syntax error, and so is
            # `__debug__="x"`, a name Python reserves although it is no keyword.
            # Soft keywords such as `match` are valid keyword arguments, so
            # they are kept.
            kind = "a keyword" if keyword.iskeyword(name) else "reserved"
            raise TemplateVariableError(
                f"Invalid input variable name {name!r}: it is {kind} in Python, so "
                "it cannot be written as a keyword argument of chat() or invoke(). "
                f"Rename it, such as {name + '_'!r}, in input_variables and in "
                "the system message."
            )
        if normalized in _PARAMETER_NAMES:
            raise TemplateVariableError(
                f"Invalid input variable name {name!r}: it is a parameter of "
                "chat() or invoke() (self, messages, contents), so it cannot be "
                f"passed as a keyword argument. Rename it, such as "
                f"{name + '_text'!r}, in input_variables and in the system message."
            )
        if normalized not in names:
            names.append(normalized)
    return tuple(names)


def _check_single_braces(template: str, input_variables: Sequence[str]) -> None:
    """Raise TemplateVariableError for a declared name in single braces, `{info}`.

    Such text is not a placeholder, so it would be sent as written. A name with
    two or more braces on each side contains a placeholder. Braces around
    anything else, such as a JSON example or an undeclared name, are left alone.
    """
    for match in _BRACED_NAME.finditer(template):
        opening, written, closing = match.groups()
        name = _normalize_name(written)
        if name not in input_variables or min(len(opening), len(closing)) >= 2:
            continue
        raise TemplateVariableError(
            f"The system message contains {match.group(0)}, which is not a "
            "placeholder, so it would be sent as written instead of the value of the "
            f"input variable {name!r}. Write {{{{{name}}}}}, with double braces."
        )


def _misspelt_variables_hint(missing: Sequence[str], unexpected: Sequence[str]) -> str:
    """Return " Did you mean ...?" pairing each unexpected name with a missing one.

    A keyword argument such as `inf=` given where `info=` is missing is most
    likely a misspelling, so the message names the variable it was meant for.
    """
    if not unexpected:
        return ""
    pairs = []
    for name in unexpected:
        close = closest_name(name, missing)
        if close:
            pairs.append(f"{close}= instead of {name}=")
    if pairs:
        return f" Did you mean {' and '.join(pairs)}?"
    listed = ", ".join(map(repr, unexpected))
    return f" Unexpected keyword argument(s) given: {listed}."


class LLMfy:
    """An agent: a chat model with a system message that may contain variables.

    `system_message` may contain `{{name}}` placeholders. Every placeholder
    must be listed in `input_variables`, and no listed variable may be
    written in single braces (`{name}`), checked here. Every listed variable
    must be given as a keyword argument on each call, checked on the call.
    These checks raise `TemplateVariableError` (a ValueError). Values are
    inserted literally. The messages of `chat` and the text of `invoke` are
    not templates and are sent as written.
    """

    def __init__(
        self,
        model: ChatModel,
        system_message: str | None = None,
        input_variables: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(model, ChatModel):
            raise TypeError(
                f"LLMfy needs a chat model such as llmfy_openai.agent.OpenAIChatModel "
                f"or llmfy_bedrock.agent.BedrockConverseModel, got "
                f"{type(model).__name__}."
            )
        if system_message is not None and not isinstance(system_message, str):
            raise TypeError(
                "system_message must be a str or None, got "
                f"{type(system_message).__name__}."
            )
        self.model = model
        self.system_message = system_message
        self.input_variables = _declared_variables(input_variables)
        self._check_placeholders()

    def _check_placeholders(self) -> None:
        if self.system_message is None:
            return
        for name in _placeholder_names(self.system_message):
            if name not in self.input_variables:
                declared = ", ".join(self.input_variables) or "none"
                raise TemplateVariableError(
                    f"The system message uses the placeholder {{{{{name}}}}}, but "
                    f"{name!r} is not in input_variables (declared: {declared}). "
                    f"Add {name!r} to input_variables."
                )
        _check_single_braces(self.system_message, self.input_variables)

    def render_system_message(self, **variables: Any) -> str | None:
        """Return the system message with each `{{name}}` replaced by its value.

        Raises TemplateVariableError when a declared variable is missing or an
        undeclared one is given. Each value is converted with `str()` and
        inserted as is: braces in a value are never read as placeholders.
        """
        variables = {_normalize_name(name): value for name, value in variables.items()}
        self._check_variables(variables)
        if self.system_message is None:
            return None
        values = {name: str(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if not name.isidentifier():
                return match.group(0)
            return values[_normalize_name(name)]

        return _PLACEHOLDER.sub(replace, self.system_message)

    def _check_variables(self, variables: Mapping[str, Any]) -> None:
        expected = ", ".join(self.input_variables) or "none"
        missing = [name for name in self.input_variables if name not in variables]
        unexpected = [name for name in variables if name not in self.input_variables]
        if missing:
            raise TemplateVariableError(
                f"Missing input variable(s) {', '.join(map(repr, missing))} for the "
                f"system message; expected keyword arguments: {expected}."
                f"{_misspelt_variables_hint(missing, unexpected)}"
            )
        if unexpected:
            raise TemplateVariableError(
                f"Unexpected input variable(s) {', '.join(map(repr, unexpected))}; "
                f"expected keyword arguments: {expected}."
            )

    def _conversation(
        self, messages: Sequence[Message], variables: Mapping[str, Any]
    ) -> list[Message]:
        system = self.render_system_message(**variables)
        if isinstance(messages, Message | str):
            raise TypeError(
                "chat() takes a list of Message objects; use invoke() to send one "
                "user turn given as text."
            )
        conversation = [] if system is None else [Message(Role.SYSTEM, system)]
        for index, message in enumerate(messages):
            if not isinstance(message, Message):
                raise TypeError(_not_a_message(index, message))
            conversation.append(message)
        if not any(message.role is not Role.SYSTEM for message in conversation):
            raise ValueError(
                "The conversation has no user or assistant message; add at least one "
                "Message(role=Role.USER, content=...)."
            )
        return conversation

    def chat(self, messages: Sequence[Message], **variables: Any) -> ChatResponse:
        """Send the rendered system message and `messages`; return the reply."""
        conversation = self._conversation(messages, variables)
        logger.debug(
            "sending %d messages to %s model %s",
            len(conversation),
            self.model.provider,
            self.model.model,
        )
        return self.model.generate(conversation)

    def invoke(self, contents: str, **variables: Any) -> ChatResponse:
        """Send one user turn given as text, and return the reply."""
        return self.chat([_user_message(contents)], **variables)

    def chat_stream(self, messages: Sequence[Message], **variables: Any) -> ChatStream:
        """Send a conversation now, and return a stream of the reply's text."""
        conversation = self._conversation(messages, variables)
        chunks = self.model.stream(conversation)
        return ChatStream(chunks, self.model.provider, self.model.model)

    def invoke_stream(self, contents: str, **variables: Any) -> ChatStream:
        """Send one user turn given as text now, and return a stream of the reply."""
        return self.chat_stream([_user_message(contents)], **variables)


def _not_a_message(index: int, item: object) -> str:
    """Build the error message for an item of chat()'s list that is not a `Message`.

    The item's value is left out, because it is most likely a prompt.
    """
    message = (
        f"chat() takes a list of llmfy.Message objects, but item {index} is a "
        f"{type(item).__name__}. Build each message as "
        "Message(role=Role.USER, content=...)"
    )
    if isinstance(item, Mapping) and set(item) == {"role", "content"}:
        return (
            f"{message}, or convert a {{'role': ..., 'content': ...}} dict with "
            "Message(**item)."
        )
    return message + "."


def _user_message(contents: str) -> Message:
    if not isinstance(contents, str):
        raise TypeError(
            f"invoke() takes the user's text as a str, got {type(contents).__name__}; "
            "use chat() to send a list of Message objects."
        )
    return Message(Role.USER, contents)
