"""Typed configs from loose values: ``--set key=value`` strings, TOML presets, JSON.

:func:`build_config` turns a mapping into a config dataclass, converting each value to the
type its field declares (``int``, ``float``, ``bool``, ``str``, ``X | None``) and checking
the ranges that hold for every model (sizes >= 1, learning rates > 0, weights >= 0), so
``dim=-3`` or ``lr_rs=abc`` fail before any work with the field named, never reaching a
model as a string. Model-specific checks stay in each config's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any

__all__ = ["ConfigError", "build_config", "coerce_value"]

_NONE = {"none", "null", ""}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}

# field names that must be >= 1 / > 0 / >= 0 wherever they occur
_POSITIVE_INT = re.compile(r"^(dim|[a-z_]*_dim|batch_size|[a-z_]*_batch_size|epochs|"
                           r"[a-z_]*_epochs|L|H|n_[a-z_]+|[a-z_]*_size|max_[a-z_]+|hops)$")
_POSITIVE = re.compile(r"^(lr|lr_[a-z_]+|[a-z_]+_lr)$")
_NON_NEGATIVE = re.compile(r"^([a-z_0-9]*weight[a-z_0-9]*|[a-z_0-9]*l2[a-z_0-9]*|dropout|"
                           r"margin|[a-z_]*_margin|init_std|[a-z_]*_holdout)$")


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; the message names the field."""


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """``(inner type, allows None)`` of ``X | None`` / ``Optional[X]``; other types as they are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        return (args[0] if len(args) == 1 else tp), optional
    return tp, False


def coerce_value(name: str, value: Any, tp: Any) -> Any:
    """``value`` converted to the declared type ``tp`` of field ``name``.

    Strings are parsed (``"3"`` -> 3, ``"1e-3"`` -> 0.001, ``"true"`` -> True, ``"None"`` ->
    None where the field allows None); an int is accepted for a float field; a float with a
    fractional part is refused for an int field. Types other than int/float/bool/str pass
    through unchanged.
    """
    inner, optional = _strip_optional(tp)
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE and optional):
        if optional or inner is Any:
            return None
        raise ConfigError(f"{name}: may not be None (expected {getattr(inner, '__name__', inner)})")
    if inner is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if inner is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            f = float(str(value).strip())
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(f)
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if inner is str:
        return str(value)
    return value


def _check_range(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if _POSITIVE_INT.match(name) and value < 1:
        raise ConfigError(f"{name}: must be >= 1, got {value}")
    if _POSITIVE.match(name) and value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {value}")
    if _NON_NEGATIVE.match(name) and value < 0:
        raise ConfigError(f"{name}: must be >= 0, got {value}")


def build_config(cls: type, params: dict[str, Any], *, owner: str = "") -> Any:
    """An instance of config dataclass ``cls`` from ``params``, typed and range-checked.

    Raises:
        ConfigError: an unknown key (the valid ones are listed), a value of the wrong type,
            or one out of range; the config's own ``__post_init__`` errors come through as
            ``ConfigError`` too.
    """
    what = f" for {owner}" if owner else ""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    bad = sorted(set(params) - set(fields))
    if bad:
        raise ConfigError(f"unknown parameter(s) {', '.join(bad)}{what}; "
                          f"valid: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in params.items():
        v = coerce_value(key, value, hints.get(key, Any))
        _check_range(key, v)
        values[key] = v
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad parameter value{what}: {exc}") from None
