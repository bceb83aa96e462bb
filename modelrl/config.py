"""Agent configs: dataclasses whose defaults are the papers', built from overrides with validation.

Every agent declares a config dataclass. `build_config` fills it from keyword overrides, YAML files and
`key=value` strings (the CLI's `--set`), converting strings to the field's type; an unknown key or a value
of the wrong type is a `ConfigError`, never silently ignored. NaN and infinity are rejected too: a float field
that means something by infinity opts in with `field(default=..., metadata={"allow_inf": True})`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelrl.errors import ConfigError


def config_fields(config_class: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config_class)}


def _field_types(config_class: type) -> dict[str, Any]:
    return typing.get_type_hints(config_class)


def _coerce(name: str, value: Any, annotation: Any, allow_inf: bool = False) -> Any:
    """Convert `value` to `annotation` (str from the command line, or YAML scalars); raise on mismatch."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option, allow_inf)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"config key '{name}' must be one of {list(allowed)}, got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"config key '{name}' must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{name}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise ConfigError(f"config key '{name}' must be an integer, got {value!r}")
    if annotation is float:
        number = None
        try:
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                number = float(value)
        except ValueError:
            pass
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if number is None:
            raise ConfigError(f"config key '{name}' must be a number, got {value!r}")
        if math.isnan(number) or (math.isinf(number) and not allow_inf):
            raise ConfigError(f"config key '{name}' must be a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{name}' must be a string, got {value!r}")
    return value


def build_config(config_class: type, overrides: Mapping[str, Any] | None = None, *, owner: str = "agent"):
    """Return `config_class(**overrides)` after checking every key and converting every value."""
    fields = config_fields(config_class)
    hints = _field_types(config_class)
    values = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{key}' for {owner}; known keys: {known}")
        values[key] = _coerce(key, value, hints[key], fields[key].metadata.get("allow_inf", False))
    config = config_class(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def parse_assignments(assignments: list[str] | None) -> dict[str, str]:
    """Parse `["key=value", ...]` (the CLI's --set) into a dict of strings."""
    parsed = {}
    for item in assignments or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a YAML file") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML ({error.__class__.__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    return data


def config_to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)
