"""Plugin discovery from real installed distributions, and plugin isolation."""

from __future__ import annotations

import importlib
import sys
import tomllib
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pluggy
import pytest

import llmfy_core
from llmfy_core import (
    PluginLoadError,
    PluginWarning,
    Price,
    PriceRank,
    RequestRecord,
    hookimpl,
    llmfy_usage_tracker,
)
from llmfy_core.plugins import PROVIDER_INSTALL_HINT

from .conftest import ProviderPlugin
from .distributions import install_distribution

ROOT = Path(__file__).resolve().parent.parent

COMPANY_PRICES = """
from decimal import Decimal

from llmfy_core import Price, PriceRank, hookimpl

llmfy_price_rank = PriceRank.ORGANIZATION


@hookimpl
def price_lookup(provider, model):
    if provider == "openai" and model == "gpt-4o-mini":
        return Price(Decimal("0.10"), Decimal("0.40"), source="company price list")
    return None
"""

BROKEN_IMPORT = """
raise ImportError("this plugin needs a package that is not installed")
"""

UNKNOWN_HOOK = """
from llmfy_core import hookimpl


@hookimpl
def usage_extract(response):
    return None


@hookimpl
def price_lookup_typo(provider):
    return None
"""

CLASS_ENTRY_POINT = """
from decimal import Decimal

from llmfy_core import Price, PriceRank, hookimpl


class FlatPrices:
    llmfy_price_rank = PriceRank.ORGANIZATION

    @hookimpl
    def price_lookup(self, provider, model):
        return Price(Decimal("1"), Decimal("1"), source="flat prices")
"""

UNMARKED_HOOK = """
from decimal import Decimal

from llmfy_core import Price, PriceRank, hookimpl

llmfy_price_rank = PriceRank.ORGANIZATION


def price_lookup(provider, model):
    return Price(Decimal("0.10"), Decimal("0.40"), source="company price list")


@hookimpl
def price_catalog(provider):
    return None
"""

BAD_SIGNATURE = """
from llmfy_core import hookimpl


@hookimpl
def price_lookup(provider, currency):
    return None
"""


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build each test distribution once for the module."""
    root = tmp_path_factory.mktemp("distributions")
    built = {
        "company": install_distribution(
            root / "company",
            "llmfy-company-prices",
            {"company_prices.py": COMPANY_PRICES},
            {"company-prices": "company_prices"},
        ),
        "broken": install_distribution(
            root / "broken",
            "llmfy-broken",
            {"broken_plugin.py": BROKEN_IMPORT},
            {"broken": "broken_plugin"},
            version="0.3.1",
        ),
        "unknown-hook": install_distribution(
            root / "unknown",
            "llmfy-typo",
            {"typo_plugin.py": UNKNOWN_HOOK},
            {"typo": "typo_plugin"},
        ),
        "unmarked": install_distribution(
            root / "unmarked",
            "llmfy-unmarked",
            {"unmarked_plugin.py": UNMARKED_HOOK},
            {"unmarked": "unmarked_plugin"},
        ),
        "bad-signature": install_distribution(
            root / "signature",
            "llmfy-signature",
            {"signature_plugin.py": BAD_SIGNATURE},
            {"signature": "signature_plugin"},
        ),
        "class": install_distribution(
            root / "class",
            "llmfy-flat-prices",
            {"flat_prices.py": CLASS_ENTRY_POINT},
            {"flat": "flat_prices:FlatPrices"},
        ),
        "duplicate": install_distribution(
            root / "duplicate",
            "llmfy-other-openai",
            {"other_openai.py": "from llmfy_core import hookimpl\n"},
            {"openai": "other_openai"},
        ),
    }
    return built


@pytest.fixture
def installed(sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Put one built distribution on sys.path; discovery then finds it."""

    def install(name: str) -> None:
        monkeypatch.syspath_prepend(str(sites[name]))
        importlib.invalidate_caches()

    yield install
    for module in (
        "company_prices",
        "broken_plugin",
        "typo_plugin",
        "unmarked_plugin",
        "signature_plugin",
        "flat_prices",
    ):
        sys.modules.pop(module, None)


def test_pricing_plugin_discovered_from_distribution(installed: Any) -> None:
    installed("company")

    registry = llmfy_core.load_plugins()
    infos = {info.name: info for info in llmfy_core.list_plugins()}

    assert "company-prices" in infos
    assert infos["company-prices"].distribution == "llmfy-company-prices"
    assert infos["company-prices"].version == "1.0.0"
    assert infos["company-prices"].hooks == ("price_lookup",)
    assert registry.hook_order("price_lookup")[0] == "company-prices"


def test_pricing_plugin_beats_bundled_and_override_beats_it(installed: Any) -> None:
    installed("company")
    llmfy_core.load_plugins()

    with llmfy_usage_tracker() as plugin_priced:
        plugin_priced.record("openai", "gpt-4o-mini", 1000, 1000)
    override = {"gpt-4o-mini": {"input": 1, "output": 2}}
    with llmfy_usage_tracker(openai_pricing=override) as override_priced:
        override_priced.record("openai", "gpt-4o-mini", 1000, 1000)

    # Company list: 1000 * 0.10 + 1000 * 0.40 = 500 per million tokens.
    assert plugin_priced.total_cost == Decimal("0.0005")
    assert plugin_priced.records[0].price_origin == "company-prices"
    # Override: 1000 * 1 + 1000 * 2 = 3000 per million tokens.
    assert override_priced.total_cost == Decimal("0.003")


def test_bundled_price_used_without_pricing_plugin() -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 1000, 1000)

    # Bundled OpenAI table: 1000 * 0.15 + 1000 * 0.60 = 750 per million tokens.
    assert usage.total_cost == Decimal("0.00075")
    assert usage.records[0].price_origin == "openai"


def test_plugin_failing_import_warns_and_others_work(installed: Any) -> None:
    installed("broken")
    installed("company")

    with pytest.warns(PluginWarning) as warned:
        llmfy_core.load_plugins()
    infos = {info.name: info for info in llmfy_core.list_plugins()}

    message = str(warned[0].message)
    assert len(warned) == 1
    assert "'broken'" in message
    assert "llmfy-broken 0.3.1" in message
    assert "needs a package that is not installed" in message
    assert infos["broken"].error is not None
    assert infos["company-prices"].error is None
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 1000, 1000)
    assert usage.total_cost == Decimal("0.0005")


def test_strict_switch_raises_on_failing_import(installed: Any) -> None:
    installed("broken")

    with pytest.raises(PluginLoadError, match=r"llmfy-broken 0\.3\.1") as raised:
        llmfy_core.load_plugins(strict=True)

    assert raised.value.entry_point == "broken"


def test_strict_switch_from_environment(
    installed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("broken")
    monkeypatch.setenv("LLMFY_STRICT_PLUGINS", "1")

    with pytest.raises(PluginLoadError):
        llmfy_core.load_plugins()


def test_unknown_hook_plugin_fully_unregistered(installed: Any) -> None:
    installed("unknown-hook")

    with pytest.warns(PluginWarning, match="price_lookup_typo"):
        registry = llmfy_core.load_plugins()

    assert registry.manager.get_plugin("typo") is None
    assert "typo" not in registry.hook_order("usage_extract")


def test_bad_signature_plugin_skipped(installed: Any) -> None:
    installed("bad-signature")

    with pytest.warns(PluginWarning, match="currency"):
        registry = llmfy_core.load_plugins()

    assert "signature" not in registry.hook_order("price_lookup")


def test_class_entry_point_skipped_with_fix(installed: Any) -> None:
    installed("class")

    with pytest.warns(PluginWarning) as warned:
        registry = llmfy_core.load_plugins()

    message = str(warned[0].message)
    assert "'flat'" in message
    assert "llmfy-flat-prices" in message
    assert "FlatPrices()" in message
    assert "price_lookup" in message
    assert "flat" not in registry.hook_order("price_lookup")


def test_duplicate_entry_point_name_reported(installed: Any) -> None:
    installed("duplicate")

    with pytest.warns(PluginWarning, match="already registered") as warned:
        registry = llmfy_core.load_plugins()

    assert "llmfy-other-openai" in str(warned[0].message) or "llmfy-openai" in str(
        warned[0].message
    )
    assert registry.manager.get_plugin("openai") is not None


def test_block_list_skips_plugin(
    installed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed("broken")
    monkeypatch.setenv("LLMFY_DISABLED_PLUGINS", "broken")

    registry = llmfy_core.load_plugins()

    assert "broken" not in registry.infos


def test_allow_list_keeps_only_named(installed: Any) -> None:
    installed("broken")
    installed("company")

    registry = llmfy_core.load_plugins(allow=["company-prices"])

    assert sorted(registry.infos) == ["company-prices"]


def test_allow_list_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFY_PLUGINS", "bedrock")

    registry = llmfy_core.load_plugins()

    assert sorted(registry.infos) == ["bedrock"]


def test_allow_list_misspelt_name_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFY_PLUGINS", "openai,bedrok")

    with pytest.warns(PluginWarning) as warned:
        registry = llmfy_core.load_plugins()

    message = str(warned[0].message)
    assert len(warned) == 1
    assert "(LLMFY_PLUGINS=openai,bedrok) names 'bedrok'" in message
    assert "Did you mean bedrock?" in message
    assert sorted(registry.infos) == ["openai"]


def test_allow_list_misspelt_name_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFY_STRICT_PLUGINS", "1")

    with pytest.raises(PluginLoadError, match="'bedrok'") as raised:
        llmfy_core.load_plugins(allow=["openai", "bedrok"])

    assert raised.value.entry_point == "bedrok"
    assert "the allow= argument of llmfy.load_plugins" in str(raised.value)


def test_allow_list_qualified_name_no_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = llmfy_core.load_plugins(allow=["llmfy-openai:openai"])

    assert [str(each.message) for each in caught] == []
    assert sorted(registry.infos) == ["openai"]


def test_autoload_disabled_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFY_DISABLE_PLUGIN_AUTOLOAD", "1")

    registry = llmfy_core.load_plugins()

    assert registry.infos == {}


def test_registration_by_hand_and_unregistration(provider: ProviderPlugin) -> None:
    class Extra:
        @hookimpl
        def request_recorded(self, record: RequestRecord) -> None:
            pass

    name = llmfy_core.register_plugin(Extra(), "extra")

    assert llmfy_core.hook_order("request_recorded") == ["extra"]
    llmfy_core.unregister_plugin(name)
    assert llmfy_core.hook_order("request_recorded") == []


@pytest.mark.parametrize("rank", ["organization", 200.0, True, None])
def test_invalid_price_rank_rejected(provider: ProviderPlugin, rank: object) -> None:
    class Prices:
        llmfy_price_rank = rank

        @hookimpl
        def price_lookup(self, provider: str, model: str) -> Price | None:
            return Price(Decimal("1"), Decimal("1"), source="test prices")

    with pytest.raises(ValueError, match="llmfy_price_rank") as raised:
        llmfy_core.register_plugin(Prices(), "prices")

    assert "PriceRank.ORGANIZATION" in str(raised.value)
    assert "prices" not in llmfy_core.hook_order("price_lookup")


class SelfPrices:
    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        return Price(Decimal("1"), Decimal("1"), source="test prices")


class ClsPrices:
    # A first parameter named `cls` without @classmethod is a plain function
    # on the class too, so the hook needs an instance as well.
    @hookimpl
    def price_lookup(cls, provider: str, model: str) -> Price | None:
        return Price(Decimal("1"), Decimal("1"), source="test prices")


@pytest.mark.parametrize(
    ("plugin", "parameter"), [(SelfPrices, "self"), (ClsPrices, "cls")]
)
def test_class_registered_instead_of_instance(
    provider: ProviderPlugin, plugin: type, parameter: str
) -> None:
    with pytest.raises(ValueError, match=rf"{plugin.__name__}\(\)") as raised:
        llmfy_core.register_plugin(plugin, "prices")

    assert f"price_lookup takes `{parameter}`" in str(raised.value)
    assert "prices" not in llmfy_core.hook_order("price_lookup")


def test_hook_without_marker_rejected(provider: ProviderPlugin) -> None:
    class Prices:
        llmfy_price_rank = PriceRank.ORGANIZATION

        def price_lookup(self, provider: str, model: str) -> Price | None:
            return Price(Decimal("1"), Decimal("1"), source="test prices")

    with pytest.raises(ValueError, match="price_lookup") as raised:
        llmfy_core.register_plugin(Prices(), "prices")

    message = str(raised.value)
    assert "plugin 'prices'" in message
    assert "without the @llmfy.hookimpl marker" in message
    assert "prices" not in llmfy_core.hook_order("price_lookup")


def test_hook_by_specname_beside_helper(provider: ProviderPlugin) -> None:
    class Prices:
        llmfy_price_rank = PriceRank.ORGANIZATION

        def price_lookup(self, provider: str, model: str) -> Price | None:
            # A helper of the hook below, which pluggy does not register.
            return Price(Decimal("1"), Decimal("1"), source="test prices")

        @hookimpl(specname="price_lookup")
        def lookup(self, provider: str, model: str) -> Price | None:
            return self.price_lookup(provider, model)

    name = llmfy_core.register_plugin(Prices(), "prices")

    assert name in llmfy_core.hook_order("price_lookup")
    llmfy_core.unregister_plugin(name)


def test_module_hook_without_marker_warns(installed: Any) -> None:
    installed("unmarked")

    with pytest.warns(PluginWarning) as warned:
        registry = llmfy_core.load_plugins()

    message = str(warned[0].message)
    assert "'unmarked'" in message
    assert "llmfy-unmarked" in message
    assert "price_lookup" in message
    assert "@llmfy.hookimpl" in message
    assert "unmarked" not in registry.hook_order("price_lookup")
    assert "unmarked" not in registry.hook_order("price_catalog")


def test_class_of_static_hooks_registered(provider: ProviderPlugin) -> None:
    class Prices:
        @hookimpl
        @staticmethod
        def price_lookup(provider: str, model: str) -> Price | None:
            return Price(Decimal("1"), Decimal("1"), source="test prices")

    name = llmfy_core.register_plugin(Prices, "prices")

    assert name in llmfy_core.hook_order("price_lookup")
    llmfy_core.unregister_plugin(name)


def test_unknown_hook_argument_lists_spec(provider: ProviderPlugin) -> None:
    class Prices:
        @hookimpl
        def price_lookup(self, provider: str, tier: str | None) -> Price | None:
            return None

    with pytest.raises(pluggy.PluginValidationError) as raised:
        llmfy_core.register_plugin(Prices(), "prices")

    message = str(raised.value)
    assert "tier" in message
    assert (
        "price_lookup takes these arguments, any of them by name: provider, "
        "model, region, service_tier, batch, requested_at"
    ) in message
    assert "prices" not in llmfy_core.hook_order("price_lookup")


def test_unknown_hook_argument_with_raising_attribute(
    provider: ProviderPlugin,
) -> None:
    # pluggy 1.7 reads attributes with inspect.getattr_static, so a property
    # or a `__getattr__` that raises does not stop it from validating hooks.
    class Prices:
        @hookimpl
        def price_lookup(self, provider: str, tier: str | None) -> Price | None:
            return None

        @property
        def usage_extract(self) -> Any:
            raise RuntimeError("settings not loaded")

        def __getattr__(self, name: str) -> Any:
            raise KeyError(name)

    with pytest.raises(pluggy.PluginValidationError) as raised:
        llmfy_core.register_plugin(Prices(), "prices")

    message = str(raised.value)
    assert "tier" in message
    assert "price_lookup takes these arguments" in message
    assert "prices" not in llmfy_core.hook_order("price_lookup")


def test_hook_order_unknown_hook_raises(provider: ProviderPlugin) -> None:
    with pytest.raises(ValueError, match="usage_extract"):
        llmfy_core.hook_order("usage_extrakt")


def test_request_recorded_called_once_for_nested_trackers(
    provider: ProviderPlugin,
) -> None:
    seen: list[RequestRecord] = []

    class Exporter:
        @hookimpl
        def request_recorded(self, record: RequestRecord) -> None:
            seen.append(record)

    llmfy_core.register_plugin(Exporter(), "exporter")
    with llmfy_usage_tracker(), llmfy_usage_tracker() as inner:
        from llmfy_core.recording import record_usage

        record_usage(
            llmfy_core.Usage("openai", "gpt-4o-mini", 5, 5),
            llmfy_core.active_trackers(),
        )

    assert len(seen) == 1
    assert inner.request_count == 1


def test_request_recorded_fault_isolated(provider: ProviderPlugin) -> None:
    class FailingExporter:
        @hookimpl
        def request_recorded(self, record: RequestRecord) -> None:
            raise ConnectionError("collector down")

    llmfy_core.register_plugin(FailingExporter(), "failing-exporter")
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 5, 5)

    assert usage.request_count == 1


def test_uncounted_sdk_warns_when_nothing_counted(
    provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmfy_core.recording as recording

    # The test provider counts `openai` calls; nothing counts Bedrock's.
    monkeypatch.setattr(recording, "_warned_sdks", set())
    # Stand-ins where the SDKs are not imported yet: only the names are read.
    for module in ("openai", "botocore"):
        monkeypatch.setitem(sys.modules, module, sys.modules.get(module, sys))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with llmfy_usage_tracker() as counted:
            counted.record("openai", "gpt-4o-mini", 5, 5)
        for _ in range(2):
            with llmfy_usage_tracker():
                pass

    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1
    assert "no loaded llmfy plugin counts bedrock calls" in messages[0]


def test_no_provider_plugin_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmfy_core.recording as recording

    monkeypatch.setattr(recording, "_warned_no_provider", False)
    llmfy_core.load_plugins(autoload=False)

    with pytest.warns(PluginWarning, match="No llmfy provider plugin"):
        with llmfy_usage_tracker():
            pass
    with llmfy_usage_tracker():
        pass


def test_no_provider_warning_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llmfy_core.recording as recording

    monkeypatch.setattr(recording, "_warned_no_provider", False)
    llmfy_core.load_plugins(autoload=False)

    with pytest.warns(PluginWarning) as warned:
        with llmfy_usage_tracker():
            pass

    message = str(warned[0].message)
    assert "pip install ./plugins/openai ./plugins/bedrock" in message
    assert "pip install llmfy-openai" not in message


@pytest.mark.parametrize(
    ("folder", "distribution"),
    [("openai", "llmfy-openai"), ("bedrock", "llmfy-bedrock")],
)
def test_install_hint_names_real_folders(folder: str, distribution: str) -> None:
    pyproject = ROOT / "plugins" / folder / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]

    assert f"./plugins/{folder}" in PROVIDER_INSTALL_HINT
    assert distribution in PROVIDER_INSTALL_HINT
    assert project["name"] == distribution
