"""Hook implementations of the llmfy-otel plugin.

This module is what plugin discovery imports, so it imports OpenTelemetry
only when there is something to export: discovery stays cheap, and an
application that never configures OpenTelemetry never loads it.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING

import llmfy_core

if TYPE_CHECKING:
    from llmfy_core import RequestRecord

ENABLE_VARIABLE = "LLMFY_OTEL_ENABLE"


@llmfy_core.hookimpl
def provider_instrument() -> None:
    """Start the process-wide mode when `LLMFY_OTEL_ENABLE` asks for it.

    The core calls this when the first tracker starts, which keeps the
    variable's check out of `import llmfy`. This plugin instruments no SDK.
    """
    if os.environ.get(ENABLE_VARIABLE, "").strip():
        _enable_from_environment()


@llmfy_core.hookimpl
def request_recorded(record: RequestRecord) -> None:
    """Export one finished request through OpenTelemetry; never raises."""
    _enable_from_environment()
    from llmfy_otel.exporter import EXPORTER

    EXPORTER.export(record)


# Whether LLMFY_OTEL_ENABLE was set when `llmfy_wants_records` first read it.
# Kept because the core calls it before every request, and reading the
# environment costs more than the rest of recording a request.
_environment_set: bool | None = None


def llmfy_wants_records() -> bool:
    """Return whether an export could reach anything, so the core skips the rest.

    Without OpenTelemetry imported by the application, without a meter
    provider set by the application or `use_meter_provider`, without the
    process-wide mode, and without a recording span, every OpenTelemetry call
    would be a no-op.
    """
    global _environment_set
    if "opentelemetry" not in sys.modules and "llmfy_otel.process" not in sys.modules:
        if _environment_set is None:
            _environment_set = bool(os.environ.get(ENABLE_VARIABLE, "").strip())
        return _environment_set
    process = _process()
    if not process._environment_checked or process.process_tracker() is not None:
        return True
    from opentelemetry import metrics, trace

    # NOTE: a private name of opentelemetry-api (checked with 1.x); the global
    # meter provider is an instance of it until the application sets one.
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    from llmfy_otel.exporter import EXPORTER

    if EXPORTER.meter_provider is not None:
        return True
    if not isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
        return True
    return trace.get_current_span().is_recording()


def _process() -> ModuleType:
    from llmfy_otel import process

    return process


def _enable_from_environment() -> None:
    process = _process()
    if process._environment_checked:
        return
    try:
        process.enable_from_environment()
    except Exception as error:
        process.logger.warning(
            "Starting llmfy's process-wide tracking from %s failed: %r",
            process.ENABLE_VARIABLE,
            error,
        )
