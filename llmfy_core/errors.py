"""Exceptions and warnings raised by llmfy.

Every exception derives from `LlmfyError`, and every warning from `LlmfyWarning`,
so that an application can catch or filter all of them at once.
"""

from __future__ import annotations

import contextlib
import warnings


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


class LlmfyWarning(UserWarning):
    """Base class of every warning that llmfy emits."""


class PluginWarning(LlmfyWarning):
    """A plugin failed to load and was skipped."""


class PricingWarning(LlmfyWarning):
    """A request could not be priced, or a price looks wrong."""


class UsageWarning(LlmfyWarning):
    """A response carried no usage, or usage that could only be read in part."""


def emit_warning(warning: LlmfyWarning, stacklevel: int = 2) -> None:
    """Issue `warning` without ever raising into the application.

    An application that turns warnings into errors (`-W error`) must still get
    its LLM call's result, so a warning raised as an exception is swallowed
    here; the caller has already logged the same message.
    """
    with contextlib.suppress(Warning):
        warnings.warn(warning, stacklevel=stacklevel + 1)
