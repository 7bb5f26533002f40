"""The `llmfy` command, run against the installed plugins and recorded files.

Expected costs are worked out by hand from the published prices, in USD per
million tokens. gpt-4o-mini costs 0.15 input, 0.075 cached input and 0.60
output, and half of that in the Batch API. gpt-4o costs 2.50 and 10.00 (1.25
and 5.00 in the Batch API). Amazon Nova Lite in us-east-1 costs 0.06 and 0.24.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llmfy_openai.overrides import SERVICE_TIERS as OPENAI_PRICING_TIERS
from llmfy_openai.overrides import parse_override_table

import llmfy_core
from llmfy_core import (
    CallContext,
    CatalogEntry,
    LongContextTier,
    Price,
    PriceKey,
    PriceRank,
    Usage,
    discovery,
    hookimpl,
    llmfy_usage_tracker,
)
from llmfy_core.cli import main
from llmfy_core.cli.progress import Progress

from .distributions import install_distribution
from .reliability.servers import event_frame

REAL_DATA = os.environ.get("LLMFY_REAL_DATA")
NEEDS_REAL_DATA = pytest.mark.skipif(
    not REAL_DATA,
    reason="LLMFY_REAL_DATA is not set; it names the folder of real recorded "
    "provider traffic (with openai/ and bedrock/ inside), as .ci/run sets it",
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command; return its exit code, stdout and stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code, out, _ = run(capsys, *args, "--json")
    return code, json.loads(out)


def chat_body(
    model: str, prompt: int, completion: int, cached: int = 0
) -> dict[str, Any]:
    """A Chat Completions body with the shape of a real one."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1729730156,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello."},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def chat_chunk(
    stream_id: str,
    content: str | None,
    usage: dict[str, Any] | None = None,
    model: str = "gpt-4-0613",
) -> dict[str, Any]:
    """A Chat Completions stream chunk. With `content=None` its `choices` are empty."""
    choices = []
    if content is not None:
        delta = {"content": content}
        choices = [{"index": 0, "delta": delta, "finish_reason": None}]
    return {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "created": 1731368639,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def in_progress_response() -> dict[str, Any]:
    """The `response` of a Responses stream's first events, without usage."""
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1780000000,
        "status": "in_progress",
        "model": "gpt-4o-mini-2024-07-18",
        "output": [],
        "usage": None,
    }


def responses_usage(inputs: int, outputs: int) -> dict[str, Any]:
    """The `usage` of a Responses body, without cached or reasoning tokens."""
    return {
        "input_tokens": inputs,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": outputs,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inputs + outputs,
    }


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def batch_line(number: int, body: dict[str, Any] | None) -> str:
    """One line of an OpenAI Batch output file; a None body is a failed request."""
    line: dict[str, Any] = {
        "id": f"batch_req_{number}",
        "custom_id": f"request-{number}",
    }
    if body is None:
        line["response"] = None
        line["error"] = {"code": "invalid_request", "message": "bad request"}
    else:
        line["response"] = {
            "status_code": 200,
            "request_id": f"req-{number}",
            "body": body,
        }
        line["error"] = None
    return json.dumps(line)


def invocation_log(model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A Bedrock model invocation log record with the shape of a real one."""
    return {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": "2025-03-11T00:38:02Z",
        "accountId": "000000000000",
        "region": "us-east-1",
        "requestId": "00000000-0000-0000-0000-000000000000",
        "operation": "Converse",
        "modelId": model,
        "input": {
            "inputContentType": "application/json",
            "inputTokenCount": input_tokens,
            "cacheReadInputTokenCount": 0,
            "cacheWriteInputTokenCount": 0,
        },
        "output": {
            "outputContentType": "application/json",
            "outputTokenCount": output_tokens,
        },
    }


PRICE_FILE = """
[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 1.0
output = 2.0

[[providers.openai.prices]]
model = "gpt-4o-mini"
batch = true
input = 0.5
output = 1.0
"""


# llmfy plugins


def test_plugins_lists_provider_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins")

    assert code == 0
    assert "llmfy-openai" in out
    assert "llmfy-bedrock" in out
    assert "PROVIDER" in out


def test_plugins_none_installed_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery, "entry_points", lambda group: [])
    llmfy_core.load_plugins()

    code, out, _ = run(capsys, "plugins")

    assert code == 0
    assert "No llmfy plugin is installed" in out
    assert "pip install ./plugins/openai ./plugins/bedrock" in out
    assert "pip install llmfy-openai" not in out


def test_plugins_json_names_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "plugins")

    plugins = {each["name"]: each for each in data["plugins"]}
    assert code == 0
    assert "usage_extract" in plugins["openai"]["hooks"]
    assert "price_catalog" in plugins["openai"]["hooks"]
    assert plugins["bedrock"]["distribution"] == "llmfy-bedrock"
    assert plugins["openai"]["error"] is None


def test_plugins_hook_order_follows_rank(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "plugins", "--hook", "price_lookup")

    names = [each["name"] for each in data["order"]]
    ranks = [each["price_rank"] for each in data["order"]]
    assert code == 0
    assert data["hook"] == "price_lookup"
    assert "openai" in names
    assert ranks == sorted(ranks, reverse=True)


def test_plugins_hook_order_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--hook", "price_lookup")

    assert code == 0
    assert "the first Price wins" in out
    assert "openai" in out


def test_plugins_unknown_hook(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plugins", "--hook", "price_lokup")

    assert code == 2
    assert "price_lokup" in err
    assert "price_lookup" in err


def test_plugins_broken_plugin_exits_1(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = install_distribution(
        tmp_path,
        "llmfy-broken-cli",
        {"llmfy_broken_cli.py": "raise ImportError('needs a missing package')\n"},
        {"broken-cli": "llmfy_broken_cli"},
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(llmfy_core.PluginWarning):
        llmfy_core.load_plugins()

    code, data = run_json(capsys, "plugins")

    plugins = {each["name"]: each for each in data["plugins"]}
    assert code == 1
    assert "needs a missing package" in plugins["broken-cli"]["error"]
    assert plugins["broken-cli"]["distribution"] == "llmfy-broken-cli"
    assert plugins["openai"]["error"] is None


def install_misgrouped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str
) -> None:
    """Install a plugin whose entry point is in `group`, then load the plugins."""
    site = install_distribution(
        tmp_path,
        "llmfy-misgrouped",
        {"llmfy_misgrouped.py": "from llmfy_core import hookimpl\n"},
        {"misgrouped": "llmfy_misgrouped"},
        group=group,
    )
    monkeypatch.syspath_prepend(str(site))
    llmfy_core.load_plugins()


@pytest.mark.parametrize("group", ["llmfy.plugins", "llmfy_plugins"])
def test_plugins_wrong_group_exits_1(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    group: str,
) -> None:
    install_misgrouped(tmp_path, monkeypatch, group)

    code, out, _ = run(capsys, "plugins")

    assert code == 1
    assert f"in the entry-point group {group!r}" in out
    assert "misgrouped (llmfy-misgrouped 1.0.0)" in out
    assert "[project.entry-points.llmfy]" in out


def test_plugins_json_lists_wrong_group(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_misgrouped(tmp_path, monkeypatch, "llmfy.plugins")

    code, data = run_json(capsys, "plugins")

    assert code == 1
    assert data["other_groups"] == [
        {
            "name": "misgrouped",
            "group": "llmfy.plugins",
            "distribution": "llmfy-misgrouped",
            "version": "1.0.0",
        }
    ]
    assert "misgrouped" not in data["entry_points"]


def test_plugins_autoload_disabled_names_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFY_DISABLE_PLUGIN_AUTOLOAD", "1")
    llmfy_core.load_plugins()

    code, out, _ = run(capsys, "plugins")

    assert code == 0
    assert "No llmfy plugin is installed" not in out
    assert "autoload is disabled (LLMFY_DISABLE_PLUGIN_AUTOLOAD=1)" in out
    assert "Installed entry points: bedrock," in out


def test_plugins_unknown_allowed_name_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFY_PLUGINS", "opnai")
    llmfy_core.load_plugins()

    code, out, _ = run(capsys, "plugins")

    assert code == 1
    assert "No llmfy plugin is installed" not in out
    assert "(LLMFY_PLUGINS=opnai) names 'opnai'" in out
    assert "Did you mean openai?" in out
    assert "Installed entry points: bedrock," in out


def test_plugins_qualified_allowed_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFY_PLUGINS", "llmfy-openai:openai")
    llmfy_core.load_plugins()

    code, out, _ = run(capsys, "plugins")

    left_out = out.split("leaves them out: ", 1)[1].split(".", 1)[0].split(", ")
    assert code == 0
    assert "no installed entry point has" not in out
    assert "bedrock" in left_out
    assert "openai" not in left_out


def test_plugins_json_lists_entry_points(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFY_PLUGINS", "openai,opnai")
    llmfy_core.load_plugins()

    code, data = run_json(capsys, "plugins")

    assert code == 1
    assert [each["name"] for each in data["plugins"]] == ["openai"]
    assert data["unknown_in_allow"] == ["opnai"]
    assert "bedrock" in data["entry_points"]


# llmfy prices


def test_prices_model_batch_rate(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "prices", "openai", "--model", "gpt-4o", "--batch")

    per_million = data["price_per_million"]
    assert code == 0
    assert data["origin"] == "openai"
    # gpt-4o is 2.50 and 10.00 USD per million; the Batch API charges half.
    assert Decimal(per_million["input"]) == Decimal("1.25")
    assert Decimal(per_million["output"]) == Decimal("5")
    assert data["price"]["source"]
    assert data["price"]["checked"]


def test_prices_model_guesses_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "prices", "--model", "gpt-4o-mini-2024-07-18")

    assert code == 0
    assert data["provider"] == "openai"
    assert Decimal(data["price"]["input"]) == Decimal("0.15")


def test_prices_model_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "prices", "bedrock", "--model", "amazon.nova-lite-v1:0", "--region",
        "us-east-1",
    )  # fmt: skip

    assert code == 0
    assert "0.06 USD per 1,000,000 tokens" in out
    assert "from:         bedrock" in out


def test_prices_model_values_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "openai", "--model", "gpt-4o-mini")

    lines = {line.split(":")[0].strip(): line for line in out.splitlines()[1:]}
    columns = {
        label: len(line) - len(line.split(":", 1)[1].lstrip())
        for label, line in lines.items()
    }
    assert code == 0
    assert columns["web_search"] == columns["input"]
    assert columns["file_search"] == columns["input"]
    assert columns["source"] == columns["input"]


def test_prices_model_marks_input_rate_fallback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # OpenAI bills no cache writes, so the bundled gpt-4o-mini price has no
    # cache write rate, and such tokens would cost its input rate.
    code, out, _ = run(capsys, "prices", "openai", "--model", "gpt-4o-mini")

    assert code == 0
    assert "cached input: 0.075 USD per 1,000,000 tokens\n" in out
    assert "cache write:  0.15 USD per 1,000,000 tokens (the input rate)\n" in out


def test_prices_model_long_context_rates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "prices", "openai", "--model", "gpt-5.4")

    # GPT-5.4 above 272,000 input tokens: 5 input, 0.50 cached input and
    # 22.50 output, in USD per million tokens.
    assert code == 0
    assert (
        "Above 272,000 input tokens the whole request costs, in USD per "
        "1,000,000 tokens: 5 input, 0.5 cached input, 5 cache write (the input "
        "rate), 22.5 output." in out
    )


# llmfy prices and llmfy cost: arguments that do not select one price


@pytest.mark.parametrize(
    "args",
    [
        ("cost", "us.amazon.nova-lite-v1:0", "--input", "1", "--output", "1"),
        ("cost", "amazon.nova-lite-v1:0", "--provider", "bedrock", "--input", "1",
         "--output", "1"),
        ("prices", "--model", "us.amazon.nova-lite-v1:0"),
        ("prices", "bedrock", "--model", "amazon.nova-lite-v1:0"),
    ],
)  # fmt: skip
def test_bedrock_model_without_region_asks_region(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *args)

    assert code == 2
    assert out == ""
    assert "is a Bedrock model whose price depends on the region" in err
    assert "--region us-east-1" in err
    assert "us-east-2, us-west-2" in err
    assert "--provider" not in err
    assert "llmfy_usage_tracker" not in err


@pytest.mark.parametrize("command", ["cost", "prices"])
def test_region_without_price_exits_3(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    model = "amazon.nova-lite-v1:0"
    if command == "cost":
        args = ("cost", model, "--input", "1", "--output", "1")
    else:
        args = ("prices", "--model", model)

    code, out, _ = run(capsys, *args, "--region", "eu-west-1")

    assert code == 3
    assert "us-east-1, us-east-2, us-west-2, but not in eu-west-1" in out


@pytest.mark.parametrize(
    "args",
    [
        ("prices", "bedrock", "--region", "us-eats-1"),
        ("prices", "--region", "us-eats-1"),
        ("prices", "--model", "amazon.nova-lite-v1:0", "--region", "us-eats-1"),
        # Priced only by genai-prices, whose Bedrock prices apply to every region.
        ("prices", "bedrock", "--model", "writer.palmyra-x5-v1:0", "--region",
         "us-eats-1"),
        ("cost", "amazon.nova-lite-v1:0", "--region", "us-eats-1", "--input", "1",
         "--output", "1"),
    ],
)  # fmt: skip
def test_misspelt_region_exits_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *args)

    assert code == 2
    assert out == ""
    assert "No installed plugin lists bedrock prices in region 'us-eats-1'" in err
    assert "Did you mean us-east-1?" in err


@pytest.mark.parametrize("region", ["us-east1", "useast1", "US-EAST-1", "us_east_1"])
@pytest.mark.parametrize("command", ["prices", "cost"])
def test_region_with_other_separators_exits_2(
    capsys: pytest.CaptureFixture[str], region: str, command: str
) -> None:
    if command == "cost":
        args = ["amazon.nova-lite-v1:0", "--input", "1", "--output", "1"]
    else:
        args = ["--model", "amazon.nova-lite-v1:0"]
    code, out, err = run(capsys, command, *args, "--region", region)

    assert code == 2
    assert out == ""
    assert f"in region {region!r}" in err
    assert "Did you mean us-east-1?" in err


@pytest.mark.parametrize(
    "args",
    [
        ("cost", "amazon.titan-text-express-v1", "--provider", "bedrock", "--input",
         "1", "--output", "1"),
        ("prices", "--model", "amazon.titan-text-express-v1"),
    ],
)  # fmt: skip
def test_unlisted_real_region_exits_3(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    # ap-south-1 is an AWS Region in which no installed table prices the model.
    code, out, err = run(capsys, *args, "--region", "ap-south-1")

    assert code == 3
    assert "but not in ap-south-1" in out
    assert "Did you mean" not in out + err


@pytest.mark.parametrize("command", [[], ["cost"], ["prices"]])
def test_help_exit_codes_misspelt_region(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # An unlisted region such as ap-south-1 exits 3, as the test above shows.
    code, out, _ = run(capsys, *command, "--help")
    text = " ".join(out.split())

    assert code == 0

    assert "region is misspelt" in text or "a misspelt region" in text
    assert "region or tier is unknown" not in text
    assert "provider, region or service tier" not in text


REGION_PAIR_PRICES = """\
[[providers.bedrock.prices]]
model = "anthropic.claude-3-haiku-20240307-v1:0"
region = "me-central-1"
input = 0.25
output = 1.25

[[providers.bedrock.prices]]
model = "anthropic.claude-3-haiku-20240307-v1:0"
region = "ap-south-1"
input = 0.25
output = 1.25
"""


@pytest.mark.parametrize(
    ("region", "expected_code"),
    [
        # Listed in the price file.
        ("me-central-1", 0),
        # Real AWS Regions one letter from a listed one, in another area.
        ("mx-central-1", 3),
        ("af-south-1", 3),
        # A misspelling of a listed region.
        ("me-cnetral-1", 2),
    ],
)
def test_region_near_listed_region(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    region: str,
    expected_code: int,
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(REGION_PAIR_PRICES)

    code, _, _ = run(
        capsys, "cost", "anthropic.claude-3-haiku-20240307-v1:0", "--provider",
        "bedrock", "--prices", str(prices), "--region", region, "--input", "1000",
        "--output", "1000",
    )  # fmt: skip

    assert code == expected_code


def test_provider_listed_only_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    # genai-prices lists providers other than OpenAI and Bedrock only when
    # asked for one of them by name.
    code, out, _ = run(capsys, "prices", "--provider", "anthropic")

    assert code == 0
    assert "\nanthropic  claude-" in out


def test_region_ignored_for_openai(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "gpt-4o-mini", "--region", "eu-north-1", "--input",
        "1000000", "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert Decimal(data["cost_usd"]) == Decimal("0.15")


@pytest.mark.parametrize("command", ["cost", "prices"])
def test_region_for_openai_warns(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if command == "cost":
        args = ("cost", "gpt-4o-mini", "--input", "1000000", "--output", "0")
    else:
        args = ("prices", "--model", "gpt-4o-mini")

    code, out, err = run(capsys, *args, "--region", "us-est-1")

    assert code == 0
    assert "--region us-est-1 does not change the price" in err
    assert "openai model 'gpt-4o-mini'" in err
    assert "Check the region, or leave out --region." in err
    # gpt-4o-mini input: 0.15 USD per million tokens, for any region.
    assert "0.15" in out


def test_region_warning_openai_regional(capsys: pytest.CaptureFixture[str]) -> None:
    # The regional processing endpoint eu changes the price of gpt-5.4 only,
    # so the warning for gpt-4o-mini must not tell the user to drop --region
    # for every OpenAI model.
    code, out, err = run(
        capsys, "cost", "gpt-4o-mini", "--region", "eu", "--input", "1000000",
        "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert "--region eu does not change the price" in err
    assert "for openai models" not in err

    code, out, err = run(
        capsys, "cost", "gpt-5.4", "--region", "eu", "--input", "1000",
        "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert "does not change the price" not in err
    # gpt-5.4 input: 2.50 USD per million tokens, times 1.1 at the eu endpoint.
    assert "0.00275" in out


def test_region_warning_names_price_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The openai plugin has an eu rate for gpt-5.4, but the file's entry
    # without a region wins in every region, so the warning names the file.
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[[providers.openai.prices]]\nmodel = "gpt-5.4"\ninput = 2.0\noutput = 12.0\n'
    )

    code, out, err = run(
        capsys, "cost", "gpt-5.4", "--region", "eu", "--prices", str(prices),
        "--input", "1000", "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert "--region eu does not change the price" in err
    assert "no installed price source" not in err
    assert "the price from --prices has no rate of its own" in err
    # 1,000 input tokens at the file's 2.00 USD per million.
    assert "0.002" in out


def test_region_for_bedrock_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "cost", "amazon.nova-lite-v1:0", "--region", "us-east-1",
        "--input", "1000", "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert "does not change the price" not in err


@pytest.mark.parametrize("command", ["cost", "prices"])
def test_misspelt_model_suggests_close_ids(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if command == "cost":
        args = ("cost", "gpt4o-mini", "--input", "1", "--output", "1")
    else:
        args = ("prices", "--model", "gpt4o-mini")

    code, _, err = run(capsys, *args)

    assert code == 2
    assert "close to it: gpt-4o-mini (openai)" in err
    assert "--provider bedrock" not in err


def test_own_model_gets_no_provider_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "prices", "--model", "my-model")

    assert code == 2
    assert "'my-model'" in err
    assert "--provider bedrock" not in err
    assert "--prices FILE" in err


@pytest.mark.parametrize("command", ["cost", "prices"])
def test_own_provider_points_to_prices_file(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if command == "cost":
        args = ("cost", "my-model", "--input", "1", "--output", "1")
    else:
        args = ("prices", "--model", "my-model")

    code, _, err = run(capsys, *args, "--provider", "acme")

    assert code == 2
    assert "provider 'acme'" in err
    assert "--prices FILE" in err


def test_prices_provider_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "prices", "--provider", "openai", "--model", "gpt-4o")

    assert code == 0
    assert data["provider"] == "openai"
    # gpt-4o costs 2.50 USD per million input tokens.
    assert Decimal(data["price_per_million"]["input"]) == Decimal("2.5")


def test_prices_two_providers_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "prices", "openai", "--provider", "bedrock", "--model", "gpt-4o"
    )

    assert code == 2
    assert "differ" in err


def test_misspelt_provider_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "prices", "opnai", "--model", "gpt-4o-mini")

    assert code == 2
    assert "'opnai'" in err
    assert "Did you mean openai?" in err


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (("cost", "gpt-4o-mini", "--provider", "OpenAI"), "openai"),
        (("cost", "gpt-4o-mini", "--tier", "Flex"), "flex"),
    ],
)
def test_cost_suggests_other_letter_case(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], meant: str
) -> None:
    code, _, err = run(capsys, *args, "--input", "10", "--output", "5")

    assert code == 2
    assert f"Did you mean {meant}?" in err


@pytest.mark.parametrize(
    "args",
    [
        ("prices", "opnai"),
        ("prices", "--provider", "opnai"),
        ("prices", "opnai", "--json"),
    ],
)
def test_prices_listing_misspelt_provider_exits_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *args)

    assert code == 2
    assert out == ""
    assert "'opnai'" in err
    assert "Did you mean openai?" in err


@pytest.mark.parametrize("command", ["cost", "prices"])
def test_unknown_tier_rejected(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if command == "cost":
        args = ("cost", "gpt-4o-mini", "--input", "1", "--output", "1")
    else:
        args = ("prices", "--model", "gpt-4o-mini")

    code, out, err = run(capsys, *args, "--tier", "flx")

    assert code == 2
    assert out == ""
    assert "Unknown service tier 'flx' for provider openai" in err
    assert "flex, priority" in err
    assert "Did you mean flex?" in err


@pytest.mark.parametrize("tier", sorted(OPENAI_PRICING_TIERS))
def test_cost_accepts_openai_pricing_tiers(
    capsys: pytest.CaptureFixture[str], tier: str
) -> None:
    entry = {"input": 1, "output": 2}
    parse_override_table({"gpt-4o-mini": {**entry, "tiers": {tier: entry}}})

    code, out, err = run(
        capsys, "cost", "gpt-4o-mini", "--tier", tier, "--input", "1", "--output", "1"
    )

    if tier in ("flex", "priority"):
        assert code == 0
        assert err == ""
        assert f"{tier} tier" in out
    else:
        # Accepted, but the bundled table has no price for this tier.
        assert code == 3
        assert "No price for openai model 'gpt-4o-mini'" in out
        assert f"'{tier}'" in out


def test_batch_tier_points_to_batch_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "prices", "--model", "gpt-4o-mini", "--tier", "batch")

    assert code == 2
    assert out == ""
    assert "Pass --batch" in err


def test_bedrock_priority_tier_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "cost", "amazon.nova-lite-v1:0", "--region", "us-east-1", "--tier",
        "priority", "--input", "1", "--output", "1",
    )  # fmt: skip

    assert code == 3
    assert "holds standard-tier prices only" in out


@pytest.mark.parametrize("tier", ["default", "standard"])
def test_prices_listing_standard_tier(
    capsys: pytest.CaptureFixture[str], tier: str
) -> None:
    code, data = run_json(capsys, "prices", "openai", "--tier", tier)

    tiers = {row["service_tier"] for row in data["prices"]}
    models = {row["model"] for row in data["prices"]}
    assert code == 0
    assert tiers == {None}
    assert "gpt-4o-mini" in models


def test_prices_listing_unknown_tier_rejected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "prices", "--tier", "flx")

    assert code == 2
    assert "'flx'" in err


def test_cost_flex_tier(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "gpt-4o-mini", "--tier", "flex", "--input", "1000000",
        "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert data["service_tier"] == "flex"
    # Flex is half the standard 0.15 USD per million input tokens.
    assert Decimal(data["cost_usd"]) == Decimal("0.075")


def test_prices_listing_has_both_providers(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "prices")

    rows = {
        (row["provider"], row["model"], row["service_tier"], row["batch"]): row
        for row in data["prices"]
    }
    mini = rows[("openai", "gpt-4o-mini", None, False)]
    assert code == 0
    assert mini["origin"] == "openai"
    assert Decimal(mini["price_per_million"]["output"]) == Decimal("0.60")
    assert any(provider == "bedrock" for provider, *_ in rows)


def test_prices_listing_one_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "openai")

    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("PROVIDER")
    assert all(line.startswith("openai") for line in lines[1:-2])
    assert "Prices in USD per million tokens" in out


def test_prices_file_wins(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICE_FILE)

    code, data = run_json(
        capsys, "prices", "openai", "--model", "gpt-4o-mini", "--prices", str(prices)
    )

    assert code == 0
    assert data["origin"] == "--prices"
    assert Decimal(data["price"]["input"]) == Decimal("1.0")


def test_prices_listing_shows_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICE_FILE)

    code, data = run_json(capsys, "prices", "openai", "--prices", str(prices))

    rows = {(row["model"], row["batch"]): row for row in data["prices"]}
    assert code == 0
    assert rows[("gpt-4o-mini", False)]["origin"] == "--prices"
    assert rows[("gpt-4o", False)]["origin"] == "openai"


# Prices per 1,000 tokens: 0.12 and 0.48 USD per million tokens.
THOUSAND_UNIT_FILE = """
unit = "usd_per_thousand_tokens"
[[providers.openai.prices]]
model = "gpt-4o-mini"
input = 0.00012
output = 0.00048
"""


def test_prices_model_text_per_million(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(THOUSAND_UNIT_FILE)

    code, out, _ = run(
        capsys, "prices", "openai", "--model", "gpt-4o-mini", "--prices", str(prices)
    )

    assert code == 0
    assert "input:        0.12 USD per 1,000,000 tokens" in out
    assert "output:       0.48 USD per 1,000,000 tokens" in out
    assert "USD per 1,000 tokens" not in out


def test_cost_text_per_million(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(THOUSAND_UNIT_FILE)

    code, out, _ = run(
        capsys, "cost", "gpt-4o-mini", "--input", "1000000", "--output", "1000",
        "--prices", str(prices),
    )  # fmt: skip

    lines = [line for line in out.splitlines() if line]
    header = next(line for line in lines if line.startswith("PART"))
    rows = {line.split()[0]: line.split() for line in lines}
    assert code == 0
    assert "USD per 1,000,000" in header
    # 1,000,000 input tokens at 0.12 and 1,000 output tokens at 0.48 USD per
    # million: 0.12 + 0.00048 USD.
    assert rows["input"][1:] == ["1,000,000", "0.12", "0.12"]
    assert rows["output"][1:] == ["1,000", "0.48", "0.00048"]
    assert rows["total"][1:] == ["0.12048"]


def test_prices_invalid_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[providers.openai.prices]]\nmodel = "gpt-4o"\ninput = -1\n')

    code, _, err = run(capsys, "prices", "--prices", str(prices))

    assert code == 2
    assert str(prices) in err


def test_prices_missing_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "prices", "--prices", str(tmp_path / "none.toml"))

    assert code == 2
    assert "file not found" in err


def test_prices_unknown_model_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "prices", "openai", "--model", "no-such-model")

    assert code == 3
    assert data["price"] is None


# llmfy cost


def test_cost_cached_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "gpt-4o-mini", "--input", "1370", "--cached", "1280",
        "--output", "155",
    )  # fmt: skip

    parts = data["cost_parts_usd"]
    assert code == 0
    assert data["provider"] == "openai"
    # 90 uncached input tokens at 0.15, 1280 cached at 0.075, 155 output at
    # 0.60 USD per million: 13.5 + 96 + 93 = 202.5 millionths of a USD.
    assert Decimal(parts["input"]) == Decimal("0.0000135")
    assert Decimal(parts["cache_read"]) == Decimal("0.000096")
    assert Decimal(parts["output"]) == Decimal("0.000093")
    assert Decimal(data["cost_usd"]) == Decimal("0.0002025")


def test_cost_text_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "cost", "gpt-4o-mini", "--input", "1370", "--cached", "1280",
        "--output", "155", "--reasoning", "64",
    )  # fmt: skip

    assert code == 0
    assert "cached input   1,280" in out
    assert "0.0002025" in out
    assert "64 reasoning tokens" in out


def test_cost_text_long_context_threshold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "cost", "gpt-5.4", "--input", "300000", "--output", "0"
    )  # fmt: skip

    assert code == 0
    assert "because it has more than 272,000 input tokens" in out
    # 300,000 input tokens at the long-context rate of 5.00 USD per million.
    assert "1.5" in out


class SharedTierPrice:
    """A pricing plugin whose two long-context tiers share one `Price` object."""

    llmfy_price_rank = PriceRank.FALLBACK

    long_price = Price(Decimal(4), Decimal(18), source="shared tier test price")
    price = Price(
        Decimal(2),
        Decimal(12),
        long_context=(
            LongContextTier(1_000, long_price),
            LongContextTier(5_000, long_price),
        ),
        source="shared tier test price",
    )

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        return [CatalogEntry("acme", PriceKey("acme-long"), self.price)]

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        return self.price if (provider, model) == ("acme", "acme-long") else None


class DescendingTierPrice(SharedTierPrice):
    """A pricing plugin that lists its long-context tiers from the highest down."""

    price = Price(
        Decimal(2),
        Decimal(12),
        long_context=(
            LongContextTier(5_000, Price(Decimal(8), Decimal(30))),
            LongContextTier(1_000, Price(Decimal(4), Decimal(18))),
        ),
        source="descending tier test price",
    )


@pytest.mark.parametrize(
    ("plugin", "input_tokens", "cost", "threshold"),
    [
        # 2,000 input tokens at the shared tier's 4 USD per million.
        (SharedTierPrice, "2000", "0.008", "1,000"),
        # 6,000 input tokens at the 5,000 tier's 8 USD per million.
        (DescendingTierPrice, "6000", "0.048", "5,000"),
    ],
)
def test_cost_text_names_exceeded_threshold(
    capsys: pytest.CaptureFixture[str],
    plugin: type[SharedTierPrice],
    input_tokens: str,
    cost: str,
    threshold: str,
) -> None:
    llmfy_core.register_plugin(plugin(), "tier-test")

    code, out, _ = run(
        capsys, "cost", "acme-long", "--provider", "acme", "--input", input_tokens,
        "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert cost in out
    assert f"because it has more than {threshold} input tokens" in out
    assert out.count("because it has more than") == 1


def test_cost_bedrock_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "amazon.nova-lite-v1:0", "--region", "us-east-1",
        "--input", "4", "--output", "38",
    )  # fmt: skip

    assert code == 0
    assert data["provider"] == "bedrock"
    # 4 * 0.06 + 38 * 0.24 = 0.24 + 9.12 = 9.36 millionths of a USD.
    assert Decimal(data["cost_usd"]) == Decimal("0.00000936")


def test_cost_batch_rate(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "gpt-4o", "--batch", "--input", "1000", "--output", "100"
    )

    assert code == 0
    # 1000 * 1.25 + 100 * 5.00 = 1750 millionths of a USD.
    assert Decimal(data["cost_usd"]) == Decimal("0.00175")


def test_cost_price_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "providers": {
                    "openai": {
                        "prices": [{"model": "gpt-4o-mini", "input": 1, "output": 2}]
                    }
                }
            }
        )
    )

    code, data = run_json(
        capsys, "cost", "gpt-4o-mini", "--input", "1000", "--output", "1000",
        "--prices", str(prices),
    )  # fmt: skip

    assert code == 0
    assert data["price_origin"] == "--prices"
    # 1000 * 1 + 1000 * 2 = 3000 millionths of a USD.
    assert Decimal(data["cost_usd"]) == Decimal("0.003")


def test_cost_unknown_model_asks_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cost", "my-model", "--input", "1", "--output", "1")

    assert code == 2
    assert "--provider" in err
    assert "'my-model'" in err


def test_cost_json_money_matches_to_dict(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "amazon.nova-lite-v1:0", "--region", "us-east-1",
        "--input", "1000", "--output", "100",
    )  # fmt: skip

    assert code == 0
    # 1000 x 0.06 + 100 x 0.24 = 60 + 24 = 84 millionths of a USD, written
    # without trailing zeros, as `usage.to_dict()` writes it.
    assert data["cost_usd"] == "0.000084"
    assert data["cost_parts_usd"] == {"input": "0.00006", "output": "0.000024"}


def test_cost_without_plugins_hints_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery, "entry_points", lambda group: [])
    llmfy_core.load_plugins()

    code, _, err = run(capsys, "cost", "gpt-4o-mini", "--input", "1", "--output", "1")

    assert code == 2
    assert "pip install ./plugins/openai ./plugins/bedrock" in err
    # The id is right: no plugin with prices is installed, so spelling is not
    # the cause.
    assert "Check the spelling" not in err
    assert "providers with prices: none" not in err


def test_cost_unpriced_model_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "cost", "my-model", "--provider", "openai", "--input", "1",
        "--output", "1",
    )  # fmt: skip

    assert code == 3
    assert "No price for openai model 'my-model'" in out
    # The reason does not name the provider and the model a second time.
    assert out.count("my-model") == 1


def test_cost_wrong_provider_names_lister(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "cost", "gpt-4o-mini", "--provider", "bedrock", "--input", "1",
        "--output", "1",
    )  # fmt: skip

    assert code == 3
    assert "No price for bedrock model 'gpt-4o-mini'" in out
    assert "Provider openai lists 'gpt-4o-mini'" in out
    assert "instead of bedrock" in out


class ListedProvider:
    """A provider plugin that prices and lists one model id."""

    llmfy_price_rank = PriceRank.PROVIDER

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.price = Price(Decimal(1), Decimal(2), source="test")

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        if provider == self.provider and model == "shared-model":
            return self.price
        return None

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        return [CatalogEntry(self.provider, PriceKey("shared-model"), self.price)]


@pytest.fixture
def two_providers() -> Iterator[None]:
    llmfy_core.register_plugin(ListedProvider("acme"), "acme")
    llmfy_core.register_plugin(ListedProvider("zeta"), "zeta")
    yield


@pytest.mark.usefixtures("two_providers")
def test_cost_ambiguous_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cost", "shared-model", "--input", "1", "--output", "1")

    assert code == 2
    assert "acme, zeta" in err
    assert "--provider" in err


@pytest.mark.usefixtures("two_providers")
def test_cost_named_provider_resolves(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(
        capsys, "cost", "shared-model", "--provider", "zeta", "--input", "1000000",
        "--output", "0",
    )  # fmt: skip

    assert code == 0
    assert data["price_origin"] == "zeta"
    assert Decimal(data["cost_usd"]) == Decimal(1)


@pytest.mark.usefixtures("two_providers")
def test_prices_listing_no_match_names_filters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "prices", "acme", "--batch")

    assert code == 0
    assert "No listed price matches provider acme, batch." in out
    assert "No installed plugin lists prices" not in out


class RegionlessFallback:
    """A fallback pricing plugin that lists one Bedrock price for every region."""

    llmfy_price_rank = PriceRank.FALLBACK

    def __init__(self) -> None:
        self.price = Price(Decimal(1), Decimal(2), source="regionless test price")

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        if provider == "bedrock" and model == "amazon.nova-lite-v1:0":
            return self.price
        return None

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        return [CatalogEntry("bedrock", PriceKey("amazon.nova-lite-v1:0"), self.price)]


def test_prices_listing_omits_overruled_fallback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The bundled table has no eu-central-1 rate for Nova Lite and leaves such
    # requests unpriced, so a tracker never reaches the fallback's price.
    llmfy_core.register_plugin(RegionlessFallback(), "regionless")

    listing_code, listing, _ = run(
        capsys, "prices", "bedrock", "--region", "eu-central-1"
    )
    model_code, model_listing, _ = run(
        capsys, "prices", "bedrock", "--model", "amazon.nova-lite-v1:0",
        "--region", "eu-central-1",
    )  # fmt: skip

    assert listing_code == 0
    assert "regionless test price" not in listing
    assert model_code == 3
    assert "regionless test price" not in model_listing


class NaNListing:
    """A pricing plugin whose catalog lists one valid and one NaN price."""

    llmfy_price_rank = PriceRank.FALLBACK

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        valid = Price(Decimal(1), Decimal(2), source="valid test price")
        invalid = Price(Decimal(1), Decimal("NaN"), source="NaN test price")
        return [
            CatalogEntry("acme", PriceKey("acme-valid"), valid),
            CatalogEntry("acme", PriceKey("acme-nan", region="eu-west-1"), invalid),
        ]


@pytest.mark.parametrize("json_output", [False, True])
def test_prices_listing_skips_nan_price(
    capsys: pytest.CaptureFixture[str], json_output: bool
) -> None:
    llmfy_core.register_plugin(NaNListing(), "nan-listing")

    code, out, err = run(capsys, "prices", "acme", *(["--json"] if json_output else []))

    assert code == 0
    assert "acme-valid" in out
    assert "acme-nan" not in out
    assert err.count("'nan-listing'") == 1
    assert "provider 'acme'" in err
    assert "model 'acme-nan'" in err
    assert "region 'eu-west-1'" in err
    assert "output is NaN" in err


class NaNOnly:
    """A pricing plugin whose only price, listed and looked up, has a NaN rate."""

    llmfy_price_rank = PriceRank.FALLBACK

    price = Price(Decimal(1), Decimal("NaN"), source="NaN test price")

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        return [CatalogEntry("acme", PriceKey("acme-nan"), self.price)]

    @hookimpl
    def price_lookup(self, provider: str, model: str) -> Price | None:
        return self.price if (provider, model) == ("acme", "acme-nan") else None


def test_cost_nan_only_provider_unpriced(capsys: pytest.CaptureFixture[str]) -> None:
    # The provider and model are spelt right, so this is a missing price
    # (exit code 3), not a misspelt provider (exit code 2).
    llmfy_core.register_plugin(NaNOnly(), "nan-only")

    code, out, err = run(
        capsys, "cost", "acme-nan", "--provider", "acme", "--input", "1",
        "--output", "1",
    )  # fmt: skip

    assert code == 3
    assert "No price for acme model 'acme-nan'" in out
    assert "lists prices for provider 'acme'" not in err
    assert "output is NaN" in err


def test_prices_nan_only_provider_listed(capsys: pytest.CaptureFixture[str]) -> None:
    llmfy_core.register_plugin(NaNOnly(), "nan-only")

    code, out, err = run(capsys, "prices", "acme")

    assert code == 0
    assert "No listed price matches provider acme" in out
    assert "Check the spelling" not in err
    assert err.count("'nan-only'") == 1


@pytest.mark.parametrize(
    "args",
    [
        ("--input", "10", "--cached", "8", "--cache-write", "5", "--output", "1"),
        ("--input", "10", "--output", "1", "--reasoning", "2"),
        ("--input", "-1", "--output", "1"),
        ("--input", "ten", "--output", "1"),
        (
            "--output",
            "1",
        ),
    ],
)
def test_cost_invalid_counts(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, "cost", "gpt-4o-mini", *args)

    assert code == 2
    assert err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("prices", "--model", ""), "--model"),
        (("prices", "--region", "", "--model", "gpt-4o-mini"), "--region"),
        (("prices", "--provider", ""), "--provider"),
        (("prices", ""), "PROVIDER"),
        (
            ("cost", "gpt-4o-mini", "--input", "1", "--output", "1", "--region", ""),
            "--region",
        ),
        (
            ("cost", "gpt-4o-mini", "--input", "1", "--output", "1", "--provider", ""),
            "--provider",
        ),
        (("report", "--model", "", "-"), "--model"),
        (("report", "--provider", "", "-"), "--provider"),
        (("report", "--region", "", "-"), "--region"),
        (("prices", "--model", " "), "--model"),
        (("report", "--region", "\t ", "-"), "--region"),
    ],
)
def test_empty_option_value_rejected(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], option: str
) -> None:
    # A shell variable that is empty or unset, as in `--model "$MODEL"`,
    # passes an empty value, which must not be taken as no option.
    code, _, err = run(capsys, *args)

    assert code == 2
    assert f"argument {option}: must not be empty" in err


# llmfy report


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "batch-output.jsonl"
    lines = [
        batch_line(0, chat_body("gpt-4o-mini-2024-07-18", 100, 20)),
        batch_line(1, None),
        '{"id": "batch_req_2", "custom_id": "request-2", "response": {',
        batch_line(3, chat_body("gpt-4o-mini-2024-07-18", 200, 30)),
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def test_report_batch_file(
    capsys: pytest.CaptureFixture[str], batch_file: Path
) -> None:
    code, data = run_json(capsys, "report", str(batch_file))

    totals = data["totals"]
    assert code == 1
    assert totals["requests"] == 2
    assert totals["input_tokens"] == 300
    assert totals["output_tokens"] == 50
    # Batch rates of gpt-4o-mini, 0.075 and 0.30 USD per million tokens:
    # 100 * 0.075 + 20 * 0.30 = 13.5 and 200 * 0.075 + 30 * 0.30 = 24.
    assert Decimal(totals["cost_usd"]) == Decimal("0.0000375")
    assert data["files"][0]["skipped"] == 1
    assert data["errors"][0]["line"] == 3


def image_body(text: int, image: int, output: int) -> dict[str, Any]:
    """A GPT Image response body, which names no model, with the shape of a real one."""
    return {
        "created": 1780000000,
        "data": [{"b64_json": "aGVsbG8="}],
        "output_format": "png",
        "quality": "high",
        "size": "1024x1024",
        "usage": {
            "input_tokens": text + image,
            "input_tokens_details": {"image_tokens": image, "text_tokens": text},
            "output_tokens": output,
            "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
            "total_tokens": text + image + output,
        },
    }


def test_report_batch_image_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "images.jsonl"
    path.write_text(batch_line(1, image_body(50, 300, 4160)) + "\n")

    code, data = run_json(capsys, "report", str(path), "--model", "gpt-image-1")

    group = data["by_model"][0]
    assert data["errors"] == []
    assert group["model"] == "gpt-image-1"
    assert group["requests"] == 1
    assert group["unknown_usage_requests"] == 0
    assert group["input_tokens"] == 350
    assert group["output_tokens"] == 4160
    # Neither the bundled table nor genai-prices has a Batch API price for
    # GPT Image models.
    assert code == 3


def test_report_batch_moderation_lines_not_billed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The Batch API runs moderations, which are free.
    moderation = {
        "id": "modr-1",
        "model": "omni-moderation-latest",
        "results": [
            {
                "flagged": False,
                "categories": {"violence": False},
                "category_scores": {"violence": 0.0001},
            }
        ],
    }
    path = tmp_path / "moderations.jsonl"
    lines = [
        batch_line(1, moderation),
        batch_line(2, chat_body("gpt-4o-mini-2024-07-18", 100, 20)),
    ]
    path.write_text("\n".join(lines) + "\n")

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert code == 0
    assert data["files"][0]["skipped"] == 1
    assert totals["requests"] == 1
    # Batch rates of gpt-4o-mini, 0.075 and 0.30 USD per million tokens.
    assert (
        Decimal(totals["cost_usd"])
        == (Decimal(100) * Decimal("0.075") + Decimal(20) * Decimal("0.30")) / 10**6
    )


def test_report_names_unreadable_line(
    capsys: pytest.CaptureFixture[str], batch_file: Path
) -> None:
    code, out, err = run(capsys, "report", str(batch_file))

    assert code == 1
    assert f"{batch_file}:3: not valid JSON" in err
    assert "gpt-4o-mini-2024-07-18" in out
    assert "0.0000375" in out


# Where the first line is cut: before a key, and before a value.
@pytest.mark.parametrize("cut_before", ['"response"', '{"status_code"'])
def test_report_cut_first_line_counts_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cut_before: str
) -> None:
    first = batch_line(1, chat_body("gpt-4o-mini-2024-07-18", 500, 50))
    lines = [
        first[: first.index(cut_before)],
        batch_line(2, chat_body("gpt-4o-mini-2024-07-18", 100, 20)),
        batch_line(3, chat_body("gpt-4o-mini-2024-07-18", 200, 30)),
    ]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines) + "\n")

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 1
    assert totals["requests"] == 2
    assert totals["input_tokens"] == 300
    assert totals["output_tokens"] == 50
    # Batch rates of gpt-4o-mini, 0.075 and 0.30 USD per million tokens:
    # 100 * 0.075 + 20 * 0.30 = 13.5 and 200 * 0.075 + 30 * 0.30 = 24.
    assert Decimal(totals["cost_usd"]) == Decimal("0.0000375")
    assert [error["line"] for error in data["errors"]] == [1]


def test_report_deeply_nested_file_does_not_stop_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3)) + "\n")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "\n")

    code, out, err = run(capsys, "report", str(good), str(deep))

    assert code == 1
    assert f"{deep}:1: not readable: the JSON is nested too deeply" in err
    # 60 * 0.15 + 3 * 0.60 = 10.8 millionths of a USD.
    assert "0.0000108" in out


def test_report_saved_openai_body(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3), indent=2))

    code, data = run_json(capsys, "report", str(path))

    group = data["by_model"][0]
    assert code == 0
    assert group["provider"] == "openai"
    assert group["requests"] == 1
    # 60 * 0.15 + 3 * 0.60 = 10.8 millionths of a USD.
    assert Decimal(group["cost_usd"]) == Decimal("0.0000108")


def test_report_saved_compaction_body(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = {
        "id": "cmp_1",
        "object": "response.compaction",
        "created_at": 1780000000,
        "output": [],
        "usage": {
            "input_tokens": 120000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 3000,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123000,
        },
    }
    path = tmp_path / "compaction.json"
    path.write_text(json.dumps(body))

    code, data = run_json(capsys, "report", str(path), "--model", "gpt-5.4")

    group = data["by_model"][0]
    assert code == 0
    assert group["model"] == "gpt-5.4"
    assert group["requests"] == 1
    # gpt-5.4 costs 2.50 input and 15 output per million tokens:
    # 120,000 * 2.50 + 3,000 * 15 = 300,000 + 45,000 = 345,000 millionths.
    assert Decimal(group["cost_usd"]) == Decimal("0.345")


def test_report_saved_chat_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stream.jsonl"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    write_lines(
        path,
        [
            chat_chunk("chatcmpl-1", ""),
            chat_chunk("chatcmpl-1", "This is a test."),
            chat_chunk("chatcmpl-1", None, usage),
            # A chunk after the usage chunk, as gpt-5 sends for moderation.
            chat_chunk("chatcmpl-1", None),
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 0
    assert totals["requests"] == 1
    assert totals["unknown_usage_requests"] == 0
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5
    # gpt-4-0613 at the gpt-4 price, 30 input and 60 output per million tokens:
    # 12 * 30 + 5 * 60 = 360 + 300 = 660 millionths of a USD.
    assert Decimal(totals["cost_usd"]) == Decimal("0.00066")
    assert totals["cost_complete"] is True
    assert data["files"][0]["stream_chunks"] == 3


def test_report_saved_chat_stream_with_done_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # `[DONE]`, the last `data:` payload of a Chat Completions stream, is not JSON.
    path = tmp_path / "stream.jsonl"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    chunks = [
        chat_chunk("chatcmpl-1", "This is a test."),
        chat_chunk("chatcmpl-1", None, usage),
    ]
    path.write_text("".join(json.dumps(chunk) + "\n" for chunk in chunks) + "[DONE]\n")

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5
    assert data["files"][0]["stream_chunks"] == 2


def test_report_reads_chat_stream_saved_from_wire(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A stream saved from the wire keeps the lines of its server-sent events:
    # comments, `event:`, `id:` and `retry:` fields, and `data:` payloads with
    # or without a space after the colon.
    path = tmp_path / "stream.sse"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    content = json.dumps(chat_chunk("chatcmpl-1", "This is a test."))
    last = json.dumps(chat_chunk("chatcmpl-1", None, usage))
    path.write_text(
        ": keep-alive\n\n"
        f"event: message\nid: 1\nretry: 3000\ndata: {content}\n\n"
        f"data:{last}\n\n"
        "data: [DONE]\n\n"
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5
    # gpt-4-0613 at the gpt-4 price, 30 input and 60 output per million tokens:
    # 12 * 30 + 5 * 60 = 360 + 300 = 660 millionths of a USD.
    assert Decimal(totals["cost_usd"]) == Decimal("0.00066")
    assert data["files"][0]["stream_chunks"] == 2


def test_report_reads_responses_stream_saved_from_wire(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "events.sse"
    response = in_progress_response()
    done = {**response, "status": "completed", "usage": responses_usage(22, 6)}
    events = [
        {"type": "response.created", "response": response},
        {"type": "response.completed", "response": done},
    ]
    path.write_text(
        "".join(
            f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events
        )
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 22
    assert totals["output_tokens"] == 6
    # gpt-4o-mini, 0.15 input and 0.60 output per million tokens:
    # 22 * 0.15 + 6 * 0.60 = 3.3 + 3.6 = 6.9 millionths of a USD.
    assert Decimal(totals["cost_usd"]) == Decimal("0.0000069")


def test_report_reads_event_data_split_over_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A server-sent event may spread its payload over several `data:` lines,
    # which the client joins with newlines.
    path = tmp_path / "stream.sse"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    last = json.dumps(chat_chunk("chatcmpl-1", None, usage), indent=2)
    data_lines = "".join(f"data: {line}\r\n" for line in last.splitlines())
    path.write_text(f"event: message\r\n{data_lines}\r\ndata: [DONE]\r\n\r\n")

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5


def test_report_invalid_event_payload_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stream.sse"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    last = json.dumps(chat_chunk("chatcmpl-1", None, usage))
    path.write_text(f'data: {{"id": "chatcmpl-1",\n\ndata: {last}\n')

    code, _, err = run(capsys, "report", str(path))
    _, data = run_json(capsys, "report", str(path))

    assert code == 1
    assert f"{path}:1: not valid JSON: Expecting property name" in err
    assert len(data["errors"]) == 1
    assert data["totals"]["input_tokens"] == 12


def test_report_done_json_string_unreadable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Only a bare `[DONE]` line ends a saved stream. The JSON string "[DONE]",
    # as a line or an array item, is a value of the wrong type.
    path = tmp_path / "strings.jsonl"
    path.write_text('"[DONE]"\n["[DONE]"]\n')

    code, _, err = run(capsys, "report", str(path))
    _, data = run_json(capsys, "report", str(path))

    assert code == 1
    assert f"{path}:1: expected a JSON object, got str" in err
    assert f"{path}:2 item 1: expected a JSON object, got str" in err
    assert len(data["errors"]) == 2
    assert data["files"][0]["stream_chunks"] == 0


def test_report_saved_stream_with_usage_in_every_chunk(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # OpenAI-compatible servers such as vLLM, asked for continuous usage
    # stats, put the usage so far in every chunk: the last one is the total.
    path = tmp_path / "stream.jsonl"

    def usage(completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": 12,
            "completion_tokens": completion,
            "total_tokens": 12 + completion,
        }

    write_lines(
        path,
        [
            chat_chunk("chatcmpl-1", "This", usage(1)),
            chat_chunk("chatcmpl-1", " is a", usage(3)),
            chat_chunk("chatcmpl-1", " test.", usage(5)),
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5
    # gpt-4-0613 at the gpt-4 price, 30 input and 60 output per million tokens.
    assert (
        Decimal(totals["cost_usd"])
        == (Decimal(12) * Decimal(30) + Decimal(5) * Decimal(60)) / 10**6
    )
    assert data["files"][0]["stream_chunks"] == 2


def test_report_saved_streams_grouped_by_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "streams.jsonl"
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    write_lines(
        path,
        [
            chat_chunk("chatcmpl-1", "This is"),
            chat_chunk("chatcmpl-2", "Another"),
            chat_chunk("chatcmpl-1", " a test."),
            chat_chunk("chatcmpl-2", " one."),
            chat_chunk("chatcmpl-1", None, usage),
        ],
    )

    code, out, _ = run(capsys, "report", str(path))

    assert code == 3
    assert "5 records, 2 requests counted, 3 stream chunks" in out
    assert "1 request of openai gpt-4-0613 had no complete usage in its record" in out


def test_report_saved_stream_without_usage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stream.jsonl"
    write_lines(path, [chat_chunk("chatcmpl-1", "Hi"), chat_chunk("chatcmpl-1", ".")])

    code, data = run_json(capsys, "report", str(path))

    group = data["by_model"][0]
    assert code == 3
    assert group["model"] == "gpt-4-0613"
    assert group["requests"] == 1
    assert group["unknown_usage_requests"] == 1
    assert group["cost_usd"] is None
    # Two records: the stream's request and one other chunk.
    assert data["files"][0]["records"] == 2
    assert data["files"][0]["stream_chunks"] == 1


def test_report_saved_azure_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Azure OpenAI sends its content filter results in chunks of their own,
    # with an empty `id`, `model` and `object`: one before the first token,
    # and, with asynchronous filtering, more after the usage chunk.
    prompt_filter = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {
                    "hate": {"filtered": False, "severity": "safe"},
                },
            }
        ],
    }
    completion_filter = {
        "choices": [
            {
                "content_filter_offsets": {
                    "check_offset": 35,
                    "start_offset": 35,
                    "end_offset": 50,
                },
                "content_filter_results": {
                    "hate": {"filtered": False, "severity": "safe"},
                },
                "finish_reason": None,
                "index": 0,
            }
        ],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
    }
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    path = tmp_path / "stream.jsonl"
    write_lines(
        path,
        [
            prompt_filter,
            chat_chunk("chatcmpl-1", "This is a test."),
            chat_chunk("chatcmpl-1", None, usage),
            completion_filter,
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5
    # gpt-4-0613 at the gpt-4 price, 30 input and 60 output per million tokens.
    assert (
        Decimal(totals["cost_usd"])
        == (Decimal(12) * Decimal(30) + Decimal(5) * Decimal(60)) / 10**6
    )
    assert data["files"][0]["stream_chunks"] == 3


def completion_chunk(
    text: str | None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A legacy Completions stream chunk; `text=None` gives empty `choices`.

    Its `object` is `text_completion`, as in a Completions body that is not
    streamed.
    """
    choices = []
    if text is not None:
        choices = [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}]
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1731368639,
        "model": "gpt-3.5-turbo-instruct",
        "choices": choices,
        "usage": usage,
    }


def test_report_saved_completions_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stream.jsonl"
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    write_lines(
        path,
        [
            completion_chunk("Hello"),
            completion_chunk(" there."),
            completion_chunk(None, usage),
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 0
    assert totals["requests"] == 1
    assert totals["unknown_usage_requests"] == 0
    assert totals["input_tokens"] == 100
    assert totals["output_tokens"] == 10
    # gpt-3.5-turbo-instruct at genai-prices' 1.5 input and 2 output per
    # million tokens: 100 * 1.5 + 10 * 2 = 150 + 20 = 170 millionths of a USD.
    assert Decimal(totals["cost_usd"]) == Decimal(100) * Decimal("1.5") / 10**6 + (
        Decimal(10) * Decimal(2) / 10**6
    )
    assert data["files"][0]["stream_chunks"] == 2


def test_report_saved_completions_stream_without_usage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stream.jsonl"
    write_lines(path, [completion_chunk("Hello"), completion_chunk(" there.")])

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 3
    assert totals["requests"] == 1
    assert totals["unknown_usage_requests"] == 1
    assert data["files"][0]["stream_chunks"] == 1


def test_report_saved_responses_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    response = in_progress_response()
    usage = responses_usage(22, 6)
    done = {**response, "status": "completed", "usage": usage}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    write_lines(
        path,
        [
            {"type": "response.created", "response": response},
            {"type": "response.in_progress", "response": response},
            {"type": "response.output_text.delta", **where, "delta": "Paris."},
            {"type": "response.completed", "response": done},
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 0
    assert data["errors"] == []
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 22
    assert totals["output_tokens"] == 6
    # 22 * 0.15 + 6 * 0.60 = 3.3 + 3.6 = 6.9 millionths of a USD.
    assert Decimal(totals["cost_usd"]) == Decimal("0.0000069")


def test_report_saved_responses_stream_ended_by_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A Responses stream that fails sends an `error` event and no final event.
    path = tmp_path / "events.jsonl"
    response = in_progress_response()
    error = {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request.",
        "param": None,
        "sequence_number": 2,
    }
    write_lines(
        path,
        [
            {"type": "response.created", "response": response},
            {"type": "response.in_progress", "response": response},
            error,
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert data["errors"] == []
    assert totals["requests"] == 1
    assert totals["unknown_usage_requests"] == 1
    assert data["files"][0]["stream_chunks"] == 2
    assert code == 3


def test_report_saved_responses_stream_priced_at_send_day(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Sent on 2026-07-20, before gpt-5.6-luna's price cut of 2026-07-30.
    response = {
        **in_progress_response(),
        "model": "gpt-5.6-luna",
        "created_at": 1784505600,
    }
    usage = responses_usage(1000, 100)
    done = {**response, "status": "completed", "usage": usage}
    stream = tmp_path / "events.jsonl"
    write_lines(
        stream,
        [
            {"type": "response.created", "response": response},
            {"type": "response.completed", "response": done},
        ],
    )
    body = tmp_path / "body.json"
    body.write_text(json.dumps(done))

    for path in (stream, body):
        code, data = run_json(capsys, "report", str(path))

        assert code == 0, path.name
        # The launch price, 1.00 input and 6.00 output per million tokens:
        # 1000 * 1.00 + 100 * 6.00 = 1600 millionths (0.00032 at today's price).
        assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.0016"), path.name


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_report_stream_saved_twice_counted_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, api: str
) -> None:
    if api == "chat":
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        records = [
            chat_chunk("chatcmpl-1", "Hi"),
            chat_chunk("chatcmpl-1", None, usage),
        ]
    else:
        usage = responses_usage(12, 5)
        response = in_progress_response()
        done = {**response, "status": "completed", "usage": usage}
        records = [
            {"type": "response.created", "response": response},
            {"type": "response.completed", "response": done},
        ]
    path = tmp_path / "streams.jsonl"
    write_lines(path, records + records)

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 0
    assert totals["requests"] == 1
    assert totals["input_tokens"] == 12
    assert totals["output_tokens"] == 5


def test_report_cut_responses_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    response = in_progress_response()
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    write_lines(
        path,
        [
            {"type": "response.created", "response": response},
            {"type": "response.output_text.delta", **where, "delta": "Par"},
        ],
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 3
    assert data["errors"] == []
    assert totals["requests"] == 1
    assert totals["unknown_usage_requests"] == 1


def test_report_json_array_of_bodies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bodies.json"
    bodies = [chat_body("gpt-4o-mini", 60, 3), chat_body("gpt-4o-mini", 107, 3)]
    path.write_text(json.dumps(bodies))

    code, data = run_json(capsys, "report", str(path))

    assert code == 0
    assert data["totals"]["requests"] == 2
    # The documented example: 10.8 + 17.85 = 28.65 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00002865")


def test_report_bedrock_bodies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "converse.jsonl"
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30},
        "metrics": {"latencyMs": 300},
    }
    path.write_text(json.dumps(body) + "\n" + json.dumps(body) + "\n")

    code, data = run_json(
        capsys, "report", str(path), "--model", "amazon.nova-lite-v1:0",
        "--region", "us-east-1",
    )  # fmt: skip

    group = data["by_model"][0]
    assert code == 0
    assert group["provider"] == "bedrock"
    assert group["region"] == "us-east-1"
    assert group["input_tokens"] == 20
    # Twice 10 * 0.06 + 20 * 0.24 = 5.4 millionths of a USD.
    assert Decimal(group["cost_usd"]) == Decimal("0.0000108")


def converse_body(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A Converse body with the shape of a real one; it names no model."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi."}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 300},
    }


def test_report_model_option_keeps_body_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    openai_path = tmp_path / "openai-body.json"
    openai_path.write_text(json.dumps(chat_body("gpt-4o-mini-2024-07-18", 60, 3)))
    converse_path = tmp_path / "converse.json"
    converse_path.write_text(json.dumps(converse_body(10, 20)))

    code, data = run_json(
        capsys, "report", str(openai_path), str(converse_path),
        "--model", "amazon.nova-lite-v1:0", "--region", "us-east-1",
    )  # fmt: skip

    groups = {(each["provider"], each["model"]): each for each in data["by_model"]}
    openai_group = groups[("openai", "gpt-4o-mini-2024-07-18")]
    bedrock_group = groups[("bedrock", "amazon.nova-lite-v1:0")]
    assert code == 0
    assert len(groups) == 2
    assert openai_group["region"] is None
    # 60 * 0.15 + 3 * 0.60 = 10.8 millionths of a USD.
    assert Decimal(openai_group["cost_usd"]) == Decimal("0.0000108")
    assert bedrock_group["region"] == "us-east-1"
    # 10 * 0.06 + 20 * 0.24 = 5.4 millionths of a USD.
    assert Decimal(bedrock_group["cost_usd"]) == Decimal("0.0000054")


def test_report_provider_option_keeps_body_provider(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "openai-body.json"
    path.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3)))

    code, data = run_json(
        capsys, "report", str(path), "--provider", "bedrock",
        "--model", "amazon.nova-lite-v1:0",
    )  # fmt: skip

    group = data["by_model"][0]
    assert code == 0
    assert group["provider"] == "openai"
    assert group["model"] == "gpt-4o-mini"


def test_report_bedrock_body_without_region_asks_region(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "converse.json"
    path.write_text(json.dumps(converse_body(10, 20)))

    code, out, err = run(
        capsys, "report", str(path), "--model", "amazon.nova-lite-v1:0"
    )

    assert code == 3
    assert "the price depends on the region" in out
    assert "--region us-east-1" in out
    assert "llmfy_usage_tracker" not in out + err


def test_report_counts_in_singular(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3)))

    code, out, _ = run(capsys, "report", str(path))

    assert code == 0
    assert "Read 1 file: 1 record, 1 request counted, 0 skipped" in out


def test_report_bedrock_body_needs_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "converse.json"
    path.write_text(json.dumps({"usage": {"inputTokens": 1, "outputTokens": 1}}))

    code, _, err = run(capsys, "report", str(path))

    assert code == 1
    assert f"{path}:1:" in err
    assert "--model" in err


def test_report_gzip_invocation_logs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "logs.json.gz"
    records = [
        invocation_log("amazon.nova-lite-v1:0", 4, 38),
        invocation_log("amazon.nova-lite-v1:0", 6, 2),
    ]
    path.write_bytes(gzip.compress("\n".join(map(json.dumps, records)).encode()))

    code, data = run_json(capsys, "report", str(path))

    assert code == 0
    assert data["totals"]["input_tokens"] == 10
    assert data["totals"]["output_tokens"] == 40
    # 10 * 0.06 + 40 * 0.24 = 0.6 + 9.6 = 10.2 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.0000102")


def test_report_unpriced_model_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(batch_line(0, chat_body("my-fine-model", 10, 1)) + "\n")

    code, out, _ = run(capsys, "report", str(path))

    assert code == 3
    assert "unknown" in out
    assert "No price for openai my-fine-model" in out


def test_report_missing_file_counts_the_rest(
    capsys: pytest.CaptureFixture[str], batch_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jsonl"

    code, out, err = run(capsys, "report", str(missing), str(batch_file))

    assert code == 1
    assert f"{missing}: file not found" in err
    assert "Read 2 files" in out


def test_report_unknown_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"hello": "world"}\n[1, 2]\n')

    code, data = run_json(capsys, "report", str(path))

    assert code == 1
    assert [error["line"] for error in data["errors"]] == [1, 2, 2]
    assert "--provider" in data["errors"][0]["message"]


def test_report_usage_report_named_as_such(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with llmfy_usage_tracker() as usage:
        usage.record("openai", "gpt-4o-mini", 60, 3)
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(usage.to_dict(), indent=1))

    code, data = run_json(capsys, "report", str(path))

    message = data["errors"][0]["message"]
    assert code == 1
    assert "'llmfy.usage/1'" in message
    assert "usage.to_dict()" in message
    assert "--provider" not in message


def test_report_bedrock_event_stream_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A ConverseStream response body as Bedrock sends it, saved unparsed.
    path = tmp_path / "converse-stream.bin"
    usage = {"inputTokens": 52, "outputTokens": 9, "totalTokens": 61}
    path.write_bytes(
        event_frame("messageStart", {"role": "assistant"})
        + event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 90}})
    )

    code, data = run_json(capsys, "report", str(path), "--region", "us-east-1")

    message = data["errors"][0]["message"]
    assert code == 1
    assert "AWS event stream" in message
    assert "not valid JSON" not in message
    assert "invocation logs" in message


def test_report_misspelt_model_suggests_close_ids(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text(json.dumps(invocation_log("amazon.nova-lte-v1:0", 4, 38)) + "\n")

    code, out, _ = run(capsys, "report", str(path))

    assert code == 3
    assert "No price for bedrock amazon.nova-lte-v1:0 in us-east-1" in out
    assert "lists this model. Listed model ids close to it: " in out
    assert "close to it: amazon.nova-lite-v1:0 (bedrock)" in out


def test_report_misspelt_model_option_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "converse.json"
    path.write_text(json.dumps(converse_body(10, 20)))

    code, out, err = run(
        capsys, "report", str(path), "--model", "amazon.nova-lit-v1:0",
        "--region", "us-east-1",
    )  # fmt: skip

    assert code == 2
    assert out == ""
    assert "model 'amazon.nova-lit-v1:0'" in err
    assert "Did you mean amazon.nova-lite-v1:0 (bedrock)? Check --model" in err


def test_report_model_option_named_by_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # One log names the model and one does not, so --model fills in the same id.
    named = invocation_log("amazon.nova-lit-v1:0", 10, 20)
    unnamed = invocation_log("", 5, 6)
    path = tmp_path / "logs.jsonl"
    write_lines(path, [named, unnamed])

    code, data = run_json(
        capsys, "report", str(path), "--model", "amazon.nova-lit-v1:0"
    )

    group = data["by_model"][0]
    assert code == 3
    assert len(data["by_model"]) == 1
    assert group["model"] == "amazon.nova-lit-v1:0"
    assert group["requests"] == 2
    assert group["cost_usd"] is None


def test_report_own_model_option_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "converse.json"
    path.write_text(json.dumps(converse_body(10, 20)))

    code, out, _ = run(
        capsys, "report", str(path), "--model", "my-imported-model",
        "--region", "us-east-1",
    )  # fmt: skip

    assert code == 3
    assert "No price for bedrock my-imported-model in us-east-1" in out


@pytest.mark.parametrize("command", ["cost", "prices"])
def test_misspelt_model_with_provider_exits_2(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if command == "cost":
        args = ("cost", "gpt-4o-minii", "--input", "1", "--output", "1")
    else:
        args = ("prices", "--model", "gpt-4o-minii")

    code, out, err = run(capsys, *args, "--provider", "openai")

    assert code == 2
    assert out == ""
    assert "'gpt-4o-minii'" in err
    assert "Did you mean gpt-4o-mini (openai)?" in err


def test_report_misspelt_provider_suggests_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"id": "r-1", "usage": {"prompt": 3, "completion": 1}}\n')

    code, out, err = run(capsys, "report", str(path), "--provider", "opnai")

    # A misspelt provider is a usage error, like a misspelt --region, so nothing
    # is read or printed.
    assert code == 2
    assert out == ""
    assert "response bodies of provider 'opnai'." in err
    assert "(did you mean openai?)" in err


class AcmeReader:
    """A plugin that reads Acme bodies, with or without declaring the provider."""

    def __init__(self, declared: tuple[str, ...] | None) -> None:
        if declared is not None:
            self.llmfy_providers = declared

    @hookimpl
    def usage_extract(self, response: Any, context: CallContext) -> Usage | None:
        if context.provider != "acme" or not isinstance(response, dict):
            return None
        usage = response["usage"]
        return Usage("acme", "acme-large", usage["prompt"], usage["completion"])


@pytest.mark.parametrize("declared", [("acme",), None], ids=["declared", "undeclared"])
def test_report_provider_read_by_plugin(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    declared: tuple[str, ...] | None,
) -> None:
    # A plugin that declares no providers may read any, so --provider passes.
    llmfy_core.register_plugin(AcmeReader(declared), "acme-reader")
    path = tmp_path / "acme.jsonl"
    path.write_text('{"id": "r-1", "usage": {"prompt": 3, "completion": 1}}\n')

    code, data = run_json(capsys, "report", str(path), "--provider", "acme")

    assert data["errors"] == []
    assert code == 3
    assert data["totals"]["requests"] == 1
    assert data["totals"]["input_tokens"] == 3
    assert data["totals"]["output_tokens"] == 1


def test_report_price_file(
    capsys: pytest.CaptureFixture[str], batch_file: Path, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICE_FILE)

    code, data = run_json(capsys, "report", str(batch_file), "--prices", str(prices))

    assert code == 1
    # The file's batch price, 0.5 and 1.0 USD per million tokens:
    # 300 * 0.5 + 50 * 1.0 = 200 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.0002")


def test_report_price_file_misspelt_provider(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Prices under providers.opnai price no request, so the report would
    # show the bundled price with no sign that the file was not used.
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICE_FILE.replace("providers.openai", "providers.opnai"))
    body = tmp_path / "body.json"
    body.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3)))

    code, _, err = run(capsys, "report", str(body), "--prices", str(prices))

    assert code == 0
    assert "provider 'opnai'" in err
    assert "Did you mean 'openai'?" in err


def test_report_progress_bar(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bodies.jsonl"
    path.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3)) + "\n")

    code, _, err = run(capsys, "report", str(path), "--progress")

    assert code == 0
    assert "1 record" in err
    assert "1 records" not in err
    assert "[" in err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shown_for_large_input_on_terminal() -> None:
    stream = FakeTerminal()
    progress = Progress.for_input(stream, 10 * 1024 * 1024, None)

    progress.update(5 * 1024 * 1024, 1234)
    drawn = stream.getvalue()
    progress.done()

    assert progress.enabled
    assert "50%" in drawn
    assert "1,234 records" in drawn
    assert stream.getvalue().endswith("\r")


def test_progress_hidden_for_small_input() -> None:
    stream = FakeTerminal()
    progress = Progress.for_input(stream, 1000, None)

    progress.update(500, 1)

    assert not progress.enabled
    assert stream.getvalue() == ""


def test_progress_hidden_off_terminal() -> None:
    stream = io.StringIO()
    progress = Progress.for_input(stream, 10 * 1024 * 1024, None)

    assert not progress.enabled


# Real recorded files


@NEEDS_REAL_DATA
def test_report_real_batch_output(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(str(REAL_DATA)) / "openai" / "batch-output-gpt-4o-2024-08-06.jsonl"

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == 0
    assert totals["requests"] == 65
    assert totals["input_tokens"] == 36501
    assert totals["output_tokens"] == 11980
    # gpt-4o at the Batch API rate, 1.25 and 5.00 USD per million tokens:
    # 36501 * 1.25 + 11980 * 5.00 = 45626.25 + 59900 = 105526.25.
    assert Decimal(totals["cost_usd"]) == Decimal("0.10552625")


@NEEDS_REAL_DATA
def test_report_real_invocation_log(capsys: pytest.CaptureFixture[str]) -> None:
    path = (
        Path(str(REAL_DATA))
        / "bedrock"
        / "invocation-log-conversestream-nova-lite.json"
    )

    code, data = run_json(capsys, "report", str(path))

    group = data["by_model"][0]
    assert code == 0
    assert group["model"] == "amazon.nova-lite-v1:0"
    assert group["region"] == "us-east-1"
    assert group["input_tokens"] == 4
    assert group["output_tokens"] == 38
    # 4 * 0.06 + 38 * 0.24 = 0.24 + 9.12 = 9.36 millionths of a USD.
    assert Decimal(group["cost_usd"]) == Decimal("0.00000936")


@NEEDS_REAL_DATA
@pytest.mark.parametrize(
    ("cassette", "input_tokens", "output_tokens", "cost"),
    [
        # gpt-4-0613 at the gpt-4 price: 12 * 30 + 5 * 60 = 660 millionths.
        ("chat-stream-include-usage-gpt-4.yaml", 12, 5, "0.00066"),
        # The usage chunk is second to last: 13 * 1.25 + 11 * 10 = 126.25.
        ("chat-stream-include-usage-gpt-5.yaml", 13, 11, "0.00012625"),
        # 22 * 0.15 + 6 * 0.60 = 3.3 + 3.6 = 6.9 millionths.
        ("responses-stream-gpt-4o-mini.yaml", 22, 6, "0.0000069"),
        # No chunk carries usage.
        ("chat-stream-no-usage-gpt-4.1.yaml", 0, 0, None),
    ],
)
def test_report_real_saved_stream(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    cassette: str,
    input_tokens: int,
    output_tokens: int,
    cost: str | None,
) -> None:
    yaml = pytest.importorskip("yaml")
    recording = Path(str(REAL_DATA)) / "openai" / cassette
    interaction = yaml.safe_load(recording.read_text("utf-8"))["interactions"][0]
    events = interaction["response"]["body"]["string"]
    path = tmp_path / "stream.jsonl"
    path.write_text(
        "".join(
            line.removeprefix("data: ") + "\n"
            for line in events.splitlines()
            if line.startswith("data: {")
        )
    )

    code, data = run_json(capsys, "report", str(path))

    totals = data["totals"]
    assert code == (0 if cost else 3)
    assert totals["requests"] == 1
    assert totals["input_tokens"] == input_tokens
    assert totals["output_tokens"] == output_tokens
    assert totals["cost_usd"] == cost


# The console script


def test_console_script_imports_no_sdk(tmp_path: Path) -> None:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(chat_body("gpt-4o-mini", 60, 3)))
    nova = '"amazon.nova-lite-v1:0"'
    script = textwrap.dedent(
        f"""
        import sys
        from llmfy_core.cli import main
        codes = [
            main(["cost", "gpt-4o-mini", "--input", "1", "--output", "1"]),
            main(["report", {str(path)!r}]),
            main(["prices", "--model", {nova}, "--region", "us-east-1"]),
        ]
        print(codes, "openai" in sys.modules, "boto3" in sys.modules)
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert result.stdout.splitlines()[-1] == "[0, 0, 0] False False"


def test_module_entry_point_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmfy_core.cli", "--version"],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0
    assert result.stdout.strip() == f"llmfy {llmfy_core.__version__}"


def test_report_bom_before_pretty_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Editors on Windows save UTF-8 with a byte order mark in front.
    path = tmp_path / "log.json"
    record = json.dumps(invocation_log("amazon.nova-lite-v1:0", 4, 38), indent=4)
    path.write_bytes(b"\xef\xbb\xbf" + record.encode())

    code, data = run_json(capsys, "report", str(path))

    assert data["errors"] == []
    assert code == 0
    assert data["totals"]["requests"] == 1
    # 4 * 0.06 + 38 * 0.24 = 0.24 + 9.12 = 9.36 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00000936")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_report_reads_utf16_and_utf32_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, encoding: str
) -> None:
    # Windows PowerShell 5.1 writes UTF-16 LE with a byte order mark, and
    # CRLF line ends, when `>` redirects the output of a command to a file.
    path = tmp_path / "logs.jsonl"
    records = [
        json.dumps(invocation_log("amazon.nova-lite-v1:0", 4, 38)),
        json.dumps(invocation_log("amazon.nova-lite-v1:0", 1000, 100)),
    ]
    text = "\ufeff" + "".join(record + "\r\n" for record in records)
    path.write_bytes(text.encode(encoding))

    code, data = run_json(capsys, "report", str(path))

    assert data["errors"] == []
    assert code == 0
    assert data["totals"]["requests"] == 2
    assert data["totals"]["input_tokens"] == 1004
    assert data["totals"]["output_tokens"] == 138
    # (4 + 1000) * 0.06 + (38 + 100) * 0.24 = 60.24 + 33.12 = 93.36 millionths.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00009336")


def test_report_invalid_utf16_file_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "logs.jsonl"
    record = json.dumps(invocation_log("amazon.nova-lite-v1:0", 4, 38))
    # U+D800 is a high surrogate that no low surrogate follows.
    path.write_bytes(
        ("\ufeff" + record + "\n").encode("utf-16-le") + b"\x00\xd8{\x00\n\x00"
    )

    code, data = run_json(capsys, "report", str(path))

    assert code == 1
    assert len(data["errors"]) == 1
    assert data["errors"][0]["message"].startswith(
        "not valid UTF-16 text after its byte order mark"
    )
    assert data["errors"][0]["message"].endswith("save the file as UTF-8")


def report_from_stdin(
    file_argument: str, data: bytes
) -> subprocess.CompletedProcess[bytes]:
    """Run `llmfy report FILE --json` in a new process with `data` on its stdin."""
    return subprocess.run(
        [sys.executable, "-m", "llmfy_core.cli", "report", file_argument, "--json"],
        input=data,
        capture_output=True,
    )


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_report_reads_pipe(compress: bool) -> None:
    # A pipe, such as `zcat logs.gz | llmfy report /dev/stdin`, cannot seek.
    records = [
        invocation_log("amazon.nova-lite-v1:0", 4, 38),
        invocation_log("amazon.nova-lite-v1:0", 6, 2),
    ]
    data = "\n".join(map(json.dumps, records)).encode()
    if compress:
        data = gzip.compress(data)

    result = report_from_stdin("/dev/stdin", data)

    assert result.stderr == b""
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["totals"]["requests"] == 2
    # 10 * 0.06 + 40 * 0.24 = 0.6 + 9.6 = 10.2 millionths of a USD.
    assert Decimal(report["totals"]["cost_usd"]) == Decimal("0.0000102")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_report_pipe_with_split_utf32_bom(compress: bool) -> None:
    # The UTF-32 LE byte order mark starts with the UTF-16 LE one, so a pipe
    # that delivers its first two bytes alone must not be read as UTF-16.
    text = "\ufeff" + json.dumps(invocation_log("amazon.nova-lite-v1:0", 4, 38))
    data = text.encode("utf-32-le")
    if compress:
        data = gzip.compress(data)
    # The first write ends within the mark, or within the gzip magic number.
    split = 1 if compress else 2
    first, rest = data[:split], data[split:]
    command = [sys.executable, "-m", "llmfy_core.cli", "report", "-", "--json"]

    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as process:
        assert process.stdin is not None
        process.stdin.write(first)
        process.stdin.flush()
        time.sleep(0.5)
        stdout, _ = process.communicate(rest)

    assert process.returncode == 0
    report = json.loads(stdout)
    assert report["errors"] == []
    assert report["totals"]["requests"] == 1
    # 4 * 0.06 + 38 * 0.24 = 0.24 + 9.12 = 9.36 millionths of a USD.
    assert Decimal(report["totals"]["cost_usd"]) == Decimal("0.00000936")


def test_report_reads_stdin_as_dash() -> None:
    lines = [
        invocation_log("amazon.nova-lite-v1:0", 1000, 200),
        chat_body("gpt-4o-mini", 2000, 100),
    ]
    data = "\n".join(map(json.dumps, lines)).encode()

    result = report_from_stdin("-", data)

    assert result.stderr == b""
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["files"][0]["path"] == "<stdin>"
    assert report["totals"]["requests"] == 2
    assert report["totals"]["input_tokens"] == 1000 + 2000
    assert report["totals"]["output_tokens"] == 200 + 100
    # Nova Lite: 1000 * 0.06 + 200 * 0.24 = 60 + 48 = 108 millionths of a USD.
    # gpt-4o-mini: 2000 * 0.15 + 100 * 0.60 = 300 + 60 = 360 millionths.
    assert Decimal(report["totals"]["cost_usd"]) == Decimal("0.000468")


def test_report_stdin_twice_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "report", "-", "-")

    assert code == 2
    assert out == ""
    assert "Standard input is given 2 times" in err


@pytest.mark.parametrize("second", ["same path", "symlink", "other spelling"])
def test_report_file_twice_exits_2(
    capsys: pytest.CaptureFixture[str], batch_file: Path, second: str
) -> None:
    if second == "symlink":
        other = batch_file.parent / "link.jsonl"
        other.symlink_to(batch_file)
    elif second == "other spelling":
        other = batch_file.parent / "." / batch_file.name
    else:
        other = batch_file

    code, out, err = run(capsys, "report", str(batch_file), str(other))

    assert code == 2
    assert out == ""
    assert "name the same file" in err
    assert str(other) in err


def test_report_stdin_redirected_from_file_given_exits_2(batch_file: Path) -> None:
    # `llmfy report - out.jsonl < out.jsonl` reads the file once as standard
    # input and once by name.
    with batch_file.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "llmfy_core.cli", "report", "-", str(batch_file)],
            stdin=stdin,
            capture_output=True,
        )

    assert result.returncode == 2
    assert result.stdout == b""
    assert b"name the same file" in result.stderr
    assert b"standard input (-)" in result.stderr


def test_report_stdin_closed_is_unreadable() -> None:
    # Python sets sys.stdin to None when it starts with descriptor 0 closed,
    # which the shell's `<&-` does.
    command = 'exec "$0" -m llmfy_core.cli report - --json <&-'
    result = subprocess.run(["sh", "-c", command, sys.executable], capture_output=True)

    assert result.stderr == b""
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["totals"]["requests"] == 0
    error = report["errors"][0]
    assert error["path"] == "<stdin>"
    assert error["message"] == "cannot open: standard input is closed"


def test_report_log_without_region_takes_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = invocation_log("amazon.nova-lite-v1:0", 4, 38)
    del record["region"]
    path = tmp_path / "log.jsonl"
    write_lines(path, [record])

    code, _, _ = run(capsys, "report", str(path))
    option_code, data = run_json(capsys, "report", str(path), "--region", "us-east-1")

    # The summary of the first run suggests --region, so --region must work.
    assert code == 3
    assert option_code == 0
    assert data["by_model"][0]["region"] == "us-east-1"
    # 4 * 0.06 + 38 * 0.24 = 0.24 + 9.12 = 9.36 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00000936")


def test_report_log_without_output_count(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    unknown = invocation_log("amazon.nova-lite-v1:0", 500, 0)
    del unknown["output"]["outputTokenCount"]
    path = tmp_path / "logs.jsonl"
    write_lines(path, [unknown, invocation_log("amazon.nova-lite-v1:0", 4, 38)])

    code, out, err = run(capsys, "report", str(path), "--json")

    data = json.loads(out)
    assert code == 3
    assert "field output.outputTokenCount is missing" in err
    assert f"(at {path}:1)" in err
    assert data["totals"]["requests"] == 2
    assert data["totals"]["unknown_usage_requests"] == 1
    assert data["totals"]["cost_complete"] is False
    # Only the second record is priced: 4 * 0.06 + 38 * 0.24 = 9.36 millionths.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00000936")


def test_report_skips_failed_invocation_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A throttled invocation is logged with its error and no token counts.
    failed = invocation_log("amazon.nova-lite-v1:0", 0, 0)
    failed["errorCode"] = "ThrottlingException"
    del failed["input"]["inputTokenCount"]
    del failed["output"]
    # A stream that broke after it started still counts its input tokens.
    broken = invocation_log("amazon.nova-lite-v1:0", 10, 20)
    broken["errorCode"] = "ModelStreamErrorException"
    path = tmp_path / "logs.jsonl"
    write_lines(path, [failed, broken, invocation_log("amazon.nova-lite-v1:0", 4, 38)])

    code, data = run_json(capsys, "report", str(path))

    assert code == 0
    assert data["files"][0]["skipped"] == 1
    assert data["totals"]["requests"] == 2
    assert data["totals"]["cost_complete"] is True
    # (10 + 4) * 0.06 + (20 + 38) * 0.24 = 0.84 + 13.92 = 14.76 millionths.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00001476")


def test_report_log_without_model_takes_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = invocation_log("amazon.nova-lite-v1:0", 4, 38)
    del record["modelId"]
    path = tmp_path / "log.jsonl"
    write_lines(path, [record])

    code, data = run_json(
        capsys, "report", str(path), "--model", "amazon.nova-lite-v1:0"
    )

    assert code == 0
    assert data["by_model"][0]["model"] == "amazon.nova-lite-v1:0"
    # 4 * 0.06 + 38 * 0.24 = 0.24 + 9.12 = 9.36 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00000936")


def test_report_body_without_model_asks_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = chat_body("gpt-4o-mini", 100, 10)
    del body["model"]
    path = tmp_path / "bodies.jsonl"
    write_lines(path, [body])

    code, out, _ = run(capsys, "report", str(path))
    option_code, data = run_json(capsys, "report", str(path), "--model", "gpt-4o-mini")

    assert code == 3
    assert "No price for openai unknown: the records do not name their model" in out
    assert "--model" in out
    assert option_code == 0
    # 100 * 0.15 + 10 * 0.6 = 15 + 6 = 21 millionths of a USD.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.000021")


def test_report_unknown_usage_advice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A stream sent without stream_options={"include_usage": True}.
    path = tmp_path / "stream.jsonl"
    write_lines(path, [chat_chunk("chatcmpl-1", "Hi"), chat_chunk("chatcmpl-1", "!")])

    code, out, _ = run(capsys, "report", str(path))

    assert code == 3
    assert "1 request of openai gpt-4-0613 had no complete usage in its record" in out
    # gpt-4-0613 has a price, so a price file would not help.
    assert "--prices" not in out


def test_report_unpriced_tool_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1780000000,
        "status": "completed",
        "model": "gpt-5-2025-08-07",
        "output": [
            {"id": "ci_1", "type": "code_interpreter_call", "status": "completed"}
        ],
        "usage": responses_usage(1000, 100),
    }
    path = tmp_path / "bodies.jsonl"
    write_lines(path, [body])

    code, out, _ = run(capsys, "report", str(path))
    _, data = run_json(capsys, "report", str(path))

    assert code == 3
    assert "No price for code_interpreter calls of openai gpt-5-2025-08-07" in out
    assert "--prices" not in out
    # 1000 * 1.25 + 100 * 10 = 1250 + 1000 = 2250 millionths of a USD, without
    # the code_interpreter call.
    assert Decimal(data["totals"]["cost_usd"]) == Decimal("0.00225")


def test_report_array_item_failure_located(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bodies.json"
    path.write_text(json.dumps([chat_body("gpt-4o-mini", 100, 10), 7], indent=2))

    code, _, err = run(capsys, "report", str(path))
    _, data = run_json(capsys, "report", str(path))

    assert code == 1
    assert f"{path}:1 item 2: expected a JSON object, got int" in err
    assert data["errors"][0]["line"] == 1
    assert data["errors"][0]["item"] == 2


def test_report_unlisted_region_names_regions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = invocation_log("amazon.nova-lite-v1:0", 4, 38)
    record["region"] = "eu-west-1"
    path = tmp_path / "log.jsonl"
    write_lines(path, [record])

    code, out, _ = run(capsys, "report", str(path))

    assert code == 3
    assert "No price for bedrock amazon.nova-lite-v1:0 in eu-west-1: " in out
    assert "us-east-1, us-east-2, us-west-2, but not in eu-west-1" in out
    assert "--prices FILE" in out
    # The tracker's arguments are no advice for a command-line user.
    assert "llmfy_usage_tracker" not in out


@pytest.mark.parametrize("region", ["us-est-1", "us_east_1"])
def test_report_misspelt_region_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, region: str
) -> None:
    path = tmp_path / "bodies.jsonl"
    body = {"usage": {"inputTokens": 4, "outputTokens": 38, "totalTokens": 42}}
    write_lines(path, [body])

    code, out, err = run(
        capsys,
        "report",
        str(path),
        "--model",
        "amazon.nova-lite-v1:0",
        "--region",
        region,
    )

    # The same mistake ends `llmfy cost` and `llmfy prices` with exit code 2.
    assert code == 2
    assert out == ""
    assert "Did you mean us-east-1?" in err


def test_prices_file_misspelt_region_warns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(REGION_PAIR_PRICES.replace("ap-south-1", "ap-suoth-1"))

    code, _, err = run(capsys, "prices", "bedrock", "--prices", str(prices))

    assert code == 0
    assert "llmfy: WARNING: The price file" in err
    assert "key providers.bedrock.prices[1].region" in err
    assert "region 'ap-suoth-1'" in err
    assert "Did you mean 'ap-south-1'?" in err
