"""A local HTTP server that replays OpenAI and Bedrock responses for demos and tests.

The real `openai` and `boto3` clients talk to it as they would to the
services: point `openai.OpenAI(base_url=server.openai_base_url)` and a
`bedrock-runtime` client's `endpoint_url=server.url` at it. It serves
queued responses in the wire formats of the real APIs: JSON, server-sent
events for OpenAI streams, and the AWS event-stream framing for Bedrock's
ConverseStream.

Routes, each with its own first-in, first-out queue of replies:

- `openai`: `POST /v1/chat/completions`, `/v1/responses`, `/v1/embeddings` and
  `/v1/decisions`
- `bedrock`: `POST /model/{modelId}/converse`, `/converse-stream`, `/invoke`
  and `/invoke-with-response-stream`

A request with no reply left gets the server's `fallback` reply for it, or
else a 400 error in the provider's format, which the SDKs raise without
retrying. The server listens on 127.0.0.1, on a free port unless given one,
runs in daemon threads, and stops when its `with` block ends (or, at the
latest, when the process exits). `examples/serve_replies.py` runs one from
the command line.
"""

from __future__ import annotations

import json
import re
import struct
import sys
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

__all__ = [
    "RecordedRequest",
    "ReplayServer",
    "Reply",
    "encode_event_stream_message",
    "load_fixture",
]

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Seconds a held reply waits for `Reply.release` before sending the rest anyway.
HOLD_TIMEOUT = 5.0

_OPENAI_PATH = re.compile(r"^/v1/(chat/completions|responses|embeddings|decisions)/?$")
_BEDROCK_PATH = re.compile(
    r"^/model/(?P<model>[^/]+)/"
    r"(?P<operation>converse(-stream)?|invoke(-with-response-stream)?)$"
)


def load_fixture(name: str) -> Any:
    """Return the parsed JSON of `examples/fixtures/<name>`."""
    with (FIXTURES / name).open(encoding="utf-8") as file:
        return json.load(file)


def encode_event_stream_message(
    event_type: str, payload: Mapping[str, Any], message_type: str = "event"
) -> bytes:
    """Encode one message in the AWS event-stream binary framing.

    A message is a prelude (total length and headers length, 4 bytes each,
    big-endian), the CRC-32 of the prelude, the headers, the payload, and the
    CRC-32 of everything before it. Each header is a 1-byte name length, the
    name, the value type (7 for a string), a 2-byte value length and the value.
    With `message_type="exception"`, `event_type` is the exception's name,
    such as `modelStreamErrorException`.
    """
    type_header = ":exception-type" if message_type == "exception" else ":event-type"
    headers = b"".join(
        _encode_header(name, value)
        for name, value in (
            (type_header, event_type),
            (":content-type", "application/json"),
            (":message-type", message_type),
        )
    )
    body = json.dumps(payload, separators=(",", ":")).encode()
    total_length = 4 + 4 + 4 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total_length, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _encode_header(name: str, value: str) -> bytes:
    name_bytes = name.encode()
    value_bytes = value.encode()
    return (
        struct.pack(">B", len(name_bytes))
        + name_bytes
        + struct.pack(">BH", 7, len(value_bytes))
        + value_bytes
    )


@dataclass
class Reply:
    """One queued HTTP response.

    `parts` are sent in order. A reply with more than one part is sent with
    chunked transfer encoding, one chunk per part, as the real services stream.
    With `hold_after=n`, the server sends `n` parts and then waits until
    `release` is set, so a test can see text arrive before the rest. It waits
    at most `HOLD_TIMEOUT` seconds, and `hold_timed_out` records whether it
    gave up.
    """

    route: str
    parts: list[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    hold_timed_out: bool = False

    @classmethod
    def openai_json(cls, body: Mapping[str, Any], status: int = 200) -> Reply:
        """Reply to a Chat Completions request with a JSON body."""
        return cls(
            route="openai",
            parts=[json.dumps(body).encode()],
            status=status,
            headers={"content-type": "application/json", **_openai_headers()},
        )

    @classmethod
    def openai_stream(
        cls, chunks: Sequence[Mapping[str, Any]], hold_after: int | None = None
    ) -> Reply:
        """Reply to a streaming Chat Completions request with server-sent events."""
        events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks]
        return cls(
            route="openai",
            parts=[*events, b"data: [DONE]\n\n"],
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                **_openai_headers(),
            },
            hold_after=hold_after,
        )

    @classmethod
    def openai_error(
        cls, status: int, message: str, error_type: str, code: str | None = None
    ) -> Reply:
        """Reply with an OpenAI error body, such as a 401 `invalid_api_key`."""
        body = {"error": {"message": message, "type": error_type, "param": None}}
        body["error"]["code"] = code
        return cls.openai_json(body, status=status)

    @classmethod
    def bedrock_json(cls, body: Mapping[str, Any]) -> Reply:
        """Reply to a Converse request with a JSON body."""
        return cls(
            route="bedrock",
            parts=[json.dumps(body).encode()],
            headers={"content-type": "application/json", **_bedrock_headers()},
        )

    @classmethod
    def bedrock_event_stream(
        cls,
        events: Iterable[tuple[str, Mapping[str, Any]]],
        hold_after: int | None = None,
    ) -> Reply:
        """Reply to a ConverseStream request with `(event type, payload)` events.

        An event type ending in `Exception` is sent as an exception message,
        as Bedrock reports a failure in the middle of a stream.
        """
        parts = [
            encode_event_stream_message(
                kind,
                payload,
                "exception" if kind.endswith("Exception") else "event",
            )
            for kind, payload in events
        ]
        return cls(
            route="bedrock",
            parts=parts,
            headers={
                "content-type": "application/vnd.amazon.eventstream",
                **_bedrock_headers(),
            },
            hold_after=hold_after,
        )

    @classmethod
    def bedrock_error(cls, status: int, error_type: str, message: str) -> Reply:
        """Reply with a Bedrock error, such as a 403 `AccessDeniedException`."""
        return cls(
            route="bedrock",
            parts=[json.dumps({"message": message}).encode()],
            status=status,
            headers={
                "content-type": "application/json",
                "x-amzn-errortype": error_type,
                **_bedrock_headers(),
            },
        )


def _openai_headers() -> dict[str, str]:
    return {
        "x-request-id": f"req_{uuid.uuid4().hex}",
        "openai-processing-ms": "412",
        "openai-version": "2020-10-01",
    }


def _bedrock_headers() -> dict[str, str]:
    return {"x-amzn-requestid": str(uuid.uuid4())}


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it; header names are lower case."""

    route: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)

    @property
    def model(self) -> str | None:
        """The model id: from the URL for Bedrock, from the body for OpenAI."""
        match = _BEDROCK_PATH.match(self.path)
        if match:
            return unquote(match.group("model"))
        model = self.json().get("model")
        return model if isinstance(model, str) else None


class ReplayServer:
    """Serve queued replies on 127.0.0.1, and record the requests received."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        port: int = 0,
        fallback: Callable[[RecordedRequest], Reply] | None = None,
    ) -> None:
        """Queue `replies` and bind to `port` on 127.0.0.1 (0 for a free port).

        `fallback` builds the reply to a request whose route has none queued.
        """
        self._queues: dict[str, deque[Reply]] = {"openai": deque(), "bedrock": deque()}
        self._lock = threading.Lock()
        self._fallback = fallback
        self.requests: list[RecordedRequest] = []
        for reply in replies:
            self.add(reply)
        self._httpd = _HTTPServer(("127.0.0.1", port), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="llmfy-replay-server",
            daemon=True,
        )
        self._started = False

    @property
    def url(self) -> str:
        """The server's base URL, also the Bedrock `endpoint_url`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The `base_url` for `openai.OpenAI`."""
        return f"{self.url}/v1"

    def add(self, reply: Reply) -> Reply:
        """Queue `reply` for the next request on its route, and return it."""
        if reply.route not in self._queues:
            raise ValueError(
                f"Unknown route {reply.route!r}; expected one of "
                f"{', '.join(sorted(self._queues))}."
            )
        with self._lock:
            self._queues[reply.route].append(reply)
        return reply

    def pending(self, route: str) -> int:
        """Return how many replies are still queued on `route`."""
        with self._lock:
            return len(self._queues[route])

    def start(self) -> ReplayServer:
        """Start serving in a daemon thread."""
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def close(self) -> None:
        """Stop serving, and release every held reply."""
        with self._lock:
            for queue in self._queues.values():
                for reply in queue:
                    reply.release.set()
        if self._started:
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _take(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            queue = self._queues[request.route]
            if queue:
                return queue.popleft()
        return None if self._fallback is None else self._fallback(request)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that close the connection early, as a closed stream does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _route(path: str) -> str | None:
    if _OPENAI_PATH.match(path):
        return "openai"
    if _BEDROCK_PATH.match(path):
        return "bedrock"
    return None


def _handler_for(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Idle keep-alive connections are closed after this many seconds.
        timeout = 30

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            route = _route(path)
            if route is None:
                self._send_not_found(path)
                return
            request = RecordedRequest(
                route=route,
                method="POST",
                path=path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )
            reply = server._take(request)
            if reply is None:
                reply = _nothing_queued(route, path)
            self._send(reply)

        def _send_not_found(self, path: str) -> None:
            body = json.dumps({"message": f"no route for POST {path}"}).encode()
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if len(reply.parts) == 1 and reply.hold_after is None:
                self.send_header("content-length", str(len(reply.parts[0])))
                self.end_headers()
                self.wfile.write(reply.parts[0])
                return
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for index, part in enumerate(reply.parts):
                if index == reply.hold_after:
                    reply.hold_timed_out = not reply.release.wait(HOLD_TIMEOUT)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the demo's output and the test logs free of access lines."""

    return Handler


def _nothing_queued(route: str, path: str) -> Reply:
    message = (
        f"replay server: no response is queued for POST {path}; queue one with "
        "ReplayServer.add()"
    )
    if route == "openai":
        return Reply.openai_error(400, message, "invalid_request_error")
    return Reply.bedrock_error(400, "ValidationException", message)
