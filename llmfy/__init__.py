"""The documented import path: `from llmfy import llmfy_usage_tracker`.

Everything here is re-exported from `llmfy_core`.
"""

from llmfy_core import *  # noqa: F403
from llmfy_core import __all__ as _core_all
from llmfy_core import __version__ as __version__

__all__ = [*_core_all]
del _core_all
