"""The command line's argparse pieces: errors in attnlab's one-line form, and a help formatter that shows a
default only where the help text does not already say it."""

from __future__ import annotations

import argparse
import sys
import typing


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help, unless the help mentions its default itself
    or there is nothing useful to show (None, False, an empty list: "not given")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS or default in ("", [])
        if "default" in text.lower() or nothing or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in attnlab's one-line form: ``attnlab: error: ...`` and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"attnlab: error: {message} (see '{self.prog} --help')\n")
