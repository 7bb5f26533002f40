"""Build and install llmfy-pricing-file and llmfy-genai-prices like a third party
would, and show where their prices rank among the other price sources.

The distributions are built from this repository with pip and installed into a
temporary folder. A separate Python process with that folder first on
PYTHONPATH discovers them through their entry points. The editable installs of
the development environment are shadowed there: `importlib.metadata` keeps the
first distribution of each name on the path.
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

PLUGINS = Path(__file__).resolve().parents[2]

PRICE_FILE = """\
[providers.openai]
discount_percent = 50

[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.10
output = 0.40

[[providers.openai.prices]]
model = "gpt-4o"
input = 2
output = 8
"""

# Runs in the child process. argv[1] is "inline" (a test provider plugin in
# place of the installed provider plugins) or "bundled" (the real ones).
SCRIPT = """\
import datetime as dt
import importlib.metadata
import json
import sys
from decimal import Decimal

import llmfy_core
from llmfy_core import Price, PriceKey, PriceRank, StaticPriceTable, hookimpl
from llmfy_core.pricing import price_from_mapping


class InlineOpenAI:
    llmfy_price_rank = PriceRank.PROVIDER
    prices = {
        "gpt-4o-mini": Price(Decimal("0.30"), Decimal("1.20"), source="inline"),
        "gpt-4o": Price(Decimal("5"), Decimal("15"), source="inline"),
        "gpt-4.1": Price(Decimal("3"), Decimal("9"), source="inline"),
    }

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
if mode == "inline":
    llmfy_core.register_plugin(InlineOpenAI(), "inline-openai")
usage = llmfy_core.llmfy_usage_tracker(
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
            "plugins": {
                info.name: {
                    "distribution": info.distribution,
                    "version": info.version,
                    "price_rank": info.price_rank,
                    "hooks": list(info.hooks),
                    "error": info.error,
                }
                for info in llmfy_core.list_plugins()
            },
            "order": llmfy_core.hook_order("price_lookup"),
            "locations": {
                entry_point.name: str(entry_point.dist.locate_file(""))
                for entry_point in importlib.metadata.entry_points(group="llmfy")
            },
            "records": [
                {
                    "model": record.usage.model,
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
    """Build both pricing distributions with pip and install them into a folder."""
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
            str(PLUGINS / "pricing-file"),
            str(PLUGINS / "genai-prices"),
        ],
        check=True,
        capture_output=True,
    )
    return target


def run_child(
    site: Path, tmp_path: Path, mode: str, models: list[str], disabled: str = ""
) -> dict[str, Any]:
    """Run SCRIPT in a Python process with `site` first on its path; parse its JSON."""
    price_file = tmp_path / "prices.toml"
    price_file.write_text(PRICE_FILE)
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LLMFY_") and key != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(site)
    env["LLMFY_PRICE_FILE"] = str(price_file)
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
    data["price_file"] = str(price_file)
    return data


def test_distributions_discovered_from_site(site: Path, tmp_path: Path) -> None:
    data = run_child(site, tmp_path, "inline", [], disabled="openai,bedrock")

    pricing_file = data["plugins"]["pricing-file"]
    genai = data["plugins"]["genai-prices"]
    assert pricing_file["distribution"] == "llmfy-pricing-file"
    assert pricing_file["version"] == "0.1.0"
    assert pricing_file["price_rank"] == 200
    assert pricing_file["error"] is None
    assert "price_lookup" in pricing_file["hooks"]
    assert genai["distribution"] == "llmfy-genai-prices"
    assert genai["price_rank"] == 0
    assert genai["error"] is None
    assert data["locations"]["pricing-file"] == str(site)
    assert data["locations"]["genai-prices"] == str(site)


def test_precedence_with_inline_provider(site: Path, tmp_path: Path) -> None:
    # Each model is priced by a different layer; every record is 1,000,000
    # input and 1,000,000 output tokens, so its cost is input + output price.
    models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini"]
    data = run_child(site, tmp_path, "inline", models, disabled="openai,bedrock")

    assert data["order"] == ["pricing-file", "inline-openai", "genai-prices"]
    mini, four_o, four_one, four_one_mini = data["records"]
    # gpt-4o-mini: the tracker override, 1 + 2.
    assert mini["origin"] == "override"
    assert Decimal(mini["cost"]) == Decimal("3")
    # gpt-4o: the price file, (2 + 8) with 50% off.
    assert four_o["origin"] == "pricing-file"
    assert Decimal(four_o["cost"]) == Decimal("5")
    assert four_o["source"] == f"price file {data['price_file']}"
    # gpt-4.1: the provider-ranked plugin, 3 + 9.
    assert four_one["origin"] == "inline-openai"
    assert Decimal(four_one["cost"]) == Decimal("12")
    # gpt-4.1-mini: only genai-prices lists it, 0.40 + 1.60.
    assert four_one_mini["origin"] == "genai-prices"
    assert Decimal(four_one_mini["cost"]) == Decimal("2.0")
    version = importlib.metadata.version("genai-prices")
    assert four_one_mini["source"].startswith(f"genai-prices {version}")


def test_precedence_with_bundled_openai_table(site: Path, tmp_path: Path) -> None:
    # The same ladder with the real llmfy-openai and llmfy-bedrock plugins.
    models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.5-preview"]
    data = run_child(site, tmp_path, "bundled", models)

    order = data["order"]
    assert order.index("pricing-file") < order.index("openai")
    assert order.index("openai") < order.index("genai-prices")
    assert data["plugins"]["openai"]["price_rank"] == 100
    mini, four_o, four_one, preview = data["records"]
    # gpt-4o-mini: the tracker override (parsed by llmfy-openai), 1 + 2.
    assert mini["origin"] == "override"
    assert Decimal(mini["cost"]) == Decimal("3")
    # gpt-4o: the price file beats the bundled 2.50 / 10.00: (2 + 8) * 50%.
    assert four_o["origin"] == "pricing-file"
    assert Decimal(four_o["cost"]) == Decimal("5")
    # gpt-4.1: not in the file; the bundled table's 2.00 + 8.00.
    assert four_one["origin"] == "openai"
    assert Decimal(four_one["cost"]) == Decimal("10.00")
    # gpt-4.5-preview: not bundled; genai-prices lists 75 + 150.
    assert preview["origin"] == "genai-prices"
    assert Decimal(preview["cost"]) == Decimal("225")
