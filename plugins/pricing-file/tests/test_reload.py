"""The price file is named by the environment or by a call, and read again on change."""

from __future__ import annotations

import logging
from decimal import Decimal

import llmfy_pricing_file
import pytest
from llmfy_pricing_file import ENV_VAR, plugin

from llmfy_core import PricingWarning, llmfy_usage_tracker

from .conftest import WriteFile

PRICE_A = """\
[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.10
output = 0.40
"""

PRICE_B = """\
[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.125
output = 0.50
"""

# One request of 1,000,000 input and 1,000,000 output tokens costs
#   at PRICE_A: 0.10 + 0.40 = 0.50
#   at PRICE_B: 0.125 + 0.50 = 0.625
COST_A = Decimal("0.50")
COST_B = Decimal("0.625")
MILLION = 1_000_000


def test_environment_variable_names_file(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("prices.toml", PRICE_A)
    monkeypatch.setenv(ENV_VAR, str(path))
    usage = llmfy_usage_tracker()

    record = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    assert record.cost is not None
    assert record.cost.total == COST_A
    assert record.price_origin == "pricing-file"


def test_no_file_configured_prices_nothing() -> None:
    assert llmfy_pricing_file.check_price_file() is None


def test_call_takes_precedence_over_environment(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(write_file("env.toml", PRICE_A)))
    chosen = write_file("chosen.toml", PRICE_B)

    llmfy_pricing_file.use_price_file(chosen)
    prices = llmfy_pricing_file.check_price_file()

    assert prices is not None
    assert prices.path == chosen


def test_use_none_returns_to_environment(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write_file("env.toml", PRICE_A)
    monkeypatch.setenv(ENV_VAR, str(from_env))
    llmfy_pricing_file.use_price_file(write_file("chosen.toml", PRICE_B))

    prices = llmfy_pricing_file.use_price_file(None)

    assert prices is not None
    assert prices.path == from_env


def test_unsetting_environment_drops_prices(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", PRICE_A)))
    assert llmfy_pricing_file.check_price_file() is not None

    monkeypatch.delenv(ENV_VAR)

    assert llmfy_pricing_file.check_price_file() is None


def test_changed_file_read_again(
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_file("prices.toml", PRICE_A)
    monkeypatch.setenv(ENV_VAR, str(path))
    usage = llmfy_usage_tracker()
    before = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    write_file("prices.toml", PRICE_B)
    with caplog.at_level(logging.INFO, logger="llmfy.plugins.pricing_file"):
        prices = llmfy_pricing_file.check_price_file()
    after = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    assert prices is not None
    assert prices.lookup("openai", "gpt-4o-mini") is not None
    assert before.cost is not None
    assert before.cost.total == COST_A
    assert after.cost is not None
    assert after.cost.total == COST_B
    assert f"reloaded 1 prices from the price file {path}" in caplog.text


def test_unchanged_file_not_read_again(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", PRICE_A)))

    first = llmfy_pricing_file.check_price_file()
    second = llmfy_pricing_file.check_price_file()

    assert first is not None
    assert second is first


def test_change_applies_at_next_check(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llmfy caches each price per tracker; before each lookup it asks the
    # plugin for its price version, which checks the file at most once per
    # RECHECK_SECONDS (0 here, so at every request).
    monkeypatch.setattr(plugin, "RECHECK_SECONDS", 0.0)
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", PRICE_A)))
    usage = llmfy_usage_tracker()
    first = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    write_file("prices.toml", PRICE_B)
    second = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    assert first.cost is not None
    assert first.cost.total == COST_A
    assert second.cost is not None
    assert second.cost.total == COST_B


def test_change_waits_for_recheck_interval(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin, "RECHECK_SECONDS", 3600.0)
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", PRICE_A)))
    usage = llmfy_usage_tracker()
    llmfy_pricing_file.check_price_file()  # the first read clears the cache
    first = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    write_file("prices.toml", PRICE_B)
    cached = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)
    llmfy_pricing_file.check_price_file()
    after_check = usage.record("openai", "gpt-4o-mini", MILLION, MILLION)

    assert first.cost is not None
    assert first.cost.total == COST_A
    # Priced from the tracker's cache until the file is checked again.
    assert cached.cost is not None
    assert cached.cost.total == COST_A
    assert after_check.cost is not None
    assert after_check.cost.total == COST_B


def test_new_tracker_sees_change_at_once(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", PRICE_A)))
    llmfy_usage_tracker().record("openai", "gpt-4o-mini", MILLION, MILLION)

    write_file("prices.toml", PRICE_B)
    record = llmfy_usage_tracker().record("openai", "gpt-4o-mini", MILLION, MILLION)

    assert record.cost is not None
    assert record.cost.total == COST_B


def test_fixed_file_replaces_kept_prices(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", PRICE_A)))
    assert llmfy_pricing_file.check_price_file() is not None
    write_file("prices.toml", PRICE_A.replace("0.10", "-0.10"))
    with pytest.warns(PricingWarning, match="stay in force"):
        kept_prices = llmfy_pricing_file.check_price_file()

    write_file("prices.toml", PRICE_B)
    fixed = llmfy_pricing_file.check_price_file()

    assert kept_prices is not None
    price_kept = kept_prices.lookup("openai", "gpt-4o-mini")
    assert price_kept is not None
    assert price_kept.input == Decimal("0.10")
    assert fixed is not None
    price_fixed = fixed.lookup("openai", "gpt-4o-mini")
    assert price_fixed is not None
    assert price_fixed.input == Decimal("0.125")


def test_replaced_file_read_again(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Editors often save by writing a new file and renaming it over the old one.
    path = write_file("prices.toml", PRICE_A)
    monkeypatch.setenv(ENV_VAR, str(path))
    assert llmfy_pricing_file.check_price_file() is not None
    replacement = write_file("prices.toml.new", PRICE_B)

    replacement.replace(path)
    prices = llmfy_pricing_file.check_price_file()

    assert prices is not None
    price = prices.lookup("openai", "gpt-4o-mini")
    assert price is not None
    assert price.input == Decimal("0.125")
