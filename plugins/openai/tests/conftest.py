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

    `body` is sent at once; `chunks` are sent one by one with a flush after
    each, and a `threading.Event` among them makes the server wait for it
    first (to pace a stream). `sent` is set once every byte was written.
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

    def add_json(self, path: str, body: Mapping[str, Any], **headers: str) -> Reply:
        """Queue a JSON reply."""
        content = json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **headers}
        return self.add(path, Reply(headers=all_headers, body=content))

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
        headers = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_sse"}
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
            try:
                server.requests.append((self.path, json.loads(raw) if raw else None))
            except ValueError:
                server.requests.append((self.path, raw))
            reply = server.next_reply(self.path)
            if reply is None:
                self.send_error(404, f"no reply queued for {self.path}")
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
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
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
    with openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def async_client(server: LocalServer) -> openai.AsyncOpenAI:
    """A real `openai.AsyncOpenAI` client pointed at the local server."""
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
