"""A loopback stand-in for OpenAI and Bedrock that replies the same to every request.

Unlike the plugins' queue-based test servers, this one serves any number of
requests, from many threads at once, which the load tests need. It serves:

- `POST /v1/chat/completions`: a Chat Completions body, or server-sent events
  when the request has `"stream": true`;
- `POST /model/{modelId}/converse` and `/converse-stream`: a Converse body, or
  the AWS event-stream framing.

Every reply reports `input_tokens` and `output_tokens` and carries `text` as
its completion. It listens on 127.0.0.1 only and stops when its fixture ends.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
import threading
from collections.abc import Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

# The cost of one reply with the default `Replies` for gpt-4o-mini: 60 input
# and 3 output tokens at 0.15 and 0.60 USD per million tokens.
ONE_REPLY_COST = (Decimal(60) * Decimal("0.15") + Decimal(3) * Decimal("0.60")) / 10**6

_CONVERSE = re.compile(r"^/model/(?P<model>[^/]+)/converse(?P<stream>-stream)?$")


@attrs.define
class Received:
    """One request as the server got it; header names are lower case."""

    path: str
    headers: Mapping[str, str]
    body: bytes


@attrs.define
class Replies:
    """The contents of every reply; tests change them before sending requests."""

    input_tokens: int = 60
    output_tokens: int = 3
    text: str = "Paris."
    # The model id OpenAI replies report; None repeats the requested one.
    served_model: str | None = "gpt-4o-mini-2024-07-18"


class LoopbackLLM:
    """OpenAI and Bedrock on 127.0.0.1, replying with `replies`, recording requests."""

    def __init__(self) -> None:
        self.replies = Replies()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="llmfy-loopback-llm",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The base URL, also the Bedrock `endpoint_url`."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    # Bodies

    def chat_body(self, requested: str) -> dict[str, Any]:
        replies = self.replies
        return {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": 1_780_000_000,
            "model": replies.served_model or requested,
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": replies.text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": self.chat_usage(),
        }

    def chat_usage(self) -> dict[str, Any]:
        replies = self.replies
        return {
            "prompt_tokens": replies.input_tokens,
            "completion_tokens": replies.output_tokens,
            "total_tokens": replies.input_tokens + replies.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def chat_events(self, requested: str, include_usage: bool) -> list[bytes]:
        replies = self.replies
        chunk: dict[str, Any] = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion.chunk",
            "created": 1_780_000_000,
            "model": replies.served_model or requested,
            "choices": [
                {"index": 0, "delta": {"content": replies.text}, "finish_reason": None}
            ],
        }
        last = {
            **chunk,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        chunks = [chunk, last]
        if include_usage:
            chunks.append({**chunk, "choices": [], "usage": self.chat_usage()})
        events = [f"data: {json.dumps(each)}\n\n".encode() for each in chunks]
        return [*events, b"data: [DONE]\n\n"]

    def converse_body(self) -> dict[str, Any]:
        replies = self.replies
        return {
            "output": {
                "message": {"role": "assistant", "content": [{"text": replies.text}]}
            },
            "stopReason": "end_turn",
            "usage": self.converse_usage(),
            "metrics": {"latencyMs": 10},
        }

    def converse_usage(self) -> dict[str, int]:
        replies = self.replies
        return {
            "inputTokens": replies.input_tokens,
            "outputTokens": replies.output_tokens,
            "totalTokens": replies.input_tokens + replies.output_tokens,
        }

    def converse_frames(self) -> list[bytes]:
        replies = self.replies
        delta = {"contentBlockIndex": 0, "delta": {"text": replies.text}}
        metadata = {"usage": self.converse_usage(), "metrics": {"latencyMs": 10}}
        return [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", delta),
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame("messageStop", {"stopReason": "end_turn"}),
            event_frame("metadata", metadata),
        ]


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """Encode one event in the AWS event-stream framing (string headers only)."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        headers += struct.pack("!B", len(name)) + name.encode()
        headers += struct.pack("!BH", 7, len(value)) + value.encode()
    body = json.dumps(payload).encode()
    prelude = struct.pack("!II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + headers + body
    return message + struct.pack("!I", binascii.crc32(message))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The load tests open many connections at once.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients that hang up early are expected here


def _handler(server: LoopbackLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            server.record(Received(self.path, headers, body))
            if self.path.startswith("/v1/chat/completions"):
                request = json.loads(body or b"{}")
                model = str(request.get("model"))
                if request.get("stream"):
                    options = request.get("stream_options") or {}
                    usage = bool(options.get("include_usage"))
                    self.send_parts(
                        "text/event-stream", server.chat_events(model, usage)
                    )
                else:
                    self.send_json(server.chat_body(model))
                return
            match = _CONVERSE.match(self.path)
            if match is None:
                self.send_error(404)
                return
            if match.group("stream"):
                parts = server.converse_frames()
                self.send_parts("application/vnd.amazon.eventstream", parts)
            else:
                self.send_json(server.converse_body())

        def send_json(self, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", "req_loopback")
            self.end_headers()
            self.wfile.write(data)

        def send_parts(self, content_type: str, parts: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for part in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
