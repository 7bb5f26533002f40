"""Fixtures for the OpenAI plugin's tests: a local HTTP server the real SDK talks to.

The server listens on 127.0.0.1 only, serves the responses a test queues for a
path, records each request body, and stops when the test ends.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import openai
import pytest

# How long the server waits on a test's pacing event before giving up.
PACING_TIMEOUT_S = 5.0


@attrs.define
class Reply:
    """One HTTP response to serve.

    `body` is sent at once. `chunks` are sent one by one with a flush after
    each. A `threading.Event` among the chunks makes the server wait for it,
    to pace a stream. `sent` is set once every byte was written.
    """

    status: int = 200
    headers: Mapping[str, str] = attrs.Factory(dict)
    body: bytes = b""
    chunks: Sequence[bytes | threading.Event] = ()
    sent: threading.Event = attrs.Factory(threading.Event)


@attrs.define
class LocalServer:
    """Queued replies per path, and the JSON bodies of the requests received."""

    port: int = 0
    replies: dict[str, list[Reply]] = attrs.Factory(dict)
    requests: list[tuple[str, Any]] = attrs.Factory(list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, path: str, reply: Reply) -> Reply:
        """Queue `reply` for the next request to `path` (such as `/v1/responses`)."""
        self.replies.setdefault(path, []).append(reply)
        return reply

    def add_raw(
        self,
        path: str,
        *,
        status: int,
        headers: Mapping[str, str],
        body: bytes = b"",
        chunks: Sequence[bytes] = (),
    ) -> Reply:
        """Queue a reply given as status, headers and body bytes or chunks."""
        return self.add(
            path, Reply(status=status, headers=dict(headers), body=body, chunks=chunks)
        )

    def add_json(self, path: str, body: Mapping[str, Any], **headers: str) -> Reply:
        """Queue a JSON reply."""
        content = json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **headers}
        return self.add(path, Reply(headers=all_headers, body=content))

    def add_held_json(
        self, path: str, body: Mapping[str, Any], gate: threading.Event
    ) -> Reply:
        """Queue a JSON reply whose body is sent only once `gate` is set."""
        headers = {"content-type": "application/json"}
        chunks = [gate, json.dumps(body).encode()]
        return self.add(path, Reply(headers=headers, chunks=chunks))

    def add_sse(
        self, path: str, events: Sequence[Mapping[str, Any] | str | threading.Event]
    ) -> Reply:
        """Queue a server-sent-events reply: dicts become `data:` events."""
        chunks: list[bytes | threading.Event] = []
        for event in events:
            if isinstance(event, threading.Event):
                chunks.append(event)
            elif isinstance(event, str):
                chunks.append(f"data: {event}\n\n".encode())
            else:
                chunks.append(sse_event(event))
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "x-request-id": "req_sse",
        }
        return self.add(path, Reply(headers=headers, chunks=chunks))

    def next_reply(self, path: str) -> Reply | None:
        queue = self.replies.get(path)
        if not queue:
            return None
        return queue.pop(0)


def sse_event(data: Mapping[str, Any]) -> bytes:
    """Encode one SSE event, named after its `type` field when it has one."""
    kind = data.get("type")
    prefix = f"event: {kind}\n" if isinstance(kind, str) else ""
    return f"{prefix}data: {json.dumps(data)}\n\n".encode()


def _handler(server: LocalServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            try:
                server.requests.append((path, json.loads(raw) if raw else None))
            except ValueError:
                server.requests.append((path, raw))
            reply = server.next_reply(path)
            if reply is None:
                self.send_error(404, f"no reply queued for {path}")
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.chunks:
                self.send_header("connection", "close")
                self.end_headers()
                self._send_chunks(reply)
                self.close_connection = True
            else:
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            reply.sent.set()

        do_GET = do_POST

        def _send_chunks(self, reply: Reply) -> None:
            for chunk in reply.chunks:
                if isinstance(chunk, threading.Event):
                    chunk.wait(PACING_TIMEOUT_S)
                    continue
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """Run a local HTTP server on 127.0.0.1 for one test, then shut it down."""
    state = LocalServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client(server: LocalServer) -> Iterator[openai.OpenAI]:
    """A real `openai.OpenAI` client pointed at the local server."""
    with openai.OpenAI(
        base_url=server.base_url, api_key="test-key", max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture
def async_client(server: LocalServer) -> openai.AsyncOpenAI:
    """A real `openai.AsyncOpenAI` client pointed at the local server."""
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test-key", max_retries=0
    )


class Bodies:
    """OpenAI response bodies with the shape of real ones, written for these tests."""

    @staticmethod
    def chat(
        *,
        model: str = "gpt-4o-mini-2024-07-18",
        prompt: int = 60,
        completion: int = 3,
        cached: int | None = 0,
        cache_write: int | None = None,
        reasoning: int | None = 0,
        input_audio: int | None = 0,
        output_audio: int | None = 0,
        service_tier: str | None = "default",
        details: bool = True,
    ) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if details:
            prompt_details: dict[str, Any] = {
                "cached_tokens": cached,
                "audio_tokens": input_audio,
            }
            if cache_write is not None:
                prompt_details["cache_write_tokens"] = cache_write
            usage["prompt_tokens_details"] = prompt_details
            usage["completion_tokens_details"] = {
                "reasoning_tokens": reasoning,
                "audio_tokens": output_audio,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_780_000_000,
            "model": model,
            "service_tier": service_tier,
            "system_fingerprint": "fp_test",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Paris.",
                        "refusal": None,
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }

    @staticmethod
    def chunk(
        content: str | None,
        *,
        model: str = "gpt-4o-mini-2024-07-18",
        usage: Mapping[str, Any] | None = None,
        finish: str | None = None,
    ) -> dict[str, Any]:
        """A chat completion chunk; `content=None` gives a `choices: []` chunk."""
        choices: list[dict[str, Any]] = []
        if content is not None or finish is not None:
            delta = {"content": content} if content is not None else {}
            choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1_780_000_000,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": None,
            "choices": choices,
            "usage": dict(usage) if usage is not None else None,
        }

    @staticmethod
    def chunk_usage(
        prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0
    ) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
            },
        }

    @staticmethod
    def response(
        *,
        model: str = "gpt-5-2025-08-07",
        input_tokens: int = 100,
        output_tokens: int = 50,
        cached: int = 0,
        cache_write: int | None = None,
        reasoning: int = 0,
        output: Sequence[Mapping[str, Any]] = (),
        tool_usage: Mapping[str, Any] | None = None,
        service_tier: str | None = "default",
        status: str = "completed",
        usage: bool = True,
    ) -> dict[str, Any]:
        input_details: dict[str, Any] = {"cached_tokens": cached}
        if cache_write is not None:
            input_details["cache_write_tokens"] = cache_write
        items = list(output) or [
            {
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "Paris.", "annotations": []}
                ],
            }
        ]
        body: dict[str, Any] = {
            "id": "resp_test",
            "object": "response",
            "created_at": 1_780_000_000,
            "status": status,
            "model": model,
            "output": items,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "service_tier": service_tier,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": input_details,
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input_tokens + output_tokens,
            }
            if usage
            else None,
        }
        if tool_usage is not None:
            body["tool_usage"] = dict(tool_usage)
        return body

    @staticmethod
    def image_gen_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        """A `tool_usage` with the image generation tokens of a Responses call."""
        return {
            "image_gen": {
                "input_tokens": input_tokens,
                "input_tokens_details": {
                    "image_tokens": 0,
                    "text_tokens": input_tokens,
                },
                "output_tokens": output_tokens,
                "output_tokens_details": {
                    "image_tokens": output_tokens,
                    "text_tokens": 0,
                },
                "total_tokens": input_tokens + output_tokens,
            },
            "web_search": {"num_requests": 0},
        }

    @staticmethod
    def transcription(
        *, audio: int = 100, text: int = 20, output_tokens: int = 8
    ) -> dict[str, Any]:
        """A transcription of a model billed per token, such as gpt-4o-transcribe."""
        return {
            "text": "Hello.",
            "usage": {
                "type": "tokens",
                "input_tokens": audio + text,
                "input_token_details": {"audio_tokens": audio, "text_tokens": text},
                "output_tokens": output_tokens,
                "total_tokens": audio + text + output_tokens,
            },
        }

    @staticmethod
    def images(
        *, text: int = 50, image: int = 0, output_tokens: int = 4160
    ) -> dict[str, Any]:
        """An images response of a GPT Image model, which reports token usage."""
        return {
            "created": 1_780_000_000,
            "data": [{"b64_json": "aGVsbG8="}],
            "output_format": "png",
            "quality": "high",
            "size": "1024x1024",
            "usage": {
                "input_tokens": text + image,
                "input_tokens_details": {"image_tokens": image, "text_tokens": text},
                "output_tokens": output_tokens,
                "output_tokens_details": {
                    "image_tokens": output_tokens,
                    "text_tokens": 0,
                },
                "total_tokens": text + image + output_tokens,
            },
        }

    @staticmethod
    def decision(
        *, input_tokens: int = 900, cached: int = 0, output_tokens: int = 12
    ) -> dict[str, Any]:
        """A `decisions.create()` body: typed answers and a Responses-style usage."""
        return {
            "answers": [
                {"type": "predicate", "name": "is_refund", "probability": 0.93},
                {"type": "refusal", "name": None},
            ],
            "model": "gpt-6-luna",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {
                    "cached_tokens": cached,
                    "cache_write_tokens": 0,
                },
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }

    @staticmethod
    def compaction(
        *, input_tokens: int = 120_000, output_tokens: int = 3000, cached: int = 0
    ) -> dict[str, Any]:
        """A `responses.compact()` body: no model, and a Responses usage."""
        return {
            "id": "cmp_test",
            "object": "response.compaction",
            "created_at": 1_780_000_000,
            "output": [
                {
                    "id": "msg_test",
                    "type": "message",
                    "role": "user",
                    "status": "completed",
                    "content": [{"type": "input_text", "text": "Plan a trip."}],
                },
                {
                    "id": "cmp_item_test",
                    "type": "compaction",
                    "encrypted_content": "gAAAAB",
                },
            ],
            "service_tier": "default",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }

    @staticmethod
    def response_events(
        final: Mapping[str, Any], *, final_type: str = "response.completed"
    ) -> list[dict[str, Any]]:
        """The events of a Responses API stream for one text message."""
        created = {**final, "status": "in_progress", "usage": None, "output": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        item = {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        done_part = {**part, "text": "Paris."}
        done_item = {**item, "status": "completed", "content": [done_part]}
        where = {"item_id": "msg_test", "output_index": 0, "content_index": 0}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": created},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.content_part.added", **where, "part": part},
            {
                "type": "response.output_text.delta",
                **where,
                "delta": "Paris.",
                "logprobs": [],
            },
            {
                "type": "response.output_text.done",
                **where,
                "text": "Paris.",
                "logprobs": [],
            },
            {"type": "response.content_part.done", **where, "part": done_part},
            {"type": "response.output_item.done", "output_index": 0, "item": done_item},
            {"type": final_type, "response": dict(final)},
        ]
        for number, event in enumerate(events):
            event["sequence_number"] = number
        return events

    @staticmethod
    def embeddings(
        *, model: str = "text-embedding-3-small", prompt: int = 8
    ) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]}
            ],
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }


@pytest.fixture
def bodies() -> type[Bodies]:
    """Builders for OpenAI response bodies."""
    return Bodies
