"""Skip marks for tests of Bedrock features that older botocore versions lack.

botocore parses a response by the service model it ships, and drops every
member that the model does not declare. The same model rejects a request
member it does not declare, so an application on that botocore cannot send
most requests that make Bedrock return such a member: a prompt cache point,
a latency setting, a cache time-to-live. A test that needs such a member is
skipped on that botocore, with the reason.
"""

from __future__ import annotations

import botocore
import botocore.session
import pytest

_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


def declares(shape: str, member: str) -> bool:
    """Return whether the installed botocore declares `member` of `shape`."""
    if shape not in _MODEL.shape_names:
        return False
    return member in _MODEL.shape_for(shape).members


def requires(shape: str, member: str, consequence: str) -> pytest.MarkDecorator:
    """Mark a test to skip when the installed botocore lacks `shape.member`.

    `consequence` completes the skip reason: what that botocore cannot do.
    """
    return pytest.mark.skipif(
        not declares(shape, member), reason=_reason(shape, member, consequence)
    )


def skip_unless_declared(shape: str, member: str, consequence: str) -> None:
    """Skip the running test when the installed botocore lacks `shape.member`."""
    if not declares(shape, member):
        pytest.skip(_reason(shape, member, consequence))


def _reason(shape: str, member: str, consequence: str) -> str:
    version = botocore.__version__
    return f"botocore {version} does not declare {shape}.{member}, so {consequence}"


# botocore 1.37.24 added prompt caching: cachePoint blocks in a Converse
# request and the cache token counts in its usage.
CACHE_TOKENS = "it cannot send a cache point or parse the cache token counts"
prompt_caching = requires("TokenUsage", "cacheReadInputTokens", CACHE_TOKENS)
# botocore 1.42.31 added cache time-to-live: `ttl` on a cache point and the
# cache writes per time-to-live in `usage.cacheDetails`.
cache_ttl = requires(
    "TokenUsage",
    "cacheDetails",
    "it cannot send a cache time-to-live or parse the writes per time-to-live",
)
# botocore 1.35.73 added latency-optimized inference.
latency_optimized = requires(
    "ConverseRequest", "performanceConfig", "it cannot send a latency setting"
)
