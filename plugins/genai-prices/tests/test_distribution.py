"""Build and install llmfy-genai-prices like a third party would, and show that it
is discovered, imports genai-prices only when asked for a price, and ranks
below the provider tables and a tracker's overrides.

The distribution is built from this repository with pip and installed into a
temporary folder. A separate Python process with that folder first on
PYTHONPATH discovers it through its entry point. The editable install of the
development environment is shadowed there: `importlib.metadata` keeps the first
distribution of each name on the path.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

PLUGIN = Path(__file__).resolve().parents[1]

# Runs in the child process. argv[1] is "inline" (a test provider plugin in
# place of the installed provider plugins) or "bundled" (the real ones).
SCRIPT = """\
import datetime as dt
import importlib.metadata
import json
import sys
from decimal import Decimal

import llmfy
import llmfy_core
from llmfy_core import Price, PriceKey, PriceRank, StaticPriceTable, hookimpl
from llmfy_core.pricing import price_from_mapping


class InlineOpenAI:
    llmfy_price_rank = PriceRank.PROVIDER
    prices = {"gpt-4.1": Price(Decimal("3"), Decimal("9"), source="inline")}

    @hookimpl
    def price_lookup(self, provider, model):
        return self.prices.get(model) if provider == "openai" else None

    @hookimpl
    def pricing_table_parse(self, provider, table):
        if provider != "openai":
            return None
        return StaticPriceTable(
            {
                PriceKey(model): price_from_mapping(
                    entry,
                    provider=provider,
                    model=model,
                    region=None,
                    default_unit=1_000_000,
                    expected_shape="",
                    source="override",
                )
                for model, entry in table.items()
            }
        )


mode = sys.argv[1]
models = sys.argv[2:]
plugins = llmfy_core.list_plugins()
imported_after_loading = "genai_prices" in sys.modules
if mode == "inline":
    llmfy_core.register_plugin(InlineOpenAI(), "inline-openai")
usage = llmfy.llmfy_usage_tracker(
    openai_pricing={"gpt-4o-mini": {"input": 1, "output": 2}}
)
sent_at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
records = [
    usage.record("openai", model, 1_000_000, 1_000_000, sent_at=sent_at)
    for model in models
]
print(
    json.dumps(
        {
            "plugin": [
                {
                    "distribution": info.distribution,
                    "version": info.version,
                    "price_rank": info.price_rank,
                    "hooks": list(info.hooks),
                    "error": info.error,
                }
                for info in plugins
                if info.name == "genai-prices"
            ],
            "location": [
                str(entry_point.dist.locate_file(""))
                for entry_point in importlib.metadata.entry_points(group="llmfy")
                if entry_point.name == "genai-prices"
            ],
            "imported_after_loading": imported_after_loading,
            "imported_after_lookup": "genai_prices" in sys.modules,
            "order": llmfy_core.hook_order("price_lookup"),
            "records": [
                {
                    "origin": record.price_origin,
                    "cost": str(record.cost.total) if record.cost else None,
                    "source": record.price.source if record.price else None,
                }
                for record in records
            ],
        }
    )
)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build llmfy-genai-prices with pip and install it into a folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
    )
    return target


def run_child(
    site: Path, tmp_path: Path, mode: str, models: list[str], disabled: str = ""
) -> dict[str, Any]:
    """Run SCRIPT in a Python process with `site` first on its path; parse its JSON."""
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LLMFY_") and key != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(site)
    if disabled:
        env["LLMFY_DISABLED_PLUGINS"] = disabled
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script), mode, *models],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_discovered_and_imported_lazily(site: Path, tmp_path: Path) -> None:
    data = run_child(site, tmp_path, "inline", ["gpt-4.1-mini"], disabled="openai")

    (plugin,) = data["plugin"]
    assert plugin["distribution"] == "llmfy-genai-prices"
    assert plugin["version"] == "0.1.0"
    assert plugin["price_rank"] == 0
    assert plugin["hooks"] == ["price_catalog", "price_lookup"]
    assert plugin["error"] is None
    assert data["location"] == [str(site)]
    assert data["imported_after_loading"] is False
    assert data["imported_after_lookup"] is True


def test_ranks_below_provider_and_override(site: Path, tmp_path: Path) -> None:
    # Every record is 1,000,000 input and 1,000,000 output tokens, so its
    # cost is the input price plus the output price.
    models = ["gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"]
    data = run_child(site, tmp_path, "inline", models, disabled="openai,bedrock")

    assert data["order"][-2:] == ["inline-openai", "genai-prices"]
    override, provider, fallback = data["records"]
    # gpt-4o-mini: the tracker override, 1 + 2.
    assert override["origin"] == "override"
    assert Decimal(override["cost"]) == Decimal("3")
    # gpt-4.1: the provider-ranked plugin, 3 + 9, although genai-prices has it.
    assert provider["origin"] == "inline-openai"
    assert Decimal(provider["cost"]) == Decimal("12")
    # gpt-4.1-mini: genai-prices, 0.40 + 1.60.
    assert fallback["origin"] == "genai-prices"
    assert Decimal(fallback["cost"]) == Decimal("2.0")
    version = importlib.metadata.version("genai-prices")
    assert fallback["source"] == f"genai-prices {version}, openai model gpt-4.1-mini"


def test_ranks_below_bundled_tables(site: Path, tmp_path: Path) -> None:
    models = ["gpt-4.1", "gpt-4.5-preview"]
    data = run_child(site, tmp_path, "bundled", models)

    order = data["order"]
    assert order.index("openai") < order.index("genai-prices")
    assert order.index("bedrock") < order.index("genai-prices")
    bundled, fallback = data["records"]
    # gpt-4.1: the bundled OpenAI table, 2.00 + 8.00.
    assert bundled["origin"] == "openai"
    assert Decimal(bundled["cost"]) == Decimal("10")
    # gpt-4.5-preview: not bundled; genai-prices lists 75 + 150.
    assert fallback["origin"] == "genai-prices"
    assert Decimal(fallback["cost"]) == Decimal("225")
