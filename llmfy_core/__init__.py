"""llmfy: usage and cost tracking for LLM calls, extended by pluggy plugins.

`from llmfy import llmfy_usage_tracker` is the documented import; this package
holds the implementation, and the `llmfy` package re-exports it.
"""

from llmfy_core.agent import (
    ChatModel,
    ChatResponse,
    ChatStream,
    LLMfy,
    Message,
    Role,
    StreamChunk,
)
from llmfy_core.errors import (
    LlmfyError,
    LlmfyWarning,
    PluginLoadError,
    PluginWarning,
    PricingTableError,
    PricingWarning,
    ProviderCallError,
    TemplateVariableError,
    UnknownProviderError,
    UsageWarning,
)
from llmfy_core.hookspecs import hookimpl, hookspec
from llmfy_core.model import (
    CallContext,
    Cost,
    LongContextTier,
    Price,
    PriceRank,
    RequestRecord,
    Unpriced,
    Usage,
)
from llmfy_core.plugins import (
    PluginInfo,
    hook_order,
    list_plugins,
    load_plugins,
    register_plugin,
    unregister_plugin,
)
from llmfy_core.pricing import (
    CatalogEntry,
    PriceKey,
    PriceTable,
    StaticPriceTable,
    compute_cost,
    format_decimal,
)
from llmfy_core.resolver import invalidate_price_cache
from llmfy_core.totals import ModelTotals
from llmfy_core.tracker import (
    UsageTracker,
    active_trackers,
    bind_trackers,
    llmfy_usage_tracker,
    start_process_tracker,
    stop_process_tracker,
)

__version__ = "0.1.0"

__all__ = [
    "CallContext",
    "CatalogEntry",
    "ChatModel",
    "ChatResponse",
    "ChatStream",
    "Cost",
    "LLMfy",
    "LlmfyError",
    "LlmfyWarning",
    "LongContextTier",
    "Message",
    "ModelTotals",
    "PluginInfo",
    "PluginLoadError",
    "PluginWarning",
    "Price",
    "PriceKey",
    "PriceRank",
    "PriceTable",
    "PricingTableError",
    "PricingWarning",
    "ProviderCallError",
    "RequestRecord",
    "Role",
    "StaticPriceTable",
    "StreamChunk",
    "TemplateVariableError",
    "UnknownProviderError",
    "Unpriced",
    "Usage",
    "UsageTracker",
    "UsageWarning",
    "__version__",
    "active_trackers",
    "bind_trackers",
    "compute_cost",
    "format_decimal",
    "hook_order",
    "hookimpl",
    "hookspec",
    "invalidate_price_cache",
    "list_plugins",
    "llmfy_usage_tracker",
    "load_plugins",
    "register_plugin",
    "start_process_tracker",
    "stop_process_tracker",
    "unregister_plugin",
]
