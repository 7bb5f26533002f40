"""`llmfy plugins`: the installed plugins, and the call order of one hook."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

import attrs

from llmfy_core import discovery
from llmfy_core.plugins import (
    ENTRY_POINT_GROUP,
    PROVIDER_INSTALL_HINT,
    PluginInfo,
    allowed_names_not_installed,
    get_registry,
    hook_order,
    is_allowed,
    list_plugins,
)
from llmfy_core.pricing import closest_name

from .output import (
    EXIT_OK,
    EXIT_PARTIAL,
    CliError,
    plugin_dict,
    print_json,
    rank_name,
    render_table,
)

# Separators that entry-point group names use, such as `.` in `llmfy.plugins`.
_GROUP_SEPARATORS = re.compile(r"[-_.\s]+")


def add_parser(commands: Any) -> None:
    """Add the `plugins` command to the argparse subcommands."""
    parser = commands.add_parser(
        "plugins",
        help="list the installed llmfy plugins",
        description=(
            "List every installed llmfy plugin with its distribution, version, "
            "price rank, the hooks it implements and any load error. Exits 1 "
            "when a plugin failed to load."
        ),
    )
    parser.add_argument(
        "--hook",
        metavar="NAME",
        help="show the order in which the implementations of hook NAME are called",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run `llmfy plugins`."""
    if args.hook:
        return _show_hook_order(args.hook, args.json)
    infos = list_plugins()
    loading = LoadingState.read()
    other_groups = entry_points_in_other_groups()
    failed = (
        any(info.error for info in infos)
        or bool(loading.unknown_allowed)
        or bool(other_groups)
    )
    code = EXIT_PARTIAL if failed else EXIT_OK
    if args.json:
        data = {
            "plugins": [plugin_dict(info) for info in infos],
            **loading.to_dict(),
            "other_groups": [attrs.asdict(entry) for entry in other_groups],
        }
        print_json(data)
        return code
    if infos:
        print(_plugin_table(infos))
    notes = loading.notes()
    if not infos and not loading.installed:
        notes = [
            "No llmfy plugin is installed, so no LLM call is counted. Install a "
            f"provider plugin {PROVIDER_INSTALL_HINT}."
        ]
    elif not infos and loading.autoload:
        notes.insert(0, "No llmfy plugin was loaded, so no LLM call is counted.")
    notes.extend(other_group_note(entry) for entry in other_groups)
    for note in notes:
        print(note)
    return code


@attrs.frozen(slots=True)
class OtherGroupEntryPoint:
    """An entry point in a group named like `llmfy`, which llmfy does not read."""

    name: str
    group: str
    distribution: str | None
    version: str | None


def entry_points_in_other_groups() -> list[OtherGroupEntryPoint]:
    """Return the entry points in groups such as `llmfy.plugins` or `llmfy_plugins`.

    llmfy loads the group `llmfy` alone, so a plugin declared in such a group
    is never loaded, and without this list nothing would report why.
    """
    # Imported here: only this command reads every distribution's groups.
    from importlib import metadata

    found = set()
    for distribution in metadata.distributions():
        for entry_point in distribution.entry_points:
            group = entry_point.group
            normalized = _GROUP_SEPARATORS.sub("", group.lower())
            if group == ENTRY_POINT_GROUP or not normalized.startswith("llmfy"):
                continue
            found.add(
                OtherGroupEntryPoint(
                    name=entry_point.name,
                    group=group,
                    distribution=distribution.metadata["Name"],
                    version=distribution.version,
                )
            )
    return sorted(found, key=attrs.astuple)


def other_group_note(entry: OtherGroupEntryPoint) -> str:
    """Explain that `entry` is not loaded, and how to declare it."""
    source = entry.distribution or "an unknown distribution"
    if entry.distribution and entry.version:
        source = f"{entry.distribution} {entry.version}"
    return (
        f"Not loaded, because it is in the entry-point group {entry.group!r} and "
        f"llmfy reads the group {ENTRY_POINT_GROUP!r} only: {entry.name} "
        f"({source}). Declare it under [project.entry-points.llmfy] in the "
        "distribution's pyproject.toml and install the distribution again."
    )


@attrs.frozen(slots=True)
class LoadingState:
    """The plugin loading settings, and the entry points they chose from.

    `installed` names every entry point of the group `llmfy`, loaded or not.
    """

    autoload: bool
    allow: frozenset[str] | None
    block: frozenset[str]
    installed: tuple[str, ...]
    not_allowed: tuple[str, ...]
    unknown_in_allow: tuple[str, ...]

    @classmethod
    def read(cls) -> LoadingState:
        """Read the options of the current plugin registry and the entry points.

        `not_allowed` names the entry points that the allow-list leaves out, and
        `unknown_in_allow` the allow-list names that no entry point has.
        """
        options = get_registry().options
        found = discovery.entry_points(ENTRY_POINT_GROUP)
        allowed = {entry.name for entry in found if is_allowed(options.allow, entry)}
        installed = sorted({entry_point.name for entry_point in found})
        return cls(
            autoload=options.autoload is not False,
            allow=options.allow,
            block=options.block or frozenset(),
            installed=tuple(installed),
            not_allowed=tuple(name for name in installed if name not in allowed),
            unknown_in_allow=tuple(allowed_names_not_installed(options.allow, found)),
        )

    @property
    def unknown_allowed(self) -> list[str]:
        """Names in the allow-list that no installed entry point has."""
        if not self.autoload:
            return []
        return list(self.unknown_in_allow)

    def notes(self) -> list[str]:
        """Explain why installed plugins were not loaded, one sentence group each."""
        installed = ", ".join(self.installed) or "none"
        if not self.autoload:
            source = _source("LLMFY_DISABLE_PLUGIN_AUTOLOAD", "autoload")
            return [
                f"Plugin autoload is disabled ({source}), so no installed plugin "
                "was loaded and only plugins registered in code count LLM calls. "
                f"Installed entry points: {installed}."
            ]
        notes = []
        allowed = self.allow or frozenset()
        for name in self.unknown_allowed:
            close = closest_name(name, self.installed)
            hint = ""
            if close and close not in allowed:
                hint = f" Did you mean {close}?"
            notes.append(
                f"The allow-list ({_source('LLMFY_PLUGINS', 'allow')}) names "
                f"{name!r}, which no installed entry point has.{hint} Installed "
                f"entry points: {installed}."
            )
        if self.not_allowed:
            notes.append(
                f"Not loaded, because the allow-list "
                f"({_source('LLMFY_PLUGINS', 'allow')}) leaves them out: "
                f"{', '.join(self.not_allowed)}."
            )
        blocked = sorted(self.block & set(self.installed))
        if blocked:
            notes.append(
                f"Not loaded, because the block-list "
                f"({_source('LLMFY_DISABLED_PLUGINS', 'block')}) names them: "
                f"{', '.join(blocked)}."
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-serializable data."""
        return {
            "autoload": self.autoload,
            "allow": None if self.allow is None else sorted(self.allow),
            "block": sorted(self.block),
            "entry_points": list(self.installed),
            "unknown_in_allow": self.unknown_allowed,
        }


def _source(variable: str, argument: str) -> str:
    """Name the environment variable an option came from, or else the argument."""
    if os.environ.get(variable, "").strip():
        return f"{variable}={os.environ[variable].strip()}"
    return f"the {argument}= argument of llmfy.load_plugins"


def _plugin_table(infos: list[PluginInfo]) -> str:
    rows = []
    for info in infos:
        if info.error:
            hooks = f"NOT LOADED: {info.error}"
        else:
            hooks = ", ".join(info.hooks) or "-"
        rows.append(
            [
                info.name,
                info.distribution or "-",
                info.version or "-",
                rank_name(info.price_rank),
                hooks,
            ]
        )
    headers = ["PLUGIN", "DISTRIBUTION", "VERSION", "PRICE RANK", "HOOKS"]
    return render_table(headers, rows)


def _show_hook_order(hook: str, as_json: bool) -> int:
    try:
        names = hook_order(hook)
    except ValueError as error:
        raise CliError(f"--hook {hook}: {error}.") from None
    infos = get_registry().infos
    order: list[dict[str, Any]] = []
    for name in names:
        info = infos.get(name)
        order.append(
            {
                "name": name,
                "distribution": info.distribution if info else None,
                "version": info.version if info else None,
                "price_rank": info.price_rank if info else None,
            }
        )
    if as_json:
        print_json({"hook": hook, "order": order})
        return EXIT_OK
    if not order:
        print(f"No installed plugin implements {hook}.")
        return EXIT_OK
    print(f"{hook}: implementations in call order. {_rule_of(hook)}")
    rows = [
        [
            str(number),
            each["name"],
            each["distribution"] or "-",
            each["version"] or "-",
            rank_name(each["price_rank"]),
        ]
        for number, each in enumerate(order, start=1)
    ]
    headers = ["#", "PLUGIN", "DISTRIBUTION", "VERSION", "PRICE RANK"]
    print(render_table(headers, rows, align="r"))
    return EXIT_OK


def _rule_of(hook: str) -> str:
    if hook == "price_lookup":
        return (
            "Prices passed to a tracker come first; then the first Price wins, and "
            "a final Unpriced stops the lookup."
        )
    caller = getattr(get_registry().manager.hook, hook)
    if caller.spec is not None and caller.spec.opts.get("firstresult"):
        return "The first result that is not None wins."
    return "Every implementation is called."
