"""Agent configs: dataclasses whose defaults are the papers', built from overrides with validation.

Every agent declares a config dataclass. `build_config` fills it from keyword overrides, YAML files and
`key=value` strings (the CLI's `--set`), converting strings to the field's type; an unknown key or a value
of the wrong type is a `ConfigError`, never silently ignored. NaN and infinity are rejected too: a float field
that means something by infinity opts in with `field(default=..., metadata={"allow_inf": True})`.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import math
import re
import textwrap
import tokenize
import types
import typing
import warnings
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
    for key, value in _renamed(config_class, overrides or {}, owner).items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{key}' for {owner}; known keys: {known}")
        values[key] = _coerce(key, value, hints[key], fields[key].metadata.get("allow_inf", False))
    config = config_class(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def _renamed(config_class: type, overrides: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`overrides` with keys a config has renamed (its `renamed_keys`, old -> new) under their new names, with
    a warning: old scripts and checkpoints keep working."""
    renamed = getattr(config_class, "renamed_keys", {})
    result = {}
    for key, value in overrides.items():
        new = renamed.get(key)
        if new is None:
            result[key] = value
            continue
        if new in overrides:
            raise ConfigError(f"config keys '{key}' and '{new}' of {owner} are the same setting; "
                              f"give '{new}' only")
        warnings.warn(f"config key '{key}' of {owner} is now called '{new}'", FutureWarning, stacklevel=4)
        result[new] = value
    return result


def check_range(config, name: str, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """ConfigError naming `name` unless `config.name` lies in the range (an open end excludes its bound)."""
    value = getattr(config, name)
    fits = ((low is None or (value > low if low_open else value >= low))
            and (high is None or (value < high if high_open else value <= high)))
    if fits:
        return
    if high is None:
        wanted = f"{'>' if low_open else '>='} {low}"
    elif low is None:
        wanted = f"{'<' if high_open else '<='} {high}"
    else:
        wanted = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    raise ConfigError(f"{name} must be {wanted}, got {value}")


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


def config_docs(config_class: type) -> dict[str, str]:
    """Each field's meaning, read from the comments written beside it (or on the lines just above it) in
    the class that declares it: one place says what a key means, for the reader of the code and for
    `modelrl config`."""
    docs: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if not dataclasses.is_dataclass(cls) or cls is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in source.splitlines()[1:]:
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(stripped.lstrip("#").strip())
                continue
            match = _FIELD_LINE.match(line)
            if match:
                comment = _comment_of(line)
                text = " ".join([*pending, comment] if comment else pending)
                if text:
                    docs[match.group(1)] = text
            pending = []
    return docs


_FIELD_LINE = re.compile(r"^    (\w+)\s*:\s*[^=]+=")


def _comment_of(line: str) -> str:
    """The trailing `# comment` of one source line, '' if none (a '#' inside a string is not one)."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if token.type == tokenize.COMMENT:
                return token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return ""


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(annotation)))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def describe_config(config_class: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every field of an agent's config, in declaration order."""
    docs, hints = config_docs(config_class), _field_types(config_class)
    rows = []
    for f in dataclasses.fields(config_class):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f.name, _type_name(hints[f.name]),
                     repr(default) if isinstance(default, str) else str(default), docs.get(f.name, "")))
    return rows
