"""MkDocs hook: write the hook reference from `llmfy_core.hookspecs`.

The page `hooks.md` contains the marker below; at build time it is replaced by
one section per hook specification, with its signature, whether the first
result wins, and its docstring. The reference therefore always matches the
installed core.
"""

from __future__ import annotations

import inspect
from typing import Any

MARKER = "<!-- hook-reference -->"


def render_hook_reference() -> str:
    """Return the Markdown reference of every hook specification, sorted by name."""
    from llmfy_core import hookspecs

    marker = f"{hookspecs.PROJECT_NAME}_spec"
    sections = []
    for name, function in sorted(vars(hookspecs).items()):
        options = getattr(function, marker, None)
        if options is None or not callable(function):
            continue
        sections.append(_render_one(name, function, options))
    return "\n\n".join(sections)


def _render_one(name: str, function: Any, options: dict[str, Any]) -> str:
    signature = _signature(function)
    if name == "price_lookup":
        calls = (
            "Asked in the order of the declared price ranks; the first `Price` wins."
        )
    elif options.get("firstresult"):
        calls = "The first result that is not None wins."
    else:
        calls = "Every implementation is called; the results are collected in a list."
    docstring = inspect.cleandoc(function.__doc__ or "")
    return "\n".join(
        [
            f"## `{name}`",
            "",
            "```python",
            f"def {name}{signature}: ...",
            "```",
            "",
            calls,
            "",
            docstring,
        ]
    )


def _signature(function: Any) -> str:
    # The specifications use postponed annotations, which are strings here.
    signature = inspect.signature(function)
    parameters = [
        f"{parameter.name}: {parameter.annotation}"
        for parameter in signature.parameters.values()
    ]
    returns = signature.return_annotation
    one_line = f"({', '.join(parameters)}) -> {returns}"
    if len(one_line) < 80:
        return one_line
    lines = "".join(f"    {parameter},\n" for parameter in parameters)
    return f"(\n{lines}) -> {returns}"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker in the hook reference page with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_hook_reference())
