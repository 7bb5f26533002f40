"""Entry-point discovery without importlib.metadata, checked against it."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmfy_core import discovery


def as_tuples(found: list[discovery.EntryPoint]) -> set[tuple[str, ...]]:
    return {
        (each.name, each.value, each.distribution or "", each.version or "")
        for each in found
    }


def from_importlib(group: str) -> set[tuple[str, ...]]:
    found = set()
    for entry_point in importlib.metadata.entry_points(group=group):
        dist = entry_point.dist
        assert dist is not None
        name = dist.metadata["Name"] or ""
        found.add((entry_point.name, entry_point.value, name, dist.version or ""))
    return found


def write_distribution(
    folder: Path,
    name: str,
    version: str,
    entry_points: str,
    suffix: str = ".dist-info",
) -> None:
    stem = name.replace("-", "_")
    info = folder / (f"{stem}-{version}{suffix}")
    info.mkdir(parents=True)
    header = "PKG-INFO" if suffix == ".egg-info" else "METADATA"
    (info / header).write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: later\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def path_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two folders put first on sys.path: `first` and `second`."""
    for name in ("second", "first"):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    yield tmp_path


@pytest.mark.parametrize("group", ["llmfy", "console_scripts", "pytest11"])
def test_same_as_importlib_metadata(group: str) -> None:
    assert as_tuples(discovery.entry_points(group)) == from_importlib(group)


def test_first_distribution_on_path_wins(path_folders: Path) -> None:
    write_distribution(
        path_folders / "first",
        "llmfy-fake",
        "2.0",
        "[llmfy]\nfake = first_mod:plugin\n",
    )
    write_distribution(
        path_folders / "second",
        "llmfy_fake",
        "1.0",
        "[llmfy]\nfake = second_mod:plugin\n",
    )

    found = [each for each in discovery.entry_points("llmfy") if each.name == "fake"]

    assert found == [
        discovery.EntryPoint("fake", "first_mod:plugin", "llmfy-fake", "2.0")
    ]
    assert as_tuples(discovery.entry_points("llmfy")) == from_importlib("llmfy")


def test_sections_comments_and_egg_info(path_folders: Path) -> None:
    write_distribution(
        path_folders / "first",
        "llmfy-eggy",
        "0.3",
        """\
        # a comment
        [console_scripts]
        eggy = eggy:main

        [llmfy]
        # another comment
        eggy = eggy_plugin:plugin [extra]
        second=eggy_plugin:other
        """,
        suffix=".egg-info",
    )

    found = {
        each.name: each
        for each in discovery.entry_points("llmfy")
        if each.distribution == "llmfy-eggy"
    }

    assert set(found) == {"eggy", "second"}
    assert found["eggy"].value == "eggy_plugin:plugin [extra]"
    assert found["second"].value == "eggy_plugin:other"
    assert found["eggy"].version == "0.3"
    assert as_tuples(discovery.entry_points("llmfy")) == from_importlib("llmfy")


def test_load_imports_attribute_path(path_folders: Path) -> None:
    module = path_folders / "first" / "fake_discovery_module.py"
    module.write_text("class Holder:\n    plugin = 'found'\n")
    entry_point = discovery.EntryPoint(
        "fake", "fake_discovery_module:Holder.plugin [extra]", None, None
    )

    try:
        assert entry_point.load() == "found"
    finally:
        sys.modules.pop("fake_discovery_module", None)


def test_zip_on_path_asks_importlib_metadata(
    path_folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = path_folders / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(
            "llmfy_zipped-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: llmfy-zipped\nVersion: 1.0\n",
        )
        bundle.writestr(
            "llmfy_zipped-1.0.dist-info/entry_points.txt",
            "[llmfy]\nzipped = zipped_plugin:plugin\n",
        )
    monkeypatch.syspath_prepend(str(archive))
    importlib.invalidate_caches()

    found = discovery.entry_points("llmfy")

    assert ("zipped", "zipped_plugin:plugin", "llmfy-zipped", "1.0") in as_tuples(found)
    assert as_tuples(found) == from_importlib("llmfy")


def test_odd_metadata_read_as_importlib_does(path_folders: Path) -> None:
    folder = path_folders / "first"
    lower = folder / "llmfy_lower-1.0.dist-info"
    lower.mkdir()
    (lower / "METADATA").write_text("metadata-version: 2.1\nname: llmfy-lower\n")
    (lower / "entry_points.txt").write_text("[[llmfy]]\nlower = lower_mod:plugin\n")
    empty = folder / "llmfy_empty-2.0.egg-info"
    empty.mkdir()
    (empty / "METADATA").write_text("")
    (empty / "PKG-INFO").write_text("Name: llmfy-empty\nVersion: 2.0\n")
    (empty / "entry_points.txt").write_text("[ llmfy ]\nskipped = m:plugin\n")
    egg = path_folders / "unzipped.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Name: llmfy-egg\nVersion: 3.0\n")
    (egg / "EGG-INFO" / "entry_points.txt").write_text("[llmfy]\negg = e:plugin\n")

    found = as_tuples(discovery.entry_points("llmfy"))
    assert ("lower", "lower_mod:plugin", "llmfy-lower", "") in found
    assert not any(each[0] == "skipped" for each in found)
    assert found == from_importlib("llmfy")

    sys.path.insert(0, str(egg))
    try:
        with_egg = as_tuples(discovery.entry_points("llmfy"))
        assert ("egg", "e:plugin", "llmfy-egg", "3.0") in with_egg
        assert with_egg == from_importlib("llmfy")
    finally:
        sys.path.remove(str(egg))


def test_load_ignores_extras_after_module(path_folders: Path) -> None:
    module = path_folders / "first" / "fake_extras_module.py"
    module.write_text("plugin = 'module level'\n")
    entry_point = discovery.EntryPoint("fake", "fake_extras_module [extra]", None, None)

    try:
        assert entry_point.load().plugin == "module level"
    finally:
        sys.modules.pop("fake_extras_module", None)
