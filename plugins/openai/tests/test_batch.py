"""Reading Batch API output files into usages at the batch rate."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from llmfy_openai import (
    BatchFileError,
    iter_batch_usages,
    read_batch_file,
    record_batch_file,
)

from llmfy import llmfy_usage_tracker


def line(custom_id: str, body: dict, *, status: int = 200, error: object = None) -> str:
    record = {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": f"req_{custom_id}",
            "body": body,
        },
        "error": error,
    }
    return json.dumps(record)


def test_chat_lines_at_batch_rate(bodies, tmp_path):
    path = tmp_path / "output.jsonl"
    lines = [
        line("a", bodies.chat(model="gpt-4o-2024-08-06", prompt=1000, completion=100)),
        "",
        line(
            "b",
            bodies.chat(
                model="gpt-4o-2024-08-06", prompt=2000, completion=200, cached=1000
            ),
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    usages = read_batch_file(path)
    with llmfy_usage_tracker() as tracker:
        for usage in usages:
            tracker.add_usage(usage)

    assert [usage.request_id for usage in usages] == ["req_a", "req_b"]
    assert all(usage.batch for usage in usages)
    # gpt-4o batch: input 1.25, cached 0.625, output 5.00 per million tokens
    # a: 1000 x 1.25 + 100 x 5 = 1250 + 500 = 1750
    # b: 1000 x 1.25 + 1000 x 0.625 + 200 x 5 = 1250 + 625 + 1000 = 2875
    # total 4625 per million
    assert tracker.total_cost == Decimal("0.004625")


def test_lines_priced_on_their_send_day(bodies, tmp_path):
    # o3 cost 10 and 40 USD per million tokens until OpenAI cut it on
    # 2025-06-10, so its Batch API rate was 5 and 20 before that day and is
    # 1 and 4 now. Chat bodies give the send time in `created`, and Responses
    # bodies in `created_at`. 1746057600 is 2025-05-01 00:00 UTC.
    chat = bodies.chat(model="o3-2025-04-16", prompt=1000, completion=100)
    chat["created"] = 1_746_057_600
    response = bodies.response(model="o3-2025-04-16", input_tokens=10, output_tokens=5)
    response["created_at"] = 1_746_057_600
    path = tmp_path / "output.jsonl"
    path.write_text(line("a", chat) + "\n" + line("b", response) + "\n")

    with llmfy_usage_tracker() as tracker:
        count = record_batch_file(path, tracker)

    assert count == 2
    assert [record.usage.request_id for record in tracker.records] == [
        "req_a",
        "req_b",
    ]
    # a: 1000 x 5 + 100 x 20 = 5000 + 2000 = 7000 millionths of a USD
    assert tracker.records[0].cost.total == Decimal("0.007")
    # b: 10 x 5 + 5 x 20 = 50 + 100 = 150 millionths of a USD
    assert tracker.records[1].cost.total == Decimal("0.00015")


def test_responses_and_embeddings_lines(bodies):
    lines = [
        line("r", bodies.response(input_tokens=10, output_tokens=5)),
        line("e", bodies.embeddings(prompt=8)),
    ]

    usages = list(iter_batch_usages(lines))

    assert [usage.operation for usage in usages] == ["responses", "embeddings"]
    assert [usage.input_tokens for usage in usages] == [10, 8]


def test_failed_lines_are_not_billed(bodies):
    lines = [
        line("ok", bodies.chat()),
        line("bad-status", bodies.chat(), status=400),
        line(
            "error", bodies.chat(), error={"code": "server_error", "message": "failed"}
        ),
    ]

    usages = list(iter_batch_usages(lines))

    assert [usage.request_id for usage in usages] == ["req_ok"]


def test_invalid_line_names_its_number(bodies):
    lines = [line("ok", bodies.chat()), "{not json"]

    with pytest.raises(BatchFileError, match="line 2"):
        list(iter_batch_usages(lines))


def test_non_object_line_rejected():
    with pytest.raises(BatchFileError, match="line 1"):
        list(iter_batch_usages(["[1, 2]"]))


@pytest.mark.parametrize("read", ["text", "content"])
def test_downloaded_file_content(server, client, bodies, read):
    chat = bodies.chat(model="gpt-4o-2024-08-06", prompt=1000, completion=100)
    # JSON allows a line separator (U+2028) unescaped inside a string.
    chat["choices"][0]["message"]["content"] = "Paris.\u2028Lyon."
    lines = [line("a", chat), line("b", bodies.embeddings(prompt=8))]
    text = "\n".join(lines).replace("\\u2028", "\u2028") + "\n"
    assert "\u2028" in text
    server.add_raw(
        "/v1/files/file-out/content",
        status=200,
        headers={"content-type": "application/octet-stream"},
        body=text.encode(),
    )
    downloaded = getattr(client.files.content("file-out"), read)

    usages = list(iter_batch_usages(downloaded))
    with llmfy_usage_tracker() as tracker:
        for usage in usages:
            tracker.add_usage(usage)

    assert [usage.request_id for usage in usages] == ["req_a", "req_b"]
    assert [usage.input_tokens for usage in usages] == [1000, 8]
    assert [usage.output_tokens for usage in usages] == [100, 0]
    assert all(usage.batch for usage in usages)
    # Batch rates: gpt-4o 1.25 input and 5.00 output, text-embedding-3-small
    # 0.01 input, per million tokens.
    # 1000 x 1.25 + 100 x 5 + 8 x 0.01 = 1250 + 500 + 0.08 = 1750.08
    assert tracker.total_cost == Decimal("0.00175008")


def test_image_lines_at_batch_rate(bodies):
    # A GPT Image body names no model, and the batch's input file does, so the
    # caller gives it.
    lines = [line("i", bodies.images(text=50, image=0, output_tokens=4160))]

    usages = list(iter_batch_usages(lines, model="gpt-image-1"))
    with llmfy_usage_tracker(
        openai_pricing={
            "gpt-image-1": {
                "input": "5.00",
                "output": "40.00",
                "output_image": "40.00",
                "tiers": {
                    "batch": {
                        "input": "2.50",
                        "output": "20.00",
                        "output_image": "20.00",
                    }
                },
            }
        }
    ) as tracker:
        for usage in usages:
            tracker.add_usage(usage)

    assert len(usages) == 1
    usage = usages[0]
    assert usage.model == "gpt-image-1"
    assert usage.batch
    assert usage.request_id == "req_i"
    assert usage.input_tokens == 50
    assert usage.output_tokens == 4160
    assert usage.other_tokens == {"output_image": 4160}
    # Batch rates, half of 5.00 text input and 40.00 image output per million:
    # 50 x 2.50 + 4160 x 20.00 = 125 + 83,200 = 83,325 millionths of a USD.
    expected = Decimal(50) * Decimal("2.50") + Decimal(4160) * Decimal("20.00")
    assert tracker.total_cost == expected / 10**6


def test_image_line_without_output_details(bodies):
    # GPT Image bodies leave `output_tokens_details` out, so every output token
    # is an image token.
    body = bodies.images(text=50, image=0, output_tokens=4160)
    del body["usage"]["output_tokens_details"]

    usages = list(iter_batch_usages([line("i", body)], model="gpt-image-1.5"))
    batch_price = {"input": "2.50", "output": "5.00", "output_image": "16.00"}
    prices = {
        "gpt-image-1.5": {
            "input": "5.00",
            "output": "10.00",
            "output_image": "32.00",
            "tiers": {"batch": batch_price},
        }
    }
    with llmfy_usage_tracker(openai_pricing=prices) as tracker:
        tracker.add_usage(usages[0])

    assert usages[0].other_tokens == {"output_image": 4160}
    # Batch rates: 50 text in x 2.50 + 4160 image out x 16.00 = 125 + 66,560
    # = 66,685 millionths of a USD.
    assert tracker.total_cost == Decimal("0.066685")


def test_image_line_without_model_counted(bodies):
    lines = [line("i", bodies.images(text=50, output_tokens=4160))]

    usages = list(iter_batch_usages(lines))

    assert [usage.model for usage in usages] == ["unknown"]
    assert [usage.output_tokens for usage in usages] == [4160]
