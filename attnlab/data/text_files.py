"""Reading a UTF-8 text file as a stream: the one decoder of user text files.

The byte-order mark is dropped and ``\r\n`` / ``\r`` become ``\n``; NUL bytes or bad UTF-8 are one
:class:`AttnlabError` naming the file, the byte offset and the line. ``load_corpus`` joins the stream;
``attnlab prepare`` consumes it block by block.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from attnlab.errors import AttnlabError

DEFAULT_BLOCK_BYTES = 1 << 20  # text files are read 1 MiB at a time


def _utf8_boundary(block: bytes) -> int:
    """The largest cut ``<= len(block)`` that does not split a UTF-8 sequence."""
    end = len(block)
    for back in range(1, min(4, end) + 1):
        byte = block[end - back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): cut before it unless its sequence is complete
            need = 1 if byte < 0x80 else 2 if byte >= 0xC0 and byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end if back >= need else end - back
    return end


def _line_of(path: Path, offset: int) -> int:
    """The 1-based line of byte ``offset`` (read again only to word an error)."""
    lines, done = 1, 0
    with path.open("rb") as handle:
        while done < offset:
            block = handle.read(min(DEFAULT_BLOCK_BYTES, offset - done))
            if not block:
                break
            lines, done = lines + block.count(b"\n"), done + len(block)
    return lines


def stream_text_file(path: Path, block_bytes: int | None = None) -> Iterator[tuple[str, int]]:
    """Yield ``(text, bytes read so far)`` for a UTF-8 file, as :func:`attnlab.data.corpora.load_corpus` reads it: the
    byte-order mark dropped, ``\\r\\n`` and ``\\r`` made ``\\n``; NUL bytes or bad UTF-8 raise
    :class:`AttnlabError` naming the file, the byte offset and the line."""
    block_bytes = block_bytes or DEFAULT_BLOCK_BYTES
    carry, offset, first = b"", 0, True
    try:
        handle = path.open("rb")
    except OSError as err:
        raise AttnlabError(f"cannot read {path}: {err.strerror or err}") from None
    with handle:
        while True:
            try:
                block = handle.read(block_bytes)
            except OSError as err:
                raise AttnlabError(f"cannot read {path}: {err.strerror or err}") from None
            data, final = carry + block, not block
            if final:
                cut = len(data)
            else:  # cut after the last newline, else at a character boundary; never split "\r\n"
                cut = data.rfind(b"\n") + 1 or _utf8_boundary(data)
                if data[cut - 1: cut] == b"\r":
                    cut -= 1
            part, carry = data[:cut], data[cut:]
            if b"\x00" in part:
                raise AttnlabError(
                    f"{path} looks like a binary file (it contains NUL bytes); give a UTF-8 text file instead"
                )
            try:
                text = part.decode("utf-8")
            except UnicodeDecodeError as err:
                line = _line_of(path, offset + err.start)
                raise AttnlabError(
                    f"{path} is not valid UTF-8 text (bad byte at offset {offset + err.start}, line {line}); "
                    "convert it to UTF-8 (e.g. 'iconv -f latin1 -t utf-8') or give another file"
                ) from None
            offset += len(part)
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text or final:
                yield text, offset
            if final:
                return
