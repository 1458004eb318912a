"""Reading ELIZA scripts from files: the built-in DOCTOR script, or the user's own.

:func:`load_script` picks the form by extension (``.yaml``/``.yml`` and ``.json``: the
structured form; anything else: the plain text form; ``docs/eliza-script.md`` describes both)
and refuses, with one :class:`AttnlabError` naming the file, a file that is missing, unreadable,
not UTF-8 or larger than :data:`MAX_SCRIPT_BYTES` (read no further than that).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from attnlab.eliza.script import Script, parse_script
from attnlab.eliza.structured import parse_structured
from attnlab.errors import AttnlabError

DEFAULT_SCRIPT = "doctor"
MAX_SCRIPT_BYTES = 1_000_000  # a script file larger than this is refused (DOCTOR: 12 KB)


def load_script(path: str | Path) -> Script:
    """Load a script file: plain text (any extension), or YAML/JSON by extension.

    Files over :data:`MAX_SCRIPT_BYTES` are refused without being read to the end.
    """
    path = Path(path)
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        return parse_script(text, str(path))
    if suffix == ".json":
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            raise AttnlabError(f"ELIZA script {path}, line {err.lineno}: not valid JSON: {err.msg}") from None
        except RecursionError:
            raise AttnlabError(f"ELIZA script {path}: not valid JSON: nested too deeply") from None
        text = text.replace("\t", " ")  # JSON is YAML, except that YAML refuses tabs as white space
    return parse_structured(text, str(path))


def _read_text(path: Path) -> str:
    """The file's text, or an AttnlabError: missing, unreadable, too large or not UTF-8."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SCRIPT_BYTES + 1)
    except FileNotFoundError:
        raise AttnlabError(f"ELIZA script {path} not found; give the path of a script file") from None
    except OSError as err:
        raise AttnlabError(f"cannot read ELIZA script {path}: {err.strerror or err}") from None
    if len(data) > MAX_SCRIPT_BYTES:
        raise AttnlabError(
            f"ELIZA script {path} is larger than {MAX_SCRIPT_BYTES // 1_000_000} MB, "
            "the limit for a script file; refusing to read it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AttnlabError(f"ELIZA script {path} is not UTF-8 text") from None


def builtin_script(name: str = DEFAULT_SCRIPT) -> Script:
    """A script shipped in ``attnlab/eliza/scripts`` (parsed once, then cached)."""
    if name not in _BUILTIN_CACHE:
        folder = resources.files("attnlab.eliza") / "scripts"
        resource = folder / f"{name}.txt"
        if not resource.is_file():
            raise AttnlabError(f"no built-in ELIZA script {name!r}")
        _BUILTIN_CACHE[name] = parse_script(resource.read_text(encoding="utf-8"), f"{name}.txt")
    return _BUILTIN_CACHE[name]


_BUILTIN_CACHE: dict[str, Script] = {}

