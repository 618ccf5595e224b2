"""A griffe extension: read maskwise's `Example:` docstring sections as examples.

Google style names the section `Examples:`; griffe reads the singular as a plain
admonition and renders its `>>>` lines as quoted text. This reads them as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:$", flags=re.M)


class ExampleSections(griffe.Extension):
    """Rename each `Example:` section header to `Examples:` before the docstring is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
