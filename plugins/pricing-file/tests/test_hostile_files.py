"""Hostile price files: values that break parsers, and files meant to run code.

A price file is data. Each file here must be rejected with `PriceFileError`
naming the file and the place, never raise another exception, never run
code, and never break the recording of a request.
"""

from __future__ import annotations

import json
import pickle
import time
from decimal import Decimal
from pathlib import Path

import llmfy_pricing_file
import pytest
import yaml
from llmfy_pricing_file import ENV_VAR, PriceFileError

from llmfy_core import PricingWarning, llmfy_usage_tracker

from .conftest import WriteFile

ENTRY = '[[providers.openai.prices]]\nmodel = "gpt-4o-mini"\n'


def json_entry(**prices: object) -> str:
    entry = {"model": "gpt-4o-mini", **prices}
    return json.dumps({"providers": {"openai": {"prices": [entry]}}})


# Values that made the reader raise something else than PriceFileError.
UNREADABLE = [
    pytest.param(
        "huge-int.json",
        '{"format_version": 1' + "0" * 5000 + "}",
        "JSON value cannot be read",
        id="json-5000-digit-integer",
    ),
    pytest.param(
        "huge-int.toml",
        ENTRY + "input = 1" + "0" * 5000 + "\noutput = 1\n",
        "TOML value cannot be read",
        id="toml-5000-digit-integer",
    ),
    pytest.param(
        "deep.toml",
        "note = " + "{ a = " * 3000 + "1" + " }" * 3000 + "\n",
        "TOML nesting is too deep",
        id="toml-deep-nesting",
    ),
    pytest.param(
        "deep.json",
        "[" * 100_000 + "]" * 100_000,
        "JSON nesting is too deep",
        id="json-deep-nesting",
    ),
    pytest.param(
        "overflow.toml",
        ENTRY + "input = 1e999999\noutput = 1\n",
        "far too large for a price",
        id="toml-exponent-overflow",
    ),
    pytest.param(
        "overflow.json",
        json_entry(input=0.1, output=1).replace("0.1", "1e1000000"),
        "far too large for a price",
        id="json-exponent-overflow",
    ),
]


@pytest.mark.parametrize(("name", "content", "fragment"), UNREADABLE)
def test_unreadable_value_rejected(
    write_file: WriteFile, name: str, content: str, fragment: str
) -> None:
    path = write_file(name, content)

    with pytest.raises(PriceFileError) as raised:
        llmfy_pricing_file.use_price_file(path)

    assert str(path) in str(raised.value)
    assert fragment in str(raised.value)
    assert llmfy_pricing_file.check_price_file() is None


def test_overflow_error_names_entry(write_file: WriteFile) -> None:
    path = write_file("overflow.toml", ENTRY + "input = 1e999999\noutput = 1\n")

    with pytest.raises(PriceFileError) as raised:
        llmfy_pricing_file.use_price_file(path)

    assert raised.value.key_path == "providers.openai.prices[0].input"
    assert "model 'gpt-4o-mini'" in str(raised.value)


@pytest.mark.parametrize(("name", "content", "fragment"), UNREADABLE)
def test_unreadable_file_never_breaks_recording(
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    content: str,
    fragment: str,
) -> None:
    monkeypatch.setenv(ENV_VAR, str(write_file(name, content)))
    usage = llmfy_usage_tracker()

    with pytest.warns(PricingWarning, match="The file was rejected") as caught:
        record = usage.record("openai", "gpt-4o-mini", 1000, 1000)

    assert any(fragment in str(warning.message) for warning in caught)
    assert record.fault is None
    assert record.price_origin == "openai"
    # The bundled price applies: 1000 * 0.15 + 1000 * 0.60 = 750 per million.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00075")


# Files meant to run code when loaded


class _MakeDirectory:
    """Pickles to a call of os.mkdir, as a malicious pickle would run a command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.mkdir, (str(self.path),))


def yaml_payload(marker: Path) -> str:
    return f'!!python/object/apply:os.mkdir ["{marker}"]\n'


def test_payloads_would_run_if_loaded(tmp_path: Path) -> None:
    # A control: the payloads below do run code when loaded as pickle or
    # YAML, so the tests that reject them prove something.
    pickled = tmp_path / "pickled"
    yamled = tmp_path / "yamled"

    pickle.loads(pickle.dumps(_MakeDirectory(pickled)))
    yaml.unsafe_load(yaml_payload(yamled))

    assert pickled.is_dir()
    assert yamled.is_dir()


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".json", ".toml"])
def test_pickle_never_loaded(
    write_file: WriteFile, tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "ran"
    path = write_file(f"prices{suffix}", pickle.dumps(_MakeDirectory(marker)))

    with pytest.raises(PriceFileError):
        llmfy_pricing_file.use_price_file(path)

    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".toml", ".json"])
def test_yaml_tags_never_loaded(
    write_file: WriteFile, tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "ran"
    path = write_file(f"prices{suffix}", yaml_payload(marker))

    with pytest.raises(PriceFileError):
        llmfy_pricing_file.use_price_file(path)

    assert not marker.exists()


def test_yaml_tag_in_a_value_is_text(write_file: WriteFile, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tag = yaml_payload(marker).strip()
    path = write_file("prices.json", json_entry(input=tag, output=1))

    with pytest.raises(PriceFileError) as raised:
        llmfy_pricing_file.use_price_file(path)

    assert "is not a number" in str(raised.value)
    assert raised.value.key_path == "providers.openai.prices[0].input"
    assert not marker.exists()


# Size


def test_large_valid_file_loads_quickly(write_file: WriteFile) -> None:
    # About 5 MB: 40,000 entries, each a model of its own.
    entries = [
        {"model": f"custom-model-{index}", "input": 0.15, "output": 0.6}
        for index in range(40_000)
    ]
    document = {"providers": {"openai": {"prices": entries}}}
    path = write_file("large.json", json.dumps(document, indent=1))

    started = time.monotonic()
    prices = llmfy_pricing_file.use_price_file(path)
    elapsed = time.monotonic() - started

    assert prices is not None
    assert len(prices) == 40_000
    price = prices.lookup("openai", "custom-model-39999")
    assert price is not None
    assert price.output == Decimal("0.6")
    # A generous bound: this takes well under a second on a laptop.
    assert elapsed < 10
