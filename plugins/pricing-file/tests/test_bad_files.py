"""Invalid price files are rejected with the file, the place and the value named,
and the prices in force before stay in force."""

from __future__ import annotations

import logging
import warnings
from decimal import Decimal
from pathlib import Path

import attrs
import llmfy_pricing_file
import pytest
from llmfy_pricing_file import ENV_VAR, MAX_FILE_BYTES, PriceFileError, PriceList

import llmfy_core
from llmfy_core import PricingTableError, PricingWarning, llmfy_usage_tracker

from .conftest import WriteFile

GOOD_TOML = """\
[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.10
output = 0.40
"""

ENTRY = '[[providers.openai.prices]]\nmodel = "gpt-4o-mini"\n'


LONG_CONTEXT_ENTRY = (
    '[[providers.openai.prices]]\nmodel = "gpt-5.4"\ninput = 2.5\noutput = 15\n'
)
THRESHOLD_PATH = "providers.openai.prices[0].long_context[0].above_input_tokens"


def long_context_file(*lines: str) -> str:
    """Return a price file whose gpt-5.4 entry has one long-context tier.

    The tier has `lines`, and `input` and `output` prices.
    """
    return (
        LONG_CONTEXT_ENTRY
        + "\n[[providers.openai.prices.long_context]]\n"
        + "".join(f"{line}\n" for line in lines)
        + "input = 5\noutput = 22.5\n"
    )


@attrs.frozen
class BadFile:
    """One invalid price file and what its error must name."""

    name: str
    content: str | bytes
    fragments: tuple[str, ...]
    line: int | None = None
    key_path: str | None = None


BAD_FILES = [
    BadFile(
        "toml-syntax",
        ENTRY + "input = 0.10\noutput = 0.40 0.50\n",
        ("TOML syntax error",),
        line=4,
    ),
    BadFile(
        "toml-duplicate-key",
        ENTRY + "input = 0.10\ninput = 0.20\noutput = 0.40\n",
        ("Cannot overwrite a value",),
        line=4,
    ),
    BadFile(
        "json-syntax",
        '{\n  "providers": {\n    "openai": {"prices": [}\n  }\n}\n',
        ("JSON syntax error",),
        line=3,
    ),
    BadFile(
        "json-duplicate-key",
        '{"providers": {"openai": {"prices": [{"model": "gpt-4o-mini", '
        '"input": 0.10, "input": 0.20, "output": 0.40}]}}}',
        ("duplicate key 'input'", "values 0.10 and 0.20"),
        key_path="providers.openai.prices[0].input",
    ),
    BadFile(
        "negative",
        ENTRY + "input = -0.10\noutput = 0.40\n",
        ("model 'gpt-4o-mini'", "field 'input'", "-0.10", "negative"),
        key_path="providers.openai.prices[0].input",
    ),
    BadFile(
        "nan-toml",
        ENTRY + "input = 0.10\noutput = nan\n",
        ("field 'output'", "NaN", "not a finite number"),
        key_path="providers.openai.prices[0].output",
    ),
    BadFile(
        "infinity-json",
        '{"providers": {"openai": {"prices": [{"model": "gpt-4o-mini", '
        '"input": Infinity, "output": 0.40}]}}}',
        ("field 'input'", "Infinity", "not a finite number"),
        key_path="providers.openai.prices[0].input",
    ),
    BadFile(
        "inf-toml",
        ENTRY + "input = inf\noutput = 0.40\n",
        ("field 'input'", "Infinity", "not a finite number"),
        key_path="providers.openai.prices[0].input",
    ),
    BadFile(
        "non-numeric",
        ENTRY + 'input = "cheap"\noutput = 0.40\n',
        ("field 'input'", "'cheap' is not a number"),
        key_path="providers.openai.prices[0].input",
    ),
    BadFile(
        "boolean-price",
        ENTRY + "input = true\noutput = 0.40\n",
        ("field 'input'", "True", "not a number"),
        key_path="providers.openai.prices[0].input",
    ),
    BadFile(
        "provider-not-table",
        'providers = { openai = ["gpt-4o-mini"] }\n',
        ("expected a table with a `prices` list", 'got a list ["gpt-4o-mini"]'),
        key_path="providers.openai",
    ),
    BadFile(
        "prices-not-list",
        '[providers.openai.prices]\nmodel = "gpt-4o-mini"\ninput = 1\noutput = 2\n',
        ("expected a list of price entries", '{"model": "gpt-4o-mini", "input": 1'),
        key_path="providers.openai.prices",
    ),
    BadFile(
        "prices-nested-by-model",
        '[providers.openai.prices."gpt-4o-mini"]\ninput = 1\noutput = 2\n',
        ("expected a list of price entries",),
        key_path="providers.openai.prices",
    ),
    BadFile(
        "entry-not-table",
        '[providers.openai]\nprices = ["gpt-4o-mini"]\n',
        ("expected a price entry (a table)", "'gpt-4o-mini'"),
        key_path="providers.openai.prices[0]",
    ),
    BadFile(
        "top-level-list-json",
        '[{"model": "gpt-4o-mini", "input": 1, "output": 2}]',
        ("the top level must be a table",),
    ),
    BadFile(
        "model-missing",
        "[[providers.openai.prices]]\ninput = 0.10\noutput = 0.40\n",
        ("needs a `model` id", "None"),
        key_path="providers.openai.prices[0].model",
    ),
    BadFile(
        "output-missing",
        ENTRY + "input = 0.10\n",
        ("missing price", "field 'output'"),
        key_path="providers.openai.prices[0].output",
    ),
    BadFile(
        "unknown-key",
        ENTRY + "inptu = 0.10\ninput = 0.10\noutput = 0.40\n",
        ("unknown key 'inptu'", "model 'gpt-4o-mini'"),
        key_path="providers.openai.prices[0].inptu",
    ),
    BadFile(
        "batch-as-tier",
        ENTRY + 'service_tier = "batch"\ninput = 0.05\noutput = 0.20\n',
        (
            "provider 'openai', model 'gpt-4o-mini'",
            "service_tier 'batch'",
            "not a service tier",
            "batch = true",
        ),
        key_path="providers.openai.prices[0].service_tier",
    ),
    BadFile(
        "unknown-unit-file",
        'unit = "eur_per_million_tokens"\n' + ENTRY + "input = 1\noutput = 2\n",
        ("unknown unit 'eur_per_million_tokens'", "usd_per_million_tokens"),
        key_path="unit",
    ),
    BadFile(
        "unknown-unit-entry",
        ENTRY + 'unit = "per_1k"\ninput = 1\noutput = 2\n',
        ("unknown unit 'per_1k'",),
        key_path="providers.openai.prices[0].unit",
    ),
    BadFile(
        "bad-date",
        ENTRY + 'input = 1\noutput = 2\neffective_from = "2025-13-01"\n',
        ("ISO date", "'2025-13-01'"),
        key_path="providers.openai.prices[0].effective_from",
    ),
    BadFile(
        "datetime-not-date",
        ENTRY + "input = 1\noutput = 2\neffective_from = 2025-01-01T10:00:00Z\n",
        ("ISO date", "without a time", "got a date-time 2025-01-01T10:00:00+00:00"),
        key_path="providers.openai.prices[0].effective_from",
    ),
    BadFile(
        "until-before-from",
        ENTRY
        + "input = 1\noutput = 2\neffective_from = 2025-06-01\n"
        + "effective_until = 2025-01-01\n",
        ("2025-01-01", "is not after effective_from 2025-06-01"),
        key_path="providers.openai.prices[0].effective_until",
    ),
    BadFile(
        "overlapping-dates",
        ENTRY
        + "input = 1\noutput = 2\neffective_until = 2025-07-01\n"
        + ENTRY
        + "input = 3\noutput = 4\neffective_from = 2025-06-01\n",
        (
            "two prices for provider 'openai', model 'gpt-4o-mini'",
            "providers.openai.prices[0] [always, 2025-07-01)",
            "[2025-06-01, open-ended)",
        ),
        key_path="providers.openai.prices[1]",
    ),
    BadFile(
        "same-model-twice",
        ENTRY + "input = 1\noutput = 2\n" + ENTRY + "input = 3\noutput = 4\n",
        ("two prices for provider 'openai', model 'gpt-4o-mini'",),
        key_path="providers.openai.prices[1]",
    ),
    BadFile(
        "discount-over-100",
        "[providers.openai]\ndiscount_percent = 120\n",
        ("120", "more than 100", "multiplier"),
        key_path="providers.openai.discount_percent",
    ),
    BadFile(
        "discount-and-multiplier",
        "[providers.openai]\ndiscount_percent = 10\nmultiplier = 1.1\n",
        ("both `discount_percent` and `multiplier`",),
        key_path="providers.openai",
    ),
    BadFile(
        "negative-multiplier",
        "[providers.openai]\nmultiplier = -1\n",
        ("-1 is not a finite number of at least 0", "such as 0.9"),
        key_path="providers.openai.multiplier",
    ),
    # 1 × 1e308 has more digits than Decimal arithmetic keeps.
    BadFile(
        "multiplier-overflow",
        "[providers.openai]\nmultiplier = 1e308\n" + ENTRY + "input = 1\noutput = 2\n",
        ("field 'input'", "multiplier 1e+308", "far too large for a price"),
        key_path="providers.openai.prices[0].input",
    ),
    # 100 × 100,000,000,000 is 1e13 USD per million tokens, over the limit
    # that a price written in the file has.
    BadFile(
        "multiplied-price-too-large",
        "[providers.openai]\nmultiplier = 100000000000\n"
        + ENTRY
        + "input = 0\noutput = 100\n",
        ("field 'output'", "multiplier 100000000000", "far too large for a price"),
        key_path="providers.openai.prices[0].output",
    ),
    BadFile(
        "provider-name-case",
        '[[providers.OpenAI.prices]]\nmodel = "gpt-4o"\ninput = 1\noutput = 2\n',
        ("invalid provider name 'OpenAI'", "lower case"),
        key_path="providers.OpenAI",
    ),
    BadFile(
        "format-version",
        "format_version = 2\n",
        ("unsupported format version 2",),
        key_path="format_version",
    ),
    BadFile(
        "long-context-number",
        LONG_CONTEXT_ENTRY + "long_context = 272000\n",
        ("field 'long_context'", "expected a list of tiers, got int 272000"),
        key_path="providers.openai.prices[0].long_context",
    ),
    BadFile(
        "long-context-table",
        LONG_CONTEXT_ENTRY
        + "[providers.openai.prices.long_context]\n"
        + "above_input_tokens = 272000\ninput = 5\noutput = 22.5\n",
        ("expected a list of tiers, got dict", "put its mapping in a list"),
        key_path="providers.openai.prices[0].long_context",
    ),
    BadFile(
        "long-context-tier-number",
        LONG_CONTEXT_ENTRY + "long_context = [5]\n",
        ("field 'long_context[0]'", "expected a mapping of `above_input_tokens`"),
        key_path="providers.openai.prices[0].long_context[0]",
    ),
    BadFile(
        "long-context-float-threshold",
        long_context_file("above_input_tokens = 272000.0"),
        (
            "model 'gpt-5.4', field 'long_context[0].above_input_tokens'",
            "272000.0 (Decimal) is not an integer; write it as 272000",
        ),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "long-context-huge-threshold",
        long_context_file("above_input_tokens = 9223372036854775808"),
        ("a number of 64 bits is above 9223372036854775807",),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "long-context-bool-threshold",
        long_context_file("above_input_tokens = true"),
        ("True is not a whole number above 0",),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "long-context-zero-threshold",
        long_context_file("above_input_tokens = 0"),
        ("0 is not a whole number above 0", "such as 200000"),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "long-context-negative-threshold",
        long_context_file("above_input_tokens = -272000"),
        ("-272000 is not a whole number above 0",),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "long-context-missing-threshold",
        LONG_CONTEXT_ENTRY + "long_context = [{ input = 5, output = 22.5 }]\n",
        ("every long-context tier needs `above_input_tokens`",),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "long-context-duplicate-threshold",
        long_context_file("above_input_tokens = 272000")
        + "\n[[providers.openai.prices.long_context]]\n"
        + "above_input_tokens = 272000\ninput = 6\noutput = 24\n",
        (
            "long_context[0] and long_context[1] both apply above 272000 input tokens",
            "Give each tier its own threshold",
        ),
        key_path="providers.openai.prices[0].long_context[1].above_input_tokens",
    ),
    BadFile(
        "long-context-missing-input",
        LONG_CONTEXT_ENTRY
        + "long_context = [{ above_input_tokens = 272000, output = 22.5 }]\n",
        ("field 'long_context[0].input'", "every long-context tier needs"),
        key_path="providers.openai.prices[0].long_context[0].input",
    ),
    BadFile(
        "long-context-missing-output",
        LONG_CONTEXT_ENTRY
        + "long_context = [{ above_input_tokens = 272000, input = 5 }]\n",
        ("field 'long_context[0].output'", "every long-context tier needs"),
        key_path="providers.openai.prices[0].long_context[0].output",
    ),
    BadFile(
        "long-context-unknown-key",
        long_context_file("above_input_tokens = 272000", "cached = 0.5"),
        (
            "Unknown field in the long-context tier",
            "above_input_tokens, cache_read, cache_write, input, output",
        ),
        key_path="providers.openai.prices[0].long_context[0].cached",
    ),
    BadFile(
        "long-context-unit",
        long_context_file("above_input_tokens = 272000", 'unit = "usd_per_token"'),
        ("A tier's prices are in the unit of its entry.",),
        key_path="providers.openai.prices[0].long_context[0].unit",
    ),
    BadFile(
        "long-context-negative-price",
        long_context_file("above_input_tokens = 272000", "cache_read = -0.5"),
        ("field 'long_context[0].cache_read'", "-0.5", "is negative"),
        key_path="providers.openai.prices[0].long_context[0].cache_read",
    ),
    BadFile(
        "long-context-json-threshold",
        '{"providers": {"openai": {"prices": [{"model": "gpt-5.4", "input": 2.5, '
        '"output": 15, "long_context": [{"above_input_tokens": "272000", '
        '"input": 5, "output": 22.5}]}]}}}',
        ("'272000' is not a whole number above 0",),
        key_path=THRESHOLD_PATH,
    ),
    BadFile(
        "not-utf8",
        b'[[providers.openai.prices]]\nmodel = "caf\xe9"\n',
        ("not valid UTF-8",),
        line=2,
    ),
]


def file_name(case: BadFile) -> str:
    if "json" in case.name:
        return f"{case.name}.json"
    return f"{case.name}.toml"


@pytest.mark.parametrize("case", BAD_FILES, ids=[case.name for case in BAD_FILES])
def test_bad_file_rejected_and_prices_kept(
    write_file: WriteFile, case: BadFile
) -> None:
    good = llmfy_pricing_file.use_price_file(write_file("good.toml", GOOD_TOML))
    bad_path = write_file(file_name(case), case.content)

    with pytest.raises(PriceFileError) as caught:
        llmfy_pricing_file.use_price_file(bad_path)

    message = str(caught.value)
    assert message.startswith(f"Invalid price file {bad_path}")
    for fragment in case.fragments:
        assert fragment in message
    assert caught.value.line == case.line
    assert caught.value.key_path == case.key_path
    if case.line is not None:
        assert f"line {case.line}:" in message
    if case.key_path is not None:
        assert f"key {case.key_path}:" in message
    assert llmfy_pricing_file.check_price_file() is good


def test_price_file_error_is_value_error() -> None:
    assert issubclass(PriceFileError, PricingTableError)
    assert issubclass(PriceFileError, ValueError)


def test_huge_file_rejected(write_file: WriteFile) -> None:
    good = llmfy_pricing_file.use_price_file(write_file("good.toml", GOOD_TOML))
    # A valid TOML file (one long comment) one byte over the limit.
    content = GOOD_TOML + "#" * (MAX_FILE_BYTES - len(GOOD_TOML)) + "\n"
    huge = write_file("huge.toml", content)

    with pytest.raises(PriceFileError, match="larger than 8,388,608 bytes"):
        llmfy_pricing_file.use_price_file(huge)

    assert llmfy_pricing_file.check_price_file() is good


def test_file_at_size_limit_accepted(write_file: WriteFile) -> None:
    content = GOOD_TOML + "#" * (MAX_FILE_BYTES - len(GOOD_TOML) - 1) + "\n"
    path = write_file("large.toml", content)

    prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert len(prices) == 1


@pytest.mark.parametrize("suffix", [".yaml", ".py", ".pickle", ""])
def test_unknown_file_type_rejected(write_file: WriteFile, suffix: str) -> None:
    path = write_file(f"prices{suffix}", GOOD_TOML)

    with pytest.raises(PriceFileError, match="unknown file type"):
        llmfy_pricing_file.load_price_file(path)


# Windows editors such as Notepad can save UTF-8 with a byte order mark.
@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "prices.toml",
            '[providers.openai]\nprices = [{model = "m", input = 2, output = 8}]\n',
        ),
        (
            "prices.json",
            '{"providers": {"openai": {"prices": '
            '[{"model": "m", "input": 2, "output": 8}]}}}',
        ),
    ],
)
def test_utf8_byte_order_mark_accepted(
    write_file: WriteFile, name: str, content: str
) -> None:
    path = write_file(name, b"\xef\xbb\xbf" + content.encode())

    prices = llmfy_pricing_file.load_price_file(path)

    price = prices.lookup("openai", "m")
    assert price is not None
    assert price.input == Decimal(2)
    assert price.output == Decimal(8)


def test_missing_file_raises_os_error(tmp_path: object) -> None:
    with pytest.raises(FileNotFoundError):
        llmfy_pricing_file.use_price_file("/nonexistent/llmfy/prices.toml")

    assert llmfy_pricing_file.check_price_file() is None


def test_bad_reload_warns_logs_and_keeps_prices(
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_file("prices.toml", GOOD_TOML)
    monkeypatch.setenv(ENV_VAR, str(path))
    usage = llmfy_usage_tracker()
    before = usage.record("openai", "gpt-4o-mini", 1_000_000, 0)
    write_file("prices.toml", ENTRY + "input = -0.10\noutput = 0.40\n")

    with (
        caplog.at_level(logging.WARNING, logger="llmfy.plugins.pricing_file"),
        pytest.warns(PricingWarning, match="stay in force") as caught,
    ):
        prices = llmfy_pricing_file.check_price_file()

    warning = str(caught[0].message)
    assert f"Invalid price file {path}" in warning
    assert "key providers.openai.prices[0].input" in warning
    assert "-0.10" in warning
    assert [r.name for r in caplog.records] == ["llmfy.plugins.pricing_file"]
    assert caplog.records[0].levelno == logging.WARNING
    assert prices is not None
    assert prices.path == path
    # 1,000,000 input tokens at 0.10 per million, before and after the bad file.
    after = usage.record("openai", "gpt-4o-mini", 1_000_000, 0)
    assert before.cost is not None
    assert before.cost.total == Decimal("0.10")
    assert after.cost is not None
    assert after.cost.total == Decimal("0.10")


def test_bad_version_warned_once(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("prices.toml", ENTRY + "input = nan\noutput = 1\n")
    monkeypatch.setenv(ENV_VAR, str(path))
    with pytest.warns(PricingWarning, match="No price from a price file applies"):
        assert llmfy_pricing_file.check_price_file() is None

    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert llmfy_pricing_file.check_price_file() is None

    assert again == []


def test_missing_env_file_warns(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "/nonexistent/llmfy/prices.toml")

    with pytest.warns(PricingWarning) as caught:
        prices = llmfy_pricing_file.check_price_file()

    message = str(caught[0].message)
    assert prices is None
    assert f"(named by {ENV_VAR}) cannot be read" in message
    assert "No such file or directory" in message
    assert "Check the path" in message


def test_invalid_file_never_breaks_recording(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("prices.json", '{"providers": ')
    monkeypatch.setenv(ENV_VAR, str(path))
    usage = llmfy_usage_tracker()

    with pytest.warns(PricingWarning) as caught:
        record = usage.record("acme", "acme-large", 10, 10)

    messages = [str(warning.message) for warning in caught]
    assert any(f"Invalid price file {path}, line 1" in text for text in messages)
    assert record.fault is None
    assert record.cost is None


IMPLAUSIBLE_TOML = ENTRY + "input = 5000\noutput = 0.40\n"


def test_implausible_price_warns_and_loads(write_file: WriteFile) -> None:
    path = write_file("prices.toml", IMPLAUSIBLE_TOML)

    with pytest.warns(PricingWarning, match="Check the unit"):
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    price = prices.lookup("openai", "gpt-4o-mini")
    assert price is not None
    assert price.input == Decimal(5000)


@pytest.mark.parametrize(
    ("entry", "provider", "model", "region", "ratio"),
    [
        # gpt-4o-mini's per-1,000 prices written as per million: 0.00015
        # against the bundled 0.15 per million is a thousandth.
        (
            ENTRY + "input = 0.00015\noutput = 0.0006\n",
            "openai",
            "gpt-4o-mini",
            None,
            " 0.001 times the published price ",
        ),
        # Nova Lite's per-million prices (0.06 and 0.24 in us-east-1) marked
        # as per 1,000 tokens: 60 USD per million, 1,000 times the price.
        (
            "[[providers.bedrock.prices]]\n"
            'model = "amazon.nova-lite-v1:0"\n'
            'unit = "usd_per_thousand_tokens"\n'
            "input = 0.06\noutput = 0.24\n",
            "bedrock",
            "amazon.nova-lite-v1:0",
            "us-east-1",
            " 1,000 times the published price ",
        ),
    ],
)
def test_price_in_wrong_unit_warns_on_use(
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    entry: str,
    provider: str,
    model: str,
    region: str | None,
    ratio: str,
) -> None:
    path = write_file("prices.toml", entry)
    monkeypatch.setenv(ENV_VAR, str(path))

    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as caught:
            record = usage.record(provider, model, 1000, 100, region=region)

    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1
    assert ratio in messages[0]
    assert "Check the unit of plugin pricing-file's price" in messages[0]
    assert record.price_origin == "pricing-file"


def test_rejected_syntax_error_ends_sentence(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = ENTRY + "input = 0.10\noutput = 0.40 0.50\n"
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", content)))

    with pytest.warns(PricingWarning) as caught:
        llmfy_pricing_file.check_price_file()

    message = str(caught[0].message)
    assert "TOML syntax error" in message
    assert "). The file was rejected." in message


def test_warning_as_error_rejects_file(
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The test suite turns warnings into errors, as `python -W error` does.
    monkeypatch.setenv(ENV_VAR, str(write_file("prices.toml", IMPLAUSIBLE_TOML)))

    with caplog.at_level(logging.WARNING, logger="llmfy.plugins.pricing_file"):
        prices = llmfy_pricing_file.check_price_file()
        again = llmfy_pricing_file.check_price_file()

    records = [
        record
        for record in caplog.records
        if record.name == "llmfy.plugins.pricing_file"
    ]
    assert prices is None
    assert again is None
    assert len(records) == 1
    assert "5000" in records[0].getMessage()
    assert "The file was rejected" in records[0].getMessage()


def test_misspelt_provider_warned(write_file: WriteFile) -> None:
    # Prices under providers.opnai apply to requests of provider "opnai",
    # which no plugin records, so they would silently price nothing.
    path = write_file(
        "prices.toml",
        '[[providers.opnai.prices]]\nmodel = "gpt-4o-mini"\ninput = 0.1\n'
        "output = 0.2\n",
    )

    with pytest.warns(PricingWarning, match="Did you mean 'openai'") as caught:
        llmfy_pricing_file.use_price_file(path)

    message = str(caught[0].message)
    assert "provider 'opnai'" in message
    assert "Rename providers.opnai to providers.openai" in message


def test_counted_provider_not_warned(write_file: WriteFile) -> None:
    path = write_file(
        "prices.toml",
        '[[providers.openai.prices]]\nmodel = "gpt-4o-mini"\ninput = 0.1\n'
        'output = 0.2\n\n[[providers.mistral.prices]]\nmodel = "m"\n'
        "input = 1\noutput = 2\n",
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert prices.providers == ("mistral", "openai")


def use_with_one_warning(path: Path) -> tuple[PriceList, str]:
    """Use the price file at `path`; return its prices and its one warning's text."""
    with pytest.warns(PricingWarning) as caught:
        prices = llmfy_pricing_file.use_price_file(path)

    assert len(caught) == 1
    assert caught[0].filename == __file__
    assert prices is not None
    return prices, str(caught[0].message)


BEDROCK_ENTRY = '[[providers.bedrock.prices]]\nmodel = "amazon.nova-lite-v1:0"\n'


@pytest.mark.parametrize(
    ("region", "advice"),
    [
        ("us-eest-1", "Did you mean 'us-east-1'?"),
        ("mars-1", "Check the region code."),
    ],
)
def test_unknown_bedrock_region_warned(
    write_file: WriteFile, region: str, advice: str
) -> None:
    path = write_file(
        "prices.toml",
        BEDROCK_ENTRY + f'region = "{region}"\ninput = 0.05\noutput = 0.20\n',
    )

    prices, message = use_with_one_warning(path)

    assert f"The price file {path}, key providers.bedrock.prices[0].region" in (message)
    assert "provider 'bedrock'" in message
    assert "model 'amazon.nova-lite-v1:0'" in message
    assert f"region {region!r}" in message
    assert advice in message
    # The entry is kept, for a region newer than the installed plugins.
    price = prices.lookup("bedrock", "amazon.nova-lite-v1:0", region)
    assert price is not None
    assert price.input == Decimal("0.05")


def test_real_regions_not_warned(write_file: WriteFile) -> None:
    # eu-west-3 is an AWS Region without a bundled Bedrock price, and OpenAI
    # requests sent to eu.api.openai.com have the region `eu`.
    path = write_file(
        "prices.toml",
        BEDROCK_ENTRY
        + 'region = "eu-west-3"\ninput = 0.05\noutput = 0.20\n'
        + '[[providers.openai.prices]]\nmodel = "gpt-4o-mini"\nregion = "eu"\n'
        + "input = 0.1\noutput = 0.2\n",
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert len(prices) == 2


def test_failing_region_list_skips_check(
    write_file: WriteFile, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenRegions:
        def llmfy_regions(self, provider: str) -> frozenset[str]:
            raise RuntimeError("region list unavailable")

    llmfy_core.register_plugin(BrokenRegions(), "broken-regions")
    path = write_file(
        "prices.toml",
        BEDROCK_ENTRY + 'region = "eu-west-3"\ninput = 0.05\noutput = 0.20\n',
    )

    with caplog.at_level(logging.WARNING, logger="llmfy.plugins"):
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert len(prices) == 1
    assert "llmfy_regions of plugin 'broken-regions' failed" in caplog.text
    assert "region list unavailable" in caplog.text


@pytest.mark.parametrize(("tier", "meant"), [("flx", "flex"), ("priorty", "priority")])
def test_misspelt_tier_warned(write_file: WriteFile, tier: str, meant: str) -> None:
    path = write_file(
        "prices.toml",
        ENTRY + f'service_tier = "{tier}"\ninput = 0.05\noutput = 0.20\n',
    )

    prices, message = use_with_one_warning(path)

    assert f"The price file {path}, key providers.openai.prices[0].service_tier" in (
        message
    )
    assert "provider 'openai', model 'gpt-4o-mini'" in message
    assert f"service tier {tier!r}" in message
    assert f"Did you mean {meant!r}?" in message
    # The entry is kept, for a tier of the provider's that llmfy does not list.
    price = prices.lookup("openai", "gpt-4o-mini", service_tier=tier)
    assert price is not None
    assert price.input == Decimal("0.05")


def test_other_tiers_not_warned(write_file: WriteFile) -> None:
    # Bedrock names latency-optimized inference a tier of its own.
    path = write_file(
        "prices.toml",
        ENTRY
        + 'service_tier = "priority"\ninput = 0.3\noutput = 1.2\n'
        + BEDROCK_ENTRY
        + 'region = "us-east-1"\nservice_tier = "latency-optimized"\n'
        + "input = 0.08\noutput = 0.3\n",
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert len(prices) == 2


@pytest.mark.parametrize(
    ("provider", "model", "meant"),
    [
        ("openai", "gpt-4o-mnii", "gpt-4o-mini"),
        ("bedrock", "us.amazon.nova-lte-v1:0", "amazon.nova-lite-v1:0"),
    ],
)
def test_misspelt_model_warned(
    write_file: WriteFile, provider: str, model: str, meant: str
) -> None:
    path = write_file(
        "prices.toml",
        f'[[providers.{provider}.prices]]\nmodel = "{model}"\n'
        "input = 0.05\noutput = 0.20\n",
    )

    prices, message = use_with_one_warning(path)

    assert f"The price file {path}, key providers.{provider}.prices[0].model" in (
        message
    )
    assert f"provider {provider!r}, model {model!r}" in message
    assert f"Did you mean {meant!r}?" in message
    # The entry is kept, for a model of the user's own.
    price = prices.lookup(provider, model)
    assert price is not None
    assert price.input == Decimal("0.05")


def test_known_and_own_models_not_warned(write_file: WriteFile) -> None:
    models = [
        "gpt-4o-mini-2024-07-18",
        "ft:gpt-4o-mini:acme::x1",
        "acme-large",
        "gpt-4o-mini",
    ]
    entries = "".join(
        f'[[providers.openai.prices]]\nmodel = "{model}"\ninput = 1\noutput = 2\n'
        for model in models
    )
    path = write_file("prices.toml", entries)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert len(prices) == len(models)


def test_failing_catalog_skips_model_check(
    write_file: WriteFile, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenCatalog:
        @llmfy_core.hookimpl
        def price_catalog(self, provider: str | None) -> None:
            raise RuntimeError("catalog unavailable")

    llmfy_core.register_plugin(BrokenCatalog(), "broken-catalog")
    path = write_file("prices.toml", GOOD_TOML)

    with caplog.at_level(logging.WARNING, logger="llmfy.plugins"):
        prices = llmfy_pricing_file.use_price_file(path)

    assert prices is not None
    assert len(prices) == 1
    assert "price_catalog of plugin 'broken-catalog' failed" in caplog.text
    assert "catalog unavailable" in caplog.text


def test_warning_as_error_rejects_file_with_unknown_region(
    write_file: WriteFile,
) -> None:
    # The test suite turns warnings into errors, as `python -W error` does.
    good = llmfy_pricing_file.use_price_file(write_file("good.toml", GOOD_TOML))
    content = BEDROCK_ENTRY + 'region = "mars-1"\ninput = 0.05\noutput = 0.20\n'
    bad_path = write_file("prices.toml", content)

    with pytest.raises(PricingWarning, match="region 'mars-1'"):
        llmfy_pricing_file.use_price_file(bad_path)

    assert llmfy_pricing_file.check_price_file() is good


@pytest.mark.parametrize(
    ("field", "entry", "value"),
    [
        ("region", 'model = "amazon.nova-lite-v1:0"\nregion = "mars-1"\n', "mars-1"),
        (
            "service_tier",
            'model = "amazon.nova-lite-v1:0"\nservice_tier = "flx"\n',
            "flx",
        ),
        ("model", 'model = "amazon.nova-lte-v1:0"\n', "amazon.nova-lte-v1:0"),
    ],
)
def test_repeated_suspect_value_warned_once(
    write_file: WriteFile,
    caplog: pytest.LogCaptureFixture,
    field: str,
    entry: str,
    value: str,
) -> None:
    # A price list of 300 entries in one new region would otherwise give 300
    # warnings and 300 log lines, on every read of the file.
    entries = [
        f"[[providers.bedrock.prices]]\n{entry}effective_from = 2025-0{month}-01\n"
        f"effective_until = 2025-0{month + 1}-01\ninput = 0.05\noutput = 0.20\n"
        for month in (1, 2, 3)
    ]
    path = write_file("prices.toml", "".join(entries))

    with caplog.at_level(logging.WARNING, logger="llmfy.plugins.pricing_file"):
        prices, message = use_with_one_warning(path)

    assert len(prices) == 3
    assert f"key providers.bedrock.prices[0].{field}" in message
    assert repr(value) in message
    assert "2 more entries" in message
    assert len(caplog.records) == 1


def test_bundled_region_reads_no_botocore_list(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing botocore and reading its list of Regions took five times as
    # long as reading a one-entry file without them, and the first request
    # reads the file. A Region with a bundled price needs no list.
    from llmfy_bedrock import overrides

    reads: list[bool] = []

    def aws_regions() -> frozenset[str]:
        reads.append(True)
        return frozenset({"us-east-1", "eu-west-3"})

    monkeypatch.setattr(overrides, "_aws_regions", aws_regions)
    bundled = write_file(
        "bundled.toml",
        BEDROCK_ENTRY + 'region = "us-east-1"\ninput = 0.05\noutput = 0.20\n',
    )
    other = write_file(
        "other.toml",
        BEDROCK_ENTRY + 'region = "eu-west-3"\ninput = 0.05\noutput = 0.20\n',
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bundled_prices = llmfy_pricing_file.load_price_file(bundled)
        bundled_reads = len(reads)
        other_prices = llmfy_pricing_file.load_price_file(other)

    assert len(bundled_prices) == 1
    assert bundled_reads == 0
    assert len(other_prices) == 1
    assert reads == [True]
