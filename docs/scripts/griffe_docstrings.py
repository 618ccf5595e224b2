"""Griffe extensions: read maskwise's docstrings as Python and its readers see them.

- `RuntimeDocstrings`: a class whose docstring is built at import time (`__doc__ =
  "..." + _SHARED_ARGS`, as the recurrent, convolution and pooling layers share their
  argument lists) has none in the source; take the one Python sees.
- `ExampleSections`: Google style names the section `Examples:`; griffe reads the
  singular `Example:` as a plain admonition and renders its `>>>` lines as quoted
  text. Read them as code.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:$", flags=re.M)


class RuntimeDocstrings(griffe.Extension):
    """Give a class without a docstring in its source the docstring it has at run time."""

    def on_class_instance(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if cls.docstring is not None:
            return
        runtime = getattr(importlib.import_module(cls.module.path), cls.name, None)
        text = inspect.getdoc(runtime) if runtime is not None else None
        if text:  # set after `ExampleSections` saw the class: rename its section here
            cls.docstring = griffe.Docstring(_SINGULAR.sub(r"\1Examples:", text), parent=cls)


class ExampleSections(griffe.Extension):
    """Rename each `Example:` section header to `Examples:` before the docstring is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
