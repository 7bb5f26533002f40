"""`llmfy plugins`: the installed plugins, and the call order of one hook."""

from __future__ import annotations

import argparse
from typing import Any

from llmfy_core.plugins import get_registry, hook_order, list_plugins

from .output import (
    EXIT_OK,
    EXIT_PARTIAL,
    CliError,
    plugin_dict,
    print_json,
    rank_name,
    render_table,
)


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
    failed = any(info.error for info in infos)
    if args.json:
        print_json({"plugins": [plugin_dict(info) for info in infos]})
        return EXIT_PARTIAL if failed else EXIT_OK
    if not infos:
        print(
            "No llmfy plugin is installed, so no LLM call is counted. Install a "
            "provider plugin, such as `pip install llmfy-openai llmfy-bedrock`."
        )
        return EXIT_OK
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
    print(render_table(headers, rows))
    return EXIT_PARTIAL if failed else EXIT_OK


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
