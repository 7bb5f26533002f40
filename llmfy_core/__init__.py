"""llmfy: usage and cost tracking for LLM calls, extended by pluggy plugins.

`from llmfy import llmfy_usage_tracker` is the documented import; this package
holds the implementation, and the `llmfy` package re-exports it.

Each public name is imported from its module when first used, so that
`import llmfy` loads only what the application touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmfy_core.lazy import lazy_exports

if TYPE_CHECKING:
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
    from llmfy_core.hookspecs import (
        hookimpl,
        hookspec,
    )
    from llmfy_core.model import (
        CallContext,
        Cost,
        LongContextTier,
        Price,
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
    from llmfy_core.ranks import PriceRank
    from llmfy_core.resolver import (
        invalidate_price_cache,
    )
    from llmfy_core.totals import (
        ModelTotals,
    )
    from llmfy_core.tracker import (
        UsageTracker,
        active_trackers,
        bind_trackers,
        llmfy_usage_tracker,
        start_process_tracker,
        stop_process_tracker,
    )

__version__ = "0.1.0"

# Each public name and the module that defines it.
_MODULES = {
    "CallContext": "llmfy_core.model",
    "CatalogEntry": "llmfy_core.pricing",
    "ChatModel": "llmfy_core.agent",
    "ChatResponse": "llmfy_core.agent",
    "ChatStream": "llmfy_core.agent",
    "Cost": "llmfy_core.model",
    "LLMfy": "llmfy_core.agent",
    "LlmfyError": "llmfy_core.errors",
    "LlmfyWarning": "llmfy_core.errors",
    "LongContextTier": "llmfy_core.model",
    "Message": "llmfy_core.agent",
    "ModelTotals": "llmfy_core.totals",
    "PluginInfo": "llmfy_core.plugins",
    "PluginLoadError": "llmfy_core.errors",
    "PluginWarning": "llmfy_core.errors",
    "Price": "llmfy_core.model",
    "PriceKey": "llmfy_core.pricing",
    "PriceRank": "llmfy_core.ranks",
    "PriceTable": "llmfy_core.pricing",
    "PricingTableError": "llmfy_core.errors",
    "PricingWarning": "llmfy_core.errors",
    "ProviderCallError": "llmfy_core.errors",
    "RequestRecord": "llmfy_core.model",
    "Role": "llmfy_core.agent",
    "StaticPriceTable": "llmfy_core.pricing",
    "StreamChunk": "llmfy_core.agent",
    "TemplateVariableError": "llmfy_core.errors",
    "UnknownProviderError": "llmfy_core.errors",
    "Unpriced": "llmfy_core.model",
    "Usage": "llmfy_core.model",
    "UsageTracker": "llmfy_core.tracker",
    "UsageWarning": "llmfy_core.errors",
    "active_trackers": "llmfy_core.tracker",
    "bind_trackers": "llmfy_core.tracker",
    "compute_cost": "llmfy_core.pricing",
    "format_decimal": "llmfy_core.pricing",
    "hook_order": "llmfy_core.plugins",
    "hookimpl": "llmfy_core.hookspecs",
    "hookspec": "llmfy_core.hookspecs",
    "invalidate_price_cache": "llmfy_core.resolver",
    "list_plugins": "llmfy_core.plugins",
    "llmfy_usage_tracker": "llmfy_core.tracker",
    "load_plugins": "llmfy_core.plugins",
    "register_plugin": "llmfy_core.plugins",
    "start_process_tracker": "llmfy_core.tracker",
    "stop_process_tracker": "llmfy_core.tracker",
    "unregister_plugin": "llmfy_core.plugins",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
