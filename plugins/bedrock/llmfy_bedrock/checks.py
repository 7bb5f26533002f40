"""The malformed fields of one Bedrock response, noted while it is read.

Bedrock sends its token counts as JSON numbers and as header strings. A count
that is negative, not a whole number or not a number at all is not trusted.
The functions of `llmfy_bedrock.extract` note each such field here, and
`usage_extract` logs them once the response is read, with the model and
region that only its call context carries. `usage_from_invocation_log` logs
the notes of each invocation log record the same way. Outside
`collecting()`, notes are dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

from llmfy_core import CallContext
from llmfy_core.errors import describe_invalid
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger

logger = get_logger("llmfy.bedrock")

# At most this many problems are kept per response.
MAX_PROBLEMS = 16

_problems: ContextVar[list[str] | None] = ContextVar(
    "llmfy_bedrock_problems", default=None
)

# (model, problem) already logged at WARNING; repeats go to DEBUG, so that a
# response shape that is malformed on every call logs once. Bounded, so that
# endless distinct model ids keep memory flat.
_logged: set[tuple[str, str]] = set()
# Reentrant, as a stream finalizer run by garbage collection can log too.
_logged_lock = new_lock()
_MAX_LOGGED = 1024


def note(field: str, problem: str) -> None:
    """Note that `field` of the response being read is `problem` ("is missing")."""
    note_text(f"field {field} {problem}")


def note_text(problem: str) -> None:
    """Note a problem of the response being read, as a phrase."""
    problems = _problems.get()
    if problems is not None and len(problems) < MAX_PROBLEMS:
        problems.append(problem)


def note_invalid(field: str, value: object) -> None:
    """Note that `field` contains `value`, which is not a valid token count."""
    note(field, describe_invalid(value))


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the notes made while the block reads one response."""
    problems: list[str] = []
    token = _problems.set(problems)
    try:
        yield problems
    finally:
        _problems.reset(token)


def report(context: CallContext, problems: list[str], source: str = "response") -> None:
    """Log the problems of one response with its operation, model and region.

    `source` names what was read: the response, or an invocation log record.
    """
    model = context.model or "unknown"
    with _logged_lock:
        fresh = [each for each in problems if (model, each) not in _logged]
        for each in fresh:
            if len(_logged) < _MAX_LOGGED:
                _logged.add((model, each))
    logger.log(
        logging.WARNING if fresh else logging.DEBUG,
        "The bedrock %s %s for model %s in region %s: %s. The request is "
        "still counted, with the token counts that could be read.",
        context.operation or "API",
        source,
        model,
        context.region,
        "; ".join(problems),
    )
