"""The Bedrock chat model for the llmfy agent, on boto3's Converse API.

    from llmfy import LLMfy
    from llmfy_bedrock.agent import BedrockConverseModel, BedrockConverseConfig

    llm = BedrockConverseModel(
        model="amazon.nova-lite-v1:0", config=BedrockConverseConfig(temperature=0.7)
    )
    agent = LLMfy(llm, system_message="You are a helpful assistant.")

Requests go through a boto3 `bedrock-runtime` client (`converse` and
`converse_stream`), so the llmfy-bedrock instrumentation counts each of them
once; this module never records usage.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import boto3
import urllib3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from llmfy_bedrock.resolve import billing_region
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
logger = get_logger("llmfy.bedrock")

__all__ = ["BedrockConverseConfig", "BedrockConverseModel"]

PROVIDER = "bedrock"


def _optional_unit_interval(
    instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is None:
        return
    # NaN fails every comparison, so the range check rejects a float NaN.
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(
            f"BedrockConverseConfig.{attribute.name} must be a number between 0 "
            f"and 1, got {value!r}."
        )


def _is_number(value: Any) -> bool:
    """Return whether `value` is an int, float or Decimal, which botocore sends.

    A bool is rejected, though bool subclasses int. So are a NaN and an
    infinite Decimal, because comparing a NaN Decimal raises
    `decimal.InvalidOperation` where a float NaN returns False.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, Decimal):
        return value.is_finite()
    return isinstance(value, int | float)


def _json_number(value: float | Decimal) -> float:
    """Return `value` as botocore can serialize it: a Decimal becomes a float.

    botocore 1.38.35 and later convert a Decimal to a float themselves, and
    earlier versions raise TypeError on one.
    """
    if isinstance(value, Decimal):
        return float(value)
    return value


def _optional_positive(
    instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"BedrockConverseConfig.{attribute.name} must be a whole number of at "
            f"least 1, got {value!r}."
        )


def _optional_mapping(
    instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(
            f"BedrockConverseConfig.{attribute.name} must be a dict such as "
            f"{{'inferenceConfig': {{'topK': 20}}}}, or None, got {value!r}."
        )


@attrs.frozen(slots=True)
class BedrockConverseConfig:
    """Inference settings sent with every Converse request.

    A field left as None is not sent, so the model's default applies. The
    ranges are those of the Converse API's `inferenceConfig`. `temperature`
    and `top_p` accept an int, a float or a finite `decimal.Decimal`, which
    is sent as a float.
    `additional_model_request_fields` is sent as is, for settings that only
    some models accept (Nova's `{"inferenceConfig": {"topK": 20}}`, for one).
    """

    temperature: float | None = attrs.field(
        default=None, validator=_optional_unit_interval
    )
    top_p: float | None = attrs.field(default=None, validator=_optional_unit_interval)
    max_tokens: int | None = attrs.field(default=None, validator=_optional_positive)
    stop_sequences: tuple[str, ...] = string_list_field()
    additional_model_request_fields: Mapping[str, Any] | None = attrs.field(
        default=None, hash=False, validator=_optional_mapping
    )

    def request_parameters(self) -> dict[str, Any]:
        """Return the settings as keyword arguments of `converse`."""
        inference: dict[str, Any] = {}
        if self.temperature is not None:
            inference["temperature"] = _json_number(self.temperature)
        if self.top_p is not None:
            inference["topP"] = _json_number(self.top_p)
        if self.max_tokens is not None:
            inference["maxTokens"] = self.max_tokens
        if self.stop_sequences:
            inference["stopSequences"] = list(self.stop_sequences)
        parameters: dict[str, Any] = {}
        if inference:
            parameters["inferenceConfig"] = inference
        if self.additional_model_request_fields:
            fields = dict(self.additional_model_request_fields)
            parameters["additionalModelRequestFields"] = fields
        return parameters


class BedrockConverseModel:
    """A chat model served by Amazon Bedrock through the Converse API.

    Without `client`, a `bedrock-runtime` client is created on the first
    request, from `session` (or boto3's default session), `region_name` and
    `endpoint_url`. boto3 reads the credentials, and the region when
    `region_name` is None, from its usual sources (environment, profile).
    Failures are raised as `llmfy_core.ProviderCallError`, with the boto3
    exception as the cause.
    """

    provider = PROVIDER

    def __init__(
        self,
        model: str = "amazon.nova-lite-v1:0",
        config: BedrockConverseConfig | None = None,
        client: Any = None,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(
                "model must be a Bedrock model id, inference profile or ARN such as "
                f"'amazon.nova-lite-v1:0', got {model!r}."
            )
        client_options = (region_name, endpoint_url, session)
        if client is not None and any(option is not None for option in client_options):
            raise ValueError(
                "Pass either client= or region_name=/endpoint_url=/session= to "
                "BedrockConverseModel, not both: the others configure the client "
                "that it creates."
            )
        self.model = model
        self.config = config or BedrockConverseConfig()
        self._client = client
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._session = session
        self._client_lock = new_lock()

    def __repr__(self) -> str:
        return f"BedrockConverseModel(model={self.model!r}, config={self.config!r})"

    @property
    def client(self) -> Any:
        """The `bedrock-runtime` client, created on first use if none was given."""
        with self._client_lock:
            if self._client is None:
                self._client = self._create_client()
            return self._client

    def _create_client(self) -> Any:
        options = {"region_name": self._region_name, "endpoint_url": self._endpoint_url}
        try:
            if self._session is not None:
                return self._session.client("bedrock-runtime", **options)
            return boto3.client("bedrock-runtime", **options)
        except BotoCoreError as error:
            reason = str(error).rstrip(".")
            raise ProviderCallError(
                PROVIDER,
                self.model,
                f"Could not create the bedrock-runtime client for model "
                f"{self.model!r}: {reason}. {_hint(error, self._region_name)}",
            ) from error

    @property
    def region(self) -> str | None:
        """The AWS region of the client's endpoint."""
        region: str | None = self.client.meta.region_name
        return region

    def generate(self, messages: Sequence[Message]) -> ChatResponse:
        """Send the conversation with `converse` and return the reply."""
        client = self.client
        try:
            response = client.converse(**self._request(messages))
        except (BotoCoreError, ClientError) as error:
            raise self._call_error("Converse", error) from error
        except ResponseParserError as error:
            raise self._invalid_reply_error(
                f"a body that botocore rejects ({error})"
            ) from error
        return ChatResponse(
            result=Message(Role.ASSISTANT, self._reply_text(response)),
            usage=read_usage(response, self._context("Converse", response)),
            stop_reason=response.get("stopReason"),
            raw=response,
        )

    def stream(self, messages: Sequence[Message]) -> Iterator[StreamChunk]:
        """Send a `converse_stream` request now; return an iterator over the reply."""
        client = self.client
        try:
            response = client.converse_stream(**self._request(messages))
        except (BotoCoreError, ClientError) as error:
            raise self._call_error("ConverseStream", error) from error
        return ClosingChunks(self._chunks(response), response["stream"].close)

    def _chunks(
        self, response: Mapping[str, Any]
    ) -> Generator[StreamChunk, None, None]:
        events = response["stream"]
        context = self._context("ConverseStream", response)
        stopped = False
        try:
            for event in events:
                if "contentBlockDelta" in event:
                    delta = event["contentBlockDelta"].get("delta", {})
                    if "text" in delta:
                        text = delta["text"]
                        if not isinstance(text, str):
                            name = type(text).__name__
                            raise self._invalid_reply_error(
                                f"a text delta of type {name}", "ConverseStream"
                            )
                        yield StreamChunk(text=text)
                elif "messageStop" in event:
                    stopped = True
                    stop_reason = event["messageStop"].get("stopReason")
                    yield StreamChunk(stop_reason=stop_reason)
                elif "metadata" in event:
                    # The metadata event, after messageStop, carries the usage;
                    # the plugin's usage_extract reads the event's payload.
                    metadata = event["metadata"]
                    usage = read_usage(metadata, context)
                    yield StreamChunk(usage=usage, raw=metadata)
        # botocore 1.44 lets a urllib3 error from reading the event stream,
        # such as a connection closed mid-body, escape unwrapped.
        except (BotoCoreError, ClientError, urllib3.exceptions.HTTPError) as error:
            raise self._call_error("ConverseStream", error) from error
        finally:
            events.close()
        if not stopped:
            # A body cut at a frame boundary ends botocore's event stream
            # without an error.
            raise ProviderCallError(
                PROVIDER,
                self.model,
                f"Bedrock ConverseStream response for model {self.model!r} in region "
                f"{self.region!r} ended before its messageStop event, so the reply "
                "may be cut short. Retry the request; if this repeats, check for a "
                "proxy or network device that closes long responses.",
            )

    def _reply_text(self, response: Mapping[str, Any]) -> str:
        """Return the text blocks of a Converse response, joined.

        botocore (1.44) returns an empty response for a body that is not JSON,
        and does not check the types of the values it parses.
        """
        output = response.get("output")
        message = output.get("message") if isinstance(output, Mapping) else None
        if not isinstance(message, Mapping):
            raise self._invalid_reply_error("a response without output.message")
        blocks = message.get("content") or []
        for block in blocks:
            if not isinstance(block, Mapping):
                raise self._invalid_reply_error(
                    f"a content block of type {type(block).__name__}"
                )
        texts = [block["text"] for block in blocks if "text" in block]
        for text in texts:
            if not isinstance(text, str):
                raise self._invalid_reply_error(
                    f"a text block of type {type(text).__name__}"
                )
        return "".join(texts)

    def _invalid_reply_error(
        self, described: str, operation: str = "Converse"
    ) -> ProviderCallError:
        return ProviderCallError(
            PROVIDER,
            self.model,
            f"Bedrock {operation} request for model {self.model!r} in region "
            f"{self.region!r} returned {described}, which is not a {operation} "
            "response. Check the endpoint URL, and any proxy in front of it.",
        )

    def _request(self, messages: Sequence[Message]) -> dict[str, Any]:
        system, turns = _converse_messages(messages)
        request: dict[str, Any] = {"modelId": self.model, "messages": turns}
        if system:
            request["system"] = system
        request.update(self.config.request_parameters())
        return request

    def _context(self, operation: str, response: Mapping[str, Any]) -> CallContext:
        metadata = response.get("ResponseMetadata", {})
        return CallContext(
            provider=PROVIDER,
            operation=operation,
            model=self.model,
            # The Region the request is billed in, as the instrumentation
            # records it: an ARN's own Region wins over the client's.
            region=billing_region(self.model, self.region),
            headers=metadata.get("HTTPHeaders", {}),
        )

    def _call_error(self, operation: str, error: Exception) -> ProviderCallError:
        region = self.region
        return ProviderCallError(
            PROVIDER,
            self.model,
            f"Bedrock {operation} request failed for model {self.model!r} in region "
            f"{region!r}: {str(error).rstrip('.')}. {_hint(error, region)}",
        )


_CREDENTIAL_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
    }
)
_RETRY_ERRORS = frozenset(
    {"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"}
)
_SERVICE_ERRORS = frozenset(
    {
        "InternalServerException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "ModelTimeoutException",
    }
)


def _hint(error: Exception, region: str | None) -> str:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        # botocore takes the code of an exception event inside a stream from
        # the event type, which is lower camel case (`throttlingException`).
        # HTTP errors use upper camel case (`ThrottlingException`).
        code = code[:1].upper() + code[1:]
        if code in _CREDENTIAL_ERRORS:
            return (
                "Check the AWS credentials, and that access to this model is "
                f"granted in the Bedrock console for region {region!r}."
            )
        if code == "ResourceNotFoundException":
            return f"Check the model id, and that the model is offered in {region!r}."
        if code == "ValidationException":
            return (
                "Check the model id, the messages (a Bedrock conversation starts "
                "with a user message) and BedrockConverseConfig."
            )
        if code in _RETRY_ERRORS:
            return "Retry later, or request a higher quota for this model."
        if code in _SERVICE_ERRORS:
            return "The service failed; retry later."
        return "The cause holds the provider's error."
    if isinstance(error, urllib3.exceptions.HTTPError):
        return "Check the network connection and the endpoint URL, then retry."
    name = type(error).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            "Set AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE), or pass session= to BedrockConverseModel."
        )
    if name == "NoRegionError":
        return "Set AWS_REGION, or pass region_name= to BedrockConverseModel."
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return "Check the network connection and the endpoint URL."
    return "The cause holds the provider's error."


def _converse_messages(
    messages: Sequence[Message],
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Split a conversation into Converse's `system` blocks and `messages` turns.

    Converse takes system text apart from the turns, so every system message
    goes to `system`, in order. An empty one is left out, because botocore
    rejects a system text block shorter than 1 character. Consecutive
    messages of the same role become one turn with several text blocks,
    because Converse rejects two turns of the same role in a row.
    """
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            if message.content:
                system.append({"text": message.content})
            continue
        block = {"text": message.content}
        if turns and turns[-1]["role"] == message.role.value:
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": message.role.value, "content": [block]})
    return system, turns
