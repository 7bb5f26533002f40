"""The documented import path: `from llmfy import llmfy_usage_tracker`.

Everything here is re-exported from `llmfy_core`, imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import llmfy_core
from llmfy_core import __all__ as __all__
from llmfy_core import __version__ as __version__

if TYPE_CHECKING:
    from llmfy_core import (
        CallContext as CallContext,
    )
    from llmfy_core import (
        CatalogEntry as CatalogEntry,
    )
    from llmfy_core import (
        ChatModel as ChatModel,
    )
    from llmfy_core import (
        ChatResponse as ChatResponse,
    )
    from llmfy_core import (
        ChatStream as ChatStream,
    )
    from llmfy_core import (
        Cost as Cost,
    )
    from llmfy_core import (
        LLMfy as LLMfy,
    )
    from llmfy_core import (
        LlmfyError as LlmfyError,
    )
    from llmfy_core import (
        LlmfyWarning as LlmfyWarning,
    )
    from llmfy_core import (
        LongContextTier as LongContextTier,
    )
    from llmfy_core import (
        Message as Message,
    )
    from llmfy_core import (
        ModelTotals as ModelTotals,
    )
    from llmfy_core import (
        PluginInfo as PluginInfo,
    )
    from llmfy_core import (
        PluginLoadError as PluginLoadError,
    )
    from llmfy_core import (
        PluginWarning as PluginWarning,
    )
    from llmfy_core import (
        Price as Price,
    )
    from llmfy_core import (
        PriceKey as PriceKey,
    )
    from llmfy_core import (
        PriceRank as PriceRank,
    )
    from llmfy_core import (
        PriceTable as PriceTable,
    )
    from llmfy_core import (
        PricingTableError as PricingTableError,
    )
    from llmfy_core import (
        PricingWarning as PricingWarning,
    )
    from llmfy_core import (
        ProviderCallError as ProviderCallError,
    )
    from llmfy_core import (
        RequestRecord as RequestRecord,
    )
    from llmfy_core import (
        Role as Role,
    )
    from llmfy_core import (
        StaticPriceTable as StaticPriceTable,
    )
    from llmfy_core import (
        StreamChunk as StreamChunk,
    )
    from llmfy_core import (
        TemplateVariableError as TemplateVariableError,
    )
    from llmfy_core import (
        UnknownProviderError as UnknownProviderError,
    )
    from llmfy_core import (
        Unpriced as Unpriced,
    )
    from llmfy_core import (
        Usage as Usage,
    )
    from llmfy_core import (
        UsageTracker as UsageTracker,
    )
    from llmfy_core import (
        UsageWarning as UsageWarning,
    )
    from llmfy_core import (
        active_trackers as active_trackers,
    )
    from llmfy_core import (
        bind_trackers as bind_trackers,
    )
    from llmfy_core import (
        compute_cost as compute_cost,
    )
    from llmfy_core import (
        format_decimal as format_decimal,
    )
    from llmfy_core import (
        hook_order as hook_order,
    )
    from llmfy_core import (
        hookimpl as hookimpl,
    )
    from llmfy_core import (
        hookspec as hookspec,
    )
    from llmfy_core import (
        invalidate_price_cache as invalidate_price_cache,
    )
    from llmfy_core import (
        list_plugins as list_plugins,
    )
    from llmfy_core import (
        llmfy_usage_tracker as llmfy_usage_tracker,
    )
    from llmfy_core import (
        load_plugins as load_plugins,
    )
    from llmfy_core import (
        register_plugin as register_plugin,
    )
    from llmfy_core import (
        start_process_tracker as start_process_tracker,
    )
    from llmfy_core import (
        stop_process_tracker as stop_process_tracker,
    )
    from llmfy_core import (
        unregister_plugin as unregister_plugin,
    )


def __getattr__(name: str) -> Any:
    if name not in llmfy_core.__all__:
        raise AttributeError(f"module 'llmfy' has no attribute {name!r}")
    value = getattr(llmfy_core, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(llmfy_core.__all__))
