"""Usage normalization of Bedrock bodies, and the offline readers."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import logging
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llmfy_bedrock import (
    checks,
    failed_invocation,
    read_invocation_logs,
    record_invocation_logs,
    usage_from_invocation_log,
    usage_from_saved_response,
)
from llmfy_bedrock.extract import (
    counts_from_body,
    counts_from_stream_chunks,
    counts_from_token_usage,
    read_response,
    usage_from_converse,
    usage_from_invoke,
)
from llmfy_bedrock.offline import invocation_log_sent_at

from llmfy_core import CallContext, llmfy_usage_tracker
from llmfy_core.model import usage_from_counts

LOG_RECORD: dict[str, Any] = {
    "schemaType": "ModelInvocationLog",
    "schemaVersion": "1.0",
    "timestamp": "2026-11-02T10:15:00Z",
    "accountId": "123456789012",
    "region": "us-east-1",
    "requestId": "6f1c0d9e-0000-4000-8000-000000000001",
    "operation": "Converse",
    "modelId": "us.amazon.nova-pro-v1:0",
    "input": {
        "inputContentType": "application/json",
        "inputTokenCount": 120,
        "cacheReadInputTokenCount": 2000,
        "cacheWriteInputTokenCount": 0,
    },
    "output": {"outputContentType": "application/json", "outputTokenCount": 40},
}


def test_converse_usage_aliases() -> None:
    counts = counts_from_token_usage(
        {
            "inputTokens": 2,
            "outputTokens": 5,
            "cacheReadInputTokenCount": 1322,
            "cacheWriteInputTokenCount": 0,
        }
    )

    assert counts is not None
    assert counts.cache_read == 1322
    assert counts.input == 2


def test_converse_usage_missing_counts() -> None:
    assert counts_from_token_usage({"outputTokens": 5}) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "usage": {
                    "inputTokens": 5,
                    "outputTokens": 10,
                    "cacheReadInputTokenCount": 3,
                }
            },
            (5, 10, 3, 0, 0),
        ),
        (
            {
                "type": "message",
                "usage": {
                    "input_tokens": 3,
                    "cache_read_input_tokens": 9511,
                    "cache_creation_input_tokens": 1956,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 1956,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "output_tokens": 44,
                },
            },
            (3, 44, 9511, 1956, 0),
        ),
        ({"inputTextTokenCount": 5, "embedding": [0.1, 0.2]}, (5, 0, 0, 0, 0)),
        (
            {
                "inputTextTokenCount": 5,
                "results": [{"tokenCount": 4}, {"tokenCount": 6}],
            },
            (5, 10, 0, 0, 0),
        ),
        ({"prompt_token_count": 52, "generation_token_count": 30}, (52, 30, 0, 0, 0)),
        (
            {"meta": {"billed_units": {"input_tokens": 7, "output_tokens": 9}}},
            (7, 9, 0, 0, 0),
        ),
        (
            {
                "usage": {
                    "prompt_tokens": 100,
                    "completion_tokens": 8,
                    "prompt_tokens_details": {"cached_tokens": 64},
                }
            },
            (36, 8, 64, 0, 0),
        ),
    ],
    ids=[
        "nova",
        "anthropic",
        "titan-embed",
        "titan-text",
        "llama",
        "cohere",
        "openai-style",
    ],
)
def test_invoke_body_families(body: dict[str, Any], expected: tuple[int, ...]) -> None:
    counts = counts_from_body(body)

    assert counts is not None
    assert tuple(counts) == expected


def test_saved_final_chunk_uses_metrics() -> None:
    chunk = {
        "type": "message_stop",
        "usage": {"input_tokens": 392, "output_tokens": 134},
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 392,
            "outputTokenCount": 90,
        },
    }

    counts = counts_from_body(chunk)

    assert counts is not None
    assert (counts.input, counts.output) == (392, 90)


def test_invoke_body_without_usage() -> None:
    assert counts_from_body({"outputs": [{"text": "Hi"}]}) is None
    assert counts_from_body({"generations": [{"text": "Hi"}]}) is None


def test_stream_chunks_titan_without_metrics() -> None:
    chunks = [
        {
            "outputText": "Hi",
            "inputTextTokenCount": 5,
            "totalOutputTextTokenCount": 4,
            "completionReason": None,
        },
        {
            "outputText": " there",
            "inputTextTokenCount": 5,
            "totalOutputTextTokenCount": 10,
            "completionReason": "FINISH",
        },
    ]

    counts = counts_from_stream_chunks(chunks)

    assert counts is not None
    assert (counts.input, counts.output) == (5, 10)


def test_stream_chunks_titan_stopped_early() -> None:
    # Without its last chunk, a Titan stream gives only the output so far.
    chunk = {
        "outputText": "Hi",
        "inputTextTokenCount": 5,
        "totalOutputTextTokenCount": 4,
        "completionReason": None,
    }

    assert counts_from_stream_chunks([chunk]) is None


def test_stream_chunks_llama_without_metrics(llama_chunks: list[Any]) -> None:
    # Later chunks carry a null prompt count, and every chunk the output so far.
    counts = counts_from_stream_chunks(llama_chunks)

    assert counts is not None
    assert (counts.input, counts.output) == (20, 9)


def test_stream_chunks_llama_stopped_early(llama_chunks: list[Any]) -> None:
    assert counts_from_stream_chunks(llama_chunks[:2]) is None


def test_stream_chunks_nova_metadata() -> None:
    chunk = {"metadata": {"usage": {"inputTokens": 5, "outputTokens": 10}}}

    counts = counts_from_stream_chunks([chunk])

    assert counts is not None
    assert (counts.input, counts.output) == (5, 10)


def test_stream_metrics_with_cache() -> None:
    chunks = [
        {
            "type": "message_start",
            "message": {
                "usage": {
                    "input_tokens": 2,
                    "cache_creation_input_tokens": 500,
                    "cache_creation": {"ephemeral_1h_input_tokens": 500},
                    "output_tokens": 1,
                }
            },
        },
        {
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 2,
                "outputTokenCount": 9,
                "cacheWriteInputTokenCount": 500,
                "cacheReadInputTokenCount": 0,
            }
        },
    ]

    counts = counts_from_stream_chunks(chunks)

    assert counts is not None
    assert tuple(counts) == (2, 9, 0, 500, 500)


def test_stream_stopped_after_message_start() -> None:
    # message_start carries a placeholder output count, so a stream stopped
    # before its message_delta and its metrics has unknown usage.
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 392, "output_tokens": 4}},
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 87}}

    assert counts_from_stream_chunks([start]) is None
    counts = counts_from_stream_chunks([start, delta])
    assert counts is not None
    assert tuple(counts) == (392, 87, 0, 0, 0)


def test_stream_without_usage() -> None:
    assert counts_from_stream_chunks([{"type": "message_stop"}]) is None


# Invocation logs


def test_invocation_log_usage() -> None:
    usage = usage_from_invocation_log(LOG_RECORD)

    assert usage.model == "us.amazon.nova-pro-v1:0"
    assert usage.input_tokens == 120 + 2000
    assert usage.cache_read_tokens == 2000
    assert usage.output_tokens == 40
    assert usage.region == "us-east-1"
    assert usage.operation == "Converse"
    assert usage.request_id == LOG_RECORD["requestId"]


@pytest.mark.parametrize(
    ("part", "field", "value"),
    [
        ("input", "inputTokenCount", -4),
        ("input", "cacheReadInputTokenCount", "x"),
        ("input", "cacheWriteInputTokenCount", 1.5),
        ("output", "outputTokenCount", "many"),
    ],
)
def test_invocation_log_invalid_count_warns(
    caplog: pytest.LogCaptureFixture, part: str, field: str, value: object
) -> None:
    record = {**LOG_RECORD, part: {**LOG_RECORD[part], field: value}}

    with caplog.at_level(logging.WARNING, logger="llmfy.bedrock"):
        usage_from_invocation_log({**record, "requestId": f"{field}-{value}"})

    assert f"field {part}.{field} is invalid" in caplog.text
    assert "us.amazon.nova-pro-v1:0" in caplog.text


def test_invocation_log_time() -> None:
    assert invocation_log_sent_at(LOG_RECORD) == dt.datetime(
        2026, 11, 2, 10, 15, tzinfo=dt.UTC
    )
    assert invocation_log_sent_at({}) is None


def test_invocation_log_rejects_other_records() -> None:
    with pytest.raises(ValueError, match="ModelInvocationLog"):
        usage_from_invocation_log({"schemaType": "Something", "requestId": "x"})


def test_invocation_log_without_counts() -> None:
    usage = usage_from_invocation_log({**LOG_RECORD, "input": {}})

    assert usage.input_tokens is None
    assert usage.output_tokens is None


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ({"outputContentType": "application/json"}, "is missing"),
        (None, "is missing"),
        ({"outputTokenCount": "many"}, "is invalid"),
    ],
    ids=["no-count", "no-output", "invalid-count"],
)
def test_invocation_log_unknown_output(
    caplog: pytest.LogCaptureFixture, output: dict[str, Any] | None, problem: str
) -> None:
    record = {**LOG_RECORD, "output": output}
    if output is None:
        del record["output"]

    # Repeats of a logged problem go to DEBUG, so DEBUG is captured too.
    with caplog.at_level(logging.DEBUG, logger="llmfy.bedrock"):
        usage = usage_from_invocation_log(record)
    with llmfy_usage_tracker() as tracker:
        count = record_invocation_logs([record], tracker)

    assert usage.input_tokens == 120 + 2000
    assert usage.output_tokens is None
    assert f"field output.outputTokenCount {problem}" in caplog.text
    assert "Converse invocation log record for model us.amazon.nova-pro" in caplog.text
    assert count == 1
    assert tracker.totals.requests == 1
    assert tracker.totals.unknown_usage == 1
    assert not tracker.cost_complete


def test_embeddings_log_without_output_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An embeddings model generates no tokens, and its log has no output count.
    record = {
        **LOG_RECORD,
        "operation": "InvokeModel",
        "modelId": "amazon.titan-embed-text-v2:0",
        "input": {"inputContentType": "application/json", "inputTokenCount": 5},
        "output": {"outputContentType": "application/json"},
    }

    with caplog.at_level(logging.DEBUG, logger="llmfy.bedrock"):
        usage = usage_from_invocation_log(record)
    with llmfy_usage_tracker() as tracker:
        record_invocation_logs([record], tracker)

    assert usage.input_tokens == 5
    assert usage.output_tokens == 0
    assert "outputTokenCount" not in caplog.text
    assert tracker.cost_complete
    # Titan Text Embeddings V2 in us-east-1: 0.02 USD per million input tokens.
    assert tracker.total_cost == Decimal("5") * Decimal("0.02") / 1_000_000


def test_record_logs_skips_failed_invocation() -> None:
    failed = {
        **LOG_RECORD,
        "errorCode": "ThrottlingException",
        "input": {"inputContentType": "application/json"},
    }
    del failed["output"]

    with llmfy_usage_tracker() as tracker:
        count = record_invocation_logs([failed, LOG_RECORD], tracker)

    assert failed_invocation(failed) == "ThrottlingException"
    assert failed_invocation(LOG_RECORD) is None
    assert count == 1
    assert tracker.totals.requests == 1
    assert tracker.cost_complete


def test_failed_invocation_with_zero_counts_skipped() -> None:
    failed = {
        **LOG_RECORD,
        "errorCode": "ValidationException",
        "input": {"inputTokenCount": 0},
        "output": {"outputTokenCount": 0},
    }
    broken = {**failed, "input": {"inputTokenCount": 12}}

    assert failed_invocation(failed) == "ValidationException"
    assert failed_invocation(broken) is None
    assert failed_invocation({**failed, "input": {"inputTokenCount": "0"}}) is None


def test_invocation_log_converse_one_hour_writes() -> None:
    # The log's own counts do not split cache writes by TTL, but the logged
    # Converse response does.
    record = {
        **LOG_RECORD,
        "modelId": "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        "input": {"inputTokenCount": 10, "cacheWriteInputTokenCount": 1000},
        "output": {
            "outputTokenCount": 20,
            "outputBodyJson": {
                "usage": {
                    "inputTokens": 10,
                    "outputTokens": 20,
                    "cacheWriteInputTokens": 1000,
                    "cacheDetails": [
                        {"ttl": "1h", "inputTokens": 600},
                        {"ttl": "5m", "inputTokens": 400},
                    ],
                }
            },
        },
    }

    with llmfy_usage_tracker() as tracker:
        record_invocation_logs([record], tracker)

    logged = tracker.records[0]
    assert logged.usage.other_tokens == {"cache_write_1h": 600}
    # global. rate of Haiku 4.5: 1 in, 5 out, 1.25 cache write 5m, 2 cache write 1h.
    # 10*1 + 400*1.25 + 600*2 + 20*5 = 10 + 500 + 1200 + 100 = 1810 -> 0.00181
    assert logged.cost is not None
    assert logged.cost.total == Decimal("0.00181")


def test_invocation_log_invoke_one_hour_writes() -> None:
    record = {
        **LOG_RECORD,
        "operation": "InvokeModel",
        "modelId": "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        "region": "eu-central-1",
        "input": {"inputTokenCount": 3, "cacheWriteInputTokenCount": 1956},
        "output": {
            "outputTokenCount": 44,
            "outputBodyJson": {
                "type": "message",
                "usage": {
                    "input_tokens": 3,
                    "cache_creation_input_tokens": 1956,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 956,
                        "ephemeral_1h_input_tokens": 1000,
                    },
                    "output_tokens": 44,
                },
            },
        },
    }

    usage = usage_from_invocation_log(record)

    assert usage.cache_write_tokens == 1956
    assert usage.other_tokens == {"cache_write_1h": 1000}


def test_invocation_log_stream_one_hour_writes() -> None:
    # A logged InvokeModelWithResponseStream body is the list of its chunks,
    # and only the message_start chunk splits cache writes by TTL.
    record = {
        **LOG_RECORD,
        "operation": "InvokeModelWithResponseStream",
        "modelId": "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        "region": "eu-central-1",
        "input": {"inputTokenCount": 3, "cacheWriteInputTokenCount": 1956},
        "output": {
            "outputTokenCount": 44,
            "outputBodyJson": [
                {
                    "type": "message_start",
                    "message": {
                        "usage": {
                            "input_tokens": 3,
                            "cache_creation_input_tokens": 1956,
                            "cache_creation": {
                                "ephemeral_5m_input_tokens": 956,
                                "ephemeral_1h_input_tokens": 1000,
                            },
                            "output_tokens": 1,
                        }
                    },
                },
                {"type": "message_delta", "usage": {"output_tokens": 44}},
            ],
        },
    }

    with llmfy_usage_tracker() as tracker:
        record_invocation_logs([record], tracker)

    logged = tracker.records[0]
    assert logged.usage.cache_write_tokens == 1956
    assert logged.usage.other_tokens == {"cache_write_1h": 1000}
    # eu-central-1 rate of Haiku 4.5: 1.1 in, 1.375 cache write 5m, 2.2 cache
    # write 1h, 5.5 out. 3*1.1 + 956*1.375 + 1000*2.2 + 44*5.5
    # = 3.3 + 1314.5 + 2200 + 242 = 3759.8 -> 0.0037598
    assert logged.cost is not None
    assert logged.cost.total == Decimal("0.0037598")


@pytest.mark.parametrize(
    ("served", "tier"),
    [
        ({"serviceTier": {"type": "flex"}}, "flex"),
        (
            {
                "serviceTier": {"type": "default"},
                "performanceConfig": {"latency": "optimized"},
            },
            "latency-optimized",
        ),
    ],
)
def test_invocation_log_pricing_tier(served: dict[str, Any], tier: str) -> None:
    record = {
        **LOG_RECORD,
        "output": {
            "outputTokenCount": 40,
            "outputBodyJson": {
                "usage": {"inputTokens": 120, "outputTokens": 40},
                **served,
            },
        },
    }

    with llmfy_usage_tracker() as tracker:
        record_invocation_logs([record], tracker)

    logged = tracker.records[0]
    assert logged.usage.service_tier == tier
    # The bundled table has standard-tier prices only.
    assert logged.cost is None
    assert logged.unpriced_reason is not None
    assert f"{tier!r} service tier" in logged.unpriced_reason


def test_invocation_logs_recorded_and_priced() -> None:
    with llmfy_usage_tracker() as tracker:
        count = record_invocation_logs([LOG_RECORD], tracker)

    record = tracker.records[0]
    assert count == 1
    assert record.sent_at == dt.datetime(2026, 11, 2, 10, 15, tzinfo=dt.UTC)
    # Nova Pro in us-east-1: 0.8 in, 0.2 cache read, 3.2 out.
    # 120*0.8 + 2000*0.2 + 40*3.2 = 96 + 400 + 128 = 624 -> 0.000624 USD
    assert record.cost is not None
    assert record.cost.total == Decimal("0.000624")


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".jsonl.gz", "-array.json"])
def test_read_invocation_log_files(tmp_path: Path, suffix: str) -> None:
    second = {**LOG_RECORD, "requestId": "second"}
    if suffix == ".json":
        text = json.dumps(LOG_RECORD, indent=2)
        expected = [LOG_RECORD["requestId"]]
    elif suffix == "-array.json":
        text = json.dumps([LOG_RECORD, second])
        expected = [LOG_RECORD["requestId"], "second"]
    else:
        text = json.dumps(LOG_RECORD) + "\n" + json.dumps(second) + "\n"
        expected = [LOG_RECORD["requestId"], "second"]
    path = tmp_path / f"log{suffix}"
    data = text.encode()
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)

    records = list(read_invocation_logs(path))

    assert [record["requestId"] for record in records] == expected


# Saved responses


def test_saved_converse_body() -> None:
    body = json.dumps(
        {"usage": {"inputTokens": 3, "outputTokens": 5, "cacheWriteInputTokens": 1322}}
    )

    usage = usage_from_saved_response(
        body, operation="Converse", model="us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    )

    assert usage.input_tokens == 1325
    assert usage.cache_write_tokens == 1322


def test_saved_invoke_headers_win() -> None:
    usage = usage_from_saved_response(
        b'{"outputs": []}',
        operation="InvokeModel",
        model="mistral.mistral-7b-instruct-v0:2",
        region="us-east-1",
        headers={
            "X-Amzn-Bedrock-Input-Token-Count": "6",
            "X-Amzn-Bedrock-Output-Token-Count": "10",
        },
    )

    assert (usage.input_tokens, usage.output_tokens) == (6, 10)
    assert usage.region == "us-east-1"


def test_saved_converse_stream(frames: Any) -> None:
    data = b"".join(
        [
            frames.event("messageStart", {"role": "assistant"}),
            frames.event("metadata", {"usage": {"inputTokens": 4, "outputTokens": 38}}),
        ]
    )

    usage = usage_from_saved_response(
        data, operation="ConverseStream", model="amazon.nova-lite-v1:0"
    )

    assert (usage.input_tokens, usage.output_tokens) == (4, 38)


def test_saved_invoke_stream(frames: Any) -> None:
    data = b"".join(
        [
            frames.chunk(
                {"type": "message_start", "message": {"usage": {"input_tokens": 9}}}
            ),
            frames.chunk(
                {
                    "type": "message_stop",
                    "amazon-bedrock-invocationMetrics": {
                        "inputTokenCount": 9,
                        "outputTokenCount": 3,
                    },
                }
            ),
        ]
    )

    usage = usage_from_saved_response(
        data,
        operation="InvokeModelWithResponseStream",
        model="anthropic.claude-3-haiku-20240307-v1:0",
    )

    assert (usage.input_tokens, usage.output_tokens) == (9, 3)


@pytest.mark.parametrize(
    ("headers", "tier"),
    [
        (
            {"x-amzn-bedrock-performanceconfig-latency": "optimized"},
            "latency-optimized",
        ),
        ({"x-amzn-bedrock-service-tier": "flex"}, "flex"),
    ],
)
def test_saved_invoke_stream_tier(
    frames: Any, headers: dict[str, str], tier: str
) -> None:
    # The saved headers give the tier, as they do for a live stream.
    data = frames.chunk(
        {
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 5,
                "outputTokenCount": 10,
            }
        }
    )

    usage = usage_from_saved_response(
        data,
        operation="InvokeModelWithResponseStream",
        model="amazon.nova-micro-v1:0",
        region="us-east-1",
        headers=headers,
    )

    assert usage.service_tier == tier


def test_saved_unknown_operation() -> None:
    with pytest.raises(ValueError, match="Unknown Bedrock operation"):
        usage_from_saved_response(b"", operation="ListFoundationModels", model="x")


def test_plugin_extract_ignores_other_providers() -> None:
    from llmfy_bedrock.plugin import usage_extract

    context = CallContext("openai", "chat", "gpt-4o-mini")

    assert (
        usage_extract({"usage": {"inputTokens": 1, "outputTokens": 1}}, context) is None
    )


def test_extract_converse_not_dict() -> None:
    # The fast reader takes dicts only; a read-only mapping is read by the
    # checked path, and a response that is no mapping gives unknown usage.
    from llmfy_bedrock.extract import extract_usage

    context = CallContext("bedrock", "Converse", "amazon.nova-micro-v1:0", "us-east-1")
    usage = {"inputTokens": 52, "outputTokens": 30, "totalTokens": 82}

    read = extract_usage(types.MappingProxyType({"usage": usage}), context)
    unread = extract_usage(None, context)

    assert read.input_tokens == 52
    assert read.output_tokens == 30
    assert unread.input_tokens is None
    assert unread.output_tokens is None


def test_converse_reader_leaves_response_unchanged() -> None:
    # A usage mapping that is a dict subclass, such as a defaultdict, is left
    # to the checked path, and the reader adds no key to it.
    usage: dict[str, int] = collections.defaultdict(int, inputTokens=100)
    response = {"usage": usage, "output": {}, "stopReason": "end_turn"}
    context = CallContext("bedrock", "Converse", "amazon.nova-micro-v1:0", "us-east-1")

    assert read_response(response, context) is None
    assert dict(usage) == {"inputTokens": 100}
    plain = {"usage": {"inputTokens": 100}, "stopReason": "end_turn"}
    assert read_response(plain, context) is None
    assert plain["usage"] == {"inputTokens": 100}


FIVE_MINUTES = {"ttl": "5m", "inputTokens": 236}


@pytest.mark.parametrize(
    ("details", "fast"),
    [
        ([FIVE_MINUTES], True),
        ([FIVE_MINUTES, {"ttl": "5m", "inputTokens": 4}], True),
        ([], True),
        (None, True),
        ([{"ttl": "1h", "inputTokens": 236}], False),
        (["5m"], False),
        ([FIVE_MINUTES, {"ttl": "1h", "inputTokens": 4}], False),
        ([FIVE_MINUTES, "5m"], False),
        ({"ttl": "5m", "inputTokens": 236}, False),
        ({}, False),
        (0, False),
        ([{"ttl": "60m", "inputTokens": 236}], False),
        ([{"inputTokens": 236}], False),
        ([{"ttl": None, "inputTokens": 236}], False),
        ([["ttl"]], False),
        ("5", False),
        ({"ttl": "5m"}, False),
        # Read as a list: the checked path counts a tuple the same.
        ((FIVE_MINUTES,), True),
    ],
)
def test_converse_reader_cache_details(details: Any, fast: bool) -> None:
    # The reader takes responses whose cache writes all last 5 minutes and
    # reads them as the checked path does. It leaves 1-hour writes and other
    # shapes of cacheDetails to the checked path.
    usage = {
        "inputTokens": 3,
        "outputTokens": 121,
        "cacheReadInputTokens": 1712,
        "cacheWriteInputTokens": 236,
        "cacheDetails": details,
    }
    response = {"usage": usage, "stopReason": "end_turn"}
    context = CallContext(
        "bedrock", "Converse", "us.anthropic.claude-sonnet-4-20250514-v1:0", "us-east-1"
    )

    counts = read_response(response, context)

    if not fast:
        assert counts is None
        return
    assert counts is not None
    assert usage_from_counts(counts) == usage_from_converse(response, context)
    assert counts[8:12] == (3 + 1712 + 236, 121, 1712, 236)


CLAUDE_CONTEXT = CallContext(
    "bedrock", "Converse", "us.anthropic.claude-sonnet-4-20250514-v1:0", "us-east-1"
)


@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ([{"ttl": "1h"}], "field usage.cacheDetails[].inputTokens is missing"),
        (
            [{"ttl": "1h", "inputTokens": None}],
            "field usage.cacheDetails[].inputTokens is missing",
        ),
        ([1712], "field usage.cacheDetails[] is invalid (1712)"),
        (
            [{"ttl": "1H", "inputTokens": 236}],
            "field usage.cacheDetails[].ttl is invalid (a string of 2 characters)",
        ),
        ([{"inputTokens": 236}], "field usage.cacheDetails[].ttl is missing"),
        ({}, "field usage.cacheDetails is invalid (a dict)"),
    ],
)
def test_converse_cache_details_problems_noted(details: Any, problem: str) -> None:
    usage = {
        "inputTokens": 3,
        "outputTokens": 121,
        "cacheWriteInputTokens": 236,
        "cacheDetails": details,
    }

    with checks.collecting() as problems:
        counts = counts_from_token_usage(usage)

    assert counts is not None
    assert counts.cache_write == 236
    assert counts.cache_write_1h == 0
    assert problems == [problem]


def test_converse_invalid_count_takes_older_spelling() -> None:
    usage = {
        "inputTokens": 2,
        "outputTokens": 5,
        "cacheReadInputTokens": -1,
        "cacheReadInputTokenCount": 1322,
    }

    with checks.collecting() as problems:
        counts = counts_from_token_usage(usage)

    assert counts is not None
    assert counts.cache_read == 1322
    assert problems == ["field usage.cacheReadInputTokens is invalid (-1)"]


@pytest.mark.parametrize(
    ("tier", "want", "problem"),
    [
        (collections.OrderedDict(type="flex"), "flex", None),
        ("priority", None, "field serviceTier is invalid (a string of 8 characters)"),
        (None, None, None),
    ],
)
def test_converse_unusual_service_tier(
    tier: Any, want: str | None, problem: str | None
) -> None:
    # The reader leaves every service tier but a dict to the checked path,
    # which reads any mapping and notes any other value.
    response = {"usage": {"inputTokens": 3, "outputTokens": 5}, "serviceTier": tier}

    with checks.collecting() as problems:
        usage = usage_from_converse(response, CLAUDE_CONTEXT)

    assert read_response(response, CLAUDE_CONTEXT) is None
    assert usage.service_tier == want
    assert problems == ([problem] if problem else [])


@pytest.mark.parametrize(
    ("config", "want", "problem"),
    [
        ({"latency": "optimized"}, "latency-optimized", None),
        ({"latency": "standard"}, "flex", None),
        ({}, "flex", None),
        ({"latency": "turbo"}, "latency-turbo", None),
        ({"latency": 1}, "flex", "field performanceConfig.latency is invalid (1)"),
        (
            "optimized",
            "flex",
            "field performanceConfig is invalid (a string of 9 characters)",
        ),
    ],
)
def test_converse_performance_config(
    config: Any, want: str, problem: str | None
) -> None:
    # Any latency but standard is priced apart from the service tier, and
    # the reader leaves every performanceConfig to the checked path.
    response = {
        "usage": {"inputTokens": 3, "outputTokens": 5},
        "serviceTier": {"type": "flex"},
        "performanceConfig": config,
    }

    with checks.collecting() as problems:
        usage = usage_from_converse(response, CLAUDE_CONTEXT)

    assert read_response(response, CLAUDE_CONTEXT) is None
    assert usage.service_tier == want
    assert problems == ([problem] if problem else [])


def test_converse_huge_invalid_count_noted() -> None:
    # Python converts at most 4,300 digits to text by default, so the note
    # gives the count's size.
    usage = {"inputTokens": -(10**5000), "outputTokens": 5}

    with checks.collecting() as problems:
        counts = counts_from_token_usage(usage)

    assert counts is None
    assert problems == ["field usage.inputTokens is invalid (an integer of 16610 bits)"]


INVOKE_HEADERS = {
    "x-amzn-requestid": "req-invoke-1",
    "x-amzn-bedrock-input-token-count": "19",
    "x-amzn-bedrock-output-token-count": "121",
    "x-amzn-bedrock-cache-read-input-token-count": "1712",
    "x-amzn-bedrock-cache-write-input-token-count": "236",
}


@pytest.mark.parametrize(
    ("changes", "fast"),
    [
        ({}, True),
        ({"x-amzn-bedrock-service-tier": "priority"}, True),
        ({"x-amzn-bedrock-output-token-count": None}, True),
        ({"x-amzn-bedrock-cache-read-input-token-count": None}, True),
        ({"x-amzn-bedrock-input-token-count": None}, False),
        ({"x-amzn-bedrock-input-token-count": " 19"}, False),
        ({"x-amzn-bedrock-output-token-count": "-1"}, False),
        ({"x-amzn-bedrock-output-token-count": "١٢"}, False),
        ({"x-amzn-bedrock-output-token-count": "1" * 19}, False),
        ({"x-amzn-bedrock-cache-write-input-token-count": 236}, False),
        ({"x-amzn-bedrock-service-tier": 3}, False),
        ({"x-amzn-bedrock-performanceconfig-latency": "standard"}, True),
        ({"x-amzn-bedrock-performanceconfig-latency": "optimized"}, False),
    ],
)
def test_invoke_reader_token_headers(changes: dict[str, Any], fast: bool) -> None:
    # An InvokeModel response whose body was not read is counted from its
    # token headers. The reader returns what the checked path reads from
    # them, or None where a header needs the checks.
    headers = {**INVOKE_HEADERS, **changes}
    headers = {name: value for name, value in headers.items() if value is not None}
    response = {"ResponseMetadata": {"HTTPStatusCode": 200}, "body": None}
    context = CallContext(
        "bedrock",
        "InvokeModel",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "us-east-1",
        headers=headers,
    )

    counts = read_response(response, context)

    if not fast:
        assert counts is None
        return
    assert counts is not None
    assert usage_from_counts(counts) == usage_from_invoke(None, context)
    assert counts[7] == "req-invoke-1"


def test_invoke_reader_declines_body_or_no_headers() -> None:
    # A decoded body may split cache writes by TTL, which the headers do not.
    body = {"usage": {"input_tokens": 19, "output_tokens": 121}}
    context = CallContext(
        "bedrock",
        "InvokeModel",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "us-east-1",
        headers=INVOKE_HEADERS,
    )

    no_headers = CallContext("bedrock", "InvokeModel", context.model, "us-east-1")

    assert read_response(body, context) is None
    assert read_response({"ResponseMetadata": {}}, no_headers) is None


def test_invoke_tier_header_not_text_noted() -> None:
    headers = {**INVOKE_HEADERS, "x-amzn-bedrock-service-tier": 3}
    context = CallContext(
        "bedrock",
        "InvokeModel",
        "anthropic.claude-3-haiku-20240307-v1:0",
        headers=headers,
    )

    with checks.collecting() as problems:
        usage = usage_from_invoke({}, context)

    assert usage.service_tier is None
    assert usage.input_tokens == 19 + 1712 + 236
    assert problems == ["field x-amzn-bedrock-service-tier is invalid (3)"]
