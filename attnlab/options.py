"""One definition of an option: a dataclass field with its help text, choices and checks.

A recipe's options (``attnlab.recipes``) and a run's options (``attnlab.training.session``) are
dataclasses whose fields are made with :func:`option`. The command line derives its flags from them
(``attnlab.cli.flags``) and ``attnlab.train(...)`` takes the same names as keyword arguments, so a
flag and its Python twin share one name, one default, one help text and one check.

Text values (flags, ``--set key=value``, a config file) are parsed by the field's declared type with
:func:`parse_text`: booleans accept only true/false/1/0 (yes/no/on/off too), numbers must be finite,
and a choice must be one of the listed choices.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from attnlab.errors import AttnlabError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
NONE_WORDS = ("none", "null")


def option(default: Any, help: str, *, choices: tuple[Any, ...] | None = None, metavar: str | None = None,
           minimum: float | None = None, maximum: float | None = None, short: str | None = None) -> Any:
    """A dataclass field that is also a command-line flag (``--name-with-dashes``).

    ``minimum`` / ``maximum``: the range of values accepted (numbers); ``short``: a one-letter alias (``-k``).
    """
    metadata = {"help": help, "choices": choices, "metavar": metavar, "minimum": minimum, "maximum": maximum,
                "short": short}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _base_types(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None members of an annotation and whether None is allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = list(typing.get_args(annotation))
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def parse_text(text: str, annotation: Any, name: str) -> Any:
    """Parse ``text`` as a value of ``annotation`` (``int``, ``float``, ``bool``, ``str``, unions with None)."""
    members, nullable = _base_types(annotation)
    low = text.strip().lower()
    if nullable and low in NONE_WORDS:
        return None
    errors = []
    for member in members:
        try:
            return _parse_one(text, member, name)
        except AttnlabError as err:
            errors.append(str(err))
    raise AttnlabError(errors[0] if errors else f"{name}: cannot parse {text!r}")


def _parse_one(text: str, member: Any, name: str) -> Any:
    low = text.strip().lower()
    if member is bool:
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise AttnlabError(f"{name} must be true or false (or 1/0), got {text!r}")
    if member is int:
        try:
            return int(text.strip().replace("_", ""))
        except ValueError:
            raise AttnlabError(f"{name} must be a whole number, got {text!r}") from None
    if member is float:
        try:
            value = float(text)
        except ValueError:
            raise AttnlabError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise AttnlabError(f"{name} must be a finite number, got {text!r}")
        return value
    if member in (str, Any):
        return text
    raise AttnlabError(f"{name}: values of type {member} cannot be given as text")


def check_value(value: Any, annotation: Any, name: str) -> Any:
    """Check a Python value (from ``attnlab.train(**options)`` or a JSON file) against its type.

    An int is accepted for a float (and converted); a bool is never accepted for a number; a string
    is parsed as text would be.
    """
    members, nullable = _base_types(annotation)
    if value is None:
        if nullable or Any in members:
            return None
        raise AttnlabError(f"{name} cannot be empty (none)")
    if isinstance(value, str) and str not in members and Any not in members:
        return parse_text(value, annotation, name)
    for member in members:
        if member is Any:
            return value
        if member is bool and isinstance(value, bool):
            return value
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if member is float and isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise AttnlabError(f"{name} must be a finite number, got {value!r}")
            return float(value)
        if member is str and isinstance(value, str):
            return value
        if typing.get_origin(member) in (list, tuple) and isinstance(value, list | tuple):
            return type(value)(value)
    wanted = " or ".join(getattr(m, "__name__", str(m)) for m in members)
    raise AttnlabError(f"{name} must be {wanted}, got {value!r}")


def validate_options(options: Any) -> Any:
    """Check every field of an options dataclass: its type, its choices and its minimum."""
    types_of = field_types(type(options))
    for f in dataclasses.fields(options):
        flag = "--" + f.name.replace("_", "-")
        value = check_value(getattr(options, f.name), types_of[f.name], flag)
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise AttnlabError(f"{flag} must be one of {', '.join(map(str, choices))}, got {value!r}")
        minimum = f.metadata.get("minimum")
        if minimum is not None and value is not None and value < minimum:
            raise AttnlabError(f"{flag} must be at least {minimum}, got {value!r}")
        maximum = f.metadata.get("maximum")
        if maximum is not None and value is not None and value > maximum:
            raise AttnlabError(f"{flag} must be at most {maximum}, got {value!r}")
        setattr(options, f.name, value)
    return options


def options_from(cls: type, values: dict[str, Any], where: str) -> Any:
    """An options dataclass from a dict, refusing unknown names; every value checked."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise AttnlabError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(names)}")
    return validate_options(cls(**values))
