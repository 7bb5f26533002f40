"""Plugins that misbehave in every hook, fail to import, are slow, or clash.

A broken plugin must be isolated and reported while every other plugin keeps
working. The core-level cases use the test provider that the `provider`
fixture of `tests/conftest.py` registers (gpt-4o-mini at 0.15 input and 0.60
output USD per million tokens). The distribution cases install fake
distributions beside the real plugins and drive the real OpenAI SDK.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import llmfy_core
from llmfy_core import (
    CallContext,
    LongContextTier,
    PluginWarning,
    Price,
    PriceRank,
    PricingWarning,
    RequestRecord,
    Usage,
    active_trackers,
    hookimpl,
    llmfy_usage_tracker,
)
from llmfy_core.recording import record_response, record_usage

from .servers import LoopbackLLM

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

# One request: 60 * 0.15 + 3 * 0.60 = 10.8 USD per million tokens.
ONE_REQUEST_COST = Decimal("0.0000108")


def send(response: Mapping[str, Any] | None = None) -> None:
    """Record one response into the trackers active now, as instrumentation does."""
    record_response(
        response or {"model": "gpt-4o-mini", "in": 60, "out": 3},
        CallContext("openai", model="gpt-4o-mini"),
        active_trackers(),
    )


class Boom(RuntimeError):
    pass


class RaisesEverywhere:
    """A plugin whose every hook raises, asked before the test provider."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    @hookimpl
    def price_lookup(self, provider: str) -> Price:
        raise Boom("price_lookup")

    @hookimpl
    def price_catalog(self) -> None:
        raise Boom("price_catalog")

    @hookimpl
    def provider_instrument(self) -> str:
        raise Boom("provider_instrument")

    @hookimpl
    def request_recorded(self, record: RequestRecord) -> None:
        raise Boom("request_recorded")


def test_plugin_raising_in_every_hook_is_isolated(
    provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(RaisesEverywhere(), "raises-everywhere")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        send()
        usage.record("openai", "gpt-4o-mini", 60, 3)

    assert usage.request_count == 2
    assert usage.input_tokens == 120
    # Priced by the test provider after the broken price_lookup was skipped.
    assert usage.total_cost == 2 * ONE_REQUEST_COST
    assert usage.records[0].price_origin == "test-openai"
    assert "price_lookup" in (usage.records[0].fault or "")
    assert "failed to instrument" in caplog.text
    assert "raised in request_recorded" in caplog.text
    assert "raises-everywhere" in caplog.text


class WrongTypes:
    """A plugin whose hooks return values of the wrong type."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    @hookimpl
    def price_lookup(self) -> object:
        return {"input": 0.15, "output": 0.60}

    @hookimpl
    def provider_instrument(self) -> object:
        return 42

    @hookimpl
    def request_recorded(self) -> object:
        return "ignored"


def test_plugin_returning_wrong_types_is_isolated(
    provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(WrongTypes(), "wrong-types")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.request_count == 1
    assert usage.total_cost == ONE_REQUEST_COST
    assert usage.records[0].price_origin == "test-openai"
    assert "returned a dict from price_lookup" in caplog.text


class DictPrices:
    """A pricing plugin that returns its rates as a dict instead of a `Price`."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    @hookimpl
    def price_lookup(self, provider: str) -> object:
        return {"input": Decimal("0.10"), "output": Decimal("0.40")}


def test_price_of_wrong_type_warns_with_fix(
    provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(DictPrices(), "dict-prices")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage, pytest.warns(PricingWarning) as warned:
        send()

    assert usage.records[0].price_origin == "test-openai"
    assert usage.total_cost == ONE_REQUEST_COST
    message = str(warned[0].message)
    assert "Plugin 'dict-prices' returned a dict from price_lookup" in message
    assert "for openai model 'gpt-4o-mini'" in message
    assert "'input': Decimal('0.10')" in message
    assert "asked the next price source" in message
    assert "Return a Price, an Unpriced or None" in message
    assert "Plugin 'dict-prices' returned a dict" in caplog.text


class PerThousandPrices:
    """A pricing plugin that gives per-1,000 rates in a per-million `Price`."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    @hookimpl
    def price_lookup(self, provider: str) -> Price | None:
        if provider != "openai":
            return None
        return Price(Decimal("0.00015"), Decimal("0.0006"), source="contract")


def test_plugin_price_in_wrong_unit_names_fix(provider: object) -> None:
    llmfy_core.register_plugin(PerThousandPrices(), "per-thousand")

    with llmfy_usage_tracker() as usage, pytest.warns(PricingWarning) as warned:
        send()

    assert usage.records[0].price_origin == "per-thousand"
    message = str(warned[0].message)
    assert "0.00015 USD per million tokens" in message
    assert "0.001 times the published price of 0.15" in message
    assert "Check the unit of plugin per-thousand's price in contract" in message
    assert "price_per_tokens=1000" in message


class RaisingPrices:
    """A pricing plugin whose lookup fails on a missing key."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price:
        return {}[(provider, model)]  # type: ignore[no-any-return]


def test_raising_price_lookup_names_line(
    provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(RaisingPrices(), "raising-prices")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.records[0].price_origin == "test-openai"
    assert usage.total_cost == ONE_REQUEST_COST
    line = RaisingPrices.price_lookup.__code__.co_firstlineno + 2
    assert "Plugin 'raising-prices' raised KeyError" in caplog.text
    assert "in price_lookup for openai model 'gpt-4o-mini'" in caplog.text
    assert f"test_plugin_faults.py:{line}" in caplog.text
    assert "asked the next price source" in caplog.text


class InvalidPrice:
    """A pricing plugin ranked above the bundled tables that returns `price`."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    def __init__(self, price: Price) -> None:
        self.price = price

    @hookimpl
    def price_lookup(self, provider: str) -> Price | None:
        return self.price if provider == "openai" else None


# Prices that break the cost arithmetic or the report, one per invalid field.
INVALID_PRICES = [
    Price(Decimal("NaN"), Decimal("0.60")),
    Price(Decimal("0.15"), Decimal("-0.60")),
    Price(Decimal("0.15"), Decimal("0.60"), cache_read=Decimal("Infinity")),
    Price(Decimal("0.15"), Decimal("0.60"), price_per_tokens=0),
    Price(0.15, 0.60),  # type: ignore[arg-type]
    Price(
        Decimal("0.15"),
        Decimal("0.60"),
        long_context=(
            LongContextTier("50", Price(Decimal("0.30"), Decimal("1.20"))),  # type: ignore[arg-type]
        ),
    ),
    Price(
        Decimal("0.15"),
        Decimal("0.60"),
        long_context=(
            LongContextTier(None, Price(Decimal("0.30"), Decimal("1.20"))),  # type: ignore[arg-type]
        ),
    ),
    Price(
        Decimal("0.15"),
        Decimal("0.60"),
        long_context=((50, Price(Decimal("0.30"), Decimal("1.20"))),),  # type: ignore[arg-type]
    ),
    Price(Decimal("0.15"), Decimal("0.60"), long_context=None),  # type: ignore[arg-type]
    Price(Decimal("0.15"), Decimal("0.60"), checked="2025-01-01"),  # type: ignore[arg-type]
]
INVALID_PRICE_IDS = [
    "nan-input",
    "negative-output",
    "infinite-cache-read",
    "zero-unit",
    "floats",
    "text-threshold",
    "missing-threshold",
    "tier-not-a-tier",
    "no-long-context",
    "text-checked-date",
]


@pytest.mark.parametrize("price", INVALID_PRICES, ids=INVALID_PRICE_IDS)
def test_invalid_plugin_price_is_skipped(
    price: Price,
    loopback: LoopbackLLM,
    openai_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    llmfy_core.register_plugin(InvalidPrice(price), "invalid-price")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            reply = chat_call(openai_client)()

    assert reply.choices[0].message.content == "Paris."
    assert usage.request_count == 1
    # The bundled gpt-4o-mini price: 60 * 0.15 + 3 * 0.60 = 10.8 per million.
    assert usage.total_cost == ONE_REQUEST_COST
    assert usage.records[0].price_origin == "openai"
    assert json.loads(json.dumps(usage.to_dict()))["totals"]["cost_usd"] == (
        "0.0000108"
    )
    message = str(warned[0].message)
    assert "Plugin 'invalid-price' returned an invalid price" in message
    assert "for openai model 'gpt-4o-mini" in message
    assert "Decimal('0.15'), not 0.15" in message
    assert "invalid-price' returned an invalid price" in caplog.text


class UnrelatedExtractor:
    """An extractor for another provider, with a bug that raises for any response."""

    @hookimpl(tryfirst=True)
    def usage_extract(self, response: Any, context: CallContext) -> Usage | None:
        raise Boom("acme extractor bug")


def test_raising_extractor_names_line(
    provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(UnrelatedExtractor(), "acme")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.input_tokens == 60
    line = UnrelatedExtractor.usage_extract.__code__.co_firstlineno + 2
    assert "plugin acme failed in usage_extract: Boom" in caplog.text
    assert f"test_plugin_faults.py:{line})" in caplog.text


def test_raising_extractor_does_not_blank_other_providers(provider: object) -> None:
    llmfy_core.register_plugin(UnrelatedExtractor(), "acme")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.input_tokens == 60
    assert usage.total_cost == ONE_REQUEST_COST


def test_raising_extractor_log_names_usage_kept(
    provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(UnrelatedExtractor(), "acme")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.input_tokens == 60
    assert "plugin acme failed in usage_extract" in caplog.text
    assert "counted with the next plugin's usage" in caplog.text
    assert "unknown usage" not in caplog.text


class TextCounts:
    """An extractor that returns a `Usage` whose counts are text, not numbers."""

    @hookimpl(tryfirst=True)
    def usage_extract(self, context: CallContext) -> Usage:
        return Usage("openai", "gpt-4o-mini", "60", "3")  # type: ignore[arg-type]


def test_usage_with_text_counts_counted_once(provider: object) -> None:
    llmfy_core.register_plugin(TextCounts(), "text-counts")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.request_count == 1


class FloatCounts:
    """An extractor that returns a `Usage` with a fractional token count."""

    @hookimpl(tryfirst=True)
    def usage_extract(self, context: CallContext) -> Usage:
        return Usage("openai", "gpt-4o-mini", 60.5, 3)  # type: ignore[arg-type]


def test_usage_with_float_counts_keeps_report_readable(provider: object) -> None:
    llmfy_core.register_plugin(FloatCounts(), "float-counts")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.request_count == 1
    assert "Total Requests: 1" in str(usage)


class Exporter:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def request_recorded(self, record: RequestRecord) -> None:
        self.records.append(record)


def test_record_usage_never_raises(provider: object) -> None:
    llmfy_core.register_plugin(Exporter(), "exporter")

    with llmfy_usage_tracker():
        record_usage(
            Usage("openai", "gpt-4o-mini", 60.5, 3),  # type: ignore[arg-type]
            active_trackers(),
        )


class RaisingTableParser:
    """A pricing plugin for another provider whose table parser raises for any table."""

    @hookimpl(tryfirst=True)
    def pricing_table_parse(self, provider: str) -> None:
        raise Boom("acme table parser bug")


def test_raising_table_parser_of_other_plugin_isolated(provider: object) -> None:
    llmfy_core.register_plugin(RaisingTableParser(), "acme-tables")

    usage = llmfy_usage_tracker(
        openai_pricing={"gpt-4o-mini": {"input": 1, "output": 2}}
    )

    assert usage.record("openai", "gpt-4o-mini", 1000, 0).cost is not None


class WrongTypeTableParser:
    """A table parser that returns a dict instead of a PriceTable."""

    @hookimpl(tryfirst=True)
    def pricing_table_parse(self, table: Mapping[str, Any]) -> object:
        return dict(table)


def test_wrong_type_table_parser_loses_no_request(provider: object) -> None:
    llmfy_core.register_plugin(WrongTypeTableParser(), "dict-tables")

    with llmfy_usage_tracker(
        openai_pricing={"gpt-4o-mini": {"input": 1, "output": 2}}
    ) as usage:
        send()

    assert usage.request_count == 1


class InvalidPriceTable:
    """An override table, built by a plugin, whose every lookup returns one price."""

    def __init__(self, price: Price) -> None:
        self.price = price

    def lookup(
        self, model: str, region: str | None, service_tier: str | None, batch: bool
    ) -> Price:
        return self.price


class InvalidTableParser:
    """A table parser, asked first, whose table returns an invalid price."""

    def __init__(self, price: Price) -> None:
        self.price = price

    @hookimpl(tryfirst=True)
    def pricing_table_parse(self, provider: str) -> InvalidPriceTable | None:
        return InvalidPriceTable(self.price) if provider == "openai" else None


@pytest.mark.parametrize("price", INVALID_PRICES, ids=INVALID_PRICE_IDS)
def test_invalid_override_table_price_is_skipped(
    price: Price,
    loopback: LoopbackLLM,
    openai_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    llmfy_core.register_plugin(InvalidTableParser(price), "invalid-tables")
    caplog.set_level(logging.WARNING, logger="llmfy")

    with llmfy_usage_tracker(openai_pricing={"gpt-4o-mini": {}}) as usage:
        with pytest.warns(PricingWarning) as warned:
            reply = chat_call(openai_client)()

    assert reply.choices[0].message.content == "Paris."
    assert usage.request_count == 1
    # The bundled gpt-4o-mini price: 60 * 0.15 + 3 * 0.60 = 10.8 per million.
    assert usage.total_cost == ONE_REQUEST_COST
    assert usage.records[0].price_origin == "openai"
    assert usage.records[0].fault is None
    assert len(warned) == 1
    message = str(warned[0].message)
    assert "The openai_pricing table returned an invalid price" in message
    assert "for openai model 'gpt-4o-mini-2024-07-18'" in message
    assert "asked the price plugins" in message
    assert "openai_pricing table returned an invalid price" in caplog.text


def test_overflowing_override_price_is_a_table_error(provider: object) -> None:
    with pytest.raises(llmfy_core.PricingTableError, match="gpt-4o-mini"):
        llmfy_usage_tracker(
            openai_pricing={"gpt-4o-mini": {"input": "1e999999", "output": 1}}
        )


class SlowPrices:
    """A pricing plugin whose lookup takes `delay` seconds and is counted."""

    llmfy_price_rank = PriceRank.ORGANIZATION

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        if provider == "openai" and model == "gpt-4o-mini":
            return Price(Decimal("0.10"), Decimal("0.40"), source="slow list")
        return None


def test_slow_price_lookup_paid_once_per_model(provider: object) -> None:
    slow = SlowPrices(delay=0.2)
    llmfy_core.register_plugin(slow, "slow-prices")

    started = time.monotonic()
    with llmfy_usage_tracker() as usage:
        for _ in range(50):
            send()
    elapsed = time.monotonic() - started

    # The price is cached by the tracker after the first request, so 50
    # requests cost one slow lookup, not 50 (which would take 10 s).
    assert slow.calls == 1
    assert elapsed < 2.0
    # 50 requests at 60 * 0.10 + 3 * 0.40 = 7.2 USD per million tokens.
    assert usage.total_cost == Decimal("0.00036")


def test_slow_price_lookup_does_not_block_other_threads(provider: object) -> None:
    slow = SlowPrices(delay=0.5)
    llmfy_core.register_plugin(slow, "slow-prices")
    finished: list[float] = []

    with llmfy_usage_tracker() as usage:
        trackers = active_trackers()
        cached = Usage("openai", "gpt-4o-mini", 60, 3)
        record_usage(cached, trackers)  # the slow lookup, now cached

        def other_model() -> None:
            record_usage(Usage("openai", "other-model", 1, 1), trackers)

        started = time.monotonic()
        blocked = threading.Thread(target=other_model)
        blocked.start()
        time.sleep(0.05)  # the other thread is now inside the slow lookup
        for _ in range(100):
            record_usage(cached, trackers)
        finished.append(time.monotonic() - started)
        blocked.join(timeout=5)

    # The cached model records while another thread waits on the slow plugin.
    assert finished[0] < 0.4
    assert usage.request_count == 102


# Fake distributions beside the real plugins


def install_fake_distribution(
    site: Path, name: str, entry_points: Mapping[str, str], modules: Mapping[str, str]
) -> None:
    """Write a distribution's metadata and modules into `site`, without pip."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    )
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[llmfy]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for fake distributions, removed after the test."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    modules_before = set(sys.modules)
    yield folder
    for module in set(sys.modules) - modules_before:
        if module.startswith("fake_llmfy_"):
            del sys.modules[module]


def chat_call(openai_client: Any) -> Callable[[], Any]:
    return lambda: openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )


def test_failing_and_slow_plugins_beside_real_ones(
    site: Path, loopback: LoopbackLLM, openai_client: Any
) -> None:
    install_fake_distribution(
        site,
        "llmfy-broken-import",
        {"broken": "fake_llmfy_broken"},
        {"fake_llmfy_broken": "raise ImportError('needs a missing package')\n"},
    )
    install_fake_distribution(
        site,
        "llmfy-slow-import",
        {"slow": "fake_llmfy_slow"},
        {"fake_llmfy_slow": "import time\ntime.sleep(0.3)\n"},
    )

    with pytest.warns(PluginWarning, match="llmfy-broken-import 1.0"):
        llmfy_core.load_plugins()
    with llmfy_usage_tracker() as usage:
        reply = chat_call(openai_client)()

    infos = {info.name: info for info in llmfy_core.list_plugins()}
    assert reply.choices[0].message.content == "Paris."
    assert infos["broken"].error is not None
    assert infos["slow"].error is None
    assert infos["openai"].error is None
    assert usage.request_count == 1
    # The bundled gpt-4o-mini price: 60 * 0.15 + 3 * 0.60 = 10.8 per million.
    assert usage.total_cost == ONE_REQUEST_COST


def test_duplicate_entry_point_name_reported_with_both_distributions(
    site: Path,
) -> None:
    install_fake_distribution(
        site,
        "llmfy-zz-other",
        {"bedrock": "fake_llmfy_other"},
        {"fake_llmfy_other": "\n"},
    )

    with pytest.warns(PluginWarning, match="already registered") as warned:
        registry = llmfy_core.load_plugins()

    message = str(warned[0].message)
    assert "llmfy-zz-other 1.0" in message
    assert "'llmfy-bedrock'" in message
    import llmfy_bedrock.plugin

    assert registry.manager.get_plugin("bedrock") is llmfy_bedrock.plugin


def test_duplicate_entry_point_name_cannot_displace_plugin(site: Path) -> None:
    install_fake_distribution(
        site,
        "llmfy-aaa",
        {"openai": "fake_llmfy_impostor"},
        {"fake_llmfy_impostor": "\n"},
    )

    with pytest.warns(PluginWarning, match="already registered"):
        registry = llmfy_core.load_plugins()

    import llmfy_openai.plugin

    loaded = registry.manager.get_plugins()
    assert any(plugin is llmfy_openai.plugin for plugin in loaded)
