"""Build and install small llmfy plugin distributions for real, for tests.

Each distribution gets its own `pyproject.toml` with an entry point in the
group `llmfy`, is built and installed by pip into a target folder, and is
then discovered through its entry point like any installed package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path


def install_distribution(
    root: Path,
    name: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, str],
    version: str = "1.0.0",
    group: str = "llmfy",
) -> Path:
    """Build distribution `name` from `modules` (file name to source), install
    it into `root / "site"`, and return that folder for `sys.path`.

    `entry_points` go into the entry-point group `group`."""
    source = root / "src" / name
    source.mkdir(parents=True)
    for filename, text in modules.items():
        (source / filename).write_text(textwrap.dedent(text))
    module_names = sorted(Path(filename).stem for filename in modules)
    entry_lines = "\n".join(
        f'"{key}" = "{value}"' for key, value in entry_points.items()
    )
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"

            [project.entry-points."{group}"]
            {{entry_lines}}

            [tool.setuptools]
            py-modules = {module_names!r}
            """
        ).replace("{entry_lines}", entry_lines)
    )
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return site
