"""What `initializers`, `regularizers` and `constraints` share: a base class whose
objects save as JSON (`get_config` / `from_config`, Keras's names) and the lookup of a
layer argument given as a Keras name, an object, a Keras config dict or a function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .errors import ConfigError, format_error

JSON_KEY = "__keras_object__"
"""The key that marks a saved object in a layer's JSON config."""


class KerasObject:
    """Base of `Initializer`, `Regularizer` and `Constraint`: an object described by its
    constructor arguments (`get_config()`), rebuilt by `from_config(config)`."""

    kind: ClassVar[str] = ""
    """The module's name: `"initializers"`, `"regularizers"` or `"constraints"`."""
    registry: ClassVar[dict[str, type[KerasObject]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        KerasObject.registry[f"{cls.kind}.{cls.__name__}"] = cls

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasObject:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.get_config() == other.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.get_config())))


def to_json(obj: KerasObject) -> dict[str, Any]:
    """`obj` as `{"__keras_object__": "initializers.GlorotUniform", "config": {...}}`."""
    return {JSON_KEY: f"{obj.kind}.{type(obj).__name__}", "config": obj.get_config()}


def from_json(spec: dict[str, Any]) -> KerasObject:
    """The object `to_json` described."""
    return KerasObject.registry[spec[JSON_KEY]].from_config(spec["config"])


def lookup(
    kind: str,
    identifier: Any,
    base: type[KerasObject],
    names: dict[str, Callable[[], KerasObject]],
) -> Any:
    """The object a layer argument names: None stays None; an object of `base` or a
    plain function is used as given; a string is a Keras name (`names`, or a class
    name of the module); a dict is a Keras config `{"class_name": ..., "config": ...}`."""
    if identifier is None or isinstance(identifier, base):
        return identifier
    known = {cls.__name__: cls for key, cls in KerasObject.registry.items() if key.startswith(kind)}
    if isinstance(identifier, str):
        if identifier in names:
            return names[identifier]()
        if identifier in known and identifier != base.__name__:
            return known[identifier]()
    elif isinstance(identifier, dict) and identifier.get("class_name") in known:
        return known[identifier["class_name"]].from_config(identifier.get("config") or {})
    elif callable(identifier):
        return identifier
    raise ConfigError(
        format_error(
            f"Unknown {kind[:-1]} {identifier!r}.",
            expected=f"one of the Keras names {sorted(names)}, an object of "
            f"maskwise.{kind} (e.g. `maskwise.{kind}.{next(iter(sorted(known)), '')}(...)`), "
            "or a function",
            received=repr(identifier)[:80],
            fix=f"use a name or a class of maskwise.{kind}.",
        )
    )
