"""Table sources: the text column of a ``.jsonl``, ``.parquet`` or ``.arrow`` file, read with pyarrow.

Each row is a document. Rows are read in record batches (never the whole table), their text made
plain the way :func:`attnlab.data.corpora.load_corpus` treats a folder's files: ``\\r\\n`` made
``\\n``, leading and trailing newlines dropped, blank or missing values skipped, documents joined
with a blank line. ``.arrow`` files may be Arrow IPC files (Feather v2) or IPC streams (what
Hugging Face ``datasets`` writes). Nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnlab.data.sources import Piece, Source, file_identity, join_documents
from attnlab.errors import AttnlabError

JSON_BLOCK_BYTES = 1 << 24  # pyarrow's JSON reader needs every line to fit in one block
PARQUET_BATCH_ROWS = 4096
_KIND_NAMES = {"jsonl": "JSON lines", "parquet": "Parquet", "arrow": "Arrow"}


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise AttnlabError("reading .jsonl, .parquet and .arrow files needs pyarrow: pip install pyarrow") from None
    return pyarrow


def _plain(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n") if "\r" in value else value


class TableSource(Source):
    """One column of a table file; ``fmt`` is ``"jsonl"``, ``"parquet"`` or ``"arrow"``."""

    has_documents = True

    def __init__(self, spec: str, path: Path, fmt: str, column: str) -> None:
        super().__init__(spec, path)
        self.kind, self.column = fmt, column
        if not isinstance(column, str) or not column:
            raise AttnlabError("the text column must be a non-empty name (--text-column)")
        self._check_column()

    # ----- opening and checking
    def _not_a(self, err: Exception) -> AttnlabError:
        return AttnlabError(f"{self.path} is not a {_KIND_NAMES[self.kind]} file ({str(err).strip()})")

    def _missing(self, columns: list[str]) -> AttnlabError:
        shown = ", ".join(repr(c) for c in columns[:20]) or "none"
        return AttnlabError(f"{self.path} has no column {self.column!r}; its columns: {shown}. "
                            "Name the text column with --text-column")

    def _check_type(self, field: Any) -> None:
        pa = _pyarrow()
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
                or getattr(pa.types, "is_string_view", lambda t: False)(field.type)):
            raise AttnlabError(f"the column {self.column!r} of {self.path} holds {field.type}, not text; "
                               "name the text column with --text-column")

    def _check_column(self) -> None:
        if self.kind == "jsonl":
            self._check_jsonl()
            return
        schema = self._open()[0]
        if self.column not in schema.names:
            raise self._missing(schema.names)
        self._check_type(schema.field(self.column))

    def _check_jsonl(self) -> None:
        """The first row must be a JSON object with the column (later rows without it are skipped)."""
        try:
            with self.path.open("rb") as handle:
                line = next((raw for raw in handle if raw.strip()), None)
        except OSError as err:
            raise AttnlabError(f"cannot read {self.path}: {err.strerror or err}") from None
        if line is None:
            raise AttnlabError(f"{self.path} is empty; give a file with some rows in it")
        try:
            row = json.loads(line)
        except (UnicodeDecodeError, ValueError) as err:
            raise AttnlabError(f"{self.path} is not a JSON lines file (its first row: {err})") from None
        if not isinstance(row, dict):
            raise AttnlabError(f"{self.path} is not a JSON lines file of objects (its first row is a "
                               f"{type(row).__name__})")
        if self.column not in row:
            raise self._missing(list(row))
        if row[self.column] is not None and not isinstance(row[self.column], str):
            raise AttnlabError(f"the column {self.column!r} of {self.path} holds "
                               f"{type(row[self.column]).__name__} values, not text; name the text column "
                               "with --text-column")

    def _open(self) -> tuple[Any, Any]:
        """``(schema, reader)`` for parquet and arrow files."""
        pa = _pyarrow()
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            try:
                reader = pq.ParquetFile(str(self.path))
            except (pa.ArrowException, OSError) as err:
                raise self._not_a(err) from None
            return reader.schema_arrow, reader
        try:
            mapped = pa.memory_map(str(self.path))
        except (pa.ArrowException, OSError) as err:
            raise AttnlabError(f"cannot read {self.path}: {err}") from None
        try:
            reader = pa.ipc.open_file(mapped)
        except pa.ArrowException:
            mapped.seek(0)
            try:
                reader = pa.ipc.open_stream(mapped)
            except pa.ArrowException as err:
                raise self._not_a(err) from None
        return reader.schema, (reader, mapped)

    # ----- reading
    @property
    def total_bytes(self) -> int:
        return self.path.stat().st_size

    def identity(self) -> dict[str, Any]:
        return {**self._base(), "text_column": self.column, **file_identity(self.path)}

    def _batches(self) -> Iterator[tuple[list[Any], int]]:
        """``(values of the column, bytes read so far)`` per record batch."""
        pa = _pyarrow()
        size = self.total_bytes
        try:
            if self.kind == "jsonl":
                yield from self._json_batches(size)
            elif self.kind == "parquet":
                _, reader = self._open()
                rows, done = max(1, reader.metadata.num_rows), 0
                for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[self.column]):
                    done += batch.num_rows
                    yield batch.column(0).to_pylist(), size * done // rows
            else:
                _, (reader, mapped) = self._open()
                if hasattr(reader, "num_record_batches"):  # an IPC file: batches by index
                    count = max(1, reader.num_record_batches)
                    batches = ((reader.get_batch(i), size * (i + 1) // count) for i in range(count))
                else:  # an IPC stream: read in order
                    batches = ((batch, mapped.tell()) for batch in reader)
                for batch, done in batches:
                    yield batch.column(batch.schema.get_field_index(self.column)).to_pylist(), done
        except pa.ArrowException as err:
            message = str(err).strip()
            if "straddl" in message:
                message = (f"a row is longer than {JSON_BLOCK_BYTES >> 20} MiB, more than the reader's block; "
                           "split such rows")
            raise AttnlabError(f"cannot read {self.path} ({message})") from None
        except OSError as err:
            raise AttnlabError(f"cannot read {self.path}: {err.strerror or err}") from None

    def _json_batches(self, size: int) -> Iterator[tuple[list[Any], int]]:
        pa = _pyarrow()
        import pyarrow.json as pj

        schema = pa.schema([pa.field(self.column, pa.large_string())])
        stream = pa.OSFile(str(self.path))
        with stream:
            reader = pj.open_json(
                stream,
                read_options=pj.ReadOptions(block_size=JSON_BLOCK_BYTES, use_threads=True),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
            for batch in reader:
                yield batch.column(0).to_pylist(), min(size, stream.tell())

    def _documents(self) -> Iterator[list[tuple[str, int]]]:
        for values, done in self._batches():
            for value in values:
                if value:
                    yield [(_plain(value), done)]

    def pieces(self) -> Iterator[Piece]:
        any_text = False
        for piece in join_documents(self._documents()):
            any_text = True
            yield piece
        if not any_text:
            raise AttnlabError(f"{self.path} has no text: every row's {self.column!r} is empty or missing")
