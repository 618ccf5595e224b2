"""The documentation site builds with warnings as errors (broken links and references
included), every Python block on its pages runs, the example outputs it shows are what
the examples print, and every public name's docstring carries an `Example:` that runs.

A block fenced as `{.python .no-run}` is shown but not run (a script for torchrun, a
file's content); a block that only includes a file (`--8<--`) is run where that file is
tested.
"""

import doctest
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import torch

import maskwise as mw

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _script(name: str):
    """A module of docs/scripts (the build's helpers; not a package)."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


python_blocks = _script("blocks").python_blocks
API_MODULES = _script("hooks").API_MODULES
PAGES = [page for page in sorted(DOCS.rglob("*.md")) if python_blocks(page)]


def test_pages_have_python_examples():
    names = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert {"get-started.md", "guide/masks.md", "guide/padded-steps.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(DOCS).as_posix())
def test_page_python_blocks_run(page, tmp_path, monkeypatch):
    """Each page's blocks run in order, in one namespace, as a reader would paste them."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs"}
    for number, block in enumerate(python_blocks(page), start=1):
        try:
            exec(compile(block, f"{page.name} block {number}", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            where = page.relative_to(ROOT)
            pytest.fail(f"{where} python block {number} failed: {error!r}\n{block}")


def test_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert (site / "search/search_index.json").stat().st_size > 10_000
    for picture in ("trace-tagger.png", "trace-classifier.png", "mask-flow.svg"):
        assert (site / "img" / picture).stat().st_size > 1_000, picture
    layers = (site / "api/layers/index.html").read_text()
    assert 'id="maskwise.layers.LSTM"' in layers and "Mask rule" in layers


def test_readme_links_into_the_docs_resolve():
    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text())
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


@pytest.mark.parametrize("module_name", API_MODULES)
def test_public_modules_list_their_names(module_name):
    """The API reference is driven by `__all__`: every public module has one, and every
    class and function in it has a docstring to show."""
    module = importlib.import_module(module_name)
    assert module.__all__, module_name
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


PUBLIC_MODULES = ["maskwise"] + [
    info.name
    for info in pkgutil.walk_packages(mw.__path__, "maskwise.")
    if not any(part.startswith("_") for part in info.name.split("."))
]
"""Every module a reader can import: the package and its submodules, less `_private` ones."""


def _public_callables() -> dict[str, object]:
    """`{"module.name": object}` of the classes and functions in some public `__all__`,
    each once (under the first module that lists it). A type alias such as
    `maskwise.training.OptimizerFactory` is left out: it cannot carry a docstring."""
    found: dict[str, object] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isroutine(obj)) and obj not in found.values():
                found[f"{module_name}.{name}"] = obj
    return found


PUBLIC_CALLABLES = _public_callables()
_EXAMPLE = re.compile(r"^Examples?:\n(?:[ \t]*\n|[ \t]+.*\n)*?[ \t]+>>> ", flags=re.M)
"""An `Example:` section (a header alone on its line) whose indented body has `>>>` lines."""


def test_every_public_callable_has_an_example():
    """Each class and function of the API reference shows its use in an `Example:`
    section with `>>>` lines (run by the test below)."""
    assert len(PUBLIC_CALLABLES) > 150  # the discovery works
    missing = [
        name
        for name, obj in PUBLIC_CALLABLES.items()
        if not _EXAMPLE.search(inspect.getdoc(obj) or "")
    ]
    assert not missing, "no `Example:` section with `>>>` lines: " + ", ".join(missing)


DOCTEST_GLOBALS = {
    "mw": mw,
    "torch": torch,
    "np": np,
    "keras": keras,
    "layers": mw.layers,
    "Masked": mw.Masked,
    "lengths_to_mask": mw.lengths_to_mask,
    "Sequential": mw.Sequential,
    "Input": mw.Input,
    "Model": mw.Model,
}
"""What every docstring example may use without importing it: the imports a reader
of the API reference has made (`import maskwise as mw`, `from maskwise import ...`)."""


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_docstring_examples_run(module_name):
    """The `>>>` examples of each public module (its docstring and its own classes and
    functions) print what they show."""
    module = importlib.import_module(module_name)  # not `mw.trace`: that is the function
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    torch.manual_seed(0)
    for test in doctest.DocTestFinder().find(module, module_name, extraglobs=DOCTEST_GLOBALS):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_output_shown_is_current(example):
    """The Examples pages show each script's output from a file; it must be what the
    script prints today (regenerate: `python docs/scripts/example_output.py`)."""
    shown = DOCS / "examples/output" / f"{example.stem}.txt"
    result = subprocess.run(
        [sys.executable, str(example)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout == shown.read_text(), f"{shown} is stale"
