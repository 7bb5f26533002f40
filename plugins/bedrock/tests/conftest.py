"""Fixtures for the Bedrock plugin's tests: a local Bedrock Runtime stand-in.

`bedrock_server` is a stdlib HTTP server on 127.0.0.1 that replies to each
request with the next queued response. Stream responses are sent frame by frame with
chunked transfer encoding, in the AWS event-stream binary framing, and can wait
on a `threading.Event` before a frame. Clients are real boto3 clients with
dummy credentials pointed at that server.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import boto3
import pytest
from llmfy_bedrock import resolve

from llmfy_core import invalidate_price_cache


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """Encode one message of the AWS event-stream framing (string headers only)."""
    encoded_headers = b""
    for name, value in headers.items():
        name_bytes = name.encode()
        value_bytes = value.encode()
        encoded_headers += (
            struct.pack("!B", len(name_bytes))
            + name_bytes
            + struct.pack("!BH", 7, len(value_bytes))
            + value_bytes
        )
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded_headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + encoded_headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event_frame(event_type: str, body: Mapping[str, Any]) -> bytes:
    """Encode one event of a ConverseStream response."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_frame(headers, json.dumps(body).encode())


def chunk_frame(chunk: Mapping[str, Any]) -> bytes:
    """Encode one chunk of an InvokeModelWithResponseStream response."""
    data = base64.b64encode(json.dumps(chunk).encode()).decode()
    return event_frame("chunk", {"bytes": data, "p": "abcdefgh"})


def exception_frame(exception_type: str, message: str) -> bytes:
    """Encode an exception event, which ends a stream with an error."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, json.dumps({"message": message}).encode())


def split_frames(data: bytes) -> list[bytes]:
    """Split event-stream bytes into messages, by the length in each prelude."""
    frames = []
    offset = 0
    while offset + 4 <= len(data):
        (total,) = struct.unpack_from("!I", data, offset)
        frames.append(data[offset : offset + total])
        offset += total
    return frames


@attrs.define
class Reply:
    """One queued response: a whole body, or frames sent one by one.

    `wait_before[i]` makes the server wait on that event before frame `i`.
    With `cut_at`, the server declares the whole body's length, sends its
    first `cut_at` bytes and closes the connection. With `frames`, `cut_at`
    is a number of frames instead, sent before the connection is closed
    without the last chunk of the chunked encoding.
    """

    status: int = 200
    headers: Mapping[str, str] = attrs.Factory(dict)
    body: bytes = b""
    frames: Sequence[bytes] | None = None
    wait_before: Mapping[int, threading.Event] = attrs.Factory(dict)
    cut_at: int | None = None


@attrs.define
class Received:
    """A request the server received."""

    method: str
    path: str
    body: bytes


class QuietServer(ThreadingHTTPServer):
    """A server that ignores clients closing their connection mid-response."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


class BedrockServer:
    """A queue of replies served over HTTP on 127.0.0.1."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.sent_frames: list[int] = []
        self._lock = threading.Lock()
        self.httpd = QuietServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def queue_json(
        self, body: Mapping[str, Any], headers: Mapping[str, str] = {}
    ) -> None:
        """Queue a JSON response with extra headers."""
        self.queue(
            Reply(
                headers={"Content-Type": "application/json", **headers},
                body=json.dumps(body).encode(),
            )
        )

    def queue_recorded(
        self, status: int, headers: Mapping[str, str], body: bytes, stream: bool
    ) -> None:
        """Queue a recorded response; a stream body is sent frame by frame."""
        frames = split_frames(body) if stream else None
        self.queue(Reply(status=status, headers=headers, body=body, frames=frames))

    def queue_cut(self, headers: Mapping[str, str], body: bytes, cut_at: int) -> None:
        """Queue a response whose connection closes after `cut_at` bytes of `body`."""
        self.queue(Reply(headers=headers, body=body, cut_at=cut_at))

    def queue_error(self, status: int, code: str, message: str) -> None:
        """Queue an AWS JSON error response."""
        self.queue(
            Reply(
                status=status,
                headers={"Content-Type": "application/json", "x-amzn-ErrorType": code},
                body=json.dumps({"message": message}).encode(),
            )
        )

    def queue_stream(
        self,
        frames: Sequence[bytes],
        headers: Mapping[str, str] = {},
        wait_before: Mapping[int, threading.Event] | None = None,
        cut_after: int | None = None,
    ) -> None:
        """Queue an event-stream response sent frame by frame.

        With `cut_after`, the connection closes after that many frames.
        """
        self.queue(
            Reply(
                headers={
                    "Content-Type": "application/vnd.amazon.eventstream",
                    **headers,
                },
                frames=frames,
                wait_before=wait_before or {},
                cut_at=cut_after,
            )
        )

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.received.append(received)
            if not self.replies:
                return Reply(status=500, body=b'{"message": "no reply queued"}')
            return self.replies.pop(0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                reply = server._next(Received(self.command, self.path, body))
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.frames is None:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.cut_at is None:
                        self.wfile.write(reply.body)
                        return
                    self.wfile.write(reply.body[: reply.cut_at])
                    self.close_connection = True
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                for index, frame in enumerate(reply.frames):
                    if index == reply.cut_at:
                        self.close_connection = True
                        return
                    gate = reply.wait_before.get(index)
                    if gate is not None and not gate.wait(timeout=10):
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                    self.wfile.flush()
                    server.sent_frames.append(index)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            # GetAsyncInvoke and ListAsyncInvokes are GET requests.
            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Keep boto3 off real AWS: dummy credentials, no config files, no metadata."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def profile_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Give the test an empty profile mapping, and drop the prices it caused."""
    monkeypatch.setattr(resolve, "_profile_models", {})
    yield
    monkeypatch.undo()
    invalidate_price_cache()


@pytest.fixture
def bedrock_server() -> Iterator[BedrockServer]:
    """Start a local Bedrock Runtime stand-in; stop it after the test."""
    server = BedrockServer()
    server.start()
    yield server
    server.stop()


class ClientFactory:
    """Creates real boto3 bedrock-runtime clients aimed at the local server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(
        self, region: str = "us-east-1", session: boto3.session.Session | None = None
    ) -> Any:
        maker = session or boto3.session.Session()
        return maker.client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def make_client(bedrock_server: BedrockServer) -> ClientFactory:
    """Return a factory of boto3 clients for the local server."""
    return ClientFactory(bedrock_server.url)


@attrs.frozen
class Frames:
    """The event-stream encoders, for tests that build stream bodies."""

    event: Any = event_frame
    chunk: Any = chunk_frame
    exception: Any = exception_frame
    raw: Any = encode_frame


@pytest.fixture
def frames() -> Frames:
    """Return the event-stream frame encoders."""
    return Frames()


@pytest.fixture
def llama_chunks() -> list[dict[str, Any]]:
    """Return the decoded chunks of a Llama response stream, without metrics."""
    return [
        {
            "generation": "Hi",
            "prompt_token_count": 20,
            "generation_token_count": 1,
            "stop_reason": None,
        },
        {
            "generation": " there",
            "prompt_token_count": None,
            "generation_token_count": 2,
            "stop_reason": None,
        },
        {
            "generation": "",
            "prompt_token_count": None,
            "generation_token_count": 9,
            "stop_reason": "stop",
        },
    ]
