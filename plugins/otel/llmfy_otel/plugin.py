"""Hook implementations of the llmfy-otel plugin."""

from __future__ import annotations

import llmfy_core
from llmfy_core import RequestRecord
from llmfy_otel import process
from llmfy_otel.exporter import EXPORTER


@llmfy_core.hookimpl
def request_recorded(record: RequestRecord) -> None:
    """Export one finished request through OpenTelemetry; never raises.

    The first call also reads `LLMFY_OTEL_ENABLE`, so that the variable starts
    the process-wide tracker without making `import llmfy` any slower.
    """
    if not process._environment_checked:
        try:
            process.enable_from_environment()
        except Exception as error:
            process.logger.warning(
                "Starting llmfy's process-wide tracking from %s failed: %r",
                process.ENABLE_VARIABLE,
                error,
            )
    EXPORTER.export(record)
