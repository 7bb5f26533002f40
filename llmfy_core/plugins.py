"""Plugin discovery and the process-wide plugin manager.

The manager is created on first use, never at import time. Entry points of the
group `llmfy` load one by one, sorted by entry-point name, so that a plugin
that fails to import or to validate is unregistered and reported without
stopping the others.
"""

from __future__ import annotations

import inspect
import itertools
import os
import types
from collections.abc import Collection, Iterable, Iterator, Sequence, Set
from typing import Any, NamedTuple

import pluggy

from llmfy_core import discovery, hookspecs
from llmfy_core.errors import PluginLoadError, PluginWarning, emit_warning
from llmfy_core.locks import new_lock
from llmfy_core.logs import get_logger
from llmfy_core.ranks import PriceRank

logger = get_logger("llmfy.plugins")

ENTRY_POINT_GROUP = "llmfy"
# How to install the provider plugins, for messages that find none: they are
# installed from a checkout of the repository, as the README shows.
PROVIDER_INSTALL_HINT = (
    "from a checkout of the llmfy repository, such as llmfy-openai and "
    "llmfy-bedrock with `pip install ./plugins/openai ./plugins/bedrock`"
)

# The distribution of this repository that counts and prices each provider's calls.
PROVIDER_DISTRIBUTIONS = {"openai": "llmfy-openai", "bedrock": "llmfy-bedrock"}

_TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


class ChangeCounter:
    """A number raised whenever plugins or prices change anywhere in the process.

    The recording path compares it with the value its caches were built at,
    which costs one attribute read per request.
    """

    __slots__ = ("_numbers", "count")

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.count = 0

    def bump(self) -> None:
        """Mark every cache built from plugins or prices as stale.

        Each bump takes a number never used before, so that two threads that
        bump at once still leave a value that no cache was built at.
        """
        self.count = next(self._numbers)


CHANGES = ChangeCounter()


# PluginInfo, LoadOptions and discovery.EntryPoint are named tuples, not attrs
# classes, because creating attrs classes means importing attrs, which costs
# more than everything else that plugin discovery imports.


class PluginInfo(NamedTuple):
    """An llmfy plugin as discovered: where it came from and what it implements.

    `error` is set, and `hooks` empty, when the plugin failed to load.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    price_rank: int | None
    error: str | None = None


class LoadOptions(NamedTuple):
    """How plugins are discovered; `None` fields fall back to the environment.

    `autoload=False` skips entry points entirely; `allow` keeps only the named
    entry points and `block` drops the named ones. A name is an entry-point
    name (`openai`) or a distribution and entry-point name
    (`llmfy-openai:openai`). `strict=True` raises
    `PluginLoadError` for a plugin that fails to load, instead of warning.
    """

    autoload: bool | None = None
    allow: frozenset[str] | None = None
    block: frozenset[str] | None = None
    strict: bool | None = None

    def resolved(self) -> LoadOptions:
        """Fill the unset options from the `LLMFY_*` environment variables."""
        autoload = self.autoload
        if autoload is None:
            disabled = os.environ.get("LLMFY_DISABLE_PLUGIN_AUTOLOAD", "")
            autoload = disabled.strip().lower() not in _TRUE_VALUES
        allow = self.allow
        if allow is None and os.environ.get("LLMFY_PLUGINS", "").strip():
            allow = _split_names(os.environ["LLMFY_PLUGINS"])
        block = self.block
        if block is None:
            block = _split_names(os.environ.get("LLMFY_DISABLED_PLUGINS", ""))
        strict = self.strict
        if strict is None:
            strict = os.environ.get("LLMFY_STRICT_PLUGINS", "").lower() in _TRUE_VALUES
        return LoadOptions(autoload=autoload, allow=allow, block=block, strict=strict)


def _split_names(value: str) -> frozenset[str]:
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def _allow_list_source(options: LoadOptions) -> str:
    """Return where the allow-list came from: `LLMFY_PLUGINS=...` or the argument."""
    variable = os.environ.get("LLMFY_PLUGINS", "").strip()
    if variable and _split_names(variable) == options.allow:
        return f"LLMFY_PLUGINS={variable}"
    return "the allow= argument of llmfy.load_plugins"


def is_allowed(allow: frozenset[str] | None, entry_point: discovery.EntryPoint) -> bool:
    """Return whether the allow-list keeps `entry_point`. None keeps every one."""
    return allow is None or bool(allow & _listed_names(entry_point))


def allowed_names_not_installed(
    allow: frozenset[str] | None, found: Iterable[discovery.EntryPoint]
) -> list[str]:
    """Return the allow-list names that match none of the entry points `found`."""
    if allow is None:
        return []
    matched: set[str] = set()
    for entry_point in found:
        matched |= allow & _listed_names(entry_point)
    return sorted(allow - matched)


def _listed_names(entry_point: discovery.EntryPoint) -> set[str]:
    """Return the names that select `entry_point` in an allow-list or block-list.

    They are the entry-point name (`openai`) and the distribution and
    entry-point name (`llmfy-openai:openai`).
    """
    return {entry_point.name, f"{entry_point.distribution}:{entry_point.name}"}


class PluginRegistry:
    """The plugin manager plus what llmfy knows about each loaded plugin.

    `generation` increases whenever plugins are registered or unregistered, so
    that caches built from the hooks know when to rebuild.
    """

    def __init__(self, options: LoadOptions) -> None:
        self.options = options.resolved()
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.generation = 0
        self._lock = new_lock()

    def load_entry_points(self) -> None:
        """Load every allowed entry point of the group `llmfy`, one at a time."""
        options = self.options
        if not options.autoload:
            logger.debug("plugin autoload is disabled")
            return
        seen: dict[str, str] = {}
        found = _sorted_entry_points()
        for entry_point in found:
            name = entry_point.name
            dist_name, version = entry_point.distribution, entry_point.version
            qualified = f"{dist_name}:{name}"
            if not is_allowed(options.allow, entry_point):
                logger.debug("skipping plugin %s: not in the allow-list", qualified)
                continue
            if options.block and options.block & _listed_names(entry_point):
                logger.debug("skipping plugin %s: in the block-list", qualified)
                continue
            if name in seen:
                self._fail(
                    name,
                    dist_name,
                    version,
                    f"the entry-point name {name!r} is already registered by "
                    f"distribution {seen[name]!r}; rename one of them",
                )
                continue
            seen[name] = dist_name or "?"
            self._load_one(entry_point, dist_name, version)
        for name in allowed_names_not_installed(options.allow, found):
            self._report_not_installed(name, found)

    def _load_one(
        self,
        entry_point: discovery.EntryPoint,
        dist_name: str | None,
        version: str | None,
    ) -> None:
        name = entry_point.name
        logger.debug("loading plugin %s from %s %s", name, dist_name, version)
        try:
            plugin = entry_point.load()
        except Exception as error:
            self._fail(name, dist_name, version, f"import failed: {error!r}")
            return
        try:
            self.register(plugin, name, distribution=dist_name, version=version)
        except Exception as error:
            self._fail(name, dist_name, version, f"registration failed: {error}")

    def register(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Register and validate one plugin, undoing any partial registration.

        Raises `pluggy.PluginValidationError` or `ValueError` when the plugin
        implements an unknown hook, has a bad signature, reuses a name, is a
        class whose hooks need an instance, defines a function named like a
        hook without `@hookimpl`, or declares a `llmfy_price_rank` that is not
        an int.
        """
        with self._lock:
            manager = self.manager
            try:
                _check_not_a_class(plugin, name)
                try:
                    manager.register(plugin, name=name)
                except pluggy.PluginValidationError as error:
                    hint = _spec_arguments_hint(plugin)
                    if not hint:
                        raise
                    message = f"{error}\n{hint}"
                    raise pluggy.PluginValidationError(plugin, message) from error
                unknown = [
                    caller.name
                    for caller in manager.get_hookcallers(plugin) or ()
                    if caller.spec is None and not _is_optional(caller, plugin)
                ]
                if unknown:
                    raise pluggy.PluginValidationError(
                        plugin,
                        f"plugin {name!r} implements unknown hook(s) "
                        f"{', '.join(sorted(unknown))}; the known hooks are "
                        f"{', '.join(_spec_names())}",
                    )
                implemented = {
                    caller.name for caller in manager.get_hookcallers(plugin) or ()
                }
                _check_hooks_marked(plugin, name, implemented)
                _check_price_rank(plugin, name)
            except Exception:
                if manager.is_registered(plugin):
                    manager.unregister(plugin)
                elif manager.get_plugin(name) is plugin:
                    manager.unregister(name=name)
                raise
            hooks = tuple(
                sorted(caller.name for caller in manager.get_hookcallers(plugin) or ())
            )
            self.infos[name] = PluginInfo(
                name=name,
                distribution=distribution,
                version=version,
                hooks=hooks,
                price_rank=price_rank_of(plugin) if "price_lookup" in hooks else None,
            )
            self.generation += 1
            CHANGES.bump()
        logger.debug("registered plugin %s with hooks %s", name, ", ".join(hooks))

    def unregister(self, name: str) -> object | None:
        """Unregister the plugin registered under `name`; return it, or None."""
        with self._lock:
            plugin = self.manager.unregister(name=name)
            self.infos.pop(name, None)
            self.generation += 1
            CHANGES.bump()
        return plugin

    def _report_not_installed(
        self, name: str, found: Sequence[discovery.EntryPoint]
    ) -> None:
        """Warn about an allow-list name that no entry point has, or raise if strict.

        Without this, a misspelt name in `LLMFY_PLUGINS=openai,bedrok` would
        leave Bedrock calls uncounted with no message at all.
        """
        # Imported here: only this error path needs the name suggestions.
        from llmfy_core.pricing import closest_name

        installed = sorted({entry_point.name for entry_point in found})
        close = closest_name(name, installed)
        hint = f" Did you mean {close}?" if close else ""
        message = (
            f"The llmfy plugin allow-list ({_allow_list_source(self.options)}) "
            f"names {name!r}, which no installed entry point has, so no plugin "
            f"of that name was loaded.{hint} Installed entry points: "
            f"{', '.join(installed) or 'none'}. Correct the name, or install the "
            "plugin's distribution."
        )
        if self.options.strict:
            raise PluginLoadError(name, "", message)
        logger.warning("%s", message)
        emit_warning(PluginWarning(message), stacklevel=4)

    def _fail(
        self, name: str, dist_name: str | None, version: str | None, reason: str
    ) -> None:
        dist = f"{dist_name} {version}" if dist_name else "an unknown distribution"
        reason = reason.rstrip(".")
        message = (
            f"llmfy plugin {name!r} (from {dist}) was not loaded: {reason}. "
            "Other plugins keep working. Fix or uninstall the distribution, or "
            f"skip it with LLMFY_DISABLED_PLUGINS={name}."
        )
        self.infos[name] = PluginInfo(
            name=name,
            distribution=dist_name,
            version=version,
            hooks=(),
            price_rank=None,
            error=reason,
        )
        if self.options.strict:
            raise PluginLoadError(name, dist_name or "", message)
        logger.warning("%s", message)
        emit_warning(PluginWarning(message), stacklevel=4)

    def hook_order(self, hook_name: str) -> list[str]:
        """Return the names of the plugins implementing `hook_name`, in call order."""
        caller = getattr(self.manager.hook, hook_name, None)
        if caller is None:
            raise ValueError(
                f"unknown hook {hook_name!r}; the hooks are {', '.join(_spec_names())}"
            )
        if hook_name == "price_lookup":
            return [name for name, _ in self.ranked_price_lookups()]
        names = []
        for impl in reversed(caller.get_hookimpls()):
            names.append(self.manager.get_name(impl.plugin) or impl.plugin_name)
        return names

    def ranked_price_lookups(self) -> list[tuple[str, Any]]:
        """Return `(plugin name, hook implementation)` pairs in price-lookup order.

        Higher declared ranks come first; plugins of the same rank are ordered
        by name, so the order never depends on install or registration order.
        """
        manager = self.manager
        named = [
            (manager.get_name(impl.plugin) or impl.plugin_name, impl)
            for impl in manager.hook.price_lookup.get_hookimpls()
        ]
        return sorted(
            named, key=lambda pair: (-price_rank_of(pair[1].plugin, pair[0]), pair[0])
        )


def _check_price_rank(plugin: object, name: str) -> None:
    """Raise `ValueError` when a pricing plugin declares an unusable price rank.

    Without this check such a plugin would be asked at the PROVIDER rank, so a
    plugin meant to win over the bundled tables could lose to them unnoticed.
    """
    if not hasattr(plugin, "llmfy_price_rank"):
        return
    rank = plugin.llmfy_price_rank
    if isinstance(rank, int) and not isinstance(rank, bool):
        return
    raise ValueError(
        f"plugin {name!r} declares llmfy_price_rank = {rank!r}, which is not an "
        "int. Use a PriceRank, such as PriceRank.ORGANIZATION to win over the "
        "bundled tables or PriceRank.FALLBACK to be asked after them."
    )


def _check_hooks_marked(
    plugin: object, name: str, implemented: Collection[str]
) -> None:
    """Raise `ValueError` when a function named like a hook lacks `@hookimpl`.

    pluggy registers only marked functions and skips the others without a
    word, so a forgotten decorator would leave the hook uncalled. A hook in
    `implemented` is skipped, because the plugin implements it under another
    name with `specname=` and its function of the hook's name is a helper.
    """
    marker = f"{hookspecs.PROJECT_NAME}_impl"
    unmarked = []
    for hook_name in _spec_names():
        if hook_name in implemented:
            continue
        try:
            attribute = inspect.getattr_static(plugin, hook_name)
        except AttributeError:
            continue
        function = getattr(attribute, "__func__", attribute)
        if not inspect.isroutine(function):
            continue
        if hasattr(attribute, marker) or hasattr(function, marker):
            continue
        unmarked.append(hook_name)
    if not unmarked:
        return
    hooks, pronoun = (
        (f"the hook {unmarked[0]}", "it")
        if len(unmarked) == 1
        else (f"the hooks {', '.join(unmarked)}", "them")
    )
    raise ValueError(
        f"plugin {name!r} defines {hooks} without the @llmfy.hookimpl marker, "
        f"so llmfy would never call {pronoun}. Put @hookimpl, imported from "
        f"llmfy or llmfy_core, on the line above each def."
    )


def _check_not_a_class(plugin: object, name: str) -> None:
    """Raise `ValueError` for a class whose hook implementations take `self`.

    pluggy registers such a class without complaint, but each call of its hooks
    then fails, because the class has no instance to pass as `self`. An entry
    point that names the class (`package.module:Prices`) loads it that way.
    """
    if not inspect.isclass(plugin):
        return
    first_parameters: dict[str, str] = {}
    for attribute in dir(plugin):
        parameter = _instance_parameter(inspect.getattr_static(plugin, attribute, None))
        if parameter is not None:
            first_parameters[attribute] = parameter
    if not first_parameters:
        return
    needing_instance = sorted(first_parameters)
    hooks, pronoun = (
        (f"hook {needing_instance[0]} takes", "it")
        if len(needing_instance) == 1
        else (f"hooks {', '.join(needing_instance)} take", "them")
    )
    taken = " or ".join(
        f"`{parameter}`" for parameter in sorted(set(first_parameters.values()))
    )
    raise ValueError(
        f"plugin {name!r} is the class {plugin.__name__}, and its {hooks} {taken}, "
        f"so llmfy cannot call {pronoun} on the class. Register an instance, "
        f"{plugin.__name__}(), or point the entry point at a module or at an "
        f"instance, such as `package.module:plugin` with `plugin = "
        f"{plugin.__name__}()`."
    )


def _instance_parameter(attribute: object) -> str | None:
    """Return `self` or `cls` when `attribute` is a hook implementation taking it.

    pluggy drops a first parameter named `self` or `cls` from the arguments it
    passes, as it would for a bound method.
    """
    if not isinstance(attribute, types.FunctionType):
        return None
    if not hasattr(attribute, f"{hookspecs.PROJECT_NAME}_impl"):
        return None
    parameters = list(inspect.signature(attribute).parameters)
    if parameters and parameters[0] in ("self", "cls"):
        return parameters[0]
    return None


def _is_optional(caller: pluggy.HookCaller, plugin: object) -> bool:
    return all(
        impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin
    )


def _spec_names() -> list[str]:
    return sorted(
        name
        for name in dir(hookspecs)
        if hasattr(getattr(hookspecs, name), hookspecs.PROJECT_NAME + "_spec")
    )


def _spec_arguments_hint(plugin: object) -> str:
    """Name the arguments of each hook that `plugin` implements with others.

    pluggy's error names the unknown argument only; this lists the valid ones.
    """
    hints = []
    for hook_name in _spec_names():
        try:
            implementation = getattr(plugin, hook_name, None)
        except Exception:
            # A property or `__getattr__` may raise, although registration
            # went this far: pluggy 1.7 reads attributes with getattr_static.
            continue
        if not callable(implementation):
            continue
        spec_arguments = list(
            inspect.signature(getattr(hookspecs, hook_name)).parameters
        )
        try:
            arguments = inspect.signature(implementation).parameters
        except (TypeError, ValueError):
            continue
        if set(arguments) - set(spec_arguments):
            hints.append(
                f"{hook_name} takes these arguments, any of them by name: "
                f"{', '.join(spec_arguments)}."
            )
    return " ".join(hints)


def plugin_attribute(plugin: object, attribute: str, name: str | None = None) -> Any:
    """Return a plugin's optional attribute, or None when it is unset.

    An attribute that raises when read is logged with `name`, the plugin's
    registered name, when it is given, and taken as unset. Raising instead
    would make every price lookup load the plugins again and raise again, and
    the requests would go uncounted.
    """
    try:
        return getattr(plugin, attribute, None)
    except Exception as error:
        logger.warning(
            "reading %s of plugin %s raised %r; llmfy takes it as unset",
            attribute,
            name or type(plugin).__name__,
            error,
        )
        return None


def price_rank_of(plugin: object, name: str | None = None) -> int:
    """Return the price rank a plugin declares with `llmfy_price_rank`.

    A rank that is unset, invalid or raises when read counts as PROVIDER.
    """
    rank = plugin_attribute(plugin, "llmfy_price_rank", name)
    if isinstance(rank, bool) or not isinstance(rank, int):
        return int(PriceRank.PROVIDER)
    return int(rank)


class ListedRegions(Collection[str]):
    """The regions that plugins list for one provider, as one collection.

    A region is looked up in each plugin's list in turn, without merging the
    lists. A plugin's list may read a long source only for a region missing
    from its short one, and merging would read it for every region.
    """

    def __init__(self, lists: Sequence[Set[object]]) -> None:
        self._lists = lists

    def __contains__(self, region: object) -> bool:
        return any(region in listed for listed in self._lists)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for listed in self._lists:
            for region in listed:
                if isinstance(region, str) and region not in seen:
                    seen.add(region)
                    yield region

    def __len__(self) -> int:
        return sum(1 for _ in self)


def provider_regions(provider: str) -> ListedRegions | None:
    """Return the regions that plugins list for `provider` with `llmfy_regions`.

    Returns None when no plugin lists any, so that callers leave the
    provider's regions unchecked. A plugin whose `llmfy_regions` raises is
    logged and skipped.
    """
    manager = get_registry().manager
    lists: list[Set[object]] = []
    for plugin in manager.get_plugins():
        regions_of = getattr(plugin, "llmfy_regions", None)
        if not callable(regions_of):
            continue
        try:
            found = regions_of(provider)
            if found is None:
                continue
            # A set is kept as it is, since it may read its regions lazily.
            if not isinstance(found, Set):
                found = frozenset(name for name in found if isinstance(name, str))
        except Exception as error:
            logger.warning(
                "llmfy_regions of plugin %r failed for provider %s: %r",
                manager.get_name(plugin),
                provider,
                error,
            )
            continue
        lists.append(found)
    return ListedRegions(lists) if lists else None


def provider_model_ids(provider: str) -> frozenset[str]:
    """Return the model ids that plugins of rank PROVIDER list for `provider`.

    These are the bundled tables' ids, which are cheap to list. Plugins
    ranked above them list users' own prices, such as the price file being
    read, and a fallback database such as genai-prices loads its whole data
    set to list, so neither is asked. A plugin whose `price_catalog` raises
    is logged and skipped.
    """
    manager = get_registry().manager
    model_ids: set[str] = set()
    for impl in manager.hook.price_catalog.get_hookimpls():
        if price_rank_of(impl.plugin) != PriceRank.PROVIDER:
            continue
        arguments = {"provider": provider}
        try:
            listed: Any = impl.function(*[arguments[arg] for arg in impl.argnames])
            for entry in listed or ():
                if entry.provider == provider:
                    model_ids.add(entry.key.model)
        except Exception as error:
            logger.warning(
                "price_catalog of plugin %r failed for provider %s: %r",
                manager.get_name(impl.plugin),
                provider,
                error,
            )
    return frozenset(model_ids)


def _sorted_entry_points() -> Sequence[discovery.EntryPoint]:
    found = discovery.entry_points(ENTRY_POINT_GROUP)
    return sorted(found, key=_load_order)


def _load_order(entry_point: discovery.EntryPoint) -> tuple[str, int, str]:
    """Sort by name; among entry points of one name, `llmfy-<name>` comes first.

    The first of a name is loaded and the others are reported, so a package
    that reuses the name `openai` never displaces the distribution
    `llmfy-openai`, whatever the other package is called.
    """
    dist_name = (entry_point.distribution or "").lower()
    canonical = dist_name.replace("_", "-") == f"llmfy-{entry_point.name}"
    return entry_point.name, 0 if canonical else 1, dist_name


_registry: PluginRegistry | None = None
_registry_lock = new_lock()


def get_registry() -> PluginRegistry:
    """Return the process-wide plugin registry, loading plugins on first use."""
    registry = _registry
    if registry is not None:
        return registry
    return load_plugins()


def load_plugins(
    *,
    autoload: bool | None = None,
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
    strict: bool | None = None,
) -> PluginRegistry:
    """(Re)create the process-wide plugin registry with these options.

    Arguments left as None fall back to `LLMFY_DISABLE_PLUGIN_AUTOLOAD`,
    `LLMFY_PLUGINS` (an allow-list of entry-point names), `LLMFY_DISABLED_PLUGINS`
    (a block-list) and `LLMFY_STRICT_PLUGINS`. With `strict`, the first plugin
    that fails to load raises `PluginLoadError`.
    """
    global _registry
    options = LoadOptions(
        autoload=autoload,
        allow=None if allow is None else frozenset(allow),
        block=None if block is None else frozenset(block),
        strict=strict,
    )
    with _registry_lock:
        previous = _registry
        registry = PluginRegistry(options)
        if previous is not None:
            registry.generation = previous.generation + 1
        registry.load_entry_points()
        _registry = registry
        CHANGES.bump()
    return registry


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object by hand (for applications and tests).

    Returns the name it was registered under, which `unregister_plugin` takes.
    """
    registry = get_registry()
    plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
    registry.register(plugin, plugin_name)
    return plugin_name


def unregister_plugin(name: str) -> None:
    """Unregister a plugin registered under `name`."""
    get_registry().unregister(name)


def list_plugins() -> list[PluginInfo]:
    """Return every discovered plugin, those that failed to load included."""
    registry = get_registry()
    return sorted(registry.infos.values(), key=lambda info: info.name)


def hook_order(hook_name: str) -> list[str]:
    """Return the plugins implementing `hook_name` in the order they are called."""
    return get_registry().hook_order(hook_name)
