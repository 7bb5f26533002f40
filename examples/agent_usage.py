"""The documented llmfy example: two agents under one usage tracker.

One agent runs on OpenAI (gpt-4o-mini), the other on Amazon Bedrock (Amazon
Nova Lite, amazon.nova-lite-v1:0, in us-east-1). Each sends one `chat` and
one `invoke` request, so the tracker counts four requests; the script prints
the four answers and the usage report.

Two modes:

- replay (the default): the real `openai` and `boto3` clients talk to a
  local server on 127.0.0.1 that serves responses with the shape and usage
  of recorded API responses (`examples/fixtures/`). No credentials and no
  network are needed.
- live: with `LLMFY_DEMO_LIVE=1`, `OPENAI_API_KEY` and AWS credentials set,
  the script calls the real services. The four requests cost a fraction of
  a cent.

Run it with `scripts/demo`, or `.venv/bin/python examples/agent_usage.py`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping

import boto3
from llmfy_bedrock.agent import BedrockConverseConfig, BedrockConverseModel
from llmfy_openai.agent import OpenAIChatConfig, OpenAIChatModel
from replay_server import ReplayServer, Reply, load_fixture

from llmfy import (
    LLMfy,
    Message,
    ProviderCallError,
    Role,
    UsageTracker,
    llmfy_usage_tracker,
)

LIVE_SWITCH = "LLMFY_DEMO_LIVE"
OPENAI_MODEL = "gpt-4o-mini"
BEDROCK_MODEL = "amazon.nova-lite-v1:0"
BEDROCK_REGION = "us-east-1"

SYSTEM_MESSAGE = "You are a helpful assistant. Use this info: {{info}}"
INFO = (
    "Paris is the capital and most populous city of France, with about 2.1 "
    "million residents in 2023. The Eiffel Tower was completed there in 1889."
)
QUESTION = "What is the capital of France?"
CONTENTS = "When was the Eiffel Tower completed, and how many people live in Paris?"

# The replayed responses, in the order the example sends its requests.
OPENAI_FIXTURES = ("openai-chat-capital.json", "openai-chat-eiffel.json")
BEDROCK_FIXTURES = ("bedrock-converse-capital.json", "bedrock-converse-eiffel.json")

# Placeholder credentials for the replay server, which does not check them.
REPLAY_OPENAI_API_KEY = "sk-llmfy-replay"
REPLAY_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIALLMFYREPLAY00000",
    "AWS_SECRET_ACCESS_KEY": "llmfy-replay-secret",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Removed during a replay run, so that boto3 reads only the placeholders above.
REPLAY_REMOVED_VARIABLES = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def choose_mode(environ: Mapping[str, str]) -> tuple[str, str]:
    """Return `("live" | "replay", reason)` for this environment.

    boto3's credential lookup runs only when the switch is set and
    OPENAI_API_KEY is present, so a default run never looks for AWS credentials.
    """
    if environ.get(LIVE_SWITCH, "").strip() != "1":
        return "replay", f"{LIVE_SWITCH} is not 1"
    if not environ.get("OPENAI_API_KEY", "").strip():
        return "replay", f"{LIVE_SWITCH}=1 but OPENAI_API_KEY is not set"
    if boto3.Session().get_credentials() is None:
        return "replay", f"{LIVE_SWITCH}=1 but no AWS credentials were found"
    return "live", f"{LIVE_SWITCH}=1 and credentials are present"


def build_agents(
    openai_model: OpenAIChatModel, bedrock_model: BedrockConverseModel
) -> list[tuple[str, LLMfy]]:
    """Return the two agents of the example, each with a label to print."""
    return [
        (
            f"OpenAI {openai_model.model}",
            LLMfy(
                openai_model, system_message=SYSTEM_MESSAGE, input_variables=["info"]
            ),
        ),
        (
            f"Bedrock {bedrock_model.model} ({BEDROCK_REGION})",
            LLMfy(
                bedrock_model, system_message=SYSTEM_MESSAGE, input_variables=["info"]
            ),
        ),
    ]


def run_example(agents: list[tuple[str, LLMfy]]) -> UsageTracker:
    """Send `chat` and `invoke` on each agent under one tracker; print the results."""
    messages = [Message(role=Role.USER, content=QUESTION)]
    answers = []
    with llmfy_usage_tracker() as usage:
        for label, agent in agents:
            response_a = agent.chat(messages, info=INFO)
            response_b = agent.invoke(CONTENTS, info=INFO)
            answers.append((label, response_a, response_b))

    for label, response_a, response_b in answers:
        print(f"== {label} ==")
        print(f"\n>> {response_a.result.content}\n")
        print(f"\n>> {response_b.result.content}\n")
    print(f"Usage:\n{usage}\n")
    return usage


def run_live() -> UsageTracker:
    """Run the example against api.openai.com and Bedrock in us-east-1."""
    openai_model = OpenAIChatModel(
        model=OPENAI_MODEL, config=OpenAIChatConfig(temperature=0.7)
    )
    bedrock_model = BedrockConverseModel(
        model=BEDROCK_MODEL,
        config=BedrockConverseConfig(temperature=0.7),
        region_name=BEDROCK_REGION,
    )
    return run_example(build_agents(openai_model, bedrock_model))


def run_replay() -> UsageTracker:
    """Run the example against the local replay server."""
    with ReplayServer() as server, _replay_environment(os.environ):
        for name in OPENAI_FIXTURES:
            server.add(Reply.openai_json(load_fixture(name)))
        for name in BEDROCK_FIXTURES:
            server.add(Reply.bedrock_json(load_fixture(name)))
        print(f"The SDK clients send their requests to {server.url}.\n")
        openai_model = OpenAIChatModel(
            model=OPENAI_MODEL,
            config=OpenAIChatConfig(temperature=0.7),
            base_url=server.openai_base_url,
            api_key=REPLAY_OPENAI_API_KEY,
        )
        bedrock_model = BedrockConverseModel(
            model=BEDROCK_MODEL,
            config=BedrockConverseConfig(temperature=0.7),
            region_name=BEDROCK_REGION,
            endpoint_url=server.url,
        )
        return run_example(build_agents(openai_model, bedrock_model))


@contextlib.contextmanager
def _replay_environment(environ: MutableMapping[str, str]) -> Iterator[None]:
    saved = {
        name: environ.get(name)
        for name in (*REPLAY_AWS_ENVIRONMENT, *REPLAY_REMOVED_VARIABLES)
    }
    environ.update(REPLAY_AWS_ENVIRONMENT)
    for name in REPLAY_REMOVED_VARIABLES:
        environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value


def main() -> int:
    """Run the example in the mode the environment selects; return the exit status."""
    mode, reason = choose_mode(os.environ)
    if mode == "live":
        print(
            f"Mode: live ({reason}). Calling api.openai.com and Amazon Bedrock in "
            f"{BEDROCK_REGION}.\n"
        )
        try:
            run_live()
        except ProviderCallError as error:
            print(f"The live run failed: {error}", file=sys.stderr)
            return 1
        return 0
    print(
        f"Mode: replay ({reason}). A local server replays the responses in "
        "examples/fixtures, written in the shape of recorded API responses, so no "
        "credentials or network are used. Set "
        f"{LIVE_SWITCH}=1 with OPENAI_API_KEY and AWS credentials to call the real "
        "services."
    )
    run_replay()
    return 0


if __name__ == "__main__":
    sys.exit(main())
