"""A local HTTP server that replies to the OpenAI and Bedrock SDKs with fixed bodies.

It listens on 127.0.0.1 only, on a free port, in daemon threads, and stops
when its `with` block ends or, at the latest, after `max_lifetime` seconds.
The first path segment picks how a stream is sent, so that one client per
mode can share the server:

- `/fixed/...`: non-streaming replies (a stream sent this way is `burst`);
- `/paced/...`: the first event at once, then one event every `interval`
  seconds, each carrying the server's `time.monotonic_ns()` at sending, so the
  client can measure how long each event took to reach the application;
- `/burst/...`: `BURST_STREAM_EVENTS` events written at once, so that the
  client is busy parsing and any work added per event shows in its time;
- `/short/...`: as `/burst/...`, with `SHORT_STREAM_EVENTS` events.

Routes after the mode: `POST /v1/chat/completions` (JSON, or server-sent
events when the request has `"stream": true`), `POST /model/{id}/converse` and
`POST /model/{id}/converse-stream` (the AWS event-stream framing).
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import benchkit

sys.path.insert(0, str(benchkit.REPO_DIR / "examples"))
from replay_server import encode_event_stream_message

# Events a client receives per paced stream: OpenAI's role chunk, content chunks, the
# finish chunk and the usage chunk; Bedrock's messageStart, content deltas,
# contentBlockStop, messageStop and metadata.
STREAM_EVENTS = 200
# Events of a `/burst/...` stream. The more events a burst stream has beyond a
# short one, the less the noise of each stream's fixed costs weighs on the
# cost per added event.
BURST_STREAM_EVENTS = 600
# Events of a `/short/...` stream, sent in a burst: the difference from a
# burst stream gives the cost of each added event without the per-stream costs.
SHORT_STREAM_EVENTS = 50
PACE_SECONDS = 0.001


class BenchServer:
    """Serve the benchmark's fixed replies on 127.0.0.1 until closed."""

    def __init__(
        self,
        events: int = STREAM_EVENTS,
        interval: float = PACE_SECONDS,
        max_lifetime: float = 900.0,
    ) -> None:
        self.events = events
        self.interval = interval
        # The bodies of burst and short streams, which never change.
        self._burst_bodies: dict[tuple[str, int], bytes] = {}
        self._ids = itertools.count()
        self._openai_body = json.dumps(benchkit.openai_chat_body()).encode()
        self._bedrock_body = json.dumps(benchkit.bedrock_converse_body()).encode()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bench-server",
            daemon=True,
        )
        self._deadline = threading.Timer(max_lifetime, self.close)
        self._deadline.daemon = True
        self._closed = threading.Event()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    def __enter__(self) -> BenchServer:
        self._thread.start()
        self._deadline.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving; safe to call more than once and from any thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._deadline.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_request_id(self) -> int:
        """Return a new number for the request-id header."""
        return next(self._ids)

    # Bodies

    def openai_json(self) -> bytes:
        return self._openai_body

    def bedrock_json(self) -> bytes:
        return self._bedrock_body

    def burst_body(self, provider: str, events: int) -> bytes:
        """Return the chunked body of a stream of `events` events written at once."""
        key = (provider, events)
        body = self._burst_bodies.get(key)
        if body is None:
            source = self.openai_events if provider == "openai" else self.bedrock_events
            parts = [
                b"%x\r\n%s\r\n" % (len(part), part)
                for part in source(lambda: "token ", events)
            ]
            body = self._burst_bodies[key] = b"".join(parts) + b"0\r\n\r\n"
        return body

    def openai_events(self, stamp: Callable[[], str], events: int) -> Iterator[bytes]:
        """Yield `events` server-sent events of a Chat Completions stream with usage."""
        base = {
            "id": "chatcmpl-BenchStream",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": benchkit.OPENAI_SERVED_MODEL,
            "service_tier": "default",
            "system_fingerprint": "fp_560af6e559",
            "usage": None,
        }

        def event(choices: list[Any], **fields: Any) -> bytes:
            chunk = {**base, "choices": choices, **fields}
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
            return [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            ]

        yield event(choice({"role": "assistant", "content": "", "refusal": None}))
        for _ in range(events - 3):
            yield event(choice({"content": stamp()}))
        yield event(choice({}, "stop"))
        usage = benchkit.openai_chat_body()["usage"]
        yield event([], usage=usage) + b"data: [DONE]\n\n"

    def bedrock_events(self, stamp: Callable[[], str], events: int) -> Iterator[bytes]:
        """Yield the `events` event-stream messages of a ConverseStream response."""
        yield encode_event_stream_message("messageStart", {"role": "assistant"})
        for _ in range(events - 4):
            delta = {"contentBlockIndex": 0, "delta": {"text": stamp()}}
            yield encode_event_stream_message("contentBlockDelta", delta)
        yield encode_event_stream_message("contentBlockStop", {"contentBlockIndex": 0})
        yield encode_event_stream_message("messageStop", {"stopReason": "end_turn"})
        body = benchkit.bedrock_converse_body()
        metadata = {"usage": body["usage"], "metrics": body["metrics"]}
        yield encode_event_stream_message("metadata", metadata)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that close the connection early, as a closed stream does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(server: BenchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Idle keep-alive connections are closed after this many seconds.
        timeout = 30
        # Without TCP_NODELAY, a body written after its headers waits for the
        # client's delayed ACK: about 40 ms per response on Linux.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            mode, _, route = self.path.split("?", 1)[0].lstrip("/").partition("/")
            number = server.next_request_id()
            if route == "v1/chat/completions":
                if b'"stream":true' in body.replace(b" ", b""):
                    self._stream(mode, "openai", f"req_{number:032x}")
                else:
                    self._json(server.openai_json(), "x-request-id", f"{number:032x}")
            elif route.startswith("model/") and route.endswith("/converse"):
                self._json(server.bedrock_json(), "x-amzn-requestid", str(number))
            elif route.startswith("model/") and route.endswith("/converse-stream"):
                self._stream(mode, "bedrock", str(number))
            else:
                self._json(b'{"message": "not found"}', "x-request-id", "0", 404)

        def _json(
            self, body: bytes, id_header: str, request_id: str, status: int = 200
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header(id_header, request_id)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, mode: str, provider: str, request_id: str) -> None:
            self.send_response(200)
            if provider == "openai":
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("x-request-id", request_id)
            else:
                self.send_header("content-type", "application/vnd.amazon.eventstream")
                self.send_header("x-amzn-requestid", request_id)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if mode != "paced":
                count = SHORT_STREAM_EVENTS if mode == "short" else BURST_STREAM_EVENTS
                self.wfile.write(server.burst_body(provider, count))
                return
            source = (
                server.openai_events if provider == "openai" else server.bedrock_events
            )
            # Each event is built after the pause, so its stamp is the time it
            # is written. The last one goes with the end of the body, so that a
            # client that stops reading there can reuse the connection.
            events = source(lambda: str(time.monotonic_ns()), server.events)
            for index in range(server.events):
                if index:
                    time.sleep(server.interval)
                part = next(events)
                data = b"%x\r\n%s\r\n" % (len(part), part)
                if index == server.events - 1:
                    data += b"0\r\n\r\n"
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the benchmark output free of access lines."""

    return Handler
