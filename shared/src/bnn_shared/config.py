"""One configuration model for every package: typed schemas validated by pydantic v2.

A package describes its settings as (nested) :class:`ConfigModel` schemas (pydantic models
with unknown keys forbidden). YAML files, command-line flags and ``--set KEY.SUB=value``
overrides are three ways to fill the same schema: :func:`load_config` reads a YAML file and
applies overrides, :func:`add_config_arguments` / :func:`config_from_arguments` turn every
field into a flag. Every mistake is one :class:`~bnn_shared.errors.ConfigError` line that
names the file and the dotted key: an unknown key (with close-match suggestions), a missing
required key, or a value of the wrong type or out of range.

Example::

    class Optim(ConfigModel):
        lr: PositiveFloat = 1e-3
        betas: tuple[float, float] = (0.9, 0.999)

    class Config(ConfigModel):
        hidden: PositiveInt
        optim: Optim = Field(default_factory=Optim)

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
from typing import Any, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from .errors import ConfigError

__all__ = [
    "ConfigModel",
    "add_config_arguments",
    "apply_overrides",
    "config_from_arguments",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_value",
    "to_dict",
    "validation_message",
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
    created. Unknown keys are reported later, when the schema is built.

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
    """Read ``path``, apply ``overrides`` and build the schema ``cls`` from it."""
    overrides = list(overrides)
    data = apply_overrides(load_yaml(path), overrides)
    source = f"{path} (with overrides)" if overrides else str(path)
    return from_dict(cls, data, source=source)


# ---------------------------------------------------------------------------------------------
# Schemas: pydantic models <-> mappings
# ---------------------------------------------------------------------------------------------


class ConfigModel(BaseModel):
    """Base of every configuration schema: pydantic v2, strict types, unknown keys forbidden.

    Fields are typed (``int``, ``float``, ``bool``, ``str``, ``Path``, ``X | None``,
    ``Literal[...]``, lists, tuples, dicts, nested models); values are validated when the
    model is built and when a field is assigned. Types are strict, as YAML gives them: a
    string is not a number, a boolean is not an integer, ``2.0`` is not an integer (an
    integer is a float, a YAML list a tuple and a string a path); NaN and infinite floats
    are refused. Give each field a
    ``description``: it is the help text of its command-line flag
    (:func:`add_config_arguments`). Cross-field rules go in ``@model_validator(mode="after")``
    methods that raise ``ValueError``; the message reaches the user as one line naming the
    file.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        validate_assignment=True,
        validate_default=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _lists_as_tuples_strings_as_paths(cls, value: Any, info: ValidationInfo) -> Any:
        tp = _flag_type(cls.model_fields[info.field_name].annotation)
        if isinstance(value, list) and (typing.get_origin(tp) is tuple or tp is tuple):
            return tuple(value)
        if isinstance(value, str) and tp is Path:
            return Path(value)
        return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "<dict>") -> T:
    """Build the schema ``cls`` (a :class:`ConfigModel`) from ``data``, validated.

    Args:
        cls: the schema.
        data: the mapping, e.g. from :func:`load_yaml`.
        source: where ``data`` came from (a file name), quoted in every error.

    Raises:
        ConfigError: one line naming ``source`` and, for each problem, the dotted key and what
            is wrong: an unknown key (with close-match suggestions and the valid keys), a
            missing required key, or a value of the wrong type or range.
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise TypeError(f"from_dict needs a pydantic model (ConfigModel), got {cls!r}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the config must be a mapping of keys, got {_kind(data)}")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, cls, source)) from None


def validation_message(exc: ValidationError, cls: type[BaseModel], source: str) -> str:
    """One line for all the problems of a pydantic ``ValidationError`` of ``cls``."""
    errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
    problems = [_problem(error, cls) for error in errors]  # unknown keys first: typos explain
    return f"{source}: " + "; ".join(dict.fromkeys(problems))


def _problem(error: Mapping[str, Any], cls: type[BaseModel]) -> str:
    loc = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
    dotted = _dotted(loc)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key_message(str(loc[-1]), _dotted(loc[:-1]), _fields_at(cls, loc[:-1]))
    if kind == "missing":
        return f"missing required key {dotted!r}"
    message = str(error["msg"])
    if kind == "value_error":  # a model validator's ValueError: its text, without the prefix
        message = message.removeprefix("Value error, ")
        return message if not dotted else f"key {dotted!r}: {message}"
    message = message.split(", got ")[0].split(", unable to")[0]
    message = message[:1].lower() + message[1:]
    message = message.removeprefix("input should be ").removeprefix("value should be ")
    where = f"key {dotted!r}" if dotted else "the config"
    return f"{where} must be {message}, got {_kind(value)} ({_short(value)})"


def _dotted(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _fields_at(cls: type[BaseModel], loc: list[Any]) -> list[str]:
    """The field names of the (nested) model at ``loc``, for the unknown-key message."""
    model: Any = cls
    for part in loc:
        info = getattr(model, "model_fields", {}).get(part)
        if info is None:
            return []
        model = _model_of(info.annotation)
    return list(getattr(model, "model_fields", {}))


def _model_of(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON data of a schema (or of containers of schemas or dataclasses).

    Tuples become lists and paths become strings, so that the result can be dumped with
    ``yaml.safe_dump`` and read back by :func:`from_dict`.
    """
    if isinstance(obj, BaseModel):
        return to_dict(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {key: to_dict(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _unknown_key_message(key: str, path: str, fields: list[str]) -> str:
    dotted = f"{path}.{key}" if path else key
    message = f"unknown key {key!r} (at {dotted!r})"
    close = difflib.get_close_matches(key, fields, n=3, cutoff=0.6)
    if close:
        message += "; did you mean " + " or ".join(repr(name) for name in close) + "?"
    where = f" under {path!r}" if path else ""
    return message + f" (valid keys{where}: {', '.join(fields) or 'none'})"


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


def add_config_arguments(parser: Any, cls: type[BaseModel], *, prefix: str = "") -> None:
    """Add one ``--key`` flag per field of the schema ``cls`` (nested: ``--outer.inner``).

    Flags take their value as YAML (``--lr 1e-3``, ``--layers 2000 1000`` for lists,
    ``--flag true`` or bare ``--flag`` for booleans) and default to "not given", so that a
    config file's values are only overridden by the flags a user types. Collect them with
    :func:`config_from_arguments`. Underscores in names may also be written as dashes. A
    field's ``description`` is its help text.
    """
    for field_name, info in cls.model_fields.items():
        name = f"{prefix}{field_name}"
        tp = _flag_type(info.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            add_config_arguments(parser, tp, prefix=f"{name}.")
            continue
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        raw = tp is str or tp is Path  # taken as typed, not parsed as YAML
        kwargs: dict[str, Any] = {
            "dest": f"{'config_raw' if raw else 'config'}:{name}",
            "default": _NOT_GIVEN,
            "metavar": field_name.upper(),
            "help": info.description or "",
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
    elif overrides:
        source += " (with --set values)"
    return from_dict(cls, data, source=source)


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


_NOT_GIVEN = _NotGiven()


def _flag_type(tp: Any) -> Any:
    """``Optional[X]`` -> ``X``, for the shape of a flag."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp
