"""Run every code example of the documentation, and build the site.

Each fenced `python` block of `docs/*.md` runs on its own, with the real
`openai` and `boto3` clients pointed at a local replay server on 127.0.0.1
(`examples/replay_server.py`) through `OPENAI_BASE_URL` and
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`. HTML comments before a block control it:

- `<!-- docs-test: replies NAME ... -->` queues server replies, in order,
  each named as `examples/serve_replies.py` names them, such as
  `openai:IN/OUT`, a Chat Completions body for gpt-4o-mini with the usage
  `IN/OUT` (input and output tokens).
- `<!-- docs-test: files NAME ... -->` copies these files of
  `docs/examples/data` into the folder the block runs in.
- `<!-- docs-test: skip REASON -->` does not run the block, for the REASON given.
- `<!-- docs-test: output -->` before a `text` block right after a python
  block: the text is the block's exact standard output.

A `console` block is a shell session: each `$ llmfy ...` line runs the
command in `docs/examples/data`, and the lines up to the next `$` are its
exact output (standard error first). Blocks that include a file with
`--8<--` show the example plugin packages, which
`test_example_plugins_install` builds and installs.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import gc
import html
import importlib
import importlib.metadata
import inspect
import io
import json
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import llmfy_core
from llmfy_core import PriceRank, llmfy_usage_tracker
from llmfy_core.cli import main as llmfy_main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
DATA = EXAMPLES / "data"
PLUGIN_PACKAGES = ("llmfy-acme", "llmfy-team-prices")

sys.path.insert(0, str(ROOT / "examples"))
from replay_server import ReplayServer  # noqa: E402
from serve_replies import make_reply  # noqa: E402

FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^<!-- docs-test: (?P<kind>[\w-]+)(?: (?P<value>.*?))? -->$")


@attrs.frozen
class Block:
    """One fenced code block of a docs page, with the markers before it."""

    page: str
    line: int
    lang: str
    code: str
    markers: tuple[tuple[str, str], ...]
    output: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def marker(self, kind: str) -> str | None:
        for each_kind, value in self.markers:
            if each_kind == kind:
                return value
        return None


def read_blocks(path: Path) -> list[Block]:
    """Split a Markdown page into its fenced blocks, pairing outputs with code."""
    blocks: list[Block] = []
    markers: list[tuple[str, str]] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if marker:
            markers.append((marker["kind"], marker["value"] or ""))
        elif fence and fence["lang"]:
            end = index + 1
            while not lines[end].startswith("```"):
                end += 1
            code = "\n".join(lines[index + 1 : end]) + "\n"
            kinds = [kind for kind, _ in markers]
            if "output" in kinds and blocks and blocks[-1].lang == "python":
                blocks[-1] = attrs.evolve(blocks[-1], output=code)
            else:
                blocks.append(
                    Block(path.name, index + 1, fence["lang"], code, tuple(markers))
                )
            markers = []
            index = end
        elif line.strip():
            markers = []
        index += 1
    return blocks


def all_blocks(lang: str) -> list[Block]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        found += [block for block in read_blocks(page) if block.lang == lang]
    return found


PYTHON_BLOCKS = all_blocks("python")
CONSOLE_BLOCKS = all_blocks("console")


@contextlib.contextmanager
def replay(block: Block, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayServer]:
    """Serve the block's replies, with both SDKs pointed at the server."""
    replies = (block.marker("replies") or "").split()
    with ReplayServer([make_reply(name) for name in replies]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADOCSTEST00000000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "docs-test-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        yield server


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.id)
def test_python_example(
    block: Block,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if block.marker("skip") is not None:
        reason = block.marker("skip")
        assert reason, f"{block.id}: a skip marker must say why"
        pytest.skip(f"{block.id}: {reason}")
    if "--8<--" in block.code:
        pytest.skip(f"{block.id}: shows a file that test_example_plugins_install runs")

    output, pending = run_example(block, monkeypatch, tmp_path)

    assert pending == 0, f"{block.id}: {pending} queued replies were not requested"
    if block.output is not None:
        assert output == block.output


def run_example(
    block: Block, monkeypatch: pytest.MonkeyPatch, folder: Path
) -> tuple[str, int]:
    """Run a python block in `folder`; return its output and unused replies."""
    monkeypatch.chdir(folder)
    for name in (block.marker("files") or "").split():
        shutil.copy(DATA / name, folder / name)
    stdout = io.StringIO()
    code = compile(block.code, block.id, "exec")
    namespace: dict[str, Any] = {"__name__": "__main__"}

    try:
        with replay(block, monkeypatch) as server, contextlib.redirect_stdout(stdout):
            exec(code, namespace)
            pending = server.pending("openai") + server.pending("bedrock")
    finally:
        reset_plugin_state()
        free_example(namespace)
    return stdout.getvalue(), pending


LEAKY_EXAMPLE = Block(
    page="test_docs.py",
    line=0,
    lang="python",
    code="""
from openai import OpenAI

client = OpenAI()


def ask(question):
    messages = [{"role": "user", "content": question}]
    return client.chat.completions.create(model="gpt-4o-mini", messages=messages)


ask("What is the capital of France?")
""",
    markers=(("replies", "openai:10/2"),),
)


def test_example_leaves_no_client_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `ask` refers to the example's globals, so its OpenAI client, with an open
    # connection, sits in a reference cycle that only the garbage collector
    # frees. With automatic collection off, such a client is still there
    # after the example unless the test freed it.
    import openai

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.disable()
    try:
        before = count_instances(openai.OpenAI)
        run_example(LEAKY_EXAMPLE, monkeypatch, tmp_path)
        after = count_instances(openai.OpenAI)
    finally:
        gc.enable()

    assert after == before


def count_instances(kind: type) -> int:
    # `type()`, not `isinstance()`, because an `isinstance` check of the
    # openai module's lazy proxies creates its module-level client.
    return sum(1 for each in gc.get_objects() if type(each) is kind)


def free_example(namespace: dict[str, Any]) -> None:
    """Free the objects an example left, now instead of during a later test.

    Examples leave their SDK clients open, as short scripts do. A function
    defined in an example refers to the example's globals, so those clients
    sit in a reference cycle that only the garbage collector frees, at a
    moment of its choosing. Their sockets then warn that they were not closed,
    and with warnings as errors that `ResourceWarning` failed the setup of
    whichever test ran at that moment.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        namespace.clear()
        gc.collect()


def reset_plugin_state() -> None:
    """Undo what an example set up in plugins that keep process-wide state."""
    pricing_file = sys.modules.get("llmfy_pricing_file")
    if pricing_file is not None:
        pricing_file.use_price_file(None)
    otel = sys.modules.get("llmfy_otel")
    if otel is not None:
        otel.disable()
        otel.use_meter_provider(None)


def console_commands(block: Block) -> list[tuple[list[str], str]]:
    """Split a console block into (argv, expected output) pairs."""
    commands: list[tuple[list[str], str]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append((shlex.split(line[2:]), ""))
        elif commands:
            argv, output = commands[-1]
            commands[-1] = (argv, output + line + "\n")
    return commands


@pytest.mark.parametrize("block", CONSOLE_BLOCKS, ids=lambda block: block.id)
def test_console_example(
    block: Block,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(DATA)
    commands = console_commands(block)
    assert commands, f"{block.id}: a console block without `$ llmfy` commands"

    for argv, expected in commands:
        assert argv[0] == "llmfy", f"{block.id}: only llmfy commands run here"
        llmfy_main(argv[1:])
        captured = capsys.readouterr()
        assert captured.err + captured.out == expected, " ".join(argv)


@pytest.mark.parametrize("page", ["cli.md", "openai.md"])
def test_page_names_sample_file_folder(page: str) -> None:
    sample_files = {
        argument
        for block in CONSOLE_BLOCKS
        if block.page == page
        for argv, _ in console_commands(block)
        for argument in argv[1:]
        if (DATA / argument).is_file()
    }

    assert sample_files, f"{page}: no console command reads a sample file"
    assert "`docs/examples/data`" in (DOCS / page).read_text()


def test_price_file_json_matches_toml() -> None:
    # pricing-file.md calls its JSON block the same file as team-prices.toml.
    from llmfy_pricing_file import parse_price_document

    blocks = read_blocks(DOCS / "pricing-file.md")
    json_blocks = [block for block in blocks if block.lang == "json"]
    toml_text = (DATA / "team-prices.toml").read_text()
    name = Path("team-prices")

    from_json = parse_price_document(json.loads(json_blocks[0].code), name)
    from_toml = parse_price_document(tomllib.loads(toml_text), name)

    assert len(json_blocks) == 1
    assert from_json.entries == from_toml.entries


def test_every_page_has_tested_examples() -> None:
    pages = {block.page for block in PYTHON_BLOCKS + CONSOLE_BLOCKS}

    assert {"getting-started.md", "tracker.md", "prices.md", "cli.md"} <= pages
    assert {"openai.md", "bedrock.md", "otel.md"} <= pages
    assert {"pricing-file.md", "genai-prices.md"} <= pages


# The example plugin packages


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install both example packages, from copies, into one folder."""
    root = tmp_path_factory.mktemp("example-plugins")
    site = root / "site"
    for name in PLUGIN_PACKAGES:
        source = root / name
        shutil.copytree(EXAMPLES / name, source)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                "--no-build-isolation", "--no-index", "--target", str(site),
                str(source),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return site


@pytest.fixture
def example_plugins(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(example_site))
    llmfy_core.load_plugins()


@pytest.mark.usefixtures("example_plugins")
def test_example_plugins_install() -> None:
    infos = {info.name: info for info in llmfy_core.list_plugins()}

    assert infos["acme"].distribution == "llmfy-acme"
    assert "usage_extract" in infos["acme"].hooks
    assert infos["team-prices"].distribution == "llmfy-team-prices"
    assert infos["team-prices"].price_rank == PriceRank.ORGANIZATION


@pytest.mark.usefixtures("example_plugins")
def test_example_provider_records_and_prices() -> None:
    import llmfy_acme  # type: ignore[import-not-found]

    body = {
        "id": "r-1",
        "model": "acme-large-2-20261101",
        "usage": {"prompt": 120, "cached": 100, "completion": 30},
    }
    with llmfy_usage_tracker() as usage:
        llmfy_acme.complete(lambda request: body, {"model": "acme-large-2"})

    record = usage.records[0]
    assert record.usage.input_tokens == 120
    assert record.usage.cache_read_tokens == 100
    assert record.price_origin == "acme"
    # 20 input tokens at 2.00, 100 cached at 0.50 and 30 output at 8.00 USD
    # per million: 40 + 50 + 240 = 330 millionths of a USD.
    assert record.cost is not None
    assert record.cost.total == Decimal("0.00033")


@pytest.mark.usefixtures("example_plugins")
def test_example_provider_override_table() -> None:
    with llmfy_usage_tracker(
        acme_pricing={"acme-small-2": {"input": 1, "output": 1}}
    ) as usage:
        usage.record("acme", "acme-small-2", 1_000_000, 0)

    assert usage.total_cost == 1
    assert usage.records[0].price_origin == "override"


@pytest.mark.usefixtures("example_plugins")
def test_example_pricing_plugin_precedence() -> None:
    with llmfy_usage_tracker() as negotiated:
        negotiated.record("openai", "gpt-4o-mini", 1_000_000, 1_000_000)
    override = {"gpt-4o-mini": {"input": 0.10, "output": 0.40}}
    with llmfy_usage_tracker(openai_pricing=override) as overridden:
        overridden.record("openai", "gpt-4o-mini", 1_000_000, 1_000_000)

    assert negotiated.records[0].price_origin == "team-prices"
    # 0.12 + 0.48 USD for a million input and a million output tokens.
    assert negotiated.total_cost == Decimal("0.60")
    assert overridden.records[0].price_origin == "override"
    # 0.10 + 0.40 USD.
    assert overridden.total_cost == Decimal("0.50")


@pytest.mark.usefixtures("example_plugins")
@pytest.mark.parametrize(
    ("service_tier", "origin"),
    [
        (None, "team-prices"),
        ("default", "team-prices"),
        # The contract sets no rate for these tiers: the bundled rates apply.
        ("flex", "openai"),
        ("priority", "openai"),
    ],
)
def test_example_pricing_plugin_service_tiers(
    service_tier: str | None, origin: str
) -> None:
    with llmfy_usage_tracker() as usage:
        record = usage.record(
            "openai", "gpt-4o-mini", 1_000_000, 1_000_000, service_tier=service_tier
        )

    assert record.price_origin == origin


@pytest.mark.usefixtures("example_plugins")
def test_example_plugins_in_llmfy_prices(capsys: pytest.CaptureFixture[str]) -> None:
    code = llmfy_main(["prices", "--json"])
    rows = json.loads(capsys.readouterr().out)["prices"]

    origins = {}
    for row in rows:
        key = (row["provider"], row["model"], row["service_tier"], row["batch"])
        origins[key] = row["origin"]
    assert code == 0
    assert origins[("acme", "acme-large-2", None, False)] == "acme"
    assert origins[("openai", "gpt-4o-mini", None, False)] == "team-prices"
    assert origins[("openai", "gpt-4o-mini", "priority", False)] == "openai"


# Names in the text

CODE_PACKAGES = (
    "llmfy_core",
    "llmfy_openai",
    "llmfy_bedrock",
    "llmfy_pricing_file",
    "llmfy_genai_prices",
    "llmfy_otel",
)
# A dotted name in backticks, such as `llmfy_core.model.usage_from_counts`.
# Metric and logger names (`llmfy.client.cost`) have the same form.
DOTTED_NAME = re.compile(r"`(llmfy\w*(?:\.\w+)+)")


def public_definitions() -> set[str]:
    """Return the names of the public functions and classes of llmfy's packages."""
    names = set()
    for package_name in CODE_PACKAGES:
        package = importlib.import_module(package_name)
        found = pkgutil.walk_packages(package.__path__, f"{package_name}.")
        # A `__main__` module runs its command when imported.
        modules = [package_name] + [
            module.name for module in found if not module.name.endswith(".__main__")
        ]
        for module_name in modules:
            module = importlib.import_module(module_name)
            for name, value in vars(module).items():
                if (
                    not name.startswith("_")
                    and (inspect.isfunction(value) or inspect.isclass(value))
                    and value.__module__ == module_name
                ):
                    names.add(name)
    return names


def resolve(dotted: str) -> object:
    """Import the longest module prefix of `dotted` and get the rest as attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for part in parts[end:]:
            found = getattr(found, part)
        return found
    raise ModuleNotFoundError(dotted)


def test_docs_function_and_class_paths_resolve() -> None:
    # Only names that end in a public function or class are checked, which
    # leaves out the metric and logger names.
    definitions = public_definitions()
    unresolved = []
    for page in sorted(DOCS.glob("*.md")):
        for dotted in DOTTED_NAME.findall(page.read_text()):
            if dotted.rsplit(".", 1)[1] not in definitions:
                continue
            try:
                resolve(dotted)
            except (ImportError, AttributeError):
                unresolved.append(f"{page.name}: {dotted}")

    assert unresolved == []


# Distributions the examples import

PROJECT_DISTRIBUTIONS = ["llmfy"] + [
    tomllib.loads(path.read_text())["project"]["name"]
    for path in sorted(ROOT.glob("plugins/*/pyproject.toml"))
]


@functools.cache
def installed_files() -> list[tuple[str, tuple[str, ...]]]:
    """Return each installed distribution's name with the paths of its files."""
    return [
        (dist.metadata["Name"], tuple(file.as_posix() for file in dist.files or ()))
        for dist in importlib.metadata.distributions()
    ]


def distribution_of(module: str) -> str | None:
    """Return the distribution whose files contain `module`, None for the stdlib.

    Editable installs, such as llmfy's own, list no module files either.
    """
    path = module.replace(".", "/")
    for name, files in installed_files():
        if any(file.startswith(f"{path}/") or file == f"{path}.py" for file in files):
            return name
    return None


@functools.cache
def project_requirements() -> set[str]:
    """Return llmfy's distributions and all they require, by normalized name."""
    found: set[str] = set()
    pending = list(PROJECT_DISTRIBUTIONS)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        found.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or "extra" not in str(requirement.marker):
                pending.append(requirement.name)
    return found


def imported_modules(code: str) -> list[str]:
    """Return the absolute module names that `code` imports, in order."""
    modules = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    return modules


@pytest.mark.parametrize("page", sorted({block.page for block in PYTHON_BLOCKS}))
def test_page_names_imported_distributions(page: str) -> None:
    # A distribution that no llmfy distribution requires is one the reader
    # installs, so the page names it before the first example that needs it.
    lines = (DOCS / page).read_text().splitlines()
    unnamed = []
    for block in PYTHON_BLOCKS:
        if block.page != page:
            continue
        text_before = "\n".join(lines[: block.line - 1])
        for module in imported_modules(block.code):
            distribution = distribution_of(module)
            if (
                distribution is not None
                and canonicalize_name(distribution) not in project_requirements()
                and distribution not in text_before
            ):
                unnamed.append(f"line {block.line}: {module} ({distribution})")

    assert unnamed == []


# The site


def test_hook_reference_lists_every_hook() -> None:
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        import hook_reference  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    from llmfy_core import hookspecs

    text = hook_reference.render_hook_reference()

    for name in ("usage_extract", "price_lookup", "pricing_table_parse"):
        assert f"## `{name}`" in text
        assert inspect_doc(getattr(hookspecs, name)) in text
    assert "## `request_recorded`" in text


def inspect_doc(function: Any) -> str:
    import inspect

    return inspect.cleandoc(function.__doc__).splitlines()[0]


@attrs.frozen
class BuiltSite:
    """The result of `mkdocs build --strict` into a temporary folder."""

    result: subprocess.CompletedProcess[str]
    path: Path

    def page_text(self, page: str) -> str:
        """Return the text of a built page: its HTML without tags, unescaped."""
        markup = (self.path / page / "index.html").read_text()
        return html.unescape(re.sub(r"<[^>]+>", "", markup))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed; `pip install -r requirements-dev.txt`")
    site = tmp_path_factory.mktemp("site")
    # The Material theme prints an end-of-life banner unless this is set.
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}

    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
    )

    return BuiltSite(result, site)


def test_mkdocs_build_strict(built_site: BuiltSite) -> None:
    assert built_site.result.returncode == 0, built_site.result.stderr
    assert "usage_extract" in built_site.page_text("hooks")


def test_mkdocs_build_prints_no_banner(built_site: BuiltSite) -> None:
    assert "end of life" not in built_site.result.stderr
    assert "NO_MKDOCS_2_WARNING" not in built_site.result.stderr


SNIPPET_LINE = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')


def snippet_paths(page: Path) -> list[str]:
    """Return the files a page includes with `--8<-- "PATH"` lines."""
    lines = page.read_text().splitlines()
    return [match["path"] for line in lines if (match := SNIPPET_LINE.match(line))]


def test_docs_snippet_markers_intact() -> None:
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        # A formatter once turned `--8<--` into `--8 < --`, which the
        # snippets extension then printed as text instead of the file.
        assert "--8 <" not in text, page.name
        assert text.count("--8<--") == len(snippet_paths(page)), page.name


PLUGINS_PAGE_FILES = (
    "llmfy-acme/pyproject.toml",
    "llmfy-acme/llmfy_acme/plugin.py",
    "llmfy-acme/llmfy_acme/client.py",
    "llmfy-team-prices/pyproject.toml",
    "llmfy-team-prices/llmfy_team_prices/__init__.py",
)


def test_plugins_page_includes_example_files() -> None:
    assert snippet_paths(DOCS / "plugins.md") == list(PLUGINS_PAGE_FILES)


@pytest.mark.parametrize("path", PLUGINS_PAGE_FILES)
def test_plugins_page_shows_example_code(built_site: BuiltSite, path: str) -> None:
    page = built_site.page_text("plugins")
    source = (EXAMPLES / path).read_text()

    assert "--8<--" not in page
    for line in source.splitlines():
        assert line in page, f"{path}: {line!r} is missing from plugins/index.html"
