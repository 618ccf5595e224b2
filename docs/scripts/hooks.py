"""MkDocs hooks: the pages and pictures that are made from the code at build time.

- The API reference: one page per public module, one entry per name in its `__all__`
  (rendered by mkdocstrings from the docstrings). A name re-exported by several modules
  is documented once, on the first page that lists it.
- The trace heat maps of "What happens to padded steps" (`figures.py`), drawn by the
  page's own code blocks, so the pictures always show what the code does.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mkdocs.structure.files import Files

HERE = Path(__file__).resolve().parent

API_MODULES = (
    "maskwise",
    "maskwise.masked",
    "maskwise.layers",
    "maskwise.initializers",
    "maskwise.regularizers",
    "maskwise.constraints",
    "maskwise.losses",
    "maskwise.metrics",
    "maskwise.optimizers",
    "maskwise.optimizers.schedules",
    "maskwise.callbacks",
    "maskwise.data",
    "maskwise.doctor",
    "maskwise.distributed",
    "maskwise.datasets",
    "maskwise.trace",
    "maskwise.models",
    "maskwise.training",
    "maskwise.errors",
)
"""The public modules, in the order of the API reference."""


def api_pages() -> dict[str, str]:
    """`{path: markdown}` of the API reference: each module's page lists its `__all__`."""
    documented: dict[Any, str] = {}  # object -> the path it is documented under
    pages = {}
    for name in API_MODULES:
        module = importlib.import_module(name)
        entries, elsewhere = [], []
        for member in module.__all__:
            obj = getattr(module, member)
            if inspect.ismodule(obj):
                continue
            key = obj if inspect.isclass(obj) or inspect.isfunction(obj) else (name, member)
            if key in documented:
                elsewhere.append(f"[`{member}`][{documented[key]}]")
                continue
            documented[key] = f"{name}.{member}"
            entries.append(f"::: {name}.{member}\n")
        text = f"# `{name}`\n\n{_summary(name, module)}\n\n"
        if elsewhere:
            text += "Also exported here, documented on another page: " + ", ".join(elsewhere)
            text += ".\n\n"
        pages[_page(name)] = text + "\n".join(entries)
    return pages


def _summary(name: str, module: Any) -> str:
    """The module's docstring; only its first paragraph where the package exports another
    object of the module's name (`maskwise.trace` is also the function), since both
    would claim one anchor."""
    parent, _, last = name.rpartition(".")
    if parent and not inspect.ismodule(getattr(importlib.import_module(parent), last)):
        return inspect.getdoc(module).split("\n\n")[0]
    return f"::: {name}\n    options:\n      members: false\n      show_root_heading: false"


def _page(module: str) -> str:
    return "api/" + (module.partition(".")[2] or "maskwise") + ".md"


def on_config(config: Any) -> Any:
    """List the API pages under "API reference" in the navigation."""
    for item in config["nav"]:
        if isinstance(item, dict) and "API reference" in item:
            item["API reference"] = [{"Overview": "api/index.md"}] + [
                {name: _page(name)} for name in API_MODULES
            ]
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the generated API pages and trace pictures to the site."""
    from mkdocs.structure.files import File

    for path, text in api_pages().items():
        files.append(File.generated(config, path, content=text))
    sys.path.insert(0, str(HERE))
    try:
        import figures
    finally:
        sys.path.remove(str(HERE))
    for path, data in figures.render().items():
        files.append(File.generated(config, path, content=data))
    return files
