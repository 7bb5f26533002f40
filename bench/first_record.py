"""Import llmfy, discover its plugins and record one response of each provider.

Imported by `bench_imports.py` in a fresh interpreter, to time a cold start up
to the first priced request. The responses are plain dicts, as JSON bodies are
parsed, so no provider SDK is imported.
"""

import benchkit

import llmfy
from llmfy_core.recording import record_response

llmfy.list_plugins()
with llmfy.llmfy_usage_tracker() as usage:
    trackers = llmfy.active_trackers()
    record_response(
        benchkit.openai_chat_body(),
        llmfy.CallContext("openai", "chat.completions", benchkit.OPENAI_MODEL),
        trackers,
    )
    record_response(
        benchkit.bedrock_converse_response(),
        llmfy.CallContext(
            "bedrock", "Converse", benchkit.BEDROCK_MODEL, benchkit.BEDROCK_REGION
        ),
        trackers,
    )
if not usage.cost_complete or usage.request_count != 2:
    raise SystemExit(f"the cold-start requests were not priced: {usage!r}")
