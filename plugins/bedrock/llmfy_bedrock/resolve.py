"""Model id resolution the way AWS bills Bedrock requests.

A Bedrock `modelId` is one of: a foundation-model id such as
`anthropic.claude-3-haiku-20240307-v1:0`; a cross-region inference profile,
which puts `us.`, `eu.`, `apac.`, `jp.`, `au.`, `us-gov.`, `ca.` or `global.`
before the model id; or an ARN. An ARN names a foundation model, an inference
profile, an application inference profile, a provisioned-throughput model or
a custom model.

AWS bills a geographic profile and an in-region call at the rate of the Region the
request was sent to (the source Region), and a `global.` profile at the global
rate where the price list gives one.
"""

from __future__ import annotations

import enum
import functools
import re
import threading
from collections.abc import Mapping

import attrs

from llmfy_core.resolver import invalidate_price_cache

GLOBAL_SCOPE = "global"

# Prefixes of system-defined cross-region inference profiles.
PROFILE_PREFIXES = frozenset({"us", "eu", "apac", "jp", "au", "us-gov", "ca", "global"})

_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:(?P<region>[a-z0-9-]*):(?P<account>\d*):"
    r"(?P<kind>[a-z-]+)/(?P<name>.+)$"
)
_VERSION_SUFFIX = re.compile(r"(-v\d+)?(:\d+)?$")


class ModelKind(enum.Enum):
    """The kind of resource a Bedrock `modelId` names."""

    FOUNDATION_MODEL = "foundation-model"
    INFERENCE_PROFILE = "inference-profile"
    APPLICATION_INFERENCE_PROFILE = "application-inference-profile"
    PROVISIONED_MODEL = "provisioned-model"
    CUSTOM_MODEL = "custom-model"
    OTHER_ARN = "other"


@attrs.frozen(slots=True)
class ModelRef:
    """A parsed Bedrock `modelId`.

    `base_model` is the foundation-model id without a profile prefix, or None when
    the id names no model (an application inference profile, a provisioned or
    custom model). `scope` is the profile prefix (`us`, `global`, ...) or None for
    an in-region call. `arn_region` is the Region written in an ARN.
    """

    model_id: str
    kind: ModelKind
    base_model: str | None
    scope: str | None = None
    arn_region: str | None = None


@functools.lru_cache(maxsize=1024)
def parse_model_id(model_id: str) -> ModelRef:
    """Parse a Bedrock `modelId` (a plain id, a profile id or an ARN)."""
    match = _ARN.match(model_id)
    if match is None:
        base, scope = _split_profile(model_id)
        kind = ModelKind.INFERENCE_PROFILE if scope else ModelKind.FOUNDATION_MODEL
        return ModelRef(model_id, kind, base, scope)

    region = match["region"] or None
    kind_name = match["kind"]
    name = match["name"]
    if kind_name == "foundation-model":
        return ModelRef(model_id, ModelKind.FOUNDATION_MODEL, name, None, region)
    if kind_name == "inference-profile":
        base, scope = _split_profile(name)
        return ModelRef(model_id, ModelKind.INFERENCE_PROFILE, base, scope, region)
    if kind_name == "application-inference-profile":
        kind = ModelKind.APPLICATION_INFERENCE_PROFILE
    elif kind_name == "provisioned-model":
        kind = ModelKind.PROVISIONED_MODEL
    elif kind_name.startswith(("custom-model", "imported-model")):
        kind = ModelKind.CUSTOM_MODEL
    else:
        kind = ModelKind.OTHER_ARN
    return ModelRef(model_id, kind, None, None, region)


def _split_profile(model_id: str) -> tuple[str, str | None]:
    prefix, dot, rest = model_id.partition(".")
    if dot and rest and prefix in PROFILE_PREFIXES and "." in rest:
        return rest, prefix
    return model_id, None


def billing_region(model_id: str | None, client_region: str | None) -> str | None:
    """Return the Region a request is billed in: the ARN's Region, else the client's."""
    if model_id is None or not model_id.startswith("arn:"):
        return client_region
    return parse_model_id(model_id).arn_region or client_region


@functools.lru_cache(maxsize=1024)
def candidate_ids(base_model: str) -> tuple[str, ...]:
    """Return the ids to look a model up by, most specific first.

    The id as given comes first, then the id without its `:N` revision. An
    Anthropic model name without the `anthropic.` vendor prefix (as the
    InvokeModel body reports it) is tried with the prefix too.
    """
    ids = [base_model]
    if base_model.startswith("claude-"):
        ids.append(f"anthropic.{base_model}")
    for model in list(ids):
        without_revision = model.rpartition(":")[0]
        if without_revision and without_revision not in ids:
            ids.append(without_revision)
    return tuple(ids)


def model_stem(model_id: str) -> str:
    """Return a model id without its version suffix (`-v1:0`, `-v2`, `:0`)."""
    return _VERSION_SUFFIX.sub("", model_id)


_profile_models: dict[str, str] = {}
# Reentrant: a stream finalizer run by garbage collection can resolve too.
_profile_lock = threading.RLock()


def register_profile_model(profile_arn: str, model_id: str) -> None:
    """Name the model behind an application inference profile ARN.

    Bedrock's responses do not name the model of an application inference
    profile, so its requests stay unpriced until the model is known. After this
    call they are priced as `model_id` in the profile's Region, also in
    trackers that priced the profile before.
    """
    with _profile_lock:
        _profile_models[profile_arn] = model_id
    invalidate_price_cache()


def profile_models() -> Mapping[str, str]:
    """Return the registered application-profile-to-model mapping."""
    return dict(_profile_models)


def registered_profile_model(profile_arn: str) -> str | None:
    """Return the model registered for an application inference profile, if any."""
    return _profile_models.get(profile_arn)
