"""Turn one JSON record of `llmfy report` into the usage of one request.

Three kinds of record are recognised: a line of an OpenAI Batch output file,
a Bedrock model invocation log record, and a saved response body. The chunks
and events of a saved OpenAI stream are counted once per stream (see
`saved_streams`).
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from llmfy_core.model import CallContext, Usage
from llmfy_core.plugins import get_registry
from llmfy_core.pricing import closest_name
from llmfy_core.recording import body_sent_at, extract_usage

from .readers import STREAM_END, Record
from .saved_streams import SavedStreams


class RecordError(Exception):
    """A record that was read as JSON but could not be turned into usage."""


@attrs.frozen(slots=True)
class Reading:
    """The usage of one request, and its send time where the record has one."""

    usage: Usage
    sent_at: dt.datetime | None


@attrs.frozen(slots=True)
class Skipped:
    """A record that is not a billed request, such as a failed Batch request."""

    reason: str


@attrs.frozen(slots=True)
class StreamChunk:
    """A chunk or event of a saved stream, whose request another record counts."""


class UsageReader:
    """Read records into usage; `provider`, `model` and `region` fill what bodies omit.

    They never replace what a record names itself: a body whose shape is
    OpenAI's or Bedrock's keeps that provider, a body with a `model` field keeps
    its model, and Batch lines and invocation logs keep all of theirs. So one
    run can read an OpenAI body next to a Bedrock body that needs `--model`.

    OpenAI Batch lines, OpenAI bodies and Bedrock logs and bodies are read by
    the functions that `llmfy-openai` and `llmfy-bedrock` export for offline
    reading. A body of any other provider, named with `provider`, is read
    through the `usage_extract` hook. `known_providers` are the providers that
    plugins list prices for, suggested when no plugin reads a body as `provider`.
    """

    def __init__(
        self,
        provider: str | None = None,
        model: str | None = None,
        region: str | None = None,
        known_providers: Sequence[str] = (),
    ) -> None:
        self.provider = provider
        self.model = model
        self.region = region
        self.known_providers = known_providers
        # Whether a record named `model` itself, so that the id is in the data.
        self.model_named_by_record = False
        self._streams = SavedStreams()

    def read(self, record: Record) -> Reading | Skipped | StreamChunk:
        """Return the usage in `record`, or why it is skipped; raise `RecordError`.

        Returns `StreamChunk` for a record of a saved stream, and `end_file`
        then returns the record that counts each stream.
        """
        data = record.data
        if data is STREAM_END:
            return StreamChunk()
        if not isinstance(data, Mapping):
            raise RecordError(
                f"expected a JSON object, got {type(data).__name__}; give OpenAI "
                "Batch output, saved response bodies or Bedrock invocation logs"
            )
        try:
            if data.get("schemaType") == "ModelInvocationLog":
                return self._read_invocation_log(data)
            if "custom_id" in data and ("response" in data or "error" in data):
                return self._read_batch_line(data)
            if self._streams.hold(record):
                return StreamChunk()
            _reject_llmfy_report(data)
            return self._read_body(data)
        except RecordError:
            raise
        except Exception as error:
            raise RecordError(f"reading failed: {error}") from error

    def end_file(self) -> list[Record]:
        """Return the record that counts each saved stream of the file.

        Each stream is one request: read it with `read_stream`. Call this
        after the last record of each file.
        """
        return self._streams.end_file()

    def read_stream(self, record: Record) -> Reading:
        """Return the usage of a stream from the record `end_file` returned.

        The usage is unknown when the stream had no chunk with usage and no
        final event.
        """
        data = record.data
        try:
            return self._read_body(_response_of(data) or data)
        except RecordError:
            raise
        except Exception as error:
            raise RecordError(f"reading failed: {error}") from error

    def _read_batch_line(self, line: Mapping[str, Any]) -> Reading | Skipped:
        response = line.get("response")
        if line.get("error") or not isinstance(response, Mapping):
            return Skipped("failed Batch request (not billed)")
        status = response.get("status_code")
        if status != 200:
            return Skipped(f"Batch request with status {status} (not billed)")
        body = response.get("body")
        if not isinstance(body, Mapping):
            raise RecordError("OpenAI Batch line without a `response.body` object")
        if _is_moderation(body):
            return Skipped("moderation (not billed)")
        named = _text(body.get("model"))
        self._note_model(named)
        # A GPT Image body names no model, so --model names it.
        batch = _plugin("openai", "OpenAI Batch output")
        usages = list(
            batch.iter_batch_usages([line], model=None if named else self.model)
        )
        if not usages:
            raise RecordError(
                "the body in `response.body` is not a Chat Completions, Responses, "
                "Embeddings or GPT Image body"
            )
        return Reading(usages[0], body_sent_at(body))

    def _read_invocation_log(self, log: Mapping[str, Any]) -> Reading | Skipped:
        bedrock = _plugin("bedrock", "Bedrock invocation logs")
        error = bedrock.failed_invocation(log)
        if error is not None:
            return Skipped(f"failed invocation, {error} (not billed)")
        # Bedrock writes both fields, but an edited or hand-made log may lack
        # them, and the report's summary then suggests --model or --region.
        filled = dict(log)
        named = _text(log.get("modelId"))
        self._note_model(named)
        if self.model and not named:
            filled["modelId"] = self.model
        if self.region and not _text(log.get("region")):
            filled["region"] = self.region
        usage = bedrock.usage_from_invocation_log(filled)
        return Reading(usage, bedrock.invocation_log_sent_at(log))

    def _read_body(self, body: Mapping[str, Any]) -> Reading:
        provider = guess_body_provider(body) or self.provider
        if provider is None:
            raise RecordError(
                "not an OpenAI Batch line, a Bedrock invocation log, or an OpenAI "
                "or Bedrock response body; for a body of another provider, pass "
                "--provider"
            )
        if provider == "openai":
            usage = self._read_openai_body(body)
        elif provider == "bedrock":
            usage = self._read_bedrock_body(body)
        else:
            named = _text(body.get("model"))
            self._note_model(named)
            model = None if named else self.model
            context = CallContext(provider, model=model, region=self.region)
            usage = extract_usage(body, context)
        if usage is None:
            raise RecordError(
                f"no installed plugin reads this body as a response of provider "
                f"{provider!r}; "
                f"check --provider{self._suggestion(provider)}, or install the "
                "provider's plugin"
            )
        # A saved Responses stream's final event contains its response, whose
        # `created_at` is the send time.
        sent_at = body_sent_at(body) or body_sent_at(_response_of(body))
        return Reading(usage, sent_at)

    def _note_model(self, named: str | None) -> None:
        if named is not None and named == self.model:
            self.model_named_by_record = True

    def _suggestion(self, provider: str) -> str:
        if provider in self.known_providers:
            return ""
        close = closest_name(provider, self.known_providers)
        return f" (did you mean {close}?)" if close else ""

    def _read_openai_body(self, body: Mapping[str, Any]) -> Usage | None:
        openai = _plugin("openai", "OpenAI response bodies")
        named = _text(body.get("model")) or _text(_response_of(body).get("model"))
        self._note_model(named)
        context = CallContext("openai", model=None if named else self.model)
        usage: Usage | None = openai.usage_from_body(body, context)
        return usage

    def _read_bedrock_body(self, body: Mapping[str, Any]) -> Usage:
        bedrock = _plugin("bedrock", "Bedrock response bodies")
        if self.model is None:
            raise RecordError(
                "a Bedrock response body does not name its model id; pass --model "
                "(such as --model amazon.nova-lite-v1:0) and --region"
            )
        operation = "Converse" if "metrics" in body else "InvokeModel"
        usage: Usage = bedrock.usage_from_saved_response(
            body, operation=operation, model=self.model, region=self.region
        )
        return usage


OPENAI_OBJECTS = frozenset(
    {
        "chat.completion",
        "chat.completion.chunk",
        "text_completion",
        "response",
        "response.compaction",
        "list",
    }
)


def guess_body_provider(body: Mapping[str, Any]) -> str | None:
    """Return the provider whose response body this looks like, or None.

    OpenAI bodies name their `object` type. Bedrock bodies are recognised by
    the usage fields of Converse, Amazon Nova, Titan, Meta Llama and Anthropic
    Messages (the one Anthropic-shaped provider with a plugin here).
    """
    kind = body.get("type")
    if body.get("object") in OPENAI_OBJECTS:
        return "openai"
    if isinstance(kind, str) and kind.startswith("response."):
        return "openai"
    usage = body.get("usage")
    if isinstance(usage, Mapping) and "inputTokens" in usage:
        return "bedrock"
    bedrock_fields = ("amazon-bedrock-invocationMetrics", "inputTextTokenCount")
    if any(field in body for field in (*bedrock_fields, "prompt_token_count")):
        return "bedrock"
    if kind == "message" and isinstance(usage, Mapping):
        return "bedrock"
    return None


_PLUGIN_MODULES = {"openai": "llmfy_openai", "bedrock": "llmfy_bedrock"}


def readable_providers() -> list[str] | None:
    """Return the providers whose bodies `UsageReader` can read, sorted.

    These are OpenAI and Bedrock, read by their plugin packages, and every
    provider that a loaded plugin declares in `llmfy_providers`. Returns None
    when a plugin implements `usage_extract` without declaring them, since it
    may read the bodies of any provider.
    """
    providers = set(_PLUGIN_MODULES)
    hook = get_registry().manager.hook.usage_extract
    for impl in hook.get_hookimpls():
        declared = getattr(impl.plugin, "llmfy_providers", None)
        if not isinstance(declared, (tuple, list, set, frozenset)):
            return None
        providers.update(name for name in declared if isinstance(name, str))
    return sorted(providers)


def _plugin(provider: str, what: str) -> Any:
    """Import the plugin package of `provider`, or raise `RecordError`.

    The plugin packages do not import their SDK on import.
    """
    try:
        return importlib.import_module(_PLUGIN_MODULES[provider])
    except ImportError:
        raise RecordError(
            f"reading {what} needs the llmfy-{provider} plugin; install it from a "
            f"checkout of llmfy with `pip install ./plugins/{provider}`"
        ) from None


def _reject_llmfy_report(data: Mapping[str, Any]) -> None:
    """Raise `RecordError` for a report that llmfy wrote, which names no request.

    `usage.to_dict()` writes `llmfy.usage/1` and `llmfy report --json` writes
    `llmfy.report/1`. Without this check such a file gets the generic advice
    to pass `--provider`, which cannot help.
    """
    schema = data.get("schema")
    if not (isinstance(schema, str) and schema.startswith("llmfy.")):
        return
    raise RecordError(
        f"a report that llmfy wrote (schema {schema!r}), as usage.to_dict() or "
        "llmfy report --json save it, not a provider response. Its totals are "
        "already under `totals` and `by_model`. Give llmfy report the saved "
        "response bodies, OpenAI Batch output files or Bedrock invocation logs"
    )


def _is_moderation(body: Mapping[str, Any]) -> bool:
    """Return whether a body is a moderation, which OpenAI does not bill.

    A moderation body has no `object` field: its `id` starts with `modr-`,
    and it lists the `results` of each input.
    """
    identifier = body.get("id")
    return (
        isinstance(identifier, str)
        and identifier.startswith("modr")
        and isinstance(body.get("results"), list)
    )


def _response_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the `response` of a saved Responses stream event, else an empty map."""
    response = body.get("response")
    return response if isinstance(response, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
