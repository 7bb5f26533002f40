"""The tracker: activation, nesting, overrides, concurrency and faults."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

import llmfy_core
from llmfy_core import (
    CallContext,
    CatalogEntry,
    Price,
    PriceKey,
    PricingTableError,
    PricingWarning,
    UnknownProviderError,
    Usage,
    active_trackers,
    bind_trackers,
    hookimpl,
    llmfy_usage_tracker,
    start_process_tracker,
)
from llmfy_core.recording import (
    record_response,
    record_usage,
    watch_pending,
    watch_stream,
)

from .conftest import ProviderPlugin


def send(model: str = "gpt-4o-mini", tokens_in: int = 60, tokens_out: int = 3) -> None:
    """Record a response as instrumentation would, into the trackers active now."""
    record_response(
        {"model": model, "in": tokens_in, "out": tokens_out},
        CallContext("openai", model=model),
        active_trackers(),
    )


def test_request_counted_inside_block(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        send()

    assert usage.request_count == 1
    assert usage.input_tokens == 60
    assert usage.output_tokens == 3
    # 60 * 0.15 + 3 * 0.60 = 10.8 USD per million tokens
    assert usage.total_cost == Decimal("0.0000108")


def test_request_after_block_not_counted(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        send()
    send()

    assert usage.request_count == 1


def test_request_after_block_raised_not_counted(provider: ProviderPlugin) -> None:
    tracker = llmfy_usage_tracker()
    with pytest.raises(RuntimeError), tracker:
        send()
        raise RuntimeError("user code failed")
    send()

    assert tracker.request_count == 1
    assert active_trackers() == ()


def test_nested_trackers_both_count(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as outer:
        send()
        with llmfy_usage_tracker() as inner:
            send(tokens_in=100)
        send()

    assert outer.request_count == 3
    assert inner.request_count == 1
    assert inner.input_tokens == 100
    assert outer.input_tokens == 220


def test_nested_trackers_price_with_own_overrides(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as outer:
        with llmfy_usage_tracker(
            openai_pricing={"gpt-4o-mini": {"input": 1, "output": 2}}
        ) as inner:
            send(tokens_in=1000, tokens_out=1000)

    # Inner: 1000 * 1 + 1000 * 2 = 3000 per million. Outer keeps the bundled
    # 1000 * 0.15 + 1000 * 0.60 = 750 per million.
    assert inner.total_cost == Decimal("0.003")
    assert outer.total_cost == Decimal("0.00075")


def test_trackers_exited_out_of_order(provider: ProviderPlugin) -> None:
    outer = llmfy_usage_tracker()
    inner = llmfy_usage_tracker()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    send()
    inner.__exit__(None, None, None)
    send()

    assert outer.request_count == 0
    assert inner.request_count == 1
    assert active_trackers() == ()


def test_request_sent_inside_recorded_after_block(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        trackers = active_trackers()
    record_usage(Usage("openai", "gpt-4o-mini", 60, 3), trackers)

    assert usage.request_count == 1


def test_decorator_on_sync_function(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()

    @usage
    def work() -> str:
        send()
        return "done"

    assert work() == "done"
    assert work() == "done"
    send()
    assert usage.request_count == 2


def test_decorator_on_async_function(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()

    @usage
    async def work() -> str:
        await asyncio.sleep(0)
        send()
        return "done"

    assert asyncio.run(work()) == "done"
    assert usage.request_count == 1


def test_decorator_on_object_with_async_call(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()

    class Agent:
        async def __call__(self) -> str:
            await asyncio.sleep(0)
            send()
            return "done"

    work = usage(Agent())

    assert asyncio.run(work()) == "done"
    assert usage.request_count == 1


def test_decorator_on_object_with_generator_call(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()

    class Steps:
        def __call__(self) -> Any:
            send()
            yield 1
            send()
            yield 2

    steps = usage(Steps())

    assert list(steps()) == [1, 2]
    assert usage.request_count == 2


async def ask_once() -> str:
    await asyncio.sleep(0)
    send()
    return "done"


class StaticAsyncCall:
    __call__ = staticmethod(ask_once)


class ClassAsyncCall:
    @classmethod
    async def __call__(cls) -> str:
        return await ask_once()


class AsyncCall:
    async def __call__(self) -> str:
        return await ask_once()


# Objects that return a coroutine when called, although the `__call__` of their
# class is a staticmethod, a classmethod, `functools.partial`'s or a sync method.
ASYNC_CALLABLES = {
    "staticmethod __call__": StaticAsyncCall,
    "classmethod __call__": ClassAsyncCall,
    "partial of an async object": lambda: functools.partial(AsyncCall()),
    "AsyncMock": lambda: mock.AsyncMock(side_effect=ask_once),
}


@pytest.mark.parametrize("name", ASYNC_CALLABLES)
def test_decorator_on_other_async_callables(
    provider: ProviderPlugin, name: str
) -> None:
    usage = llmfy_usage_tracker()
    work = usage(ASYNC_CALLABLES[name]())

    assert inspect.iscoroutinefunction(work)
    assert asyncio.run(work()) == "done"
    assert usage.request_count == 1


@pytest.mark.parametrize("name", ASYNC_CALLABLES)
def test_bound_async_callable_in_older_task(
    provider: ProviderPlugin, name: str
) -> None:
    async def main() -> llmfy_core.UsageTracker:
        jobs: asyncio.Queue[Any] = asyncio.Queue()
        # Started before the block, so its own context has no tracker.
        task = asyncio.create_task(run_jobs(jobs))
        with llmfy_usage_tracker() as usage:
            jobs.put_nowait(bind_trackers(ASYNC_CALLABLES[name]()))
            await jobs.join()
        task.cancel()
        return usage

    usage = asyncio.run(main())

    assert usage.request_count == 1


async def run_jobs(jobs: asyncio.Queue[Any]) -> None:
    """Await each job of `jobs`, as a long-lived worker task does."""
    while True:
        job = await jobs.get()
        await job()
        jobs.task_done()


def test_async_with_block(provider: ProviderPlugin) -> None:
    async def main() -> llmfy_core.UsageTracker:
        async with llmfy_usage_tracker() as usage:
            await asyncio.gather(
                *(asyncio.to_thread(bind_trackers(send)) for _ in range(3))
            )
        return usage

    assert asyncio.run(main()).request_count == 3


def test_tags_kept_on_records(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker(tags={"tenant": "acme"}) as usage:
        send()

    assert usage.records[0].tags == {"tenant": "acme"}
    assert usage.to_dict()["tags"] == {"tenant": "acme"}


def test_override_replaces_bundled_price(provider: ProviderPlugin) -> None:
    pricing = {"gpt-4o-mini": {"input": 0.30, "output": 1.20, "cache_read": 0.1}}
    with llmfy_usage_tracker(openai_pricing=pricing) as usage:
        send(tokens_in=1000, tokens_out=100)

    # 1000 * 0.30 + 100 * 1.20 = 420 per million
    assert usage.total_cost == Decimal("0.00042")
    assert usage.records[0].price_origin == "override"


def test_override_keeps_other_models_prices(provider: ProviderPlugin) -> None:
    pricing = {"my-model": {"input": 1, "output": 1}}
    with llmfy_usage_tracker(openai_pricing=pricing) as usage:
        send(tokens_in=1000, tokens_out=0)
        send(model="my-model", tokens_in=1000, tokens_out=0)

    # 1000 * 0.15 (bundled) + 1000 * 1 (override) = 1150 per million
    assert usage.total_cost == Decimal("0.00115")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"gpt-4o-mini": {"input": 0.1}}, "field 'output'"),
        ({"gpt-4o-mini": {"output": 0.1}}, "field 'input'"),
        ({"gpt-4o-mini": {"input": -1, "output": 1}}, "negative"),
        ({"gpt-4o-mini": {"input": float("nan"), "output": 1}}, "not a finite"),
        ({"gpt-4o-mini": {"input": float("inf"), "output": 1}}, "not a finite"),
        ({"gpt-4o-mini": {"input": "cheap", "output": 1}}, "not a number"),
        ({"gpt-4o-mini": {"input": True, "output": 1}}, "not a number"),
        ({"gpt-4o-mini": 0.15}, "expected a mapping"),
        ({"gpt-4o-mini": {"us-east-1": {"input": 1, "output": 1}}}, "Unknown field"),
    ],
)
def test_bad_override_table_raises(
    provider: ProviderPlugin, table: dict[str, Any], message: str
) -> None:
    with pytest.raises(PricingTableError, match=message) as raised:
        llmfy_usage_tracker(openai_pricing=table)

    assert "gpt-4o-mini" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_override_table_not_a_mapping_raises(provider: ProviderPlugin) -> None:
    with pytest.raises(PricingTableError, match="expected a mapping"):
        llmfy_usage_tracker(openai_pricing=[("gpt-4o-mini", 1)])  # type: ignore[arg-type]


def test_unknown_provider_pricing_raises(provider: ProviderPlugin) -> None:
    with pytest.raises(UnknownProviderError, match="'acme'"):
        llmfy_usage_tracker(acme_pricing={"m": {"input": 1, "output": 1}})


def test_bedrock_pricing_without_plugin_says_install(
    provider: ProviderPlugin,
) -> None:
    table = {"amazon.nova-lite-v1:0": {"us-east-1": {"input": 1, "output": 1}}}

    with pytest.raises(UnknownProviderError) as raised:
        llmfy_usage_tracker(bedrock_pricing=table)

    message = str(raised.value)
    assert "Unknown provider 'bedrock' in bedrock_pricing=" in message
    assert "pip install ./plugins/bedrock" in message
    assert "LLMFY_DISABLED_PLUGINS" in message


class FailingTableParser:
    """A plugin named `acme` whose pricing_table_parse raises for `acme` tables."""

    @hookimpl
    def pricing_table_parse(self, provider: str, table: object) -> None:
        if provider == "acme":
            raise KeyError("prices")


def test_failing_table_parser_named_in_error(provider: ProviderPlugin) -> None:
    # The plugin for `acme` is loaded, so the provider is not misspelt.
    llmfy_core.register_plugin(FailingTableParser(), "acme")

    with pytest.raises(PricingTableError) as raised:
        llmfy_usage_tracker(acme_pricing={"m": {"input": 1, "output": 1}})

    message = str(raised.value)
    assert not isinstance(raised.value, UnknownProviderError)
    assert "acme_pricing= could not be read" in message
    assert "plugin acme failed with KeyError('prices')" in message
    assert "bug in the plugin" in message
    assert "Did you mean" not in message


def test_unknown_provider_error_names_plugin_fault(
    provider: ProviderPlugin,
) -> None:
    llmfy_core.register_plugin(FailingTableParser(), "acme-prices")

    with pytest.raises(UnknownProviderError) as raised:
        llmfy_usage_tracker(acme_pricing={"m": {"input": 1, "output": 1}})

    message = str(raised.value)
    assert "Unknown provider 'acme'" in message
    assert "Also, plugin acme-prices failed with KeyError('prices')." in message


def test_unknown_keyword_raises_type_error(provider: ProviderPlugin) -> None:
    with pytest.raises(TypeError, match="opeanai_prices"):
        llmfy_usage_tracker(opeanai_prices={})


@pytest.mark.parametrize(
    ("keyword", "meant"),
    [
        ("keep_request", "keep_requests"),
        ("openai_prices", "openai_pricing"),
        ("tag", "tags"),
    ],
)
def test_misspelt_keyword_names_the_meant_one(
    provider: ProviderPlugin, keyword: str, meant: str
) -> None:
    with pytest.raises(TypeError) as raised:
        llmfy_usage_tracker(**{keyword: None})

    message = str(raised.value)
    assert f"unexpected keyword argument {keyword!r}" in message
    assert f"Did you mean {meant}=?" in message
    assert "tags= and keep_requests=" in message


@pytest.mark.parametrize("keyword", ["OpenAI_pricing", "opnai_pricing"])
def test_misspelt_provider_keyword_names_meant_one(keyword: str) -> None:
    with pytest.raises(UnknownProviderError) as raised:
        llmfy_usage_tracker(**{keyword: {}})

    assert "Did you mean openai_pricing=?" in str(raised.value)


def test_process_tracker_misspelt_keyword(provider: ProviderPlugin) -> None:
    # The message names the function called and only the keywords it takes.
    with pytest.raises(TypeError) as raised:
        start_process_tracker(tag={"team": "search"})

    message = str(raised.value)
    assert message.startswith("start_process_tracker() got an unexpected keyword")
    assert "Did you mean tags=?" in message
    assert "keep_requests" not in message


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["team"], "Invalid tags: ['team'] of type list"),
        ("team=search", "Invalid tags: 'team=search' of type str"),
        ({"team": 1}, "Invalid tags entry 'team': 1"),
        ({1: "search"}, "Invalid tags entry 1: 'search'"),
    ],
)
@pytest.mark.parametrize("start", [llmfy_usage_tracker, start_process_tracker])
def test_wrong_tags_type_raises(
    provider: ProviderPlugin, start: Any, tags: object, expected: str
) -> None:
    with pytest.raises(TypeError) as raised:
        start(tags=tags)

    message = str(raised.value)
    assert expected in message
    assert "such as tags={'team': 'search'}" in message


@pytest.mark.parametrize(
    ("keep_requests", "expected"),
    [
        ("no", "Invalid keep_requests: 'no' of type str"),
        (0, "Invalid keep_requests: 0 of type int"),
        (None, "Invalid keep_requests: None of type NoneType"),
    ],
)
def test_wrong_keep_requests_type_raises(
    provider: ProviderPlugin, keep_requests: object, expected: str
) -> None:
    with pytest.raises(TypeError) as raised:
        llmfy_usage_tracker(keep_requests=keep_requests)  # type: ignore[arg-type]

    message = str(raised.value)
    assert expected in message
    assert "Pass True to keep every request" in message


def test_process_tracker_keep_requests_raises(provider: ProviderPlugin) -> None:
    with pytest.raises(TypeError, match="takes no keep_requests argument"):
        start_process_tracker(keep_requests=True)


def test_unpriced_model_warns_once_and_costs_unknown(provider: ProviderPlugin) -> None:
    with pytest.warns(PricingWarning, match="'mystery-model'") as warned:
        with llmfy_usage_tracker() as usage:
            send(model="mystery-model")
            send(model="mystery-model")

    assert len(warned) == 1
    assert usage.records[0].cost is None
    assert usage.totals.unpriced == 2
    assert usage.cost_complete is False
    assert "Unpriced Requests: 2" in str(usage)
    # No price source gave a reason, so the record names the missing price.
    reason = "no installed price source lists this model"
    assert usage.records[0].unpriced_reason == reason
    assert usage.to_dict()["requests"][0]["unpriced_reason"] == reason


def test_zero_counts_add_no_keys(provider: ProviderPlugin) -> None:
    # The same request in two trackers, one keeping requests and one not.
    with llmfy_usage_tracker(keep_requests=False) as totals_only:
        with llmfy_usage_tracker() as keeping:
            keeping.record(
                "openai",
                "gpt-4o-mini",
                100,
                10,
                other_tokens={"input_audio": 0},
                tool_calls={"web_search": 0},
            )

    for usage in (totals_only, keeping):
        data = usage.to_dict()
        assert data["totals"]["other_tokens"] == {}
        assert data["totals"]["tool_calls"] == {}
        assert data["by_model"][0]["other_tokens"] == {}
        assert data["by_model"][0]["tool_calls"] == {}


def test_unknown_usage_counted_not_zero(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        record_response(
            {"model": "gpt-4o-mini"},
            CallContext("openai", model="gpt-4o-mini"),
            active_trackers(),
        )

    assert usage.request_count == 1
    assert usage.totals.unknown_usage == 1
    assert usage.records[0].usage.input_tokens is None


class Broken:
    @hookimpl(tryfirst=True)
    def usage_extract(self, response: Any) -> Usage:
        raise RuntimeError("plugin bug")


def test_plugin_fault_recorded_not_raised(
    provider: ProviderPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    llmfy_core.register_plugin(Broken(), "broken")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.request_count == 1
    assert usage.totals.faults == 1
    assert "plugin bug" in (usage.records[0].fault or "")
    assert "Recording Faults: 1" in str(usage)
    assert "plugin bug" in caplog.text


class WrongType:
    @hookimpl(tryfirst=True)
    def usage_extract(self) -> str:
        return "not a usage"


def test_plugin_wrong_return_type_is_a_fault(provider: ProviderPlugin) -> None:
    llmfy_core.register_plugin(WrongType(), "wrong-type")

    with llmfy_usage_tracker() as usage:
        send()

    assert usage.totals.faults == 1
    assert "expected a Usage" in (usage.records[0].fault or "")


def test_record_by_hand_validates_counts(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.raises(ValueError, match="input_tokens"):
            usage.record("openai", "gpt-4o-mini", -1, 3)
        with pytest.raises(ValueError, match="output_tokens"):
            usage.record("openai", "gpt-4o-mini", 1, 2.5)  # type: ignore[arg-type]

    assert usage.request_count == 0


@pytest.mark.parametrize(
    ("arguments", "keywords", "field"),
    [
        (("openai", None, 1, 1), {}, "model"),
        ((None, "gpt-4o-mini", 1, 1), {}, "provider"),
        (("openai", "gpt-4o-mini", 1, 1), {"sent_at": "2026-01-01"}, "sent_at"),
        (("openai", "gpt-4o-mini", 1, 1), {"region": 5}, "region"),
        (("openai", "gpt-4o-mini", 1, 1), {"request_id": b"req"}, "request_id"),
        (("openai", "gpt-4o-mini", 1, 1), {"other_tokens": [1]}, "other_tokens"),
        (("openai", "gpt-4o-mini", 1, 1), {"batch": "yes"}, "batch"),
    ],
)
def test_record_by_hand_rejects_wrong_types(
    provider: ProviderPlugin,
    arguments: tuple[Any, ...],
    keywords: dict[str, Any],
    field: str,
) -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.raises(TypeError, match=f"Invalid {field} ") as caught:
            usage.record(*arguments, **keywords)

    assert "Pass " in str(caught.value)
    assert usage.request_count == 0


@pytest.mark.parametrize(
    ("keyword", "meant"),
    [
        ("cached_tokens", "cache_read_tokens"),
        ("cache_creation_input_tokens", "cache_write_tokens"),
        ("reasoning_token", "reasoning_tokens"),
    ],
)
def test_record_misspelt_keyword_names_meant_one(
    provider: ProviderPlugin, keyword: str, meant: str
) -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.raises(TypeError) as raised:
            usage.record("openai", "gpt-4o-mini", 10, 2, **{keyword: 1})

    message = str(raised.value)
    assert f"unexpected keyword argument {keyword!r}" in message
    assert f"Did you mean {meant}=?" in message
    assert usage.request_count == 0


def test_record_by_hand_rejects_empty_model(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.raises(ValueError, match=r"Invalid model .*: it is empty"):
            usage.record("openai", "", 1, 1)

    assert usage.request_count == 0


def test_thread_pool_with_bind_trackers(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage, ThreadPoolExecutor(4) as pool:
        for _ in range(8):
            pool.submit(bind_trackers(send))

    assert usage.request_count == 8


def test_bound_async_function_in_older_task(provider: ProviderPlugin) -> None:
    async def ask() -> None:
        await asyncio.sleep(0)
        send()

    async def main() -> llmfy_core.UsageTracker:
        jobs: asyncio.Queue[Any] = asyncio.Queue()
        # Started before the block, so its own context has no tracker.
        task = asyncio.create_task(run_jobs(jobs))
        with llmfy_usage_tracker() as usage:
            jobs.put_nowait(bind_trackers(ask))
            await jobs.join()
        task.cancel()
        return usage

    usage = asyncio.run(main())

    assert usage.request_count == 1


def test_bound_coroutine_closed_in_other_context(provider: ProviderPlugin) -> None:
    # Garbage collection closes the coroutine of a task destroyed while
    # pending in whatever context is current, not in the task's.
    async def wait() -> None:
        await asyncio.sleep(0)
        send()

    with llmfy_usage_tracker() as usage:
        bound = bind_trackers(wait)
    coroutine = bound()
    contextvars.copy_context().run(coroutine.send, None)

    coroutine.close()

    assert active_trackers() == ()
    assert usage.request_count == 0


def test_sixteen_threads_record_exact_totals(provider: ProviderPlugin) -> None:
    per_thread = 10_000
    with (
        llmfy_usage_tracker() as outer,
        llmfy_usage_tracker(keep_requests=False) as inner,
    ):
        trackers = active_trackers()
        usage = Usage("openai", "gpt-4o-mini", 7, 3)

        def work() -> None:
            for _ in range(per_thread):
                record_usage(usage, trackers)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    requests = 16 * per_thread
    assert outer.request_count == requests
    assert inner.request_count == requests
    assert outer.input_tokens == 7 * requests
    assert inner.output_tokens == 3 * requests
    # Each request: 7 * 0.15 + 3 * 0.60 = 2.85 per million, exactly.
    assert outer.total_cost == Decimal("0.00000285") * requests
    assert inner.total_cost == Decimal("0.00000285") * requests


def test_thousand_async_tasks_record_exact_totals(provider: ProviderPlugin) -> None:
    async def one(index: int) -> None:
        await asyncio.sleep(0)
        send(tokens_in=index, tokens_out=1)

    async def main() -> llmfy_core.UsageTracker:
        with llmfy_usage_tracker() as usage:
            await asyncio.gather(*(one(index) for index in range(1000)))
        return usage

    usage = asyncio.run(main())

    assert usage.request_count == 1000
    assert usage.input_tokens == sum(range(1000))
    # sum(0..999) = 499500 input tokens at 0.15 plus 1000 output tokens at 0.60
    assert usage.total_cost == (Decimal(499500) * Decimal("0.15") + 600) / 1_000_000


def test_process_tracker_counts_without_block(provider: ProviderPlugin) -> None:
    tracker = llmfy_core.start_process_tracker()
    try:
        send()
        with llmfy_usage_tracker() as usage:
            send()
    finally:
        llmfy_core.stop_process_tracker(tracker)
    send()

    assert tracker.request_count == 2
    assert usage.request_count == 1


@pytest.mark.parametrize("value", [None, "tracker"])
def test_stop_process_tracker_rejects_non_tracker(value: object) -> None:
    with pytest.raises(TypeError) as caught:
        llmfy_core.stop_process_tracker(value)  # type: ignore[arg-type]

    assert "start_process_tracker() returned" in str(caught.value)
    assert f"of type {type(value).__name__}" in str(caught.value)


def test_override_in_wrong_unit_warns(provider: ProviderPlugin) -> None:
    # 0.00015 is gpt-4o-mini's input price per 1,000 tokens, given in a table
    # of prices per million: 1,000 times too low.
    pricing = {"gpt-4o-mini": {"input": 0.00015, "output": 0.0006}}

    with pytest.warns(
        PricingWarning, match=r"0\.001 times the published price"
    ) as warned:
        with llmfy_usage_tracker(openai_pricing=pricing) as usage:
            send()

    assert usage.records[0].price_origin == "override"
    # The table is per million already, so the price is not restated per million.
    message = str(warned[0].message)
    assert "is 0.00015 USD per million tokens and 0.001 times" in message
    assert "which is" not in message


def test_override_close_to_published_does_not_warn(provider: ProviderPlugin) -> None:
    pricing = {"gpt-4o-mini": {"input": 0.12, "output": 0.48}}

    with llmfy_usage_tracker(openai_pricing=pricing) as usage:
        send()

    # 60 * 0.12 + 3 * 0.48 = 8.64 per million
    assert usage.total_cost == Decimal("0.00000864")


def test_misspelled_provider_keyword_suggests_name(provider: ProviderPlugin) -> None:
    llmfy_core.register_plugin(ProviderPlugin("bedrock", {}), "bedrock")

    with pytest.raises(UnknownProviderError, match="Did you mean bedrock_pricing="):
        llmfy_usage_tracker(bedrok_pricing={"m": {"input": 1, "output": 1}})


def test_bare_decorator_raises_with_fix(provider: ProviderPlugin) -> None:
    with pytest.raises(TypeError, match=r"@llmfy_usage_tracker\(\)"):

        @llmfy_usage_tracker  # type: ignore[arg-type]
        def work() -> None:
            pass


def test_record_by_hand_counts_in_enclosing_trackers(
    provider: ProviderPlugin,
) -> None:
    with llmfy_usage_tracker() as outer, llmfy_usage_tracker() as inner:
        inner.record("openai", "gpt-4o-mini", 60, 3)
        outer.record("openai", "gpt-4o-mini", 107, 3)

    assert inner.request_count == 1
    assert outer.request_count == 2


def test_record_by_hand_rejects_parts_above_total(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()

    with pytest.raises(ValueError, match="exceed input_tokens"):
        usage.record("openai", "gpt-4o-mini", 10, 1, cache_read_tokens=11)
    with pytest.raises(ValueError, match="exceed output_tokens"):
        usage.record("openai", "gpt-4o-mini", 10, 1, reasoning_tokens=2)


def test_record_by_hand_rejects_subsets_above_total(
    provider: ProviderPlugin,
) -> None:
    usage = llmfy_usage_tracker()

    with pytest.raises(ValueError, match=r"'input_audio'\] \(20\) exceed input_tokens"):
        usage.record("openai", "gpt-4o-mini", 10, 1, other_tokens={"input_audio": 20})
    with pytest.raises(
        ValueError, match=r"'output_image'\] \(2\) exceed output_tokens"
    ):
        usage.record("openai", "gpt-4o-mini", 10, 1, other_tokens={"output_image": 2})
    with pytest.raises(
        ValueError, match=r"'cache_write_1h'\] \(3\) exceed cache_write_tokens"
    ):
        usage.record(
            "openai",
            "gpt-4o-mini",
            10,
            1,
            cache_write_tokens=2,
            other_tokens={"cache_write_1h": 3},
        )
    assert usage.request_count == 0


def test_record_by_hand_rejects_subsets_summing_above_total(
    provider: ProviderPlugin,
) -> None:
    # Audio and image tokens are separate parts of the input or output, each
    # charged at its own rate, so together they fit in their count too.
    usage = llmfy_usage_tracker()

    with pytest.raises(
        ValueError,
        match=r"'input_audio'\] \(8\) plus other_tokens\['input_image'\] \(8\) "
        r"exceed input_tokens \(10\)",
    ):
        usage.record(
            "openai",
            "gpt-4o-mini",
            10,
            1,
            other_tokens={"input_audio": 8, "input_image": 8},
        )
    with pytest.raises(
        ValueError,
        match=r"'output_audio'\] \(1\) plus other_tokens\['output_image'\] \(1\) "
        r"exceed output_tokens \(1\)",
    ):
        usage.record(
            "openai",
            "gpt-4o-mini",
            10,
            1,
            other_tokens={"output_audio": 1, "output_image": 1},
        )
    assert usage.request_count == 0


def test_add_usage_cuts_subsets_to_total(provider: ProviderPlugin) -> None:
    # add_usage() takes a Usage as built, so it cuts subsets that record()
    # rejects, as it cuts cached and reasoning counts, and names the fault.
    provider.prices["gpt-4o-mini"] = Price(
        Decimal("0.15"), Decimal("0.60"), other={"input_audio": Decimal("10")}
    )
    with llmfy_usage_tracker() as usage:
        record = usage.add_usage(
            Usage(
                "openai",
                "gpt-4o-mini",
                10,
                1,
                other_tokens={"input_audio": 8, "input_image": 8},
            )
        )

    assert dict(record.usage.other_tokens) == {"input_audio": 8, "input_image": 2}
    # 8 audio tokens x 10 + 2 image tokens x 0.15 (no image rate, so the input
    # rate) + 1 output token x 0.60 = 80 + 0.3 + 0.6 = 80.9 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.0000809")
    assert record.fault is not None
    assert "input_tokens=10" in record.fault


def test_record_by_hand_accepts_tokens_besides_total(
    provider: ProviderPlugin,
) -> None:
    usage = llmfy_usage_tracker()

    record = usage.record(
        "openai",
        "gpt-4o-mini",
        10,
        1,
        other_tokens={"image_generation_input": 500},
    )

    assert record.usage.other_tokens["image_generation_input"] == 500
    assert usage.request_count == 1


def test_total_cost_has_no_trailing_zeros(provider: ProviderPlugin) -> None:
    with llmfy_usage_tracker() as usage:
        send()

    assert str(usage.records[0].cost.total) == "0.0000108"  # type: ignore[union-attr]
    assert usage.total_cost.as_tuple().exponent == -7


def test_sent_at_in_other_time_zone_stored_as_utc(provider: ProviderPlugin) -> None:
    import datetime as dt

    usage = llmfy_usage_tracker()
    local = dt.datetime(2025, 6, 30, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-1)))

    record = usage.record("openai", "gpt-4o-mini", 1, 1, sent_at=local)

    assert record.sent_at == dt.datetime(2025, 7, 1, 0, 30, tzinfo=dt.UTC)
    assert record.sent_at.tzinfo is dt.UTC


def test_decorator_on_generator_tracks_its_steps(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()

    @usage
    def stream() -> Any:
        send()
        yield 1
        send()
        yield 2

    seen = []
    for item in stream():
        seen.append(item)
        send()  # the caller's code between items is not the generator's

    assert seen == [1, 2]
    assert usage.request_count == 2
    assert active_trackers() == ()


def test_decorator_on_async_generator_tracks_its_steps(
    provider: ProviderPlugin,
) -> None:
    usage = llmfy_usage_tracker()

    @usage
    async def stream() -> Any:
        send()
        yield 1
        await asyncio.sleep(0)
        send()
        yield 2

    async def main() -> list[int]:
        return [item async for item in stream()]

    assert asyncio.run(main()) == [1, 2]
    assert usage.request_count == 2


def test_decorated_generator_closed_early(provider: ProviderPlugin) -> None:
    usage = llmfy_usage_tracker()
    closed = []

    @usage
    def stream() -> Any:
        try:
            send()
            yield 1
            send()
            yield 2
        finally:
            closed.append(True)

    generator = stream()
    assert next(generator) == 1
    generator.close()

    assert closed == [True]
    assert usage.request_count == 1


def test_long_context_request_totals_match_records(provider: ProviderPlugin) -> None:
    from llmfy_core import LongContextTier, Price

    tiered = Price(
        Decimal("2.5"),
        Decimal("15"),
        long_context=(LongContextTier(272_000, Price(Decimal(5), Decimal("22.5"))),),
    )
    provider.prices["tiered"] = tiered

    with llmfy_usage_tracker() as usage:
        first = usage.record("openai", "tiered", 300_000, 1_000)
        second = usage.record("openai", "tiered", 1_000, 1_000)

    # Above the tier: 300000 * 5 + 1000 * 22.5 = 1522500 per million = 1.5225.
    # Below it: 1000 * 2.5 + 1000 * 15 = 17500 per million = 0.0175.
    assert first.cost is not None
    assert first.cost.total == Decimal("1.5225")
    assert second.cost is not None
    assert second.cost.total == Decimal("0.0175")
    assert usage.total_cost == Decimal("1.54")
    assert usage.to_dict()["totals"]["cost_usd"] == "1.54"


def test_reentrant_recording_is_queued_not_lost(provider: ProviderPlugin) -> None:
    # A stream finalizer run by garbage collection can record while the same
    # thread is folding the tracker's queue under its lock; model it by
    # recording from inside the fold, whichever way the request is stored.
    from llmfy_core import ledger

    usage = llmfy_usage_tracker()
    nested = []

    def recording_again(original: Any) -> Any:
        def fold_and_record_again(self: Any, *args: Any) -> None:
            if not nested:
                nested.append(True)
                usage.add_usage(Usage("openai", "gpt-4o-mini", 107, 3))
            original(self, *args)

        return fold_and_record_again

    with pytest.MonkeyPatch.context() as patch:
        for name in ("_fold_batch", "_fold_entry"):
            original = getattr(ledger.Ledger, name)
            patch.setattr(ledger.Ledger, name, recording_again(original))
        usage.record("openai", "gpt-4o-mini", 60, 3)
        # Reading the totals folds the queue.
        assert usage.request_count == 2

    assert nested == [True]
    assert usage.input_tokens == 167
    # 167 * 0.15 + 6 * 0.60 = 28.65 per million
    assert usage.total_cost == Decimal("0.00002865")


class FakeStream:
    """A plugin's stream watch: `done` once its request is recorded."""

    def __init__(self) -> None:
        self.done = False


def test_open_streams_counted_until_done() -> None:
    with llmfy_usage_tracker() as outer, llmfy_usage_tracker() as inner:
        finished, dropped, pending = FakeStream(), FakeStream(), FakeStream()
        for stream in (finished, dropped, pending):
            watch_stream(stream, [outer, inner])
        finished.done = True
        del dropped
        gc.collect()

    assert outer.open_streams == 1
    assert inner.open_streams == 1
    pending.done = True
    assert outer.open_streams == 0


def test_recorded_streams_pruned() -> None:
    with llmfy_usage_tracker() as usage:
        streams = [FakeStream() for _ in range(300)]
        for number, stream in enumerate(streams):
            watch_stream(stream, [usage])
            # Every stream but each hundredth is recorded before the next starts.
            stream.done = number % 100 != 0

    assert usage.open_streams == 3
    assert len(usage.open_stream_references) < 100


def test_streams_watched_from_threads_all_listed() -> None:
    streams = [[FakeStream() for _ in range(5_000)] for _ in range(8)]

    with llmfy_usage_tracker() as usage:

        def watch_all(batch: list[FakeStream]) -> None:
            for stream in batch:
                watch_stream(stream, [usage])

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(watch_all, streams))

    assert usage.open_streams == 8 * 5_000


def test_unwatchable_stream_logged(caplog: pytest.LogCaptureFixture) -> None:
    # object() takes no weak reference, so no tracker can watch it: the
    # failure is logged and nothing is raised to the caller.
    with llmfy_usage_tracker() as usage:
        watch_stream(object(), [usage])

    assert usage.open_streams == 0
    assert "failed to watch a stream" in caplog.text


class FakePending:
    """A plugin's background request: settles once none of its trackers is active."""

    def __init__(self, trackers: list[llmfy_core.UsageTracker]) -> None:
        self.trackers = trackers
        self.done = False
        self.settle_calls = 0

    def settle(self) -> None:
        self.settle_calls += 1
        if not any(tracker.active for tracker in self.trackers):
            self.done = True


def test_pending_requests_settled_when_trackers_end() -> None:
    with llmfy_usage_tracker() as outer:
        with llmfy_usage_tracker() as inner:
            pending = FakePending([outer, inner])
            watch_pending(pending, pending.trackers)
            listed_inside = (outer.pending_requests, inner.pending_requests)
        calls_after_inner = pending.settle_calls
        pending_after_inner = outer.pending_requests

    assert listed_inside == (1, 1)
    assert calls_after_inner == 1
    assert pending_after_inner == 1
    assert pending.settle_calls == 2
    assert pending.done
    assert outer.pending_requests == 0
    assert inner.pending_requests == 0


def test_pending_request_of_ended_tracker_settled_at_once() -> None:
    with llmfy_usage_tracker() as usage:
        pass
    pending = FakePending([usage])

    watch_pending(pending, [usage])

    assert pending.settle_calls == 1
    assert pending.done
    assert usage.pending_requests == 0


def test_pending_requests_in_report() -> None:
    with llmfy_usage_tracker() as usage:
        pending = FakePending([usage])
        watch_pending(pending, [usage])
        report = str(usage)
        data = usage.to_dict()

    assert "Pending Requests: 1 (not counted yet" in report
    assert data["pending_requests"] == 1
    assert usage.to_dict()["pending_requests"] == 0


class ListedModels(ProviderPlugin):
    """A provider plugin that lists its models, with no batch prices."""

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        return [
            CatalogEntry(self.provider, PriceKey(model), price)
            for model, price in self.prices.items()
        ]

    @hookimpl
    def price_lookup(self, provider: str, model: str, batch: bool) -> Price | None:
        return None if batch else super().price_lookup(provider, model)


@pytest.mark.parametrize(
    ("model", "batch", "suggestion"),
    [
        ("comand-r", False, "Did you mean 'command-r'?"),
        # Listed: only the batch price is missing, so nothing is suggested.
        ("command-r", True, None),
    ],
)
def test_unpriced_warning_suggests_misspelt_only(
    model: str, batch: bool, suggestion: str | None
) -> None:
    price = Price(Decimal(1), Decimal(1))
    plugin = ListedModels("acme", {"command-r": price, "command-a": price})
    llmfy_core.register_plugin(plugin, "acme-listed")

    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record("acme", model, 10, 10, batch=batch)

    message = str(warned[0].message)
    if suggestion is None:
        assert "Did you mean" not in message
    else:
        assert suggestion in message


class CatalogOnly:
    """A pricing plugin that only lists prices, of one provider."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    @hookimpl
    def price_catalog(self, provider: str | None) -> list[CatalogEntry]:
        price = Price(Decimal(1), Decimal(1))
        return [CatalogEntry(self.provider, PriceKey("listed-model"), price)]


def unpriced_warning(provider: str, model: str = "some-model") -> str:
    """Record one request by hand and return the PricingWarning's message."""
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record(provider, model, 10, 10)

    assert len(warned) == 1
    return str(warned[0].message)


def test_unpriced_warning_offers_existing_keyword(provider: ProviderPlugin) -> None:
    message = unpriced_warning("openai")
    # The keyword the warning offers is accepted.
    table = {"some-model": {"input": 1, "output": 1}}

    with llmfy_usage_tracker(openai_pricing=table) as usage:
        usage.record("openai", "some-model", 10, 10)

    assert "llmfy_usage_tracker(openai_pricing={'some-model'" in message
    assert usage.cost_complete


def test_unpriced_bedrock_warning_nests_region() -> None:
    # The installed llmfy-bedrock plugin reads bedrock_pricing= tables.
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record("bedrock", "acme.unlisted-v1:0", 10, 10, region="us-east-1")
    message = str(warned[0].message)
    table = {"acme.unlisted-v1:0": {"us-east-1": {"input": 1, "output": 1}}}

    with llmfy_usage_tracker(bedrock_pricing=table) as priced:
        priced.record("bedrock", "acme.unlisted-v1:0", 10, 10, region="us-east-1")

    assert (
        "bedrock_pricing={'acme.unlisted-v1:0': {'us-east-1': {'input': ..., "
        "'output': ...}}}) in USD per 1,000 tokens" in message
    )
    assert priced.cost_complete


def test_unpriced_openai_warning_gives_unit() -> None:
    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record("openai", "acme-unlisted", 10, 10)

    message = str(warned[0].message)
    assert "openai_pricing={'acme-unlisted': {'input': ..., 'output': ...}})" in message
    assert "in USD per 1,000,000 tokens" in message


def test_unpriced_warning_names_unloaded_provider_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMFY_PLUGINS", "bedrock")
    llmfy_core.load_plugins()

    message = unpriced_warning("openai", "gpt-4o-mini")

    assert "The llmfy-openai plugin, which prices openai models, is not loaded" in (
        message
    )
    assert "`pip install ./plugins/openai`" in message


def test_unpriced_warning_no_keyword_names_price_file(
    provider: ProviderPlugin,
) -> None:
    message = unpriced_warning("mistral")

    with pytest.raises(UnknownProviderError):
        llmfy_usage_tracker(mistral_pricing={"some-model": {"input": 1, "output": 1}})
    assert "llmfy_usage_tracker(mistral_pricing" not in message
    assert "No installed plugin reads mistral_pricing= tables" in message
    assert "price file (llmfy-pricing-file)" in message
    assert "Did you mean" not in message


@pytest.mark.parametrize(
    ("misspelt", "meant"),
    [
        # openai is instrumented by the test provider plugin.
        ("opeani", "openai"),
        # mistral has prices listed by a pricing plugin only.
        ("mistrla", "mistral"),
    ],
)
def test_unpriced_warning_flags_misspelt_provider(
    provider: ProviderPlugin, misspelt: str, meant: str
) -> None:
    llmfy_core.register_plugin(CatalogOnly("mistral"), "mistral-catalog")

    message = unpriced_warning(misspelt, "gpt-4o-mini")

    assert f"Did you mean provider {meant!r}?" in message
    assert f"llmfy_usage_tracker({misspelt}_pricing" not in message


def test_unpriced_misspelt_provider_advice(provider: ProviderPlugin) -> None:
    message = unpriced_warning("OpenAI", "gpt-4o-mini")

    assert "Did you mean provider 'openai'?" in message
    assert "Name the provider 'openai'" in message
    assert "No installed plugin reads OpenAI_pricing= tables" not in message


def test_missing_rate_warning_no_keyword(provider: ProviderPlugin) -> None:
    class MistralPrices:
        @hookimpl
        def price_lookup(self, provider: str) -> Price | None:
            return Price(Decimal(1), Decimal(1)) if provider == "mistral" else None

    llmfy_core.register_plugin(MistralPrices(), "mistral-prices")

    with llmfy_usage_tracker() as usage:
        with pytest.warns(PricingWarning) as warned:
            usage.record("mistral", "voxtral", 10, 10, other_tokens={"input_audio": 5})

    message = str(warned[0].message)
    assert "has no 'input_audio' rate" in message
    assert "mistral_pricing=," not in message
    assert "the `other` rates of the Price" in message
