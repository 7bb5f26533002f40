"""llmfy-otel: export LLM usage and cost through OpenTelemetry.

Every request that llmfy records is exported once as GenAI metrics (token
usage, cached, cache write and reasoning tokens, requests and cost in USD), and
its usage and cost are set on the span current when it was recorded. With no
call at all, requests counted by `with llmfy_usage_tracker()` blocks go to the
application's global meter provider. `enable()` also counts every request in
the process without a block.

The names below are loaded on first use, so that importing the plugin during
llmfy's plugin discovery does not import OpenTelemetry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from llmfy_otel.process import ENABLE_VARIABLE, disable, enable, process_tracker

__version__ = "0.1.0"

_PROCESS_NAMES = frozenset({"ENABLE_VARIABLE", "disable", "enable", "process_tracker"})


def use_meter_provider(meter_provider: MeterProvider | None) -> None:
    """Export metrics to `meter_provider`, or to the global one when None.

    For applications that keep a meter provider of their own instead of
    setting the global one. It applies to every request exported from now on,
    in `with` blocks and in the process-wide mode alike.
    """
    from llmfy_otel.exporter import EXPORTER

    EXPORTER.use_meter_provider(meter_provider)


def __getattr__(name: str) -> Any:
    if name in _PROCESS_NAMES:
        from llmfy_otel import process

        return getattr(process, name)
    raise AttributeError(f"module 'llmfy_otel' has no attribute {name!r}")


__all__ = [
    "ENABLE_VARIABLE",
    "__version__",
    "disable",
    "enable",
    "process_tracker",
    "use_meter_provider",
]
