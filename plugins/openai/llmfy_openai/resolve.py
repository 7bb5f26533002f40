"""Model id resolution: which price-table ids to try for a model id, in order.

OpenAI bills a dated snapshot (`gpt-4o-mini-2024-07-18`, `gpt-4-0613`) at its
model's price unless the snapshot has a price of its own, and a fine-tuned
model (`ft:gpt-4o-mini-2024-07-18:org::id`) at the fine-tuned price of its
base model, never at the base model's own price. Azure OpenAI deployments have
names their owners chose, and `map_azure_deployments` maps each name to the
model that the deployment runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from llmfy_core.errors import PricingWarning, warn_in_setup
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.pricing import likely_typo
from llmfy_core.resolver import invalidate_price_cache

logger = get_logger("llmfy.openai")

FINE_TUNED_PREFIX = "ft:"

# `-2024-07-18` or `-0613` at the end of a model id.
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")

# Reentrant: a stream finalizer run by garbage collection can resolve too.
_azure_lock = new_lock()
_azure_deployments: dict[str, str] = {}


def map_azure_deployments(deployments: Mapping[str, str]) -> None:
    """Price the named Azure OpenAI deployments as the models they run.

    `deployments` maps a deployment name (the `model=` passed to
    `AzureOpenAI`) to an OpenAI model id, such as `{"prod-chat": "gpt-4o-mini"}`.
    The model that Azure names in a response wins, unless the mapped id
    extends it and so names the model more precisely (`gpt-4-turbo` for a
    response naming `gpt-4`). Raises TypeError when `deployments` is not a
    mapping and ValueError for an empty name. Warns with `PricingWarning` when
    the bundled table has no price for a mapped model id.
    """
    if not isinstance(deployments, Mapping):
        raise TypeError(
            "Invalid Azure deployment mapping: expected a mapping of deployment "
            "name to OpenAI model id, such as {'prod-chat': 'gpt-4o-mini'}, got "
            f"{type(deployments).__name__} {deployments!r}."
        )
    for deployment, model in deployments.items():
        if not isinstance(deployment, str) or not isinstance(model, str):
            raise ValueError(
                f"Invalid Azure deployment mapping {deployment!r}: {model!r}. "
                "Map each deployment name (str) to an OpenAI model id (str)."
            )
        if not deployment or not model:
            raise ValueError(
                f"Invalid Azure deployment mapping {deployment!r}: {model!r}. "
                "Neither the deployment name nor the model id may be empty."
            )
    with _azure_lock:
        _azure_deployments.update(deployments)
    # Trackers price the deployments again, including ones priced before.
    invalidate_price_cache()
    for deployment, model in deployments.items():
        _warn_if_unpriced(deployment, model)


def _warn_if_unpriced(deployment: str, model: str) -> None:
    """Warn when the bundled table has no price for the model of a deployment."""
    # Imported here because llmfy_openai.prices imports this module.
    from llmfy_openai.prices import bundled_model_ids, bundled_price_table

    if bundled_price_table().lookup(model, None, None, False) is not None:
        return
    meant = likely_typo(model, bundled_model_ids())
    hint = "" if meant is None else f" Did you mean {meant!r}?"
    message = (
        f"The bundled OpenAI table has no price for {model!r}, mapped as the model "
        f"of Azure deployment {deployment!r}.{hint} Requests to the deployment "
        "stay unpriced unless llmfy_usage_tracker(openai_pricing=...), a price "
        "file or a pricing plugin prices that model id."
    )
    logger.warning("%s", message)
    warn_in_setup(PricingWarning(message))


def clear_azure_deployments() -> None:
    """Forget every mapping made with `map_azure_deployments`."""
    with _azure_lock:
        _azure_deployments.clear()
    invalidate_price_cache()


def mapped_deployment(deployment: str) -> str | None:
    """Return the model id that `map_azure_deployments` mapped `deployment` to."""
    return _azure_deployments.get(deployment)


def strip_snapshot(model: str) -> str:
    """Return `model` without a trailing snapshot date (`-2024-07-18`, `-0613`)."""
    return _SNAPSHOT_SUFFIX.sub("", model)


def is_fine_tuned(model: str) -> bool:
    """Return whether `model` is fine-tuned (`ft:...` or Azure `...ft-...`)."""
    return model.startswith(FINE_TUNED_PREFIX) or ".ft-" in model


def model_candidates(model: str) -> Iterator[str]:
    """Yield the price-table ids to try for `model`, most specific first.

    The id itself comes first, so that a snapshot with a price of its own wins.
    A fine-tuned id yields only fine-tuned table ids (`ft:<base snapshot>`,
    then `ft:<base model>`). An Azure deployment yields the candidates of the
    model it was mapped to.
    """
    yield model

    if is_fine_tuned(model):
        base = _fine_tuned_base(model)
        yield FINE_TUNED_PREFIX + base
        stripped = strip_snapshot(base)
        if stripped != base:
            yield FINE_TUNED_PREFIX + stripped
        return

    stripped = strip_snapshot(model)
    if stripped != model:
        yield stripped

    target = _azure_deployments.get(model)
    if target is not None and target != model:
        yield from model_candidates(target)


def _fine_tuned_base(model: str) -> str:
    """Return the base snapshot of a fine-tuned id.

    `ft:gpt-4o-mini-2024-07-18:org:name:id` and the Azure form
    `gpt-4o-mini-2024-07-18.ft-abc123` both give `gpt-4o-mini-2024-07-18`.
    """
    if model.startswith(FINE_TUNED_PREFIX):
        return model[len(FINE_TUNED_PREFIX) :].split(":", 1)[0]
    return model.split(".ft-", 1)[0]
