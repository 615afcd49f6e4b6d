"""Typed plugin configuration: dataclasses built from dicts, with errors that name the valid keys.

Values can arrive as strings (``--set lr=1e-3``) or as TOML/JSON values; both are coerced to the
field's declared type, and a value that cannot be is an error naming the field and the type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

from harness.errors import HarnessError


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_describe(args[0])}" if args else "list"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    bad = HarnessError(f"{where}: {value!r} is not a valid {_describe(tp)}.")
    if tp is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise HarnessError(f"{where}: {value!r} is not one of {', '.join(repr(c) for c in choices)}.")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except HarnessError:
                continue
        raise bad
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        items = [_coerce(v, args[0], where) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad
    if tp in (int, float):
        # bool is an int to Python, never to a config; an int field takes a whole float (1.0) but not 1.5
        if isinstance(value, bool) or (tp is int and isinstance(value, float) and not value.is_integer()):
            raise bad
        if isinstance(value, (int, float)):
            return tp(value)
        if isinstance(value, str):
            try:
                return tp(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return build_config(tp, value, where)
    return value


def build_config(cls: type, values: dict[str, Any] | None, owner: str) -> Any:
    """Build dataclass ``cls`` from ``values``; unknown keys and mistyped values are errors."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in values if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise HarnessError(
            f"{owner}: unknown config key {key!r}.{hint} Valid keys: {', '.join(fields) or '(none)'}."
        )
    hints = typing.get_type_hints(cls)
    coerced = {k: _coerce(v, hints[k], f"{owner}: config key {k!r}") for k, v in values.items()}
    try:
        return cls(**coerced)
    except (TypeError, ValueError) as err:  # __post_init__ validation
        raise HarnessError(f"{owner}: {err}") from None


def config_fields(cls: type) -> list[dict[str, str]]:
    """Each field's name, type and default, for ``harness list`` and the docs."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append(
            {
                "name": f.name,
                "type": _describe(hints[f.name]),
                "default": repr(default),
                "help": f.metadata.get("help", ""),
            }
        )
    return rows


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; values stay strings for ``build_config``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--set expects key=value, got {pair!r}. Example: --set lr=1e-3")
        out[key.strip()] = value.strip()
    return out
