"""Read JSON records from the files given to `llmfy report`.

A file contains JSON lines (one record per line: OpenAI Batch output, saved
bodies, Bedrock invocation logs as Bedrock writes them to S3), a single JSON
document (a pretty-printed body or log record), or a JSON array of records.
Files compressed with gzip are read as they are, and the path `-` reads
standard input. Text is UTF-8, or UTF-16 or UTF-32 after a byte order mark.
A line that is not valid JSON becomes a `ReadFailure` with its line number,
and reading goes on, except a line of `[DONE]`, which ends the `data:`
payloads of a saved Chat Completions stream.
"""

from __future__ import annotations

import binascii
import codecs
import errno
import gzip
import io
import itertools
import json
import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import attrs

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"

# Byte order marks of the other Unicode encodings, UTF-32 first because the
# UTF-32 LE mark starts with the UTF-16 LE one. Windows PowerShell 5.1 writes
# UTF-16 LE with this mark when `>` or Out-File saves a command's output
# (Microsoft's about_Character_Encoding and Out-File pages). The utf-16 and
# utf-32 codecs read the mark to choose the byte order, and drop it.
UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# An AWS event-stream message starts with a prelude of its total length and
# its headers' length (4 bytes each, big-endian) and the CRC-32 of those 8 bytes.
EVENT_STREAM_PRELUDE_SIZE = 12
EVENT_STREAM_MESSAGE = (
    "a binary AWS event stream, as Bedrock ConverseStream and "
    "InvokeModelWithResponseStream send it, which llmfy report does not read. "
    "Count such streams with llmfy_usage_tracker() while they run, or report "
    "their requests from Bedrock model invocation logs"
)

STDIN_PATH = "-"
"""The file argument that reads standard input, the usual command-line convention."""

STDIN_NAME = "<stdin>"
"""The name that messages and the JSON report give standard input."""


@attrs.frozen(slots=True)
class StreamEnd:
    """The `[DONE]` line, the last `data:` payload of a Chat Completions stream.

    It is not JSON. A record of it has `STREAM_END` as its data, an object that
    no JSON value equals, so that the JSON string "[DONE]" stays a string.
    """


STREAM_END = StreamEnd()
"""The data of a record read from a `[DONE]` line."""
_STREAM_END_LINE = b"[DONE]"

# The lines of server-sent events (the `text/event-stream` format), in which
# OpenAI sends a stream, as a file saved from the wire has them: fields, and
# comments that start with a colon. Only `data:` carries a payload.
_SSE_DATA = b"data:"
_SSE_LINES = (_SSE_DATA, b"event:", b"id:", b"retry:", b":")


@attrs.frozen(slots=True)
class Record:
    """One JSON value read from a file, with where it starts.

    `item` is the 1-based position inside a JSON array, or None.
    """

    path: str
    line: int
    data: Any
    item: int | None = None

    @property
    def where(self) -> str:
        """The record's place, as `FILE:LINE` or `FILE:LINE item N`."""
        place = f"{self.path}:{self.line}"
        return place if self.item is None else f"{place} item {self.item}"


@attrs.frozen(slots=True)
class ReadFailure:
    """A line, file or JSON array item that could not be read, and why.

    `item` is the 1-based position inside a JSON array, or None.
    """

    path: str
    line: int | None
    message: str
    item: int | None = None

    @property
    def where(self) -> str:
        """The failure's place, as `FILE`, `FILE:LINE` or `FILE:LINE item N`."""
        if self.line is None:
            return self.path
        place = f"{self.path}:{self.line}"
        return place if self.item is None else f"{place} item {self.item}"


class InputFile:
    """One input file, read record by record; `position` follows the bytes read.

    The path `-` reads standard input, which `path` then names `<stdin>`.
    """

    def __init__(self, path: str) -> None:
        self.is_stdin = path == STDIN_PATH
        self.path = STDIN_NAME if self.is_stdin else path
        self._raw: io.BufferedReader | None = None

    @property
    def size(self) -> int:
        """The file's size in bytes, or 0 when it cannot be read or is a pipe."""
        try:
            if self.is_stdin:
                return os.fstat(_stdin_descriptor()).st_size
            return Path(self.path).stat().st_size
        except OSError:
            return 0

    def position(self) -> int:
        """Return how many bytes of the file (compressed, for gzip) were read."""
        raw = self._raw
        if raw is None or raw.closed:
            return 0
        try:
            return raw.tell()
        except OSError:
            # A pipe, such as /dev/stdin, has no position.
            return 0

    def records(self) -> Iterator[Record | ReadFailure]:
        """Yield every record of the file, and a `ReadFailure` for each bad line."""
        try:
            raw = self._open()
        except OSError as error:
            yield ReadFailure(self.path, None, _os_error(error))
            return
        self._raw = raw
        try:
            # Peeking, unlike a read and a seek back, also works on a pipe.
            stream, start = _peek_at_least(raw, len(GZIP_MAGIC))
            if start == GZIP_MAGIC:
                stream = gzip.GzipFile(fileobj=stream, mode="rb")
            stream, start = _peek_at_least(stream, EVENT_STREAM_PRELUDE_SIZE)
            if _is_event_stream(start):
                yield ReadFailure(self.path, None, EVENT_STREAM_MESSAGE)
                return
            encoding = _unicode_encoding(start)
            if encoding is None:
                yield from self._read_lines(stream)
            else:
                yield from self._read_transcoded(stream, encoding)
        except (OSError, EOFError) as error:
            yield ReadFailure(self.path, None, f"reading failed: {error}")
        finally:
            raw.close()

    def _open(self) -> io.BufferedReader:
        if self.is_stdin:
            # With closefd=False, closing the reader leaves standard input open.
            return open(_stdin_descriptor(), "rb", closefd=False)
        return open(self.path, "rb")

    def _read_transcoded(
        self, stream: io.BufferedReader | gzip.GzipFile, encoding: str
    ) -> Iterator[Record | ReadFailure]:
        try:
            yield from self._read_lines(Utf8Lines(stream, encoding))
        except UnicodeDecodeError as error:
            message = (
                f"not valid {encoding.upper()} text after its byte order mark "
                f"({error.reason}); save the file as UTF-8"
            )
            yield ReadFailure(self.path, None, message)

    def _read_lines(self, stream: LineSource) -> Iterator[Record | ReadFailure]:
        lines = enumerate(stream, start=1)
        for number, line in lines:
            if number == 1:
                # Some Windows editors save UTF-8 with a byte order mark.
                line = line.removeprefix(UTF8_BOM)
            text = line.strip()
            if not text:
                continue
            if text.startswith(_SSE_LINES):
                # A stream saved from the wire: one payload per `data:` line.
                first = ((number, line),)
                yield from self._read_more_lines(itertools.chain(first, lines))
                return
            if text == _STREAM_END_LINE:
                yield Record(self.path, number, STREAM_END)
                break
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as error:
                if text[:1] not in (b"{", b"["):
                    yield ReadFailure(self.path, number, _json_error(error))
                    break
                # Perhaps a document spread over several lines: read it whole.
                peeked = _peek_next_line(lines)
                rest = b"".join(line for _, line in peeked) + stream.read()
                failure = yield from self._read_document(
                    line + rest, number, _continues_json_lines(text, peeked)
                )
                if failure is None:
                    return
                yield ReadFailure(self.path, number, _json_error(error))
                lines = enumerate(io.BytesIO(rest), start=number + 1)
                break
            yield from self._values(data, number)
            break
        yield from self._read_more_lines(lines)

    def _read_more_lines(
        self, lines: Iterator[tuple[int, bytes]]
    ) -> Iterator[Record | ReadFailure]:
        # The payloads of consecutive `data:` lines that are not JSON alone,
        # with their line numbers. A server-sent event joins its `data:`
        # lines with newlines, so they may be one JSON document.
        split: list[tuple[int, bytes]] = []
        for number, line in lines:
            stripped = line.strip()
            text = _payload(stripped)
            is_data = stripped.startswith(_SSE_DATA)
            if split:
                if is_data and text != _STREAM_END_LINE and not _is_json(text):
                    split.append((number, text))
                    joined = b"\n".join(payload for _, payload in split)
                    try:
                        data = json.loads(joined)
                    except (ValueError, RecursionError):
                        continue
                    yield from self._values(data, split[0][0])
                    split = []
                    continue
                yield from self._read_payloads(split)
                split = []
            if not text:
                continue
            if text == _STREAM_END_LINE:
                yield Record(self.path, number, STREAM_END)
                continue
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as error:
                if is_data:
                    split.append((number, text))
                    continue
                yield ReadFailure(self.path, number, _json_error(error))
                continue
            yield from self._values(data, number)
        yield from self._read_payloads(split)

    def _read_payloads(
        self, payloads: list[tuple[int, bytes]]
    ) -> Iterator[Record | ReadFailure]:
        """Read each `data:` payload alone, because joined they were not JSON."""
        for number, text in payloads:
            if not text:
                continue
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as error:
                yield ReadFailure(self.path, number, _json_error(error))
                continue
            yield from self._values(data, number)

    def _read_document(
        self, text: bytes, start: int, json_lines: bool
    ) -> Generator[Record | ReadFailure, None, ValueError | RecursionError | None]:
        """Read `text` as one JSON document starting on line `start`.

        Returns the error, without yielding anything, when the document is
        invalid on its first line, or invalid anywhere while `json_lines` is
        true: the text then looks like JSON lines whose first line was cut
        short. The caller then reads the text as JSON lines.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            if not isinstance(error, json.JSONDecodeError) or json_lines:
                return error
            if error.lineno == 1 or error.msg == "Extra data":
                return error
            line = start + error.lineno - 1
            yield ReadFailure(self.path, line, _json_error(error))
            return None
        yield from self._values(data, start)
        return None

    def _values(self, data: Any, line: int) -> Iterator[Record]:
        if isinstance(data, list):
            for item, value in enumerate(data, start=1):
                yield Record(self.path, line, value, item)
        else:
            yield Record(self.path, line, data)


class LineSource(Protocol):
    """A binary stream read line by line, then read to its end."""

    def __iter__(self) -> Iterator[bytes]: ...

    def read(self) -> bytes: ...


class Utf8Lines:
    """The lines of a UTF-16 or UTF-32 stream, encoded again as UTF-8.

    Raises UnicodeDecodeError, while it is read, on bytes that are invalid
    in `encoding`.
    """

    # NOTE: TextIOWrapper decodes blocks of several kilobytes, so the lines
    # before an invalid byte in the same block are lost with it.

    def __init__(
        self, stream: io.BufferedReader | gzip.GzipFile, encoding: str
    ) -> None:
        # With newline="\n", lines end at "\n" only and keep their ends, as
        # in binary reading.
        self._text = io.TextIOWrapper(stream, encoding=encoding, newline="\n")

    def __iter__(self) -> Iterator[bytes]:
        for line in self._text:
            yield line.encode()

    def read(self) -> bytes:
        return self._text.read().encode()


class _PrefixedStream(io.RawIOBase):
    """The bytes of `prefix`, then the rest of `stream`."""

    def __init__(self, prefix: bytes, stream: io.BufferedReader | gzip.GzipFile):
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._stream.read1(len(view))
        view[: len(data)] = data
        return len(data)


def _peek_at_least(
    stream: io.BufferedReader | gzip.GzipFile, size: int
) -> tuple[io.BufferedReader | gzip.GzipFile, bytes]:
    """Return a stream with the same bytes as `stream`, and its first `size` bytes.

    `peek` reads at most once, so on a pipe it may return fewer bytes than
    the stream has. Those are then read, and put back in front of the rest.
    Fewer than `size` bytes are returned only at the end of the stream.
    """
    start = stream.peek(size)
    if len(start) >= size:
        return stream, start[:size]
    prefix = stream.read(size)
    return io.BufferedReader(_PrefixedStream(prefix, stream)), prefix


def _is_event_stream(start: bytes) -> bool:
    """Return whether `start` is the prelude of an AWS event-stream message."""
    if len(start) < EVENT_STREAM_PRELUDE_SIZE:
        return False
    checksum = int.from_bytes(start[8:12], "big")
    return binascii.crc32(start[:8]) == checksum


def _unicode_encoding(start: bytes) -> str | None:
    """Return the codec of a UTF-16 or UTF-32 byte order mark at `start`, or None."""
    for bom, encoding in UNICODE_BOMS:
        if start.startswith(bom):
            return encoding
    return None


def _peek_next_line(lines: Iterator[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Take lines from `lines` up to and including the next one that is not blank."""
    peeked = []
    for number, line in lines:
        peeked.append((number, line))
        if line.strip():
            break
    return peeked


def _continues_json_lines(first: bytes, peeked: list[tuple[int, bytes]]) -> bool:
    """Return whether an invalid first line `first` most likely starts JSON lines.

    It does when `first` is more than an opening bracket and the next line
    that is not blank is a whole JSON object by itself, as in JSON lines.
    """
    if first in (b"{", b"[") or not peeked:
        return False
    following = peeked[-1][1].strip()
    if not following:
        return False
    try:
        return isinstance(json.loads(following), dict)
    except (ValueError, RecursionError):
        return False


def _payload(text: bytes) -> bytes:
    """Return the JSON text of a stripped line: the payload of a server-sent event.

    A `data:` line gives what follows the colon, and the event's other lines
    give nothing. Any other line is its own text.
    """
    if not text.startswith(_SSE_LINES):
        return text
    if text.startswith(_SSE_DATA):
        return text[len(_SSE_DATA) :].strip()
    return b""


def _is_json(text: bytes) -> bool:
    """Return whether `text` is a JSON document by itself."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _json_error(error: ValueError | RecursionError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} (column {error.colno})"
    if isinstance(error, RecursionError):
        return "not readable: the JSON is nested too deeply"
    return f"not valid JSON: {error}"


def stat_input(path: str) -> os.stat_result:
    """Return the status of the file that `path` opens, standard input for `-`.

    Raises OSError when the file cannot be found or standard input is closed.
    """
    if path == STDIN_PATH:
        return os.fstat(_stdin_descriptor())
    return os.stat(path)


def _stdin_descriptor() -> int:
    """Return the file descriptor of standard input, or raise OSError when it is closed.

    Python sets `sys.stdin` to None when it starts with descriptor 0 closed.
    """
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        raise OSError(errno.EBADF, "standard input is closed")
    return stdin.fileno()


def _os_error(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found; check the path"
    if isinstance(error, IsADirectoryError):
        return "is a directory; give the files inside it"
    if isinstance(error, PermissionError):
        return "permission denied"
    return f"cannot open: {error.strerror or error}"
