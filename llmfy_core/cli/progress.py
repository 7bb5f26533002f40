"""A progress bar on a terminal's stderr, for `llmfy report` on large inputs."""

from __future__ import annotations

import time
from typing import TextIO

from .output import count_of

LARGE_INPUT_BYTES = 4 * 1024 * 1024
"""Inputs at least this large get a progress bar (when stderr is a terminal)."""

_WIDTH = 30
_INTERVAL_SECONDS = 0.1


class Progress:
    """Draw `[#####     ]  42%  1,234 records` on one line, at most ten times a second.

    Draws nothing unless `enabled`; `done` clears the line.
    """

    def __init__(self, stream: TextIO, total_bytes: int, enabled: bool) -> None:
        self.stream = stream
        self.total_bytes = max(total_bytes, 1)
        self.enabled = enabled
        self._last_draw = 0.0
        self._drawn = False

    @classmethod
    def for_input(
        cls, stream: TextIO, total_bytes: int, wanted: bool | None
    ) -> Progress:
        """Create a bar shown when `wanted`, or, when None, for large input on a TTY."""
        if wanted is None:
            wanted = total_bytes >= LARGE_INPUT_BYTES and _is_terminal(stream)
        return cls(stream, total_bytes, wanted)

    def update(self, bytes_done: int, records: int) -> None:
        """Redraw the bar for `bytes_done` bytes read and `records` records counted."""
        if not self.enabled:
            return
        now = time.monotonic()
        if self._drawn and now - self._last_draw < _INTERVAL_SECONDS:
            return
        self._last_draw = now
        fraction = min(bytes_done / self.total_bytes, 1.0)
        filled = int(fraction * _WIDTH)
        bar = "#" * filled + " " * (_WIDTH - filled)
        counted = count_of(records, "record")
        self.stream.write(f"\r[{bar}] {fraction:4.0%}  {counted}")
        self.stream.flush()
        self._drawn = True

    def done(self) -> None:
        """Erase the bar, so that the report starts on a clean line."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * (_WIDTH + 40) + "\r")
            self.stream.flush()
            self._drawn = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
