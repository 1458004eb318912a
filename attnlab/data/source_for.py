"""Which :class:`~attnlab.data.sources.Source` reads a corpus: a built-in name, a text file, a folder of
``.txt`` files, or a ``.jsonl`` / ``.parquet`` / ``.arrow`` table."""

from __future__ import annotations

from pathlib import Path

from attnlab.data.sources import (
    TABLE_SUFFIXES,
    CorpusSource,
    FolderSource,
    Source,
    TextFileSource,
    _looks_like_path,
)
from attnlab.data.tables import TableSource
from attnlab.errors import AttnlabError


def open_source(spec: str | Path, text_column: str = "text") -> Source:
    """The :class:`Source` for a built-in corpus name, a text file, a folder of ``.txt`` files, or a
    ``.jsonl`` / ``.parquet`` / ``.arrow`` file (``text_column`` names the column with the text)."""
    from attnlab.data.corpora import ALL_PLAYS, _play_files, _unknown_corpus

    name = str(spec)
    if not name.strip():
        raise AttnlabError("no corpus given; name one (see 'attnlab corpora') or give a path to a text file")
    path = Path(name).expanduser()
    if not _looks_like_path(spec) and (name == ALL_PLAYS or name in _play_files()):
        return CorpusSource(name)
    if path.is_dir():
        return FolderSource(name, path.resolve())
    if path.is_file():
        table = TABLE_SUFFIXES.get(path.suffix.lower())
        if table:
            return TableSource(name, path.resolve(), table, text_column)
        return TextFileSource(name, path.resolve())
    if path.exists():
        raise AttnlabError(f"{path} is neither a regular file nor a folder; give a text file or a folder")
    raise _unknown_corpus(name)
