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
from collections.abc import Mapping

import attrs

from llmfy_core.errors import PricingWarning, warn_in_setup
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.pricing import likely_typo
from llmfy_core.resolver import invalidate_price_cache

logger = get_logger("llmfy.bedrock")

GLOBAL_SCOPE = "global"

# Prefixes of system-defined cross-region inference profiles.
PROFILE_PREFIXES = frozenset({"us", "eu", "apac", "jp", "au", "us-gov", "ca", "global"})

_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:(?P<region>[a-z0-9-]*):(?P<account>\d*):"
    r"(?P<kind>[a-z-]+)/(?P<name>.+)$"
)
_VERSION_SUFFIX = re.compile(r"(-v\d+)?(:\d+)?$")
# A foundation-model id: the provider, a dot and the model's name, such as
# `anthropic.claude-3-haiku-20240307-v1:0` or `amazon.titan-embed-text-v1`.
_FOUNDATION_MODEL_ID = re.compile(r"^[a-z0-9-]+\.[A-Za-z0-9][A-Za-z0-9._:-]*$")
# The ids and ARNs that `register_profile_model` accepts as the source of an
# application inference profile, as its error messages list them.
_COPY_SOURCES = (
    "a foundation-model id such as 'anthropic.claude-sonnet-4-5-20250929-v1:0', "
    "a cross-region inference profile id such as "
    "'us.anthropic.claude-sonnet-4-5-20250929-v1:0' or "
    "'global.anthropic.claude-sonnet-4-5-20250929-v1:0', or the ARN of either"
)
# The resource named by each kind of ARN that names no foundation model, as
# error messages describe it.
_NOT_A_MODEL = {
    "application-inference-profile": "another application inference profile",
    "provisioned-model": "a provisioned-throughput model",
    "custom-model": "a custom or imported model",
    "other": "a Bedrock resource that is not a model",
}


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
_profile_lock = new_lock()


def register_profile_model(profile_arn: str, model_id: str) -> None:
    """Name the model that an application inference profile was copied from.

    Bedrock's responses do not name the model of an application inference
    profile, so its requests stay unpriced until the model is known.
    `model_id` is the id or ARN the profile was created from: a foundation
    model, or a system-defined cross-region inference profile (`us.`, `eu.`,
    `global.`, ...). After this call the profile's requests are priced as
    requests for `model_id` in the profile's Region: at the global rate when
    it is a `global.` profile, at the Region's rate otherwise. Trackers that
    priced the profile before price it again.

    Raises ValueError when `profile_arn` is not an application inference
    profile ARN, or when `model_id` is not a model id or ARN that names a
    foundation model. Warns with `PricingWarning` when the bundled table has
    no price for the model.
    """
    _check_profile_arn(profile_arn, model_id)
    copied = _check_copy_source(profile_arn, model_id)
    with _profile_lock:
        _profile_models[profile_arn] = model_id
    invalidate_price_cache()
    _warn_if_unpriced(profile_arn, model_id, copied)


def _check_profile_arn(profile_arn: object, model_id: object) -> None:
    kind = None
    if isinstance(profile_arn, str):
        kind = parse_model_id(profile_arn).kind
    if kind is not ModelKind.APPLICATION_INFERENCE_PROFILE:
        raise ValueError(
            f"Invalid application inference profile ARN {profile_arn!r} (registered "
            f"as a copy of {model_id!r}): pass the profile's ARN, such as "
            "'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/"
            "a1b2c3d4e5f6'."
        )


def _check_copy_source(profile_arn: str, model_id: object) -> str:
    """Return the foundation-model id in `model_id`, or raise ValueError."""
    if not isinstance(model_id, str):
        raise ValueError(
            f"Invalid model id {model_id!r} for application inference profile "
            f"{profile_arn!r}: expected a str, got {type(model_id).__name__}. "
            f"Pass {_COPY_SOURCES}."
        )
    ref = parse_model_id(model_id)
    if ref.base_model is None:
        raise ValueError(
            f"Invalid model id {model_id!r} for application inference profile "
            f"{profile_arn!r}: it is the ARN of {_NOT_A_MODEL[ref.kind.value]}, "
            f"not of a foundation model to price the profile by. Pass "
            f"{_COPY_SOURCES}. To price the profile at a rate of your own, key "
            "llmfy_usage_tracker(bedrock_pricing=...) by its ARN."
        )
    if _FOUNDATION_MODEL_ID.match(ref.base_model) is None:
        hint = ""
        if model_id.startswith("claude-"):
            hint = f" For this model that is 'anthropic.{model_id}'."
        raise ValueError(
            f"Invalid model id {model_id!r} for application inference profile "
            f"{profile_arn!r}: it is not a Bedrock model id or ARN. Pass "
            f"{_COPY_SOURCES}.{hint}"
        )
    return ref.base_model


def _warn_if_unpriced(profile_arn: str, model_id: str, base_model: str) -> None:
    """Warn when the bundled table has no price for the model a profile copies."""
    from llmfy_bedrock.prices import bundled_table

    table = bundled_table()
    if table.known_model(base_model) is not None:
        return
    meant = likely_typo(base_model, table.model_ids())
    hint = "" if meant is None else f" Did you mean {meant!r}?"
    message = (
        f"The bundled Bedrock table has no price for {model_id!r}, registered as "
        f"the model of application inference profile {profile_arn!r}.{hint} "
        "Requests through the profile stay unpriced unless "
        "llmfy_usage_tracker(bedrock_pricing=...), a price file or a pricing plugin "
        "prices the model, or bedrock_pricing= prices the profile."
    )
    logger.warning("%s", message)
    warn_in_setup(PricingWarning(message))


def profile_models() -> Mapping[str, str]:
    """Return the registered application-profile-to-model mapping."""
    return dict(_profile_models)


def registered_profile_model(profile_arn: str) -> str | None:
    """Return the model registered for an application inference profile, if any."""
    return _profile_models.get(profile_arn)
