"""Section 1: the cost of recording one response that has already arrived.

llmfy reads the usage, looks the price up, computes the cost and adds the
request to the active tracker through `llmfy_core.recording.record_response`.
Each alternative does its nearest equivalent, with its inputs built once
before the timed loop. The candidates run in interleaved rounds, so that a
change in machine load hits all of them alike. The figure is the median over
rounds of the mean time per call. `--profile` also prints where llmfy spends
its time.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import io
import pstats
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import benchkit
from benchkit import progress

warnings.simplefilter("ignore")

RoundFactory = Callable[[], contextlib.AbstractContextManager[Callable[[], Any]]]


class Candidate:
    """One library's way to count a request, timed in rounds."""

    def __init__(
        self,
        library: str,
        call: str,
        start_round: RoundFactory,
        cost: str | None,
        note: str = "",
    ) -> None:
        self.library = library
        self.call = call
        self.start_round = start_round
        self.cost = cost
        self.note = note
        self.samples: list[float] = []
        self.count = 0


def plain_round(call: Callable[[], Any]) -> RoundFactory:
    """Return a round factory that times `call` with no per-round state."""

    @contextlib.contextmanager
    def start() -> Iterator[Callable[[], Any]]:
        yield call

    return start


def decimal_text(value: Any) -> str:
    """Format a cost in USD with up to 10 significant digits."""
    return format(Decimal(str(value)).normalize(), "f")


# llmfy


def llmfy_candidates(case: str) -> list[Candidate]:
    """Return the llmfy candidates for `case` ("openai" or "bedrock")."""
    from llmfy import CallContext, active_trackers, llmfy_usage_tracker
    from llmfy_core.recording import (
        extract_usage,
        record_response,
        record_usage,
        usage_reader,
    )

    response, context = llmfy_inputs(case)

    def tracked_round(
        keep_requests: bool, context_per_call: bool, sent_given: bool = True
    ) -> RoundFactory:
        @contextlib.contextmanager
        def start() -> Iterator[Callable[[], Any]]:
            with llmfy_usage_tracker(keep_requests=keep_requests):
                trackers = active_trackers()
                # The instrumentation reads `time.time_ns()` as it sends the
                # request and passes it: that read is part of the SDK call.
                sent_at = time.time_ns() if sent_given else None
                if context_per_call:
                    fields = (
                        context.provider,
                        context.operation,
                        context.model,
                        context.region,
                    )
                    headers = context.headers
                    yield lambda: record_response(
                        response,
                        CallContext(*fields, headers=headers),
                        trackers,
                        sent_at,
                    )
                else:
                    yield lambda: record_response(response, context, trackers, sent_at)

        return start

    with llmfy_usage_tracker() as usage:
        record_response(response, context, active_trackers())
    cost = decimal_text(usage.total_cost) if usage.cost_complete else None

    def extract_only() -> Any:
        return extract_usage(response, context)

    usage_object = extract_only()
    reader = usage_reader(context.provider, type(response))
    if reader is None:
        raise RuntimeError(f"no usage reader for {type(response).__name__}")

    def read_only() -> Any:
        return reader(response, context)

    @contextlib.contextmanager
    def record_usage_round() -> Iterator[Callable[[], Any]]:
        with llmfy_usage_tracker():
            trackers = active_trackers()
            yield lambda: record_usage(usage_object, trackers)

    return [
        Candidate(
            "llmfy",
            "record_response (keeps every request)",
            tracked_round(True, False),
            cost,
            "given the send time, as the instrumentation passes it",
        ),
        Candidate(
            "llmfy",
            "record_response, keep_requests=False",
            tracked_round(False, False),
            cost,
        ),
        Candidate(
            "llmfy",
            "record_response, sent_at=None",
            tracked_round(True, False, sent_given=False),
            cost,
            "reads the clock itself, as when a caller passes no send time",
        ),
        Candidate(
            "llmfy",
            "record_response + CallContext(...) per call",
            tracked_round(True, True),
            cost,
            "the context is built per request, as the instrumentation does",
        ),
        Candidate(
            "llmfy (part)",
            "usage reader only",
            plain_round(read_only),
            None,
            "part of record_response: the plugin's llmfy_usage_reader function",
        ),
        Candidate(
            "llmfy (full path)",
            "extract_usage only",
            plain_round(extract_only),
            None,
            "the usage_extract hook, as for a type's first response",
        ),
        Candidate(
            "llmfy (full path)",
            "record_usage only",
            record_usage_round,
            cost,
            "price lookup and totals for a Usage, as for a type's first response",
        ),
    ]


def llmfy_inputs(case: str) -> tuple[Any, Any]:
    """Return the response object and the `CallContext` for `case`.

    The context carries the response headers that the instrumentation
    passes: the request id for OpenAI, botocore's HTTP headers for Bedrock.
    """
    from llmfy import CallContext

    if case == "openai":
        from openai.types.chat import ChatCompletion

        response = ChatCompletion.model_validate(benchkit.openai_chat_body())
        return response, CallContext(
            "openai",
            "chat.completions",
            benchkit.OPENAI_MODEL,
            headers={"x-request-id": benchkit.OPENAI_REQUEST_ID},
        )
    response = benchkit.bedrock_converse_response()
    context = CallContext(
        "bedrock",
        "Converse",
        benchkit.BEDROCK_MODEL,
        benchkit.BEDROCK_REGION,
        headers=MappingProxyType(response["ResponseMetadata"]["HTTPHeaders"]),
    )
    return response, context


# Alternatives


def genai_prices_candidate(case: str) -> Candidate:
    """Return genai-prices' `calc_price` on a usage built once."""
    import genai_prices

    if case == "openai":
        usage = genai_prices.Usage(
            input_tokens=benchkit.OPENAI_INPUT_TOKENS,
            cache_read_tokens=benchkit.OPENAI_CACHED_TOKENS,
            output_tokens=benchkit.OPENAI_OUTPUT_TOKENS,
        )
        model, provider = benchkit.OPENAI_MODEL, "openai"
    else:
        usage = genai_prices.Usage(
            input_tokens=benchkit.BEDROCK_ALL_INPUT_TOKENS,
            cache_read_tokens=benchkit.BEDROCK_CACHE_READ_TOKENS,
            cache_write_tokens=benchkit.BEDROCK_CACHE_WRITE_TOKENS,
            output_tokens=benchkit.BEDROCK_OUTPUT_TOKENS,
        )
        model, provider = benchkit.BEDROCK_MODEL, "aws"

    def call() -> Any:
        return genai_prices.calc_price(usage, model, provider_id=provider)

    return Candidate(
        "genai-prices",
        "calc_price(Usage, model, provider_id=...)",
        plain_round(call),
        decimal_text(call().total_price),
        "price and cost only: the usage is built before the loop",
    )


def litellm_candidates(case: str) -> list[Candidate]:
    """Return litellm's `cost_per_token` and `completion_cost`."""
    import litellm

    if case == "openai":
        from openai.types.chat import ChatCompletion

        model = benchkit.OPENAI_MODEL
        tokens = {
            "prompt_tokens": benchkit.OPENAI_INPUT_TOKENS,
            "completion_tokens": benchkit.OPENAI_OUTPUT_TOKENS,
            "cache_read_input_tokens": benchkit.OPENAI_CACHED_TOKENS,
        }
        response: Any = ChatCompletion.model_validate(benchkit.openai_chat_body())
        response_note = "given the same openai ChatCompletion object"
    else:
        from litellm.types.utils import Usage as LitellmUsage

        model = "bedrock/" + benchkit.BEDROCK_MODEL
        tokens = {
            "prompt_tokens": benchkit.BEDROCK_ALL_INPUT_TOKENS,
            "completion_tokens": benchkit.BEDROCK_OUTPUT_TOKENS,
            "cache_read_input_tokens": benchkit.BEDROCK_CACHE_READ_TOKENS,
            "cache_creation_input_tokens": benchkit.BEDROCK_CACHE_WRITE_TOKENS,
        }
        response = litellm.ModelResponse(
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Paris."},
                    "finish_reason": "stop",
                }
            ],
            usage=LitellmUsage(
                prompt_tokens=tokens["prompt_tokens"],
                completion_tokens=tokens["completion_tokens"],
                total_tokens=tokens["prompt_tokens"] + tokens["completion_tokens"],
                cache_read_input_tokens=tokens["cache_read_input_tokens"],
                cache_creation_input_tokens=tokens["cache_creation_input_tokens"],
            ),
        )
        response_note = "given the ModelResponse litellm returns for Converse"

    def per_token() -> Any:
        return litellm.cost_per_token(model=model, **tokens)

    def completion() -> Any:
        return litellm.completion_cost(completion_response=response)

    return [
        Candidate(
            "litellm",
            "cost_per_token(model, tokens...)",
            plain_round(per_token),
            decimal_text(sum(per_token())),
            "price and cost only: the token counts are given",
        ),
        Candidate(
            "litellm",
            "completion_cost(response)",
            plain_round(completion),
            decimal_text(completion()),
            response_note,
        ),
    ]


def tokencost_candidate(case: str) -> Candidate:
    """Return tokencost's `calculate_cost_by_tokens`, once per token kind."""
    import tokencost

    if case == "openai":
        model = benchkit.OPENAI_MODEL
        plain = benchkit.OPENAI_INPUT_TOKENS - benchkit.OPENAI_CACHED_TOKENS
        cached = benchkit.OPENAI_CACHED_TOKENS
        output = benchkit.OPENAI_OUTPUT_TOKENS
        note = "three calls: input, cached, output"
    else:
        model = benchkit.BEDROCK_MODEL
        # tokencost has no cache-write token type: those tokens go at the
        # input rate, which undercounts them.
        plain = benchkit.BEDROCK_INPUT_TOKENS + benchkit.BEDROCK_CACHE_WRITE_TOKENS
        cached = benchkit.BEDROCK_CACHE_READ_TOKENS
        output = benchkit.BEDROCK_OUTPUT_TOKENS
        note = "three calls; no cache-write type, so writes go at the input rate"
    cost_by_tokens = tokencost.calculate_cost_by_tokens

    def call() -> Any:
        return (
            cost_by_tokens(plain, model, "input")
            + cost_by_tokens(cached, model, "cached")
            + cost_by_tokens(output, model, "output")
        )

    return Candidate(
        "tokencost",
        "calculate_cost_by_tokens x3",
        plain_round(call),
        decimal_text(call()),
        note,
    )


def langchain_result(case: str) -> Any:
    """Return the `LLMResult` a LangChain chat model produces for `case`."""
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    if case == "openai":
        usage_metadata = {
            "input_tokens": benchkit.OPENAI_INPUT_TOKENS,
            "output_tokens": benchkit.OPENAI_OUTPUT_TOKENS,
            "total_tokens": benchkit.OPENAI_INPUT_TOKENS
            + benchkit.OPENAI_OUTPUT_TOKENS,
            "input_token_details": {"cache_read": benchkit.OPENAI_CACHED_TOKENS},
            "output_token_details": {"reasoning": 0},
        }
        model = benchkit.OPENAI_SERVED_MODEL
        llm_output = {
            "token_usage": {
                "prompt_tokens": benchkit.OPENAI_INPUT_TOKENS,
                "completion_tokens": benchkit.OPENAI_OUTPUT_TOKENS,
            },
            "model_name": model,
        }
    else:
        usage_metadata = {
            "input_tokens": benchkit.BEDROCK_ALL_INPUT_TOKENS,
            "output_tokens": benchkit.BEDROCK_OUTPUT_TOKENS,
            "total_tokens": benchkit.BEDROCK_ALL_INPUT_TOKENS
            + benchkit.BEDROCK_OUTPUT_TOKENS,
            "input_token_details": {
                "cache_read": benchkit.BEDROCK_CACHE_READ_TOKENS,
                "cache_creation": benchkit.BEDROCK_CACHE_WRITE_TOKENS,
            },
        }
        model = benchkit.BEDROCK_MODEL
        llm_output = {
            "usage": {
                "prompt_tokens": benchkit.BEDROCK_ALL_INPUT_TOKENS,
                "completion_tokens": benchkit.BEDROCK_OUTPUT_TOKENS,
                "total_tokens": usage_metadata["total_tokens"],
            },
            "model_id": model,
        }
    message = AIMessage(
        content="Paris is the capital of France.",
        usage_metadata=usage_metadata,
        response_metadata={"model_name": model},
    )
    return LLMResult(
        generations=[[ChatGeneration(message=message)]], llm_output=llm_output
    )


def langchain_core_candidate(case: str) -> Candidate:
    """Return langchain-core's `UsageMetadataCallbackHandler.on_llm_end`."""
    from langchain_core.callbacks import UsageMetadataCallbackHandler

    result = langchain_result(case)

    @contextlib.contextmanager
    def start() -> Iterator[Callable[[], Any]]:
        handler = UsageMetadataCallbackHandler()
        yield lambda: handler.on_llm_end(result)

    return Candidate(
        "langchain-core",
        "UsageMetadataCallbackHandler.on_llm_end",
        start,
        None,
        "token counts only, no price or cost",
    )


def langchain_community_candidate(case: str) -> Candidate:
    """Return langchain-community's cost callback for `case`."""
    if case == "openai":
        from langchain_community.callbacks.openai_info import (
            OpenAICallbackHandler as Handler,
        )

        call_name = "OpenAICallbackHandler.on_llm_end"
        note = "reads the LLMResult's usage_metadata; prices cached tokens"
    else:
        from langchain_community.callbacks.bedrock_anthropic_callback import (
            BedrockAnthropicTokenUsageCallbackHandler as Handler,
        )

        call_name = "BedrockAnthropicTokenUsageCallbackHandler.on_llm_end"
        note = "prices no cache tokens: all input at the input rate"
    result = langchain_result(case)

    @contextlib.contextmanager
    def start() -> Iterator[Callable[[], Any]]:
        handler = Handler()
        yield lambda: handler.on_llm_end(result)

    probe = Handler()
    probe.on_llm_end(result)
    return Candidate(
        "langchain-community",
        call_name,
        start,
        decimal_text(probe.total_cost),
        note,
    )


def alternative_candidates(case: str) -> list[Candidate]:
    """Return every alternative that is installed; report the missing ones."""
    builders: list[Callable[[str], Candidate | list[Candidate]]] = [
        genai_prices_candidate,
        litellm_candidates,
        tokencost_candidate,
        langchain_core_candidate,
        langchain_community_candidate,
    ]
    candidates: list[Candidate] = []
    for build in builders:
        try:
            built = build(case)
        except ImportError as error:
            progress(f"skipped {build.__name__}: {error}")
            continue
        candidates.extend(built if isinstance(built, list) else [built])
    return candidates


def pluggy_reference() -> Candidate:
    """Return one pluggy `firstresult` hook call with one implementation.

    The call measures the machine's speed, because the 2 µs target was set
    on a machine where it took about 1.5 µs.
    """
    import pluggy

    spec_marker = pluggy.HookspecMarker("bench")
    impl_marker = pluggy.HookimplMarker("bench")

    class Specs:
        @spec_marker(firstresult=True)
        def price_lookup(self, provider: str, model: str, region: str | None) -> Any:
            """Return a price."""

    class Implementation:
        @impl_marker
        def price_lookup(self, provider: str, model: str, region: str | None) -> Any:
            return model

    manager = pluggy.PluginManager("bench")
    manager.add_hookspecs(Specs)
    manager.register(Implementation())
    hook = manager.hook.price_lookup

    def call() -> Any:
        return hook(provider="openai", model="gpt-4o-mini", region=None)

    return Candidate(
        "(reference)",
        "pluggy firstresult hook call",
        plain_round(call),
        None,
        "one implementation, three arguments",
    )


# Running


def run_case(case: str, rounds: int, round_seconds: float) -> dict[str, Any]:
    """Time every candidate for one response kind and return the rows."""
    progress(f"recording one {case} response: preparing the candidates")
    candidates = llmfy_candidates(case) + alternative_candidates(case)
    baseline = Candidate("(loop)", "lambda: None", plain_round(lambda: None), None)
    candidates.extend((pluggy_reference(), baseline))

    for candidate in candidates:
        with candidate.start_round() as call:
            candidate.count = benchkit.calibrate(call, round_seconds)
    # With the alternatives imported, the collector tracks about half a million
    # objects. Freezing them keeps each collection short, for every candidate.
    benchkit.full_collect()
    gc.freeze()
    for number in range(rounds):
        gc.collect()
        for candidate in candidates:
            with candidate.start_round() as call:
                candidate.samples.append(benchkit.time_round_us(call, candidate.count))
        progress(f"{case}: round {number + 1}/{rounds} done")

    rows = []
    for candidate in candidates:
        rows.append(
            {
                "library": candidate.library,
                "call": candidate.call,
                "cost_usd": candidate.cost,
                "note": candidate.note,
                "calls_per_round": candidate.count,
                **benchkit.summarize(candidate.samples),
            }
        )
    return {"rows": rows}


def profile_llmfy(case: str) -> str:
    """Return the top functions by own time while llmfy records 50,000 responses."""
    from llmfy import active_trackers, llmfy_usage_tracker
    from llmfy_core.recording import record_response

    response, context = llmfy_inputs(case)
    profiler = cProfile.Profile()
    with llmfy_usage_tracker():
        trackers = active_trackers()
        sent_at = time.time_ns()
        for _ in range(1000):
            record_response(response, context, trackers, sent_at)
        profiler.enable()
        for _ in range(50_000):
            record_response(response, context, trackers, sent_at)
        profiler.disable()
    output = io.StringIO()
    stats = pstats.Stats(profiler, stream=output)
    stats.sort_stats("tottime").print_stats(18)
    return output.getvalue()


def main() -> None:
    quick = benchkit.quick_mode()
    rounds = 5 if quick else 15
    round_seconds = 0.04 if quick else 0.1
    result: dict[str, Any] = {"rounds": rounds}
    for case in ("openai", "bedrock"):
        result[case] = run_case(case, rounds, round_seconds)
    if "--profile" in sys.argv[1:]:
        for case in ("openai", "bedrock"):
            print(f"\n== llmfy, {case}: cProfile ==\n", file=sys.stderr)
            print(profile_llmfy(case), file=sys.stderr)
    benchkit.emit(result)


if __name__ == "__main__":
    main()
