"""Loggers that never raise into the application.

llmfy logs from inside the application's LLM calls. A handler that raises
(a broken log shipper, a test that turns log records into errors) must not
turn a successful call into a failed one, so these loggers drop a record
whose handling raised.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any


class SafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter whose calls never raise."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log like `logging.Logger.log`, dropping the record if a handler raises."""
        with contextlib.suppress(Exception):
            super().log(level, msg, *args, **kwargs)


# A library adds no handler but this one, which keeps Python's last-resort
# handler from printing llmfy's records to stderr beside the same warnings.
logging.getLogger("llmfy").addHandler(logging.NullHandler())


def get_logger(name: str) -> SafeLogger:
    """Return a `SafeLogger` for `name`, which should start with `llmfy.`."""
    return SafeLogger(logging.getLogger(name), {})


def raised_at(error: BaseException) -> str:
    """Return where `error` was raised, as ` (at FILE:LINE)`, or "" when unknown.

    It names the innermost frame: the line that failed in a plugin, which the
    exception's repr leaves out.
    """
    frames = error.__traceback__
    if frames is None:
        return ""
    while frames.tb_next is not None:
        frames = frames.tb_next
    return f" (at {frames.tb_frame.f_code.co_filename}:{frames.tb_lineno})"
