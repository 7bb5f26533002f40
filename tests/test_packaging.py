"""Each distribution, installed for real rather than editable, ships every file.

An editable install reads the source tree, so a package left out of a
`pyproject.toml` goes unnoticed by the other tests. Here pip builds and
installs each distribution from a copy of its sources into a folder, and
the installed files must be the source files of its packages. Every
distribution that requires the core, the example plugins of the docs
included, must exclude the versions of the unrelated `llmfy` on PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import pluggy
import pytest
from packaging.requirements import Requirement

import llmfy_core

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SUFFIXES = {".py", ".json", ".toml", ".typed"}
DISTRIBUTIONS = {
    "llmfy": (ROOT, ["llmfy_core", "llmfy"]),
    **{
        plugin.name: (plugin, [package.name for package in plugin.glob("llmfy_*/")])
        for plugin in sorted((ROOT / "plugins").iterdir())
        if (plugin / "pyproject.toml").is_file()
    },
}

# Every distribution that requires the core, the documented example plugins
# included.
DEPENDENT_PYPROJECTS = sorted(
    [
        *ROOT.glob("plugins/*/pyproject.toml"),
        *ROOT.glob("docs/examples/*/pyproject.toml"),
    ]
)
# Versions of the unrelated project named `llmfy` on PyPI: `pip index versions
# llmfy` listed 0.3.1 to 0.11.0 in December 2026.
PYPI_NAMESAKE_VERSIONS = ("0.3.1", "0.11.0")


def source_files(root: Path, packages: list[str]) -> set[str]:
    """Return the shipped files of `packages` under `root`, as relative paths."""
    files = set()
    for package in packages:
        for path in (root / package).rglob("*"):
            if (
                path.is_file()
                and path.suffix in SHIPPED_SUFFIXES
                and "__pycache__" not in path.parts
                and not path.parent.name.endswith(".egg-info")
            ):
                files.add(path.relative_to(root).as_posix())
    return files


def install_copy(root: Path, packages: list[str], workdir: Path) -> Path:
    """Install a copy of the distribution at `root` with pip, and return the target."""
    source = workdir / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (root / name).is_file():
            shutil.copy(root / name, source / name)
    for package in packages:
        shutil.copytree(
            root / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    target = workdir / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--no-index", "--target", str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return target


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_installed_distribution_ships_every_source_file(
    distribution: str, tmp_path: Path
) -> None:
    root, packages = DISTRIBUTIONS[distribution]
    expected = source_files(root, packages)

    target = install_copy(root, packages, tmp_path)

    assert packages, f"{distribution} has no package"
    assert source_files(target, packages) == expected


def test_installed_core_runs_the_command(tmp_path: Path) -> None:
    root, packages = DISTRIBUTIONS["llmfy"]
    target = install_copy(root, packages, tmp_path)
    # Only the installed copy and the venv's dependencies are importable:
    # the checkout is neither the working folder nor on PYTHONPATH, and the
    # editable install's path hook is left out by -S.
    dependencies = {Path(attrs.__file__).parents[1], Path(pluggy.__file__).parents[1]}
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(map(str, [target, *dependencies]))
    result = subprocess.run(
        [sys.executable, "-S", "-m", "llmfy_core.cli", "--help"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "usage: llmfy" in result.stdout


@pytest.mark.parametrize(
    "pyproject", DEPENDENT_PYPROJECTS, ids=lambda path: path.parent.name
)
def test_core_requirement_excludes_pypi_namesake(pyproject: Path) -> None:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    requirements = [Requirement(each) for each in dependencies]
    core = [each for each in requirements if each.name == "llmfy"]

    assert len(core) == 1
    assert core[0].specifier.contains(llmfy_core.__version__)
    for version in PYPI_NAMESAKE_VERSIONS:
        assert not core[0].specifier.contains(version), version
