"""Dataclass configurations read from YAML and validated on load.

A package describes its settings as (nested) dataclasses; :func:`load_config` reads a YAML
file, applies ``KEY.SUB=value`` overrides from the command line and builds the dataclass.
Every mistake is a :class:`~bnn_shared.errors.ConfigError` that names the key, its dotted
path and the file: an unknown key (with close-match suggestions), a missing required key,
or a value of the wrong type.

Example::

    @dataclass
    class Optim:
        lr: float = 1e-3
        betas: tuple[float, float] = (0.9, 0.999)

    @dataclass
    class Config:
        hidden: int
        optim: Optim = field(default_factory=Optim)

    cfg = load_config("configs/copy.yaml", Config, overrides=["optim.lr=3e-4"])
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from .errors import ConfigError

__all__ = [
    "add_config_arguments",
    "apply_overrides",
    "config_from_arguments",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_value",
    "to_dict",
]

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` and ``2E5`` as floats.

    YAML 1.1 (PyYAML) requires a dot and a signed exponent in a float, so ``1e-3`` would
    otherwise load as the string ``"1e-3"``.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


# ---------------------------------------------------------------------------------------------
# Reading YAML and overrides
# ---------------------------------------------------------------------------------------------


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (an empty file gives ``{}``).

    Raises:
        ConfigError: the file is missing, is not valid YAML, or is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_kind(data)}")
    return data


def parse_value(text: str) -> Any:
    """Parse one command-line value as YAML: ``1e-3`` -> 0.001, ``true`` -> True, ``[1,2]``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {_yaml_problem(exc)}") from exc


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``"A.B.C=value"`` items applied in order.

    The value is parsed as YAML (:func:`parse_value`); missing intermediate mappings are
    created. Unknown keys are reported later, when the dataclass is built.

    Raises:
        ConfigError: an item has no ``=``, an empty key part, an unparsable value, or walks
            through a value that is not a mapping.
    """
    result = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not sep or not all(part.strip() for part in parts):
            raise ConfigError(
                f"malformed override {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-3"
            )
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part.strip(), {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {item!r}: {prefix!r} is {_kind(child)}, not a mapping")
            node = child
        try:
            node[parts[-1].strip()] = parse_value(text.strip())
        except ConfigError as exc:
            raise ConfigError(f"override {item!r}: {exc}") from exc
    return result


def load_config(path: str | Path, cls: type[T], overrides: Iterable[str] = ()) -> T:
    """Read ``path``, apply ``overrides`` and build the dataclass ``cls`` from it."""
    overrides = list(overrides)
    data = apply_overrides(load_yaml(path), overrides)
    source = f"{path} (with overrides)" if overrides else str(path)
    return from_dict(cls, data, source=source)


# ---------------------------------------------------------------------------------------------
# Dataclasses <-> mappings
# ---------------------------------------------------------------------------------------------


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "<dict>") -> T:
    """Build the (nested) dataclass ``cls`` from ``data``, checking keys and types.

    Supported field types: ``int``, ``float`` (an int is accepted and converted), ``bool``,
    ``str``, ``pathlib.Path`` (from a string), ``Optional[...]`` / ``X | None``, unions,
    ``list[...]``, ``tuple[...]``, ``Literal[...]``, ``dict[str, ...]``, nested dataclasses
    and ``Any``.

    Args:
        cls: the dataclass to build.
        data: the mapping, e.g. from :func:`load_yaml`.
        source: where ``data`` came from (a file name), quoted in every error.

    Raises:
        ConfigError: unknown key (with suggestions), missing required key, or wrong type;
            the message names the dotted key and ``source``.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    return _build(cls, data, "", source)


def to_dict(obj: Any) -> Any:
    """Turn a dataclass (or nested containers of them) into plain YAML/JSON data.

    Tuples become lists and paths become strings, so that the result can be dumped with
    ``yaml.safe_dump`` and read back by :func:`from_dict`.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {key: to_dict(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _build(cls: type, data: Any, path: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        where = f"key {path!r}" if path else "the config"
        raise ConfigError(f"{source}: {where} must be a mapping of keys, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(_unknown_key_message(str(key), path, fields, source))
    values = {}
    for name, field in fields.items():
        dotted = f"{path}.{name}" if path else name
        if name in data:
            values[name] = _convert(hints[name], data[name], dotted, source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {dotted!r}")
    return cls(**values)


def _unknown_key_message(key: str, path: str, fields: Mapping[str, Any], source: str) -> str:
    dotted = f"{path}.{key}" if path else key
    message = f"{source}: unknown key {key!r} (at {dotted!r})"
    close = difflib.get_close_matches(key, list(fields), n=3, cutoff=0.6)
    if close:
        message += "; did you mean " + " or ".join(repr(name) for name in close) + "?"
    where = f" under {path!r}" if path else ""
    return message + f" (valid keys{where}: {', '.join(fields) or 'none'})"


def _convert(tp: Any, value: Any, path: str, source: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert it (int -> float, list -> tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, path, source)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, args, value, path, source)
    if origin is Literal:
        if any(value == arg and type(value) is type(arg) for arg in args):
            return value
        choices = ", ".join(repr(arg) for arg in args)
        raise ConfigError(f"{source}: key {path!r} must be one of {choices}, got {value!r}")
    if origin in (list, tuple) or tp in (list, tuple):
        return _convert_sequence(tp, origin or tp, args, value, path, source)
    if origin is dict or tp is dict:
        return _convert_mapping(tp, args, value, path, source)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise _type_error(tp, value, path, source)
    if tp is Path and isinstance(value, str | Path):
        return Path(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _type_error(tp, value, path, source)


def _convert_union(tp: Any, args: tuple, value: Any, path: str, source: str) -> Any:
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, path, source)
        except ConfigError:
            continue
    raise _type_error(tp, value, path, source)


def _convert_sequence(tp: Any, kind: type, args: tuple, value: Any, path: str, source: str):
    if not isinstance(value, list | tuple):
        raise _type_error(tp, value, path, source)
    if kind is list or not args or (len(args) == 2 and args[1] is Ellipsis):
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, f"{path}[{i}]", source) for i, v in enumerate(value)]
        return items if kind is list else tuple(items)
    if len(value) != len(args):
        raise ConfigError(
            f"{source}: key {path!r} must have {len(args)} items ({_type_name(tp)}), "
            f"got {len(value)}: {value!r}"
        )
    pairs = enumerate(zip(args, value, strict=True))
    return tuple(_convert(arg, v, f"{path}[{i}]", source) for i, (arg, v) in pairs)


def _convert_mapping(tp: Any, args: tuple, value: Any, path: str, source: str) -> dict:
    if not isinstance(value, Mapping):
        raise _type_error(tp, value, path, source)
    key_type, value_type = args if args else (Any, Any)
    return {
        _convert(key_type, k, f"{path}.<key>", source): _convert(
            value_type, v, f"{path}.{k}", source
        )
        for k, v in value.items()
    }


def _type_error(tp: Any, value: Any, path: str, source: str) -> ConfigError:
    return ConfigError(
        f"{source}: key {path!r} must be {_type_name(tp)}, got {_kind(value)} ({value!r})"
    )


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(tp, "__name__", repr(tp))


def _kind(value: Any) -> str:
    return type(value).__name__


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


# ---------------------------------------------------------------------------------------------
# Command line: every config key is also a flag
# ---------------------------------------------------------------------------------------------


def add_config_arguments(parser: Any, cls: type, *, prefix: str = "") -> None:
    """Add one ``--key`` flag per field of the dataclass ``cls`` (nested: ``--outer.inner``).

    Flags take their value as YAML (``--lr 1e-3``, ``--layers 2000 1000`` for lists,
    ``--flag true`` or bare ``--flag`` for booleans) and default to "not given", so that a
    config file's values are only overridden by the flags a user types. Collect them with
    :func:`config_from_arguments`. Underscores in names may also be written as dashes.
    """
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        tp = _resolve_field_type(cls, f)
        if dataclasses.is_dataclass(tp):
            add_config_arguments(parser, tp, prefix=f"{name}.")
            continue
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        help_text = f.metadata.get("help", "") if f.metadata else ""
        raw = tp is str or tp is Path  # taken as typed, not parsed as YAML
        kwargs: dict[str, Any] = {
            "dest": f"{'config_raw' if raw else 'config'}:{name}",
            "default": _NOT_GIVEN,
            "metavar": f.name.upper(),
            "help": help_text,
        }
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs.update(nargs="?", const="true")
        elif origin in (list, tuple) or tp in (list, tuple):
            kwargs.update(nargs="+")
        parser.add_argument(*flags, **kwargs)


def config_from_arguments(
    cls: type[T], args: Any, *, path: str | Path | None = None, overrides: Iterable[str] = ()
) -> T:
    """Build ``cls`` from an optional YAML file, then the flags of :func:`add_config_arguments`
    that were given, then ``KEY=value`` overrides; validated like :func:`from_dict`."""
    data = load_yaml(path) if path else {}
    given = []
    for dest, value in vars(args).items():
        kind, sep, key = dest.partition(":")
        if not sep or kind not in ("config", "config_raw") or value is _NOT_GIVEN:
            continue
        if kind == "config_raw":
            given.append((key, value))
        elif isinstance(value, list):
            given.append((key, [parse_value(v) for v in value]))
        else:
            given.append((key, parse_value(value)))
    data = copy.deepcopy(data)
    for key, value in given:
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    overrides = list(overrides)
    data = apply_overrides(data, overrides)
    source = str(path) if path else "the command line"
    if path and (given or overrides):
        source += " (with command-line values)"
    return from_dict(cls, data, source=source)


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


_NOT_GIVEN = _NotGiven()


def _resolve_field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    tp = hints.get(f.name, f.type)
    if typing.get_origin(tp) in (Union, types.UnionType):  # Optional[X] -> X for the flag shape
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            tp = args[0]
    return tp
