"""Command-line flags derived from options dataclasses (``attnlab.options.option`` fields).

Each field ``name`` becomes ``--name-with-dashes`` with the field's default, help and choices; a
``bool`` field that defaults to False is a switch; a ``list`` field is repeatable. Flags are parsed
with ``argparse.SUPPRESS`` defaults, so :func:`given` returns only what the user typed: the session
tells "left out" from "set to the default" (that matters on ``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from attnlab.options import check_value, field_types, parse_text


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _text_parser(annotation: Any, flag: str):
    def parse(text: str) -> Any:
        from attnlab.errors import AttnlabError

        try:
            return parse_text(text, annotation, flag)
        except AttnlabError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{flag} ")) from None

    parse.__name__ = getattr(annotation, "__name__", "value")
    return parse


def add_option_flags(parser: argparse.ArgumentParser | Any, cls: type, skip: tuple[str, ...] = (),
                     shown: dict[str, Any] | None = None) -> None:
    """Add one flag per field of the options dataclass ``cls`` (except ``skip``).

    ``shown`` gives the default to print for fields whose real default is decided later (a kind's own
    steps, batch size or learning rate).
    """
    shown = shown or {}
    types_of = field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta, annotation = f.metadata, types_of[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        names = [flag_name(f.name)] + ([f"-{meta['short']}"] if meta.get("short") else [])
        help_text = meta.get("help", "")
        if f.name in shown:
            help_text = help_text.split(" (default")[0] + f" (default: {shown[f.name]})"
        elif default not in (None, False, [], "") and "default" not in help_text:
            help_text += f" (default: {default})"
        common = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if annotation is bool and default is False:
            parser.add_argument(*names, action="store_true", **common)
        elif typing.get_origin(annotation) is list:
            parser.add_argument(*names, action="append", metavar=meta.get("metavar"), **common)
        else:
            parser.add_argument(*names, type=_text_parser(annotation, flag_name(f.name)),
                                choices=meta.get("choices"), metavar=meta.get("metavar"), **common)


def given(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` the user set on the command line, checked by type."""
    types_of = field_types(cls)
    values = vars(namespace)
    return {name: check_value(values[name], types_of[name], flag_name(name))
            for name in types_of if name in values}
