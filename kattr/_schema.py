"""Strict conversion of plain YAML data into typed dataclasses.

Every dataclass field is checked against its type hint; unknown keys and wrong types raise a
`ConfigError` that names the full key path, e.g. ``train.optimizer.learning_rate``.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Point:
    ...     x: int = 0
    >>> from_data(Point, {"x": 3}, "point")
    Point(x=3)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union


class ConfigError(ValueError):
    """A configuration value that does not follow the schema; the message names the key path."""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def from_data(cls: type, data: Any, path: str) -> Any:
    """Builds dataclass `cls` from `data`, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, received {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown key; expected one of {sorted(fields)}"
        )
    kwargs = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name in data:
            kwargs[name] = convert(hints[name], data[name], key_path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key_path}: required key is missing")
    return cls(**kwargs)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def convert(hint: Any, value: Any, path: str) -> Any:
    """Checks `value` against the type `hint` and converts it (ints to floats, dataclasses)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # `X | None`: X's own error keeps its full key path
            return convert(options[0], value, path)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, path)
            except ConfigError as error:
                errors.append(str(error).split(": ", 1)[-1])
        raise ConfigError(f"{path}: " + "; or ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {list(args)}, received {_describe(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, received {_describe(value)}")
        return [convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, received {_describe(value)}")
        return {
            convert(args[0], k, f"{path}.{k}"): convert(args[1], v, f"{path}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(hint):
        return from_data(hint, value, path)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, received {_describe(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, received {_describe(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, received {_describe(value)}")
        return value
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: expected a string, received {_describe(value)}")
        return str(value)
    raise TypeError(f"{path}: unsupported schema type {hint!r}")


def to_data(obj: Any) -> Any:
    """Turns a dataclass tree back into plain YAML-ready data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, list):
        return [to_data(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_data(value) for key, value in obj.items()}
    return obj
