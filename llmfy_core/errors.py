"""Exceptions and warnings raised by llmfy.

Every exception derives from `LlmfyError`, and every warning from `LlmfyWarning`,
so that an application can catch or filter all of them at once.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from types import FrameType


class LlmfyError(Exception):
    """Base class of every exception that llmfy raises."""


class PricingTableError(LlmfyError, ValueError):
    """An override price table or price file is invalid.

    The message names the provider, model, region and field at fault and shows
    the expected shape, so that the table can be fixed before any LLM call.
    """


class UnknownProviderError(PricingTableError):
    """A `<provider>_pricing` argument names a provider that no plugin handles."""


class PluginLoadError(LlmfyError):
    """A plugin failed to load while plugin loading was strict."""

    def __init__(self, entry_point: str, distribution: str, message: str) -> None:
        super().__init__(message)
        self.entry_point = entry_point
        self.distribution = distribution


class ProviderCallError(LlmfyError):
    """An LLM provider call made by the llmfy agent failed.

    The provider's own exception is kept as `__cause__`.
    """

    def __init__(self, provider: str, model: str, message: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class TemplateVariableError(LlmfyError, ValueError):
    """A system-message placeholder was not declared or not given a value."""


def describe_invalid(value: object) -> str:
    """Describe an invalid value for a message, without showing text.

    Text may be a secret, so only its length is shown. An integer longer
    than 64 bits is described by its size, because Python converts at most
    4,300 digits to text by default.
    """
    if isinstance(value, int) and value.bit_length() > 64:
        return f"is invalid (an integer of {value.bit_length()} bits)"
    if isinstance(value, (int, float)):
        return f"is invalid ({value!r})"
    if isinstance(value, str):
        return f"is invalid (a string of {len(value)} characters)"
    return f"is invalid (a {type(value).__name__})"


class LlmfyWarning(UserWarning):
    """Base class of every warning that llmfy emits."""


class PluginWarning(LlmfyWarning):
    """A plugin failed to load and was skipped."""


class PricingWarning(LlmfyWarning):
    """A request could not be priced, or a price looks wrong."""


class UsageWarning(LlmfyWarning):
    """A response carried no usage, or usage that could only be read in part."""


# Modules whose frames a warning skips, so that it points at the application's
# line: llmfy's own packages, the provider SDKs and the libraries they call.
_INTERNAL_MODULES = (
    "asyncio",
    "boto3",
    "botocore",
    "concurrent",
    "contextlib",
    "functools",
    "httpx",
    "httpx2",
    "openai",
    "pluggy",
    "threading",
    "weakref",
)


def emit_warning(warning: LlmfyWarning, stacklevel: int = 2) -> None:
    """Issue `warning` at the application's line, without ever raising.

    The warning points at the first frame outside llmfy, its plugins and the
    provider SDKs; `stacklevel` applies when no such frame is found. An
    application that turns warnings into errors (`-W error`) must still get
    its LLM call's result, so a warning raised as an exception is swallowed
    here; the caller has already logged the same message.
    """
    with contextlib.suppress(Warning):
        warnings.warn(warning, stacklevel=_application_stacklevel(stacklevel + 1))


def warn_in_setup(warning: LlmfyWarning, stacklevel: int = 2) -> None:
    """Issue `warning` at the application's line, raising under `-W error`.

    It serves checks of configuration, such as a price table: no LLM call is
    under way then, and an application that turns warnings into errors wants
    to stop. The line is found as in `emit_warning`.
    """
    warnings.warn(warning, stacklevel=_application_stacklevel(stacklevel + 1))


def _application_stacklevel(default: int) -> int:
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not _is_internal(module):
            return level
        frame = frame.f_back
        level += 1
    return default


def _is_internal(module: str) -> bool:
    if module.startswith("llmfy"):
        return True
    root = module.partition(".")[0]
    return root in _INTERNAL_MODULES
