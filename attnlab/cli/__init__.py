"""The ``attnlab`` command line: thin, it parses, calls the library and prints.

Each sub-command lives in its own module under :mod:`attnlab.cli.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments). Modules are discovered, so adding a command never touches this file. Keep
``register`` free of heavy imports (PyTorch): import inside the command's function.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import typing

from attnlab.cli.help import Parser
from attnlab.errors import AttnlabError
from attnlab.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="attnlab",
        description=(
            "Build, train, compare and look inside every model in the history of attention, "
            "from ELIZA (1966) through RNN, LSTM and Bahdanau attention to the Transformer and GPT."
        ),
        epilog="Run 'attnlab COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from attnlab.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"attnlab.cli.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from attnlab.cli.commands.train import kind_first

        argv = kind_first(argv)
    except AttnlabError as err:
        parser.exit(2, f"attnlab: error: {err}\n")
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take a positional list after options; a command that wants free words anywhere
    # names the attribute they join with set_defaults(trailing_words=...)
    words_to = getattr(args, "trailing_words", None)
    if extra and words_to and not any(word.startswith("-") for word in extra):
        setattr(args, words_to, [*(getattr(args, words_to) or []), *extra])
    elif extra:
        parser.parse_args(argv)  # reports the unrecognised arguments and exits, as usual
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(0)
    try:
        check_device_flag(args)
        result = args.func(args)
    except AttnlabError as err:
        fail(str(err))
    except KeyboardInterrupt:
        print("\nattnlab: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `attnlab ... | head`: the reader went away; exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as err:  # the last resort for a file a command did not check: permission, full disk ...
        fail(os_error_text(err))
    except MemoryError:
        fail("out of memory; use a smaller model, batch, context or input")
    except RecursionError:  # json.loads on a hostile file: [[[[... thousands deep
        fail("an input file is nested too deeply to read (a damaged or hostile JSON file?)")
    except Exception as err:  # errors of libraries that are not OSError, when they are loaded at all
        torch, safetensors = sys.modules.get("torch"), sys.modules.get("safetensors")
        if torch is not None and isinstance(err, getattr(torch, "OutOfMemoryError", ())):
            fail("the device ran out of memory; use a smaller model, batch or context (or --device cpu)")
        if safetensors is not None and isinstance(err, getattr(safetensors, "SafetensorError", ())):
            fail(f"a weights file could not be read or written ({err})")
        raise
    sys.exit(int(result or 0))


def fail(message: str) -> typing.NoReturn:
    """Print one ``attnlab: error:`` line (control characters made visible) and exit with status 2."""
    from attnlab.chat import printable

    print(f"attnlab: error: {printable(message)}", file=sys.stderr)  # a path or text may hold escapes
    sys.exit(2)


def os_error_text(err: OSError) -> str:
    """``strerror: filename`` (both names of a rename), the way a shell tool says it."""
    text = err.strerror or str(err) or type(err).__name__
    names = [os.fsdecode(name) for name in (err.filename, err.filename2) if name is not None]
    return f"{text}: {' -> '.join(names)}" if names else text


def check_device_flag(args: argparse.Namespace) -> None:
    """A command's ``--device`` must name a device this machine has: one clear error before anything is
    loaded (``auto`` becomes the device it picks). ``train`` checks its own flags."""
    device = getattr(args, "device", None)
    if isinstance(device, str):
        from attnlab.devices import resolve_device

        args.device = str(resolve_device(device))
