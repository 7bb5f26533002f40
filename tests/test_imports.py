"""What `import llmfy` and plugin discovery load, and the lazy public names."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import llmfy
import llmfy_core

# Modules that `import llmfy` plus plugin discovery must not load: the
# provider SDKs, and the libraries that cost the most to import.
HEAVY_MODULES = (
    "openai",
    "boto3",
    "botocore",
    "attrs",
    "importlib.metadata",
    "llmfy_core.agent",
    "llmfy_openai.extract",
    "llmfy_bedrock.extract",
)

SCRIPT = """
import json, sys
import llmfy
plugins = llmfy.list_plugins()
print(json.dumps({
    "plugins": sorted(info.name for info in plugins if info.error is None),
    "loaded": sorted(name for name in %r if name in sys.modules),
}))
"""


def run_fresh(script: str, plugins: str) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "LLMFY_PLUGINS": plugins},
    )
    data: dict[str, list[str]] = json.loads(result.stdout)
    return data


def test_discovery_loads_no_heavy_module() -> None:
    # llmfy-pricing-file is left out: it reads the data model at discovery.
    data = run_fresh(SCRIPT % (HEAVY_MODULES,), "openai,bedrock,genai-prices,otel")

    assert data["plugins"] == ["bedrock", "genai-prices", "openai", "otel"]
    assert data["loaded"] == []


def test_every_public_name_resolves() -> None:
    for name in llmfy_core.__all__:
        assert getattr(llmfy, name) is getattr(llmfy_core, name), name


def test_unknown_name_raises_attribute_error() -> None:
    try:
        llmfy.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("llmfy.no_such_name did not raise AttributeError")


def test_star_import_gives_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from llmfy import *", namespace)

    assert set(llmfy_core.__all__) <= set(namespace)
    assert namespace["llmfy_usage_tracker"] is llmfy_core.llmfy_usage_tracker
