"""Entry-point discovery that does not import `importlib.metadata`.

Importing `importlib.metadata` costs about 20 ms, because it brings `email`,
`zipfile` and `csv` (measured with `python -X importtime` on Python 3.11).
That is a third of what llmfy allows itself for `import llmfy` plus
discovery. Distributions installed the usual way are folders named
`*.dist-info` or `*.egg-info` in the folders of `sys.path`, so this module
reads their `entry_points.txt` directly. It follows the rules of
`importlib.metadata`: folders in `sys.path` order, and the first
distribution of a name wins. Where a distribution could live elsewhere (a
zip or egg file on `sys.path`, or an import hook that finds distributions),
it uses `importlib.metadata` instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import sys
from typing import Any, NamedTuple

_METADATA_SUFFIXES = (".dist-info", ".egg-info")
_NAME_SEPARATORS = re.compile(r"[-_.]+")


class EntryPoint(NamedTuple):
    """An entry point and the distribution that declares it.

    `value` is `module:attribute`, as written in `entry_points.txt`.
    `distribution` and `version` are None when the metadata lacks them.
    """

    name: str
    value: str
    distribution: str | None
    version: str | None

    def load(self) -> Any:
        """Import the module named in `value` and return the attribute it names."""
        reference = self.value.split("[", 1)[0]
        module_name, _, attribute = reference.partition(":")
        target: Any = importlib.import_module(module_name.strip())
        attribute = attribute.strip()
        for part in attribute.split(".") if attribute else ():
            target = getattr(target, part)
        return target


def entry_points(group: str) -> list[EntryPoint]:
    """Return the entry points of `group` of every installed distribution."""
    found = _scan_path(group)
    if found is None:
        return _from_importlib_metadata(group)
    return found


def _scan_path(group: str) -> list[EntryPoint] | None:
    """Read the metadata folders on `sys.path`, or return None for a zip on it."""
    if _other_distribution_finders():
        return None
    seen: set[str] = set()
    found: list[EntryPoint] = []
    # sys.path is typed list[str], but applications can put anything there.
    entries: list[object] = list(sys.path)
    for entry in entries:
        if not isinstance(entry, str):
            continue
        if entry.lower().endswith(".egg"):
            # An egg, zipped or not, keeps its metadata in EGG-INFO.
            return None
        folder = entry or "."
        try:
            names = sorted(
                name
                for name in os.listdir(folder)
                if name.lower().endswith(_METADATA_SUFFIXES)
            )
        except NotADirectoryError:
            return None
        except OSError:
            continue
        for name in names:
            distribution = _normalized(name)
            if distribution in seen:
                continue
            seen.add(distribution)
            found.extend(_read_entry_points(os.path.join(folder, name), group))
    return found


def _other_distribution_finders() -> bool:
    """Return whether an import hook besides the standard one finds distributions."""
    return any(
        finder is not importlib.machinery.PathFinder
        and hasattr(finder, "find_distributions")
        for finder in sys.meta_path
    )


def _normalized(folder_name: str) -> str:
    """Return the normalized distribution name of a metadata folder's name."""
    stem = folder_name.rsplit(".", 1)[0].partition("-")[0]
    return _NAME_SEPARATORS.sub("_", stem).lower()


def _read_entry_points(metadata: str, group: str) -> list[EntryPoint]:
    text = _read_text(os.path.join(metadata, "entry_points.txt"))
    if text is None or group not in text:
        return []
    pairs = _group_pairs(text, group)
    if not pairs:
        return []
    distribution, version = _name_and_version(metadata)
    return [EntryPoint(name, value, distribution, version) for name, value in pairs]


def _group_pairs(text: str, group: str) -> list[tuple[str, str]]:
    """Return the `name = value` lines of section `[group]` of an INI text.

    As in `importlib.metadata`, a line starting with `#` is a comment, and a
    section's name is its header without the brackets.
    """
    pairs = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section == group and "=" in line:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


def _name_and_version(metadata: str) -> tuple[str | None, str | None]:
    """Read `Name` and `Version` from the header of METADATA or PKG-INFO.

    Header names are case-insensitive, as in email headers.
    """
    for file_name in ("METADATA", "PKG-INFO"):
        text = _read_text(os.path.join(metadata, file_name))
        if text:
            break
    else:
        return None, None
    name = version = None
    for line in text.splitlines():
        if not line:
            break
        field, _, value = line.partition(":")
        field = field.lower()
        if field == "name" and name is None:
            name = value.strip()
        elif field == "version" and version is None:
            version = value.strip()
    return name, version


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def _from_importlib_metadata(group: str) -> list[EntryPoint]:
    import importlib.metadata

    found = []
    for entry_point in importlib.metadata.entry_points(group=group):
        dist = getattr(entry_point, "dist", None)
        name = None if dist is None else dist.metadata["Name"]
        version = None if dist is None else dist.version
        found.append(EntryPoint(entry_point.name, entry_point.value, name, version))
    return found
